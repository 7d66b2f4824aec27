"""Archive format v1: member names and the JSON documents inside the archive.

See docs/format.md. The tar holds, under one top folder, in this order::

    <top>/header.json            what is inside
    <top>/dump/part-000001       the pg_dump stream, cut into parts of a fixed size
    <top>/dump/part-000002
    <top>/dump/summary.json      size, part count and SHA-256 of the whole dump
    <top>/storage/<object key>   one member per storage object
    <top>/manifest.json          every member above with size and SHA-256
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from ._config import Codec, DumpFormat

__all__ = [
    "FORMAT_VERSION",
    "DumpSummary",
    "Header",
    "Manifest",
    "MemberEntry",
    "SkippedObject",
]

FORMAT_VERSION = 1

HEADER_NAME = "header.json"
DUMP_DIR = "dump"
DUMP_SUMMARY_NAME = f"{DUMP_DIR}/summary.json"
STORAGE_DIR = "storage"
MANIFEST_NAME = "manifest.json"

_PART_RE = re.compile(r"dump/part-(\d{6,})")

SECRETS_NOTE = (
    "The secrets table holds values encrypted by monetr's KMS, copied exactly as stored. "
    "Restoring them is useless without access to the same KMS key; other sensitive columns "
    "(password hashes, TOTP secrets) are stored as-is, so treat this archive as sensitive."
)


def unsafe_path_reason(name: str) -> str | None:
    """Why ``name`` is not a safe relative path (for a member or a storage key), or None.

    Safe means: not empty or absolute, no ``.``/``..``/empty components, no NUL byte.
    The writer skips storage keys that fail this, and the reader refuses such members.
    """
    if not name or name.startswith("/"):
        return "absolute or empty name"
    if "\x00" in name:
        return "name contains a NUL byte"
    if any(part in {"", ".", ".."} for part in name.split("/")):
        return "name has '.', '..' or empty components"
    return None


def dump_part_name(number: int) -> str:
    """The name (under the top folder) of dump part ``number``, counted from 1."""
    return f"{DUMP_DIR}/part-{number:06d}"


def parse_dump_part_name(name: str) -> int | None:
    """The number of a dump part name, or ``None`` if ``name`` is not one."""
    match = _PART_RE.fullmatch(name)
    return int(match.group(1)) if match else None


def storage_member_name(key: str) -> str:
    """The name (under the top folder) of the member holding storage object ``key``."""
    return f"{STORAGE_DIR}/{key}"


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
