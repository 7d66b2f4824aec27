"""Archive bytes -> a local file, all or nothing.

Bytes go to a hidden temporary sibling (mode 0600: an archive holds password hashes);
only a committed archive is fsynced and linked (or, replacing one, renamed) into place,
so a reader never sees a partial file at ``path`` and a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread
from aiofiles.threadpool.binary import AsyncBufferedIOBase

from .._errors import ArchiveWriteError
from .safe_paths import fsync_folder, open_shielded

__all__ = ["FileSink", "open_file_sink"]


def _publish(temp: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temp, path)
    else:
        # link() fails if ``path`` appeared meanwhile, so an archive is never clobbered.
        os.link(temp, path)
        os.unlink(temp)
    fsync_folder(path.parent)


class FileSink:
    """An :class:`~monetr_backup.stages.ArchiveSink` writing a local file.

    See :func:`open_file_sink`.
    """

    def __init__(self, path: Path, temp: Path, file: AsyncBufferedIOBase, overwrite: bool) -> None:
        self.path = path
        self._temp = temp
        self._file = file
        self._overwrite = overwrite
        self._done = False
        self.bytes_written = 0

    async def write(self, data: bytes) -> None:
        """Append ``data`` to the temporary file."""
        try:
            await self._file.write(data)
        except OSError as exc:
            raise ArchiveWriteError(f"writing {self._temp} failed: {exc}") from exc
        self.bytes_written += len(data)

    async def commit(self) -> None:
        """Flush, fsync and rename the temporary file to ``path``."""
        try:
            await self._file.flush()
            await anyio.to_thread.run_sync(os.fsync, self._file.fileno())
            await self._file.close()
            await anyio.to_thread.run_sync(_publish, self._temp, self.path, self._overwrite)
        except FileExistsError as exc:
            raise ArchiveWriteError(f"{self.path} already exists") from exc
        except OSError as exc:
            raise ArchiveWriteError(f"finishing {self.path} failed: {exc}") from exc
        self._done = True

    async def abort(self) -> None:
        """Close and delete the temporary file."""
        if self._done:
            return
        self._done = True
        with anyio.CancelScope(shield=True):
            # Closing flushes what is buffered, which fails on a full disk (often the very
            # error being handled); the file is closed all the same, and goes anyway.
            with contextlib.suppress(OSError):
                await self._file.close()
            await anyio.to_thread.run_sync(self._temp.unlink, True)


@asynccontextmanager
async def open_file_sink(path: Path | str, *, overwrite: bool = False) -> AsyncIterator[FileSink]:
    """Write an archive to ``path``; the file appears only if :meth:`FileSink.commit` is called."""
    path = Path(path)
    if not overwrite and await anyio.to_thread.run_sync(path.exists):
        raise ArchiveWriteError(
            f"{path} already exists (BackupOptions.replace_archive replaces it)"
        )
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.partial")
    # Shielded from creating the file to having the sink that removes it: cancelled in
    # between, the temporary file would be left behind.
    with anyio.CancelScope(shield=True):
        try:
            fd = await anyio.to_thread.run_sync(
                os.open, temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600
            )
        except OSError as exc:
            raise ArchiveWriteError(f"cannot create {temp}: {exc}") from exc
        file = await open_shielded(fd, "wb")
        sink = FileSink(path, temp, file, overwrite)
    try:
        yield sink
    finally:
        await sink.abort()
