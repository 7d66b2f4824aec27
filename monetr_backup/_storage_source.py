"""Storage objects -> archive members: a directory walk or an S3 listing.

Each object's size comes from the object as opened (``fstat``, or the GET response's
Content-Length), never from a listing that may be stale. An object that disappears
between listing and reading is skipped and recorded, not an error: monetr deletes
processed uploads on its own schedule.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import aiofiles
import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from ._config import MIB
from ._errors import StorageSourceError, single_errors
from ._format import SkippedObject, unsafe_path_reason
from ._member import Member
from ._s3 import S3_ERRORS, S3Client, describe_error, error_code

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import GetObjectOutputTypeDef

__all__ = ["directory_objects", "open_s3_objects", "s3_objects"]

READ_SIZE = MIB


def _scan(directory: Path) -> list[os.DirEntry[str]]:
    with os.scandir(directory) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def _open_nofollow(path: str, flags: int) -> int:
    # O_NOFOLLOW closes the window in which a file could be swapped for a symlink
    # between the directory scan and the open.
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)


async def _walk(root: Path, relative: PurePosixPath) -> AsyncIterator[tuple[str, os.DirEntry[str]]]:
    try:
        entries = await anyio.to_thread.run_sync(_scan, root / relative)
    except OSError as exc:
        raise StorageSourceError(f"cannot list storage folder {str(relative)!r}: {exc}") from exc
    for entry in entries:
        key = str(relative / entry.name) if relative.parts else entry.name
        if entry.is_dir(follow_symlinks=False):
            async for item in _walk(root, relative / entry.name):
                yield item
        else:
            yield key, entry


async def directory_objects(
    root: Path, skipped: list[SkippedObject]
) -> AsyncGenerator[Member, None]:
    """Yield every regular file under ``root`` as a member named by its relative key.

    Symlinks are not followed and, like other non-regular files, are recorded in
    ``skipped`` with the reason.
    """
    if not await anyio.to_thread.run_sync(root.is_dir):
        raise StorageSourceError(f"storage directory {root} does not exist")
    async for key, entry in _walk(root, PurePosixPath()):
        try:
            key.encode()
        except UnicodeEncodeError:
            # Not UTF-8 on disk: no archive member name or S3 key can carry it faithfully.
            printable = key.encode(errors="surrogateescape").decode(errors="replace")
            skipped.append(SkippedObject(key=printable, reason="file name is not valid UTF-8"))
            continue
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
        chunks = _read_file(file, key, info.st_size)
        try:
            yield Member(key, info.st_size, chunks, mtime=info.st_mtime)
        finally:
            # A member the consumer never read has a generator that never started, so
            # nothing else would close its file.
            if not file.closed:
                with anyio.CancelScope(shield=True):
                    await file.close()


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


async def _listed_keys(
    client: S3Client, bucket: str, prefix: str, skipped: list[SkippedObject]
) -> AsyncIterator[tuple[str, int]]:
    paginator = client.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for listed in page.get("Contents", []):
            key = listed["Key"]
            unsafe = unsafe_path_reason(key)
            if unsafe is not None:
                # A reader must refuse such a member name, so it never enters an archive.
                skipped.append(SkippedObject(key=key, reason=f"unsafe key: {unsafe}"))
                continue
            yield key, listed.get("Size", 0)


async def _get(client: S3Client, bucket: str, key: str) -> GetObjectOutputTypeDef | None:
    """GET ``key``; ``None`` if it was deleted since it was listed."""
    try:
        return await client.get_object(Bucket=bucket, Key=key)
    except S3_ERRORS as exc:
        if error_code(exc) in {"NoSuchKey", "404"}:
            return None
        raise StorageSourceError(
            f"reading storage object {key!r} failed: {describe_error(exc)}"
        ) from exc


def _member(key: str, response: GetObjectOutputTypeDef, chunks: AsyncIterator[bytes]) -> Member:
    modified = response.get("LastModified")
    mtime = modified.timestamp() if modified is not None else 0.0
    return Member(key, response["ContentLength"], chunks, mtime=mtime)


async def s3_objects(
    client: S3Client, bucket: str, prefix: str, skipped: list[SkippedObject]
) -> AsyncIterator[Member]:
    """Yield every object under ``prefix`` in ``bucket``, one GET at a time.

    The simplest source; :func:`open_s3_objects` overlaps the GETs of small objects.
    """
    try:
        async for key, _size in _listed_keys(client, bucket, prefix, skipped):
            response = await _get(client, bucket, key)
            if response is None:
                skipped.append(SkippedObject(key=key, reason="deleted before it was read"))
                continue
            yield _member(key, response, _read_body(response["Body"], key))
    except S3_ERRORS as exc:
        raise StorageSourceError(
            f"listing storage bucket {bucket!r} failed: {describe_error(exc)}"
        ) from exc


class _ByteBudget:
    """Bytes held by fetched-ahead objects; acquired in listing order, so never deadlocks."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._changed = anyio.Condition()

    async def acquire(self, size: int) -> None:
        async with self._changed:
            # An object larger than the whole budget still goes through, alone.
            while self._used and self._used + size > self._limit:
                await self._changed.wait()
            self._used += size

    async def release(self, size: int) -> None:
        async with self._changed:
            self._used -= size
            self._changed.notify_all()


