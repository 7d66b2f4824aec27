"""Where things are: an archive (a file or an S3 object), storage (a directory or a bucket),
and the instance files beside the database (monetr's private key and config files).

One type per backend and per kind of thing, used in both directions: the ``FileArchive``
a backup writes is the one a restore reads, and the ``S3Storage`` a backup reads from is
the one a restore writes to. Tuning for either direction lives on the location.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ._config import S3Config, UploadChecksum
from ._units import MIB, S3_MAX_PART_SIZE, S3_MIN_PART_SIZE

__all__ = [
    "DirectoryStorage",
    "FileArchive",
    "InstanceFiles",
    "S3Archive",
    "S3Storage",
    "check_type",
]


class _Location(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class FileArchive(_Location):
    """An archive in a local file.

    A backup writes it to a hidden temporary sibling (mode 0600) and links it into place
    only once complete; a restore, verify or inspect reads it.
    """

    kind: Literal["file"] = "file"
    path: Path


class S3Archive(_Location):
    """An archive stored as one S3 object.

    A backup writes it with a multipart upload; memory held by the upload is at most
    ``part size x (queue_depth + concurrency + 1)``. The part size starts at
    ``part_size`` and doubles as the upload nears ``max_parts``, so an archive of
    unknown size never runs out of parts. A restore, verify or inspect reads it with one
    streaming GET, continued with ranged GETs if the connection drops.
    """

    kind: Literal["s3"] = "s3"
    s3: S3Config
    bucket: str
    key: str = Field(min_length=1)
    part_size: int = Field(S3_MIN_PART_SIZE, ge=S3_MIN_PART_SIZE, le=S3_MAX_PART_SIZE)
    max_parts: int = Field(10_000, ge=1, le=10_000)
    concurrency: int = Field(2, ge=1)
    queue_depth: int = Field(1, ge=0)
    #: What lets the server reject a part damaged on the way.
    checksum: UploadChecksum = UploadChecksum.CRC32
    #: How many times a dropped download continues with a ranged GET.
    max_resumes: int = Field(5, ge=0)


class DirectoryStorage(_Location):
    """monetr's ``filesystem`` storage provider: every regular file under ``path``."""

    kind: Literal["directory"] = "directory"
    path: Path
    #: Restore: the uid and gid of every folder and file created, so that monetr (its
    #: container runs as 1000:1000) can read them. ``None``: when running as root, the
    #: owner of ``path`` (or of its nearest existing parent); otherwise the restoring user.
    owner: tuple[int, int] | None = None


class S3Storage(_Location):
    """monetr's ``s3`` storage provider: every object under ``prefix`` in ``bucket``."""

    kind: Literal["s3"] = "s3"
    s3: S3Config
    bucket: str
    prefix: str = ""
    #: Backup: objects fetched ahead of the archive writer, bounded by ``prefetch_bytes``
    #: too. Small objects are latency-bound: 32 in flight hide 20 ms of S3 latency per
    #: request until the client's own per-request CPU (signing, parsing) is the limit.
    prefetch_objects: int = Field(32, ge=1)
    prefetch_bytes: int = Field(16 * MIB, ge=1)
    #: Restore: how the server checks each object written.
    upload_checksum: UploadChecksum = UploadChecksum.CRC32


class InstanceFiles(_Location):
    """The files beside monetr's database: the key that signs its sessions, its config files.

    A backup reads them into the archive (each at most 1 MiB); a restore writes the
    archive's ones to the paths named here, each with mode 0600, staged beside its path
    and renamed into place only once the whole archive has checked out. Name a path only
    for what the archive holds: the config files are numbered in merge order, so a
    restore names a path for each of them or for none. ``MonetrInstance.instance_files``
    is the instance's own.
    """

    #: monetr's ``security.privateKey``: without it every session is invalid after a restore.
    private_key: Path | None = None
    #: The config files monetr runs with (``-c``), in merge order; they may hold passwords.
    config_files: tuple[Path, ...] = ()
    #: Restore: the uid and gid of the files written. ``None``: when running as root, the
    #: owner of the folder each goes into; otherwise the restoring user.
    owner: tuple[int, int] | None = None


def check_type(parameter: str, value: object, accepted: tuple[type, ...], also: str = "") -> None:
    """Refuse a wrong type for ``parameter`` at once, naming what would have been accepted.

    Without this a wrong location fails deep inside a stage (``'async for' requires an
    object with __aiter__``), far from the argument that caused it.
    """
    if isinstance(value, accepted):
        return
    names = [kind.__name__ for kind in accepted] + ([also] if also else [])
    wanted = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
    raise TypeError(f"{parameter} must be {wanted}, not {type(value).__name__}")
