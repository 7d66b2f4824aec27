"""Storage objects from an archive -> a directory, the way monetr writes them.

Folders 0700, files 0600, through a safe join that follows no symlink. Until
:meth:`DirectoryTarget.commit`, nothing under the target changes but one hidden staging
folder at its top, where each object is written and fsynced under a numbered name;
commit creates the objects' folders and links each file into place, abort removes the
staging folder. A failed restore leaves the directory exactly as it was.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path
from typing import BinaryIO

import anyio
import anyio.to_thread

from .._config import Overwrite
from .._errors import StorageTargetError, UnsafeMemberError
from .._protocols import Outcome, StoredObject
from .safe_paths import dir_fd, exists, key_parts

__all__ = ["DirectoryTarget"]


def _create_new(path: Path) -> BinaryIO:
    """Create ``path`` (0600, not there before, no symlink followed) for writing."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def _flush_and_sync(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())


class DirectoryTarget:
    """A :class:`~monetr_backup.stages.StorageTarget` restoring objects as files under ``root``.

    ``overwrite`` decides what happens to a key that exists already; with ``dry_run``
    every key is checked and nothing is written.
    """

    def __init__(self, root: Path, overwrite: Overwrite, *, dry_run: bool = False) -> None:
        self.root = root
        self.overwrite = overwrite
        self.dry_run = dry_run
        self.outcome = Outcome()
        # (key, its path components, its staged file's name)
        self._staged: list[tuple[str, list[str], str]] = []
        self._staged_keys: set[str] = set()
        self._staged_folders: set[str] = set()
        self._staging: Path | None = None
        self._created_root = False

    def _refuse_clash(self, key: str, parts: list[str]) -> None:
        # Two keys of one archive where one is the other's folder: a file and a folder
        # cannot share a name, and commit is too late to find out.
        folders = {"/".join(parts[:depth]) for depth in range(1, len(parts))}
        if key in self._staged_folders or folders & self._staged_keys:
            raise UnsafeMemberError("key clashes with another key's folder", member=key)

    async def write(self, item: StoredObject) -> None:
        """Stage ``item`` (or record it as skipped or in conflict); nothing is visible yet."""
        parts = key_parts(item.key)
        if await anyio.to_thread.run_sync(exists, self.root, parts):
            if self.overwrite is Overwrite.SKIP:
                self.outcome.skipped.append(item.key)
                return
            if self.overwrite is Overwrite.NEVER:
                self.outcome.conflicts.append(item.key)
                return
        self._refuse_clash(item.key, parts)
        if self.dry_run:
            return
        staging = await self._staging_folder()
        name = f"{len(self._staged):08d}"
        self._staged.append((item.key, parts, name))
        self._staged_keys.add(item.key)
        self._staged_folders.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
        try:
            # Thread calls that a cancellation waits for, so the file always comes back
            # here to be closed: aiofiles, cancelled while opening, leaves the file it
            # opened (and its descriptor) to the garbage collector.
            file = await anyio.to_thread.run_sync(_create_new, staging / name)
            try:
                async for chunk in item.chunks:
                    await anyio.to_thread.run_sync(file.write, chunk)
                await anyio.to_thread.run_sync(_flush_and_sync, file)
            finally:
                file.close()
        except OSError as exc:
            raise StorageTargetError(
                f"writing {item.key!r} under {self.root} failed: {exc}"
            ) from exc

    async def _staging_folder(self) -> Path:
        if self._staging is not None:
            return self._staging

        def create() -> Path:
            if not self.root.exists():
                self.root.mkdir(mode=0o700, parents=True)
                self._created_root = True
            # A fixed-length name: keys may already be at the 255-byte name limit.
            staging = self.root / f".monetr-restore.{secrets.token_hex(8)}"
            staging.mkdir(mode=0o700)
            return staging

        try:
            self._staging = await anyio.to_thread.run_sync(create)
        except OSError as exc:
            raise StorageTargetError(f"cannot write under {self.root}: {exc}") from exc
        return self._staging

    async def commit(self) -> None:
        """Link every staged file into place (the manifest has been checked)."""
        staging = self._staging

        def publish(parts: list[str], name: str) -> bool:
            assert staging is not None
            folder = dir_fd(self.root, parts[:-1], create=True)
            source = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                if self.overwrite is Overwrite.ALWAYS:
                    os.replace(name, parts[-1], src_dir_fd=source, dst_dir_fd=folder)
                    return True
                try:
                    # link() refuses to replace a file that appeared since write().
                    os.link(name, parts[-1], src_dir_fd=source, dst_dir_fd=folder)
                except FileExistsError:
                    return False
                return True
            finally:
                os.fsync(folder)
                os.close(folder)
                os.close(source)

        for key, parts, name in self._staged:
            try:
                published = await anyio.to_thread.run_sync(publish, parts, name)
            except OSError as exc:
                raise StorageTargetError(f"moving {key!r} into place failed: {exc}") from exc
            if published:
                self.outcome.written.append(key)
            elif self.overwrite is Overwrite.SKIP:
                self.outcome.skipped.append(key)
            else:
                self.outcome.conflicts.append(key)
        self._staged.clear()
        await self._remove_staging()

    async def abort(self) -> None:
        """Remove everything staged: the directory is as it was before the restore."""
        self._staged.clear()
        with anyio.CancelScope(shield=True):
            await self._remove_staging()
            if self._created_root:
                with contextlib.suppress(OSError):
                    await anyio.to_thread.run_sync(self.root.rmdir)
                self._created_root = False

    async def _remove_staging(self) -> None:
        if self._staging is not None:
            await anyio.to_thread.run_sync(shutil.rmtree, self._staging, True)
            self._staging = None
