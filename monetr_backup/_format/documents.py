"""The JSON documents inside an archive: header, dump summary, manifest (format v1)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from .._config import Codec, DumpFormat
from .layout import FORMAT_VERSION

__all__ = [
    "DumpSummary",
    "Header",
    "Manifest",
    "MemberEntry",
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


class DumpSummary(_Doc):
    """Written right after the last dump part."""

    total_bytes: int
    part_count: int
    part_size: int
    sha256: str
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
    skipped: list[SkippedObject]
    kms_provider: str | None
    secrets_note: str = SECRETS_NOTE
