"""A committed backup's header, manifest and stored bytes -> its catalog entry (a small JSON).

The entry sits next to the archive, unencrypted, so that listing and pruning never read
an archive. It therefore holds only what is safe to show to whoever can list the bucket:
for an encrypted archive, counts, sizes, times and the encryption itself, nothing read
from the data (no object key, no database name, no versions of the dumped server).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .._config import Codec
from .._format.documents import FileSet, Header, Manifest
from .._keys import recipient_fingerprint
from .._protocols import DumpSource

__all__ = [
    "ENTRY_SUFFIX",
    "MAX_ENTRY_BYTES",
    "CatalogEntry",
    "EntrySummary",
    "EntryTotals",
    "FileSetCounts",
    "build_entry",
    "recipient_fingerprint",
]

#: Appended to an archive's name (file name or S3 key) to name its entry: the entry sorts
#: right after its archive in ``ls`` and in an S3 listing, and one LIST finds both.
ENTRY_SUFFIX = ".catalog.json"
#: An entry is ~1-2 KB; anything larger is not one of ours and is not read into memory.
MAX_ENTRY_BYTES = 256 * 1024


class _Doc(BaseModel):
    # Unknown fields are ignored so that entries written by a newer version stay readable.
    model_config = ConfigDict(frozen=True, extra="ignore")


class EntryTotals(_Doc):
    """What the archive holds, in numbers (from its manifest)."""

    member_count: int
    #: Bytes of every member, uncompressed.
    total_bytes: int
    dump_bytes: int
    object_count: int
    object_bytes: int


class FileSetCounts(_Doc):
    """A file-set kind's counts (``Manifest.file_set``), without the keys it lists."""

    rows: int = 0
    objects: int = 0
    missing: int = 0
    size_differs: int = 0
    unreferenced: int = 0


class EntrySummary(_Doc):
    """The manifest in brief. For an encrypted archive only the counts are filled."""

    #: ``referenced`` or ``all``, for a monetr database with storage.
    file_set_mode: str | None = None
    #: Every kind's counts added up.
    file_set: FileSetCounts | None = None
    #: Per ``files.kind`` (kind names come from the database: unencrypted archives only).
    file_set_kinds: dict[str, FileSetCounts] | None = None
    skipped_count: int = 0
    #: monetr's schema version (``schema_migrations``); unencrypted archives only.
    schema_version: int | None = None
    #: unencrypted archives only.
    kms_provider: str | None = None
    #: The archive holds secrets usable as they are (``Manifest.live_secrets`` is set).
    live_secrets: bool = False


class CatalogEntry(_Doc):
    """The catalog entry of one backup: written next to the archive once it is committed.

    ``archive_size`` and ``archive_sha256`` are of the archive's bytes as stored
    (compressed, and encrypted if it is); ``created_at`` is the header's, the time the
    backup started, which retention rules go by.
    """

    kind: Literal["monetr-backup catalog entry"] = "monetr-backup catalog entry"
    entry_version: int = 1
    created_at: datetime
    completed_at: datetime
    #: The archive's name: its file name, or the last part of its S3 key.
    archive: str
    archive_size: int = Field(ge=0)
    archive_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    codec: Codec
    format_version: int
    library_version: str
    encrypted: bool = False
    #: ``recipient_fingerprint`` of every recipient the archive is encrypted to.
    recipients: list[str] = Field(default_factory=list)
    #: The dumped database's name; unencrypted archives only.
    database: str | None = None
    #: unencrypted archives only.
    server_version: str | None = None
    #: unencrypted archives only.
    pg_dump_version: str | None = None
    totals: EntryTotals
    summary: EntrySummary


def _counts(kinds: Iterable[FileSetCounts]) -> FileSetCounts:
    total = FileSetCounts()
    for kind in kinds:
        total = FileSetCounts(
            rows=total.rows + kind.rows,
            objects=total.objects + kind.objects,
            missing=total.missing + kind.missing,
            size_differs=total.size_differs + kind.size_differs,
            unreferenced=total.unreferenced + kind.unreferenced,
        )
    return total


def _file_set_kinds(file_set: FileSet) -> dict[str, FileSetCounts]:
    return {
        name: FileSetCounts(
            rows=kind.rows,
            objects=kind.objects,
            missing=kind.missing_count,
            size_differs=kind.size_differs_count,
            unreferenced=kind.unreferenced_count,
        )
        for name, kind in file_set.kinds.items()
    }


def build_entry(
    *,
    archive: str,
    size: int,
    sha256: str,
    header: Header,
    manifest: Manifest,
    dump: DumpSource | None,
    recipients: Iterable[str] = (),
) -> CatalogEntry:
    """The entry of a committed archive; with ``recipients``, one safe to show for it.

    An encrypted archive's entry must not undo the encryption: what the manifest lists
    (object keys, skipped keys, the kinds of files and their names) and what describes
    the data (database name, schema, server) stays inside the archive.
    """
    fingerprints = [recipient_fingerprint(recipient) for recipient in recipients]
    encrypted = bool(fingerprints)
    kinds = _file_set_kinds(manifest.file_set) if manifest.file_set is not None else None
    skipped = manifest.skipped_count
    summary = EntrySummary(
        file_set_mode=manifest.file_set.mode if manifest.file_set is not None else None,
        file_set=_counts(kinds.values()) if kinds is not None else None,
        file_set_kinds=None if encrypted else kinds,
        skipped_count=len(manifest.skipped) if skipped is None else skipped,
        schema_version=(
            None if encrypted or manifest.monetr is None else manifest.monetr.schema_version
        ),
        kms_provider=None if encrypted else manifest.kms_provider,
        live_secrets=manifest.live_secrets is not None,
    )
    return CatalogEntry(
        created_at=header.created_at,
        completed_at=manifest.completed_at,
        archive=archive,
        archive_size=size,
        archive_sha256=sha256,
        codec=header.codec,
        format_version=header.format_version,
        library_version=header.library_version,
        encrypted=encrypted,
        recipients=fingerprints,
        database=None if encrypted else header.database,
        server_version=None if encrypted or dump is None else dump.server_version,
        pg_dump_version=None if encrypted or dump is None else dump.version,
        totals=EntryTotals(
            member_count=manifest.member_count,
            total_bytes=manifest.total_bytes,
            dump_bytes=manifest.dump_bytes,
            object_count=manifest.object_count,
            object_bytes=manifest.object_bytes,
        ),
        summary=summary,
    )
