"""A storage directory -> archive members: a walk that follows no symlink.

Each file's size comes from the file as opened (``fstat``), never from the directory
scan, which may be stale. A file that disappears between the scan and the open is
skipped and recorded, not an error: monetr deletes processed uploads on its own schedule.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import aiofiles.threadpool
import anyio
import anyio.to_thread
from aiofiles.threadpool.binary import AsyncBufferedReader

from .._errors import StorageSourceError
from .._format.documents import SkippedObject
from .._protocols import Member
from .._units import MIB

__all__ = ["directory_objects"]

READ_SIZE = MIB


def _scan(directory: Path) -> list[os.DirEntry[str]]:
    with os.scandir(directory) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def _open(path: str) -> tuple[BinaryIO, os.stat_result]:
    """``path`` opened for reading, and its status as opened."""
    # O_NOFOLLOW closes the window in which a file could be swapped for a symlink
    # between the directory scan and the open.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        return os.fdopen(fd, "rb"), info
    except BaseException:
        os.close(fd)
        raise


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
            # One thread call, which a cancellation waits for: the file always comes back
            # here to be closed (aiofiles.open, cancelled while its thread opened the
            # file, leaves it, and its descriptor, to the garbage collector). From here
            # to the ``try`` below nothing awaits.
            raw, info = await anyio.to_thread.run_sync(_open, entry.path)
        except FileNotFoundError:
            skipped.append(SkippedObject(key=key, reason="deleted before it was read"))
            continue
        except OSError as exc:
            raise StorageSourceError(f"cannot open storage file {key!r}: {exc}") from exc
        if not stat.S_ISREG(info.st_mode):
            raw.close()
            skipped.append(SkippedObject(key=key, reason="not a regular file"))
            continue
        file: AsyncBufferedReader = aiofiles.threadpool.wrap(raw)
        chunks = _read_file(file, key, info.st_size)
        try:
            yield Member(key, info.st_size, chunks, mtime=info.st_mtime)
        finally:
            # A member the consumer never read has a generator that never started, so
            # nothing else would close its file.
            if not file.closed:
                with anyio.CancelScope(shield=True):
                    await file.close()


async def _read_file(file: AsyncBufferedReader, key: str, size: int) -> AsyncIterator[bytes]:
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
