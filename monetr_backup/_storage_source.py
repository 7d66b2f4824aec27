"""Storage objects -> archive members: a directory walk or an S3 listing.

Each object's size comes from the object as opened (``fstat``, or the GET response's
Content-Length), never from a listing that may be stale. An object that disappears
between listing and reading is skipped and recorded, not an error: monetr deletes
processed uploads on its own schedule.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

import aiofiles
import anyio.to_thread

from ._config import MIB
from ._errors import StorageSourceError
from ._format import SkippedObject, unsafe_path_reason
from ._member import Member
from ._s3 import S3_ERRORS, S3Client, describe_error, error_code

__all__ = ["directory_objects", "s3_objects"]

READ_SIZE = MIB


def _scan(directory: Path) -> list[os.DirEntry[str]]:
    with os.scandir(directory) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def _open_nofollow(path: str, flags: int) -> int:
    # O_NOFOLLOW closes the window in which a file could be swapped for a symlink
    # between the directory scan and the open.
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)


async def _walk(root: Path, relative: PurePosixPath) -> AsyncIterator[tuple[str, os.DirEntry[str]]]:
    for entry in await anyio.to_thread.run_sync(_scan, root / relative):
        key = str(relative / entry.name) if relative.parts else entry.name
        if entry.is_dir(follow_symlinks=False):
            async for item in _walk(root, relative / entry.name):
                yield item
        else:
            yield key, entry


async def directory_objects(root: Path, skipped: list[SkippedObject]) -> AsyncIterator[Member]:
    """Yield every regular file under ``root`` as a member named by its relative key.

    Symlinks are not followed and, like other non-regular files, are recorded in
    ``skipped`` with the reason.
    """
    if not await anyio.to_thread.run_sync(root.is_dir):
        raise StorageSourceError(f"storage directory {root} does not exist")
    async for key, entry in _walk(root, PurePosixPath()):
        if entry.is_symlink():
            skipped.append(SkippedObject(key=key, reason="symlink (not followed)"))
            continue
        if not entry.is_file(follow_symlinks=False):
            skipped.append(SkippedObject(key=key, reason="not a regular file"))
            continue
        try:
            file = await aiofiles.open(entry.path, "rb", opener=_open_nofollow)
        except FileNotFoundError:
            skipped.append(SkippedObject(key=key, reason="deleted before it was read"))
            continue
        except OSError as exc:
            raise StorageSourceError(f"cannot open storage file {key!r}: {exc}") from exc
        info = await anyio.to_thread.run_sync(os.fstat, file.fileno())
        if not stat.S_ISREG(info.st_mode):
            await file.close()
            skipped.append(SkippedObject(key=key, reason="not a regular file"))
            continue
        yield Member(key, info.st_size, _read_file(file, key, info.st_size), mtime=info.st_mtime)


async def _read_file(
    file: aiofiles.threadpool.binary.AsyncBufferedReader, key: str, size: int
) -> AsyncIterator[bytes]:
    try:
        remaining = size
        while remaining:
            try:
                chunk = await file.read(min(READ_SIZE, remaining))
            except OSError as exc:
                raise StorageSourceError(f"reading storage file {key!r} failed: {exc}") from exc
            if not chunk:
                raise StorageSourceError(
                    f"storage file {key!r} shrank while it was read ({remaining} bytes missing)"
                )
            remaining -= len(chunk)
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):
            await file.close()


async def s3_objects(
    client: S3Client, bucket: str, prefix: str, skipped: list[SkippedObject]
) -> AsyncIterator[Member]:
    """Yield every object under ``prefix`` in ``bucket`` as a member named by its key."""
    paginator = client.get_paginator("list_objects_v2")
    try:
        async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for listed in page.get("Contents", []):
                key = listed["Key"]
                unsafe = unsafe_path_reason(key)
                if unsafe is not None:
                    # A reader must refuse such a member name, so it never enters an archive.
                    skipped.append(SkippedObject(key=key, reason=f"unsafe key: {unsafe}"))
                    continue
                try:
                    response = await client.get_object(Bucket=bucket, Key=key)
                except S3_ERRORS as exc:
                    if error_code(exc) in {"NoSuchKey", "404"}:
                        skipped.append(SkippedObject(key=key, reason="deleted before it was read"))
                        continue
                    raise
                body = response["Body"]
                modified = response.get("LastModified")
                mtime = modified.timestamp() if modified is not None else 0.0
                yield Member(key, response["ContentLength"], _read_body(body, key), mtime=mtime)
    except S3_ERRORS as exc:
        raise StorageSourceError(
            f"reading storage bucket {bucket!r} failed: {describe_error(exc)}"
        ) from exc


async def _read_body(body: object, key: str) -> AsyncIterator[bytes]:
    try:
        async with body as stream:  # type: ignore[attr-defined]
            while chunk := await stream.read(READ_SIZE):
                yield chunk
    except S3_ERRORS as exc:
        raise StorageSourceError(
            f"reading storage object {key!r} failed: {describe_error(exc)}"
        ) from exc
