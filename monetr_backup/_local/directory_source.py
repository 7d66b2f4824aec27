"""A storage directory -> archive members: a walk that follows no symlink.

Each file's size comes from the file as opened (``fstat``), never from the directory
scan, which may be stale. A file that disappears between the scan and the open is
skipped and recorded, not an error: monetr deletes processed uploads on its own schedule.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from contextlib import aclosing
from pathlib import Path, PurePosixPath

import aiofiles
import anyio
import anyio.to_thread

from .._errors import StorageSourceError
from .._format.documents import SkippedObject
from .._format.layout import unsafe_path_reason
from .._protocols import Member
from .._units import MIB
from .safe_paths import dir_fd, open_shielded

__all__ = ["directory_objects"]

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
    root: Path, skipped: list[SkippedObject], keys: Iterable[str] | None = None
) -> AsyncGenerator[Member, None]:
    """Yield every regular file under ``root`` as a member named by its relative key.

    Symlinks are not followed and, like other non-regular files, are recorded in
    ``skipped`` with the reason. Given ``keys``, yield those files instead of walking, in
    that order; a key with no file is recorded in ``skipped`` as missing.
    """
    if not await anyio.to_thread.run_sync(root.is_dir):
        raise StorageSourceError(f"storage directory {root} does not exist")
    if keys is not None:
        for key in keys:
            # aclosing: closed with this generator, the inner one closes its file now.
            async with aclosing(_key_member(root, key, skipped)) as members:
                async for member in members:
                    yield member
        return
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
        async with aclosing(_file_member(key, entry.path, skipped)) as members:
            async for member in members:
                yield member


def _open_key(root: Path, key: str) -> int:
    """Blocking: open ``root/key`` for reading, following no symlink on the way."""
    parts = key.split("/")
    folder = dir_fd(root, parts[:-1], create=False)
    try:
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
    finally:
        os.close(folder)


async def _key_member(
    root: Path, key: str, skipped: list[SkippedObject]
) -> AsyncGenerator[Member, None]:
    """The file at ``key`` as a member, or a ``skipped`` entry saying why not."""
    unsafe = unsafe_path_reason(key)
    if unsafe is not None:
        skipped.append(SkippedObject(key=key, reason=f"unsafe key: {unsafe}"))
        return
    # Shielded: a descriptor opened by a cancelled call would be left open.
    with anyio.CancelScope(shield=True):
        try:
            fd = await anyio.to_thread.run_sync(_open_key, root, key)
        except FileNotFoundError:
            skipped.append(SkippedObject(key=key, reason="missing"))
            return
        except OSError as exc:
            if exc.errno in {errno.ELOOP, errno.ENOTDIR}:
                skipped.append(SkippedObject(key=key, reason="symlink (not followed)"))
                return
            raise StorageSourceError(f"cannot open storage file {key!r}: {exc}") from exc
    async with aclosing(_file_member(key, fd, skipped)) as members:
        async for member in members:
            yield member


async def _file_member(
    key: str, opened: str | int, skipped: list[SkippedObject]
) -> AsyncGenerator[Member, None]:
    """The regular file at path or descriptor ``opened`` as a member, closed in the end."""
    try:
        file = await open_shielded(
            opened, "rb", opener=None if isinstance(opened, int) else _open_nofollow
        )
    except FileNotFoundError:
        skipped.append(SkippedObject(key=key, reason="deleted before it was read"))
        return
    except OSError as exc:
        raise StorageSourceError(f"cannot open storage file {key!r}: {exc}") from exc
    try:
        # Shielded: cancelled at this call's checkpoint, the open file would be left.
        with anyio.CancelScope(shield=True):
            info = await anyio.to_thread.run_sync(os.fstat, file.fileno())
        if not stat.S_ISREG(info.st_mode):
            skipped.append(SkippedObject(key=key, reason="not a regular file"))
            return
        yield Member(key, info.st_size, _read_file(file, key, info.st_size), mtime=info.st_mtime)
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
