"""Archive format v2: member names, their order, and what makes a name safe.

See docs/format.md. The tar holds, under one top folder, in this order::

    <top>/header.json            what is inside
    <top>/instance/private-key   the files beside the database, if asked for: monetr's
    <top>/instance/config-1      session-signing key and its config files (v2)
    <top>/dump/part-000001       the pg_dump stream, cut into parts of a fixed size
    <top>/dump/part-000002
    <top>/dump/summary.json      size and part count of the dump, a digest of its parts
    <top>/storage/<object key>   one member per storage object
    <top>/manifest.json          every member above with size and SHA-256

Version 1 is the same without the instance section, and its summary holds the SHA-256
of the whole dump instead of the digest of its parts' digests; it is still read.
"""

from __future__ import annotations

import re

__all__ = [
    "DUMP_SUMMARY_NAME",
    "FORMAT_VERSION",
    "HEADER_NAME",
    "INSTANCE_DIR",
    "MANIFEST_NAME",
    "MAX_INSTANCE_FILE_SIZE",
    "PRIVATE_KEY_NAME",
    "READABLE_VERSIONS",
    "STORAGE_DIR",
    "config_file_name",
    "dump_part_name",
    "parse_dump_part_name",
    "storage_member_name",
    "unsafe_path_reason",
]

FORMAT_VERSION = 2
#: The versions a reader accepts: archives already written stay restorable.
READABLE_VERSIONS = frozenset({1, 2})

HEADER_NAME = "header.json"
DUMP_DIR = "dump"
DUMP_SUMMARY_NAME = f"{DUMP_DIR}/summary.json"
STORAGE_DIR = "storage"
INSTANCE_DIR = "instance"
PRIVATE_KEY_NAME = f"{INSTANCE_DIR}/private-key"
#: A key or a config file is a few kilobytes; the bound keeps a hostile header's promise
#: of one from costing memory or staging disk, and the backup refuses a bigger file.
MAX_INSTANCE_FILE_SIZE = 1024 * 1024
MANIFEST_NAME = "manifest.json"

_PART_RE = re.compile(r"dump/part-(\d{6,})")


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


def config_file_name(number: int) -> str:
    """The name (under the top folder) of the ``number``-th config file, counted from 1."""
    return f"{INSTANCE_DIR}/config-{number}"


def storage_member_name(key: str) -> str:
    """The name (under the top folder) of the member holding storage object ``key``."""
    return f"{STORAGE_DIR}/{key}"
