"""Storage objects from an archive -> an S3 bucket.

S3 has no rename: new objects are put as they arrive and, if the restore then fails (the
manifest disagrees, the database restore fails), the ones this restore wrote are deleted
again. An object that is to replace an existing one is staged under another key and
copied over the original only once the restore commits.
"""

from __future__ import annotations

import contextlib
import secrets

import anyio

from .._config import Overwrite, UploadChecksum
from .._errors import ArchiveWriteError, StorageTargetError
from .._protocols import Outcome, StoredObject
from .._units import MIB
from .client import S3Client
from .errors import S3_ERRORS, describe_error, is_not_found
from .upload import open_s3_upload

__all__ = ["S3Target"]

#: After an interrupted write, how many times (and how far apart, in seconds) abort looks
#: for the object the server may still store.
SETTLE_CHECKS = 4
SETTLE_INTERVAL = 0.25


class S3Target:
    """A :class:`~monetr_backup.stages.StorageTarget` restoring objects into ``bucket``.

    New keys are put in place directly (and deleted again by :meth:`abort`). A key that
    exists and is to be replaced (``always``) is first written under a staging key and
    copied over the original only by :meth:`commit`, so a failed restore never destroys
    an object that was there before it. With ``dry_run`` every key is checked and
    nothing is written.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str,
        overwrite: Overwrite,
        checksum: UploadChecksum = UploadChecksum.CRC32,
        *,
        dry_run: bool = False,
    ) -> None:
        self.client = client
        self.checksum = checksum
        self.bucket = bucket
        self.prefix = prefix
        self.overwrite = overwrite
        self.dry_run = dry_run
        self.outcome = Outcome()
        self._created: list[str] = []
        self._staged: list[tuple[str, str]] = []
        # The key being written: if the write is interrupted (a cancellation while its
        # PutObject or Complete is in flight), the server may have stored it anyway.
        self._writing: str | None = None

    async def _exists(self, key: str) -> bool:
        try:
            await self.client.head_object(Bucket=self.bucket, Key=key)
        except S3_ERRORS as exc:
            if is_not_found(exc):
                return False
            raise StorageTargetError(
                f"cannot check s3://{self.bucket}/{key}: {describe_error(exc)}"
            ) from exc
        return True

    async def write(self, item: StoredObject) -> None:
        """Upload ``item`` (or its staging copy, or record it as skipped or in conflict)."""
        key = item.key
        replacing = await self._exists(self.prefix + key)
        if replacing and self.overwrite is not Overwrite.ALWAYS:
            (
                self.outcome.skipped if self.overwrite is Overwrite.SKIP else self.outcome.conflicts
            ).append(key)
            return
        if self.dry_run:
            return
        target = self.prefix + key
        if replacing:
            target += f".{secrets.token_hex(6)}.monetr-restore"
        self._writing = target
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
                async for chunk in item.chunks:
                    await upload.write(chunk)
                await upload.commit()
        except ArchiveWriteError as exc:
            # A definite failure: nothing of ours is there (the upload checks a failed
            # final write against the key), and what is there may be another writer's.
            self._writing = None
            raise StorageTargetError(f"restoring object {key!r} failed: {exc}") from exc
        self._writing = None
        if replacing:
            self._staged.append((key, target))
        else:
            self._created.append(key)
            self.outcome.written.append(key)

    async def commit(self) -> None:
        """Copy every staged replacement over its original (the manifest has been checked)."""
        # New keys went in place as they were written: from now on they are the restore's
        # result, which a failing copy below must not make abort() delete.
        self._created.clear()
        while self._staged:
            key, staging = self._staged[0]
            try:
                await self.client.copy_object(
                    Bucket=self.bucket,
                    Key=self.prefix + key,
                    CopySource={"Bucket": self.bucket, "Key": staging},
                )
            except S3_ERRORS as exc:
                raise StorageTargetError(
                    f"replacing s3://{self.bucket}/{self.prefix}{key} failed: {describe_error(exc)}"
                ) from exc
            self._staged.pop(0)
            await self._delete([staging])
            self.outcome.written.append(key)

    async def has(self, key: str) -> bool:
        """Whether an object is at ``key`` now (the restored instance check)."""
        return await self._exists(self.prefix + key)

    async def abort(self) -> None:
        """Delete what this restore wrote: new keys and staging copies, never originals."""
        writing = [self._writing] if self._writing is not None else []
        with anyio.CancelScope(shield=True):
            await self._delete([self.prefix + key for key in self._created] + writing)
            await self._delete([staging for _, staging in self._staged])
            # The interrupted request may still be finishing on the server, after our
            # DELETE: look again for a short while, and take back what lands.
            for _ in range(SETTLE_CHECKS if writing else 0):
                await anyio.sleep(SETTLE_INTERVAL)
                # Best effort: this look must not replace the error being handled.
                with contextlib.suppress(StorageTargetError):
                    if await self._exists(writing[0]):
                        await self._delete(writing)
        self._writing = None
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
            raise StorageTargetError(
                f"could not delete {len(failed)} object(s) a failed restore wrote in "
                f"s3://{self.bucket}, e.g. {failed[0]!r}; remove them by hand"
            )
