"""A folder of backups and a retention policy -> the backups kept (and why) and those deleted.

Only what is provably ours is ever deleted: an archive whose name matches the patterns,
with a readable entry naming it and recording its exact size, and which still has that
size (and, on S3, ETag) a moment before the delete. Never the newest backup; nothing at
all when the listing failed or any entry cannot be read; never a file that is neither
an archive nor an entry.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
from pydantic import BaseModel, ConfigDict

from .._errors import CatalogError, single_errors
from .._s3.client import S3Client
from .entry import ENTRY_SUFFIX
from .listing import BackupListing, ListedBackup, check_location, read_listing
from .location import Backend, FileArchives, S3Archives, Upload, is_archive_name, open_backend
from .policy import RetentionPolicy, apply_policy

__all__ = ["KeptBackup", "PruneResult", "StaleUpload", "prune"]


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KeptBackup(_Result):
    """A backup prune kept, and every reason that kept it."""

    backup: ListedBackup
    #: The rules that keep it (``newest``, ``last``, ``daily``, ``weekly (oldest)``,
    #: ``within``, ...), or ``size differs from its entry`` for one that is not
    #: provably whole.
    reasons: list[str]


class StaleUpload(_Result):
    """An unfinished multipart upload found under the prefix."""

    key: str
    upload_id: str
    initiated: datetime


class PruneResult(_Result):
    """What :func:`prune` kept and deleted (with ``dry_run``: would delete)."""

    dry_run: bool
    kept: list[KeptBackup]
    #: Deleted, archive and entry (dry run: what would be), newest first.
    deleted: list[ListedBackup]
    #: The listing prune worked from: archives without entries and other files in it
    #: were left alone.
    listing: BackupListing
    #: Unfinished uploads older than asked (dry run: that would be) aborted.
    aborted_uploads: list[StaleUpload]
    #: Unfinished uploads younger than that, left running.
    kept_uploads: list[StaleUpload]


MISMATCH = "size differs from its entry"


async def _delete(backend: Backend, backup: ListedBackup) -> None:
    # Looked at again just before: a backup written over it since the listing (same
    # name, replace_archive) must not go in its place.
    now = await backend.stat(backup.name)
    if now is None or now.size != backup.entry.archive_size:
        raise CatalogError(f"{backend.describe(backup.name)} changed since it was listed")
    if backup.etag is not None and now.tag != backup.etag:
        raise CatalogError(f"{backend.describe(backup.name)} changed since it was listed")
    # The archive first: stopped in between, an entry without an archive is left, which
    # the listing reports; the other order would leave an archive nothing can prune.
    # Shielded, so that a cancellation does not split the pair either.
    with anyio.CancelScope(shield=True):
        await backend.delete(backup.name)
        await backend.delete(backup.name + ENTRY_SUFFIX)


async def prune(
    location: FileArchives | S3Archives,
    policy: RetentionPolicy,
    *,
    dry_run: bool = True,
    abort_uploads_older_than: timedelta | None = None,
    s3_client: S3Client | None = None,
) -> PruneResult:
    """Delete the backups at ``location`` that ``policy`` does not keep; by default only say so.

    ``dry_run`` (the default) deletes nothing and returns what would be deleted. Only
    backups with an entry whose recorded size matches the archive are candidates; the
    newest of them is always kept, and any other archive or file is left alone. If the
    listing fails or is incomplete, or any entry cannot be read, :class:`CatalogError`
    is raised and nothing is deleted. A delete that fails stops the prune with
    :class:`CatalogError` (its notes name what was deleted before).

    ``abort_uploads_older_than`` (S3 only): also abort unfinished multipart uploads of
    archive names under the prefix begun longer ago than that, by the server's clock
    (a backup running now has a young one).
    """
    check_location(location)
    if not isinstance(policy, RetentionPolicy):
        raise TypeError(f"policy must be RetentionPolicy, not {type(policy).__name__}")
    if abort_uploads_older_than is not None and not isinstance(location, S3Archives):
        raise ValueError("abort_uploads_older_than applies to S3Archives only")
    with single_errors():
        async with open_backend(location, s3_client) as backend:
            return await _prune(backend, location, policy, dry_run, abort_uploads_older_than)


async def _prune(
    backend: Backend,
    location: FileArchives | S3Archives,
    policy: RetentionPolicy,
    dry_run: bool,
    upload_age: timedelta | None,
) -> PruneResult:
    listing = await read_listing(backend, location.patterns)
    if listing.unreadable_entries:
        names = ", ".join(item.name for item in listing.unreadable_entries[:5])
        raise CatalogError(
            f"{len(listing.unreadable_entries)} catalog entries at {backend.describe()} "
            f"cannot be read ({names}): nothing was pruned"
        )
    # Uploads are listed before anything is deleted, so a failing listing of them, too,
    # leaves everything in place.
    stale: list[StaleUpload] = []
    young: list[StaleUpload] = []
    if upload_age is not None:
        uploads, server_now = await backend.uploads()
        for upload in uploads:
            name = upload.key[len(getattr(location, "prefix", "")) :]
            if not is_archive_name(name, location.patterns):
                continue
            (stale if upload.initiated < server_now - upload_age else young).append(_upload(upload))

    candidates = [backup for backup in listing.backups if backup.size_matches]
    created = [backup.entry.created_at for backup in candidates]
    reasons = apply_policy(created, policy, datetime.now(UTC))
    kept = [
        KeptBackup(backup=backup, reasons=[MISMATCH])
        for backup in listing.backups
        if not backup.size_matches
    ]
    doomed: list[ListedBackup] = []
    for backup, why in zip(candidates, reasons, strict=True):
        if why:
            kept.append(KeptBackup(backup=backup, reasons=why))
        else:
            doomed.append(backup)
    kept.sort(key=lambda item: (item.backup.entry.created_at, item.backup.name), reverse=True)
    # Defence in depth: whatever the policy code does, the newest provable backup stays.
    if candidates and candidates[0] in doomed:
        raise AssertionError("the retention rules would delete the newest backup")

    deleted: list[ListedBackup] = []
    aborted: list[StaleUpload] = []
    if not dry_run:
        try:
            for backup in doomed:
                await _delete(backend, backup)
                deleted.append(backup)
            for old in stale:
                await backend.abort_upload(Upload(old.key, old.upload_id, old.initiated))
                aborted.append(old)
        except CatalogError as exc:
            if deleted:
                exc.add_note("deleted before the failure: " + ", ".join(b.name for b in deleted))
            raise
    else:
        deleted, aborted = doomed, stale
    return PruneResult(
        dry_run=dry_run,
        kept=kept,
        deleted=deleted,
        listing=listing,
        aborted_uploads=aborted,
        kept_uploads=young,
    )


def _upload(upload: Upload) -> StaleUpload:
    return StaleUpload(key=upload.key, upload_id=upload.upload_id, initiated=upload.initiated)
