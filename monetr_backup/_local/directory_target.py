"""Storage objects from an archive -> a directory, the way monetr writes them.

Folders 0700, files 0600, through a safe join that follows no symlink, each file under a
temporary name. Files are only renamed into place by :meth:`DirectoryTarget.publish`,
after the manifest has vouched for every byte, so a failed restore leaves no half-written
or unverified file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiofiles
import anyio
import anyio.to_thread

from .._config import Overwrite
from .._errors import RestoreError, UnsafeMemberError
from .._protocols import Outcome
from .safe_paths import dir_fd, exists, key_parts

__all__ = ["DirectoryTarget"]


@dataclass(frozen=True, slots=True)
class _Staged:
    key: str
    parts: list[str]
    temp: str


class DirectoryTarget:
    """Restores objects as files under ``root``; see the module notes."""

    def __init__(self, root: Path, overwrite: Overwrite) -> None:
        self.root = root
        self.overwrite = overwrite
        self.outcome = Outcome()
        self._staged: list[_Staged] = []

    async def prepare(self, key: str) -> bool:
        """Decide whether ``key`` is to be written; records skips and conflicts."""
        parts = key_parts(key)
        if self.overwrite is not Overwrite.ALWAYS and await anyio.to_thread.run_sync(
            exists, self.root, parts
        ):
            (
                self.outcome.skipped if self.overwrite is Overwrite.SKIP else self.outcome.conflicts
            ).append(key)
            return False
        return True

    async def write(self, key: str, chunks: AsyncIterator[bytes]) -> None:
        """Write ``key`` to a temporary file beside its final name."""
        parts = key_parts(key)
        await anyio.to_thread.run_sync(os.makedirs, self.root, 0o700, True)
        # A fixed-length name: the final name may already be at the 255-byte limit.
        temp = f".monetr-restore.{secrets.token_hex(8)}.partial"

        def create() -> int:
            folder = dir_fd(self.root, parts[:-1], create=True)
            try:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                return os.open(temp, flags, 0o600, dir_fd=folder)
            finally:
                os.close(folder)

        try:
            fd = await anyio.to_thread.run_sync(create)
        except NotADirectoryError as exc:
            raise UnsafeMemberError("a parent of this key is not a folder", member=key) from exc
        except OSError as exc:
            raise RestoreError(f"cannot create a file for {key!r}: {exc}") from exc
        staged = _Staged(key, parts, temp)
        self._staged.append(staged)
        try:
            async with aiofiles.open(fd, "wb") as file:
                async for chunk in chunks:
                    await file.write(chunk)
                await file.flush()
                await anyio.to_thread.run_sync(os.fsync, file.fileno())
        except OSError as exc:
            raise RestoreError(f"writing {key!r} under {self.root} failed: {exc}") from exc

    async def publish(self) -> None:
        """Rename every staged file into place (the manifest has been checked)."""

        def publish_one(item: _Staged) -> bool:
            folder = dir_fd(self.root, item.parts[:-1], create=False)
            try:
                if self.overwrite is Overwrite.ALWAYS:
                    os.replace(item.temp, item.parts[-1], src_dir_fd=folder, dst_dir_fd=folder)
                    return True
                try:
                    # link() refuses to replace a file that appeared since prepare().
                    os.link(
                        item.temp,
                        item.parts[-1],
                        src_dir_fd=folder,
                        dst_dir_fd=folder,
                        follow_symlinks=False,
                    )
                except FileExistsError:
                    return False
                finally:
                    os.unlink(item.temp, dir_fd=folder)
                return True
            finally:
                os.fsync(folder)
                os.close(folder)

        while self._staged:
            item = self._staged.pop(0)
            try:
                published = await anyio.to_thread.run_sync(publish_one, item)
            except OSError as exc:
                self._staged.insert(0, item)
                raise RestoreError(f"moving {item.key!r} into place failed: {exc}") from exc
            if published:
                self.outcome.written.append(item.key)
            elif self.overwrite is Overwrite.SKIP:
                self.outcome.skipped.append(item.key)
            else:
                self.outcome.conflicts.append(item.key)

    async def discard(self) -> None:
        """Remove every staged temporary file (a failed or dry restore)."""

        def remove(item: _Staged) -> None:
            try:
                folder = dir_fd(self.root, item.parts[:-1], create=False)
            except OSError:
                return
            try:
                os.unlink(item.temp, dir_fd=folder)
            except FileNotFoundError:
                pass
            finally:
                os.close(folder)

        with anyio.CancelScope(shield=True):
            while self._staged:
                await anyio.to_thread.run_sync(remove, self._staged.pop())