@dataclass(slots=True)
class _Slot:
    key: str
    size: int
    small: bool
    done: anyio.Event = field(default_factory=anyio.Event)
    response: GetObjectOutputTypeDef | None = None
    data: bytes = b""
    error: Exception | None = None


@asynccontextmanager
async def open_s3_objects(
    client: S3Client,
    bucket: str,
    prefix: str,
    skipped: list[SkippedObject],
    *,
    prefetch_objects: int = 32,
    prefetch_bytes: int = 16 * MIB,
) -> AsyncIterator[AsyncIterator[Member]]:
    """Every object under ``prefix`` in ``bucket``, in listing order, fetched ahead.

    monetr's files are small and S3 latency dominates their cost, so up to
    ``prefetch_objects`` small objects are downloaded concurrently, holding at most
    ``prefetch_bytes`` between them. Objects larger than ``prefetch_bytes /
    prefetch_objects`` are not buffered: they stream in order when their turn comes.
    """
    small_limit = max(1, prefetch_bytes // prefetch_objects)
    budget = _ByteBudget(prefetch_bytes)
    slots_send, slots_receive = anyio.create_memory_object_stream[_Slot](prefetch_objects)

    async def fetch(slot: _Slot) -> None:
        try:
            slot.response = await _get(client, bucket, slot.key)
            if slot.response is not None:
                slot.data = b"".join([c async for c in _read_body(slot.response["Body"], slot.key)])
        except Exception as exc:  # handed to the consumer, in order
            slot.error = exc
        finally:
            slot.done.set()

    async def lister(tg: TaskGroup) -> None:
        async with slots_send:
            try:
                async for key, size in _listed_keys(client, bucket, prefix, skipped):
                    slot = _Slot(key, size, small=size <= small_limit)
                    if slot.small:
                        await budget.acquire(size)
                        tg.start_soon(fetch, slot)
                    else:
                        slot.done.set()
                    await slots_send.send(slot)
            except S3_ERRORS as exc:
                error = StorageSourceError(
                    f"listing storage bucket {bucket!r} failed: {describe_error(exc)}"
                )
                error.__cause__ = exc
                failed = _Slot("", 0, small=False, error=error)
                failed.done.set()  # nothing to fetch: the consumer must not wait for it
                await slots_send.send(failed)

    async def members() -> AsyncIterator[Member]:
        async for slot in slots_receive:
            await slot.done.wait()
            if slot.error is not None:
                raise slot.error
            if slot.small:
                await budget.release(slot.size)
                response = slot.response
                chunks = _each([slot.data])
            else:
                response = await _get(client, bucket, slot.key)
                chunks = _read_body(response["Body"], slot.key) if response else _each([])
            if response is None:
                skipped.append(SkippedObject(key=slot.key, reason="deleted before it was read"))
                continue
            yield _member(slot.key, response, chunks)

    with single_errors():
        async with anyio.create_task_group() as tg:
            tg.start_soon(lister, tg)
            try:
                with slots_receive:
                    yield members()
            finally:
                tg.cancel_scope.cancel()


async def _each(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        if chunk:
            yield chunk


async def _read_body(body: object, key: str) -> AsyncIterator[bytes]:
    try:
        async with body as stream:  # type: ignore[attr-defined]
            while chunk := await stream.read(READ_SIZE):
                yield chunk
    except S3_ERRORS as exc:
        raise StorageSourceError(
            f"reading storage object {key!r} failed: {describe_error(exc)}"
        ) from exc
