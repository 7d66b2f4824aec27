"""Storage objects from an archive -> an S3 bucket.

S3 has no rename: new objects are put as they arrive and, if the restore then fails (the
manifest disagrees, the database restore fails), the ones this restore wrote are deleted
again. An object that is to replace an existing one is staged under another key and
copied over the original only once the restore commits.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import anyio

from .._config import Overwrite, UploadChecksum
from .._errors import DestinationError, RestoreError
from .._protocols import Outcome
from .._units import MIB
from .client import S3_ERRORS, S3Client, describe_error, error_code
from .upload import open_s3_upload

__all__ = ["S3Target"]


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
