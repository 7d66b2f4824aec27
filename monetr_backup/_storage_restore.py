"""Storage objects from an archive -> a directory or an S3 bucket.

Directory targets are written the way monetr writes them (folders 0700, files 0600),
through a safe join that follows no symlink, each file under a temporary name. Files are
only renamed into place by :meth:`DirectoryTarget.publish`, after the manifest has
vouched for every byte, so a failed restore leaves no half-written or unverified file.
S3 has no rename: objects are put as they arrive and, if the restore then fails (the
manifest disagrees, the database restore fails), the ones this restore wrote are deleted
again.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiofiles
import anyio
import anyio.to_thread

from ._config import MIB, Overwrite, UploadChecksum
from ._errors import DestinationError, RestoreError, UnsafeMemberError
from ._format import unsafe_path_reason
from ._s3 import S3_ERRORS, S3Client, describe_error, error_code
from ._upload_s3 import open_s3_upload

__all__ = ["DirectoryTarget", "Outcome", "S3Target"]


@dataclass(slots=True)
class Outcome:
    """What happened to each key: written, skipped, or in conflict."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def key_parts(key: str) -> list[str]:
    """Split an object key into path components, refusing any that could escape."""
    reason = unsafe_path_reason(key)
    if reason is not None:
        raise UnsafeMemberError(f"unsafe storage key: {reason}", member=key)
    return key.split("/")


def _open_dir(parent_fd: int, name: str, create: bool) -> int:
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(name, flags, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            raise
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o700, dir_fd=parent_fd)
    return os.open(name, flags, dir_fd=parent_fd)


def _dir_fd(root: Path, folders: list[str], create: bool) -> int:
    """A descriptor of ``root/folders...``; O_NOFOLLOW at each step refuses symlinks."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in folders:
            child = _open_dir(fd, name, create)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _exists(root: Path, parts: list[str]) -> bool:
    try:
        fd = _dir_fd(root, parts[:-1], create=False)
    except FileNotFoundError:
        return False
    except NotADirectoryError as exc:
        raise UnsafeMemberError(
            "a parent of this key is not a folder", member="/".join(parts)
        ) from exc
    try:
        os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)
    return True


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
            _exists, self.root, parts
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
            folder = _dir_fd(self.root, parts[:-1], create=True)
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
            folder = _dir_fd(self.root, item.parts[:-1], create=False)
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
                folder = _dir_fd(self.root, item.parts[:-1], create=False)
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


class S3Target:
    """Restores objects into ``bucket`` under ``prefix``; see the module notes.

    New keys are put in place directly (and deleted again if the restore fails). A key
    that exists and is to be replaced (``always``) is first written under a staging key
    and copied over the original only by :meth:`publish`, so a failed restore never
    destroys an object that was there before it.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str,
        overwrite: Overwrite,
        checksum: UploadChecksum = UploadChecksum.CRC32,
    ) -> None:
        self.client = client
        self.checksum = checksum
        self.bucket = bucket
        self.prefix = prefix
        self.overwrite = overwrite
        self.outcome = Outcome()
        self._replacing: set[str] = set()
        self._created: list[str] = []
        self._staged: list[tuple[str, str]] = []

    async def _exists(self, key: str) -> bool:
        try:
            await self.client.head_object(Bucket=self.bucket, Key=key)
        except S3_ERRORS as exc:
            if error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise RestoreError(
                f"cannot check s3://{self.bucket}/{key}: {describe_error(exc)}"
            ) from exc
        return True

    async def prepare(self, key: str) -> bool:
        """Decide whether ``key`` is to be written; records skips and conflicts."""
        if not await self._exists(self.prefix + key):
            return True
        if self.overwrite is Overwrite.ALWAYS:
            self._replacing.add(key)
            return True
        (
            self.outcome.skipped if self.overwrite is Overwrite.SKIP else self.outcome.conflicts
        ).append(key)
        return False

    async def write(self, key: str, chunks: AsyncIterator[bytes]) -> None:
        """Upload ``key`` (or its staging copy): PutObject when small, multipart when large."""
        staged = key in self._replacing
        target = self.prefix + key
        if staged:
            target += f".{secrets.token_hex(6)}.monetr-restore"
        try:
            async with open_s3_upload(
                self.client,
                self.bucket,
                target,
                part_size=8 * MIB,
                # A new key must still be new when it is written: a concurrent writer wins.
                overwrite=False,
                check_first=False,
                checksum=self.checksum,
            ) as upload:
                async for chunk in chunks:
                    await upload.write(chunk)
                await upload.commit()
        except DestinationError as exc:
            raise RestoreError(f"restoring object {key!r} failed: {exc}") from exc
        if staged:
            self._staged.append((key, target))
        else:
            self._created.append(key)
            self.outcome.written.append(key)

    async def publish(self) -> None:
        """Copy every staged replacement over its original (the manifest has been checked)."""
        while self._staged:
            key, staging = self._staged.pop(0)
            try:
                await self.client.copy_object(
                    Bucket=self.bucket,
                    Key=self.prefix + key,
                    CopySource={"Bucket": self.bucket, "Key": staging},
                )
            except S3_ERRORS as exc:
                self._staged.insert(0, (key, staging))
                raise RestoreError(
                    f"replacing s3://{self.bucket}/{self.prefix}{key} failed: {describe_error(exc)}"
                ) from exc
            await self._delete([staging])
            self.outcome.written.append(key)

    async def discard(self) -> None:
        """Delete what a failed restore wrote: new keys and staging copies, never originals."""
        with anyio.CancelScope(shield=True):
            await self._delete([self.prefix + key for key in self._created])
            await self._delete([staging for _, staging in self._staged])
        for key in self._created:
            self.outcome.written.remove(key)
        self._created.clear()
        self._staged.clear()

    async def _delete(self, keys: list[str]) -> None:
        failed: list[str] = []
        for key in keys:
            try:
                await self.client.delete_object(Bucket=self.bucket, Key=key)
            except S3_ERRORS:
                failed.append(key)
        if failed:
            raise RestoreError(
                f"could not delete {len(failed)} object(s) a failed restore wrote in "
                f"s3://{self.bucket}, e.g. {failed[0]!r}; remove them by hand"
            )
