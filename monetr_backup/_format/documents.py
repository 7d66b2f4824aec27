"""The JSON documents inside an archive: header, dump summary, manifest (format v2, reads v1)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from .._config import Codec, DumpFormat
from .layout import FORMAT_VERSION

__all__ = [
    "DumpSummary",
    "FileSet",
    "FileSetKind",
    "Header",
    "InstanceFileEntry",
    "InstanceFileKind",
    "KmsKey",
    "Manifest",
    "MemberEntry",
    "MonetrFacts",
    "SizeDiffers",
    "SkippedObject",
]

SECRETS_NOTE = (
    "The secrets table holds values encrypted by monetr's KMS, copied exactly as stored. "
    "Restoring them is useless without access to the same KMS key; other sensitive columns "
    "(password hashes, TOTP secrets) are stored as-is, so treat this archive as sensitive."
)


class _Doc(BaseModel):
    # Unknown fields are ignored on read so a newer minor writer stays readable.
    model_config = ConfigDict(frozen=True, extra="ignore")


class InstanceFileKind(StrEnum):
    """What an instance file is."""

    #: monetr's ``security.privateKey``: the ed25519 key that signs session tokens.
    PRIVATE_KEY = "private_key"
    #: One of the config files monetr was started with (``-c``), in merge order.
    CONFIG = "config"


class InstanceFileEntry(_Doc):
    """A file from beside the database that the archive holds (format v2)."""

    #: The member's name under the top folder: ``instance/private-key``, ``instance/config-N``.
    name: str
    kind: InstanceFileKind
    #: The path it was read from, for whoever restores it by hand.
    source: str


class Header(_Doc):
    """The first member: what the archive holds and who wrote it."""

    format_version: int = FORMAT_VERSION
    created_at: datetime
    library_version: str
    top_folder: str
    database: str | None = Field(description="Name of the dumped database, if any.")
    dump_format: DumpFormat | None
    dump_part_size: int
    storage: str | None = Field(description="Where storage objects came from, if anywhere.")
    codec: Codec
    #: The instance files that follow the header, in order (format v2; none in v1).
    instance_files: list[InstanceFileEntry] = Field(default_factory=list)


class DumpSummary(_Doc):
    """Written right after the last dump part."""

    total_bytes: int
    part_count: int
    part_size: int
    #: Format v1 only: SHA-256 of the whole dump.
    sha256: str | None = None
    #: Format v2: SHA-256 of the parts' SHA-256 digests, each as 64 hex digits and a
    #: newline, in order (what ``sha256sum`` prints for the manifest's part digests, fed
    #: to it as lines). Free to compute: every part is hashed for the manifest anyway.
    parts_sha256: str | None = None
    dump_format: DumpFormat
    pg_dump_version: str
    server_version: str


class MemberEntry(_Doc):
    """One member of the archive as written."""

    name: str
    size: int
    sha256: str


class SkippedObject(_Doc):
    """A storage object that is not in the archive, and why."""

    key: str
    reason: str


class SizeDiffers(_Doc):
    """A storage object whose size is not what its ``files`` row says."""

    key: str
    row_size: int
    object_size: int


class FileSetKind(_Doc):
    """One kind of monetr file (``files.kind``) in the archive, against the dump's rows."""

    #: Live rows (``reconciled_at`` and ``deleted_at`` unset) in the dump's snapshot.
    rows: int = 0
    #: Objects of this kind in the archive.
    objects: int = 0
    #: Keys of live rows whose object is not in the archive (the first ``LIST_LIMIT``).
    missing: list[str] = Field(default_factory=list)
    missing_count: int = 0
    #: Objects whose size differs from their row's ``files.size`` (the first ones).
    size_differs: list[SizeDiffers] = Field(default_factory=list)
    size_differs_count: int = 0
    #: Mode ``all``: objects in the archive that no live row references (the first ones).
    unreferenced: list[str] = Field(default_factory=list)
    unreferenced_count: int = 0


class FileSet(_Doc):
    """Which storage objects a backup of a monetr database took, and how they match its rows.

    The rows are read in the very snapshot pg_dump dumped, so a restored database and the
    restored files agree as far as the storage allowed: nothing is silently dropped.
    """

    #: ``referenced``: exactly the objects live rows reference; ``all``: every object.
    mode: str
    kinds: dict[str, FileSetKind]


class KmsKey(_Doc):
    """A KMS key the ``secrets`` rows were encrypted with, and how many rows use it."""

    key_id: str | None
    version: str | None
    secrets: int


class MonetrFacts(_Doc):
    """What a restore needs besides the archive, read from the dump's snapshot."""

    #: ``MAX(version)`` of ``schema_migrations``: the monetr schema the dump has.
    schema_version: int | None = None
    #: The keys the KMS must still hold for the ``secrets`` rows to be readable.
    kms_keys: list[KmsKey] = Field(default_factory=list)


class Manifest(_Doc):
    """The last member: every other member with its size and SHA-256."""

    format_version: int = FORMAT_VERSION
    top_folder: str
    created_at: datetime
    completed_at: datetime
    library_version: str
    members: list[MemberEntry]
    member_count: int
    total_bytes: int
    dump_bytes: int
    object_count: int
    object_bytes: int
    #: Storage objects not in the archive, and why (the first 1,000).
    skipped: list[SkippedObject]
    #: How many were skipped in all (absent from archives written before it was added).
    skipped_count: int | None = None
    kms_provider: str | None
    secrets_note: str = SECRETS_NOTE
    #: For a monetr database: the storage objects against the dump's ``files`` rows.
    #: Optional, so readers of the first v1 archives, which lack it, read it still.
    file_set: FileSet | None = None
    #: For a monetr database: its schema version and the KMS keys its secrets need.
    monetr: MonetrFacts | None = None
    #: Set when the archive holds secrets usable as they are (plaintext KMS, a private
    #: key or a config file included): a sentence saying so, for whoever keeps it.
    live_secrets: str | None = None
