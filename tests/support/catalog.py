"""Backups' dates and contents -> a folder (a directory or a bucket prefix) of archives with
catalog entries, written the way backup() writes them, for listing and pruning tests."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import monetr_backup as mb
from monetr_backup._catalog.entry import ENTRY_SUFFIX, build_entry
from monetr_backup._catalog.record import encode_entry, write_entry_file
from monetr_backup._format.documents import Header, Manifest

#: A day at noon UTC, the first backup of most folders made here.
START = datetime(2024, 1, 1, 12, tzinfo=UTC)


def header_and_manifest(created: datetime, database: str = "monetr") -> tuple[Header, Manifest]:
    """A plausible header and manifest for a backup started at ``created``."""
    top = f"monetr-backup-{created:%Y%m%dT%H%M%SZ}"
    header = Header(
        created_at=created,
        library_version=mb.__version__,
        top_folder=top,
        database=database,
        dump_format=mb.DumpFormat.CUSTOM,
        dump_part_size=1 << 20,
        storage="directory /srv/monetr",
        codec=mb.Codec.GZIP,
    )
    manifest = Manifest(
        top_folder=top,
        created_at=created,
        completed_at=created + timedelta(minutes=2),
        library_version=mb.__version__,
        members=[],
        member_count=4,
        total_bytes=3000,
        dump_bytes=2000,
        object_count=1,
        object_bytes=1000,
        skipped=[],
        skipped_count=0,
        kms_provider="plaintext",
    )
    return header, manifest


def archive_name(created: datetime) -> str:
    """How these folders name the backup started at ``created``."""
    return f"monetr-{created:%Y%m%dT%H%M%S}.tar.gz"


def entry_bytes(name: str, data: bytes, created: datetime, *, size: int | None = None) -> bytes:
    """The entry backup() would write for archive ``name`` holding ``data``; ``size``
    records another size than the archive's."""
    header, manifest = header_and_manifest(created)
    entry = build_entry(
        archive=name,
        size=len(data) if size is None else size,
        sha256=hashlib.sha256(data).hexdigest(),
        header=header,
        manifest=manifest,
        dump=None,
    )
    return encode_entry(entry)


@dataclass
class Folder:
    """A directory or a bucket prefix being filled with backups."""

    location: mb.FileArchives | mb.S3Archives
    client: Any = None

    def put(self, name: str, data: bytes) -> None:
        """Write one file (archive, entry, or anything else) into the folder."""
        if isinstance(self.location, mb.FileArchives):
            path = self.location.path / name
            if name.endswith(ENTRY_SUFFIX):
                write_entry_file(path, data)
            else:
                path.write_bytes(data)
        else:
            key = self.location.prefix + name
            self.client.put_object(Bucket=self.location.bucket, Key=key, Body=data)

    def add(
        self,
        created: datetime,
        *,
        size: int | None = None,
        entry: bool = True,
        archive: bool = True,
    ) -> str:
        """A backup started at ``created`` (its name returned): archive and entry, or one."""
        name = archive_name(created)
        data = f"archive of {created.isoformat()}".encode()
        if archive:
            self.put(name, data)
        if entry:
            self.put(name + ENTRY_SUFFIX, entry_bytes(name, data, created, size=size))
        return name

    def names(self) -> list[str]:
        """Every name in the folder now, sorted."""
        if isinstance(self.location, mb.FileArchives):
            return sorted(os.listdir(self.location.path))
        found: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.location.bucket, Prefix=self.location.prefix
        )
        for page in pages:
            found += [item["Key"][len(self.location.prefix) :] for item in page.get("Contents", [])]
        return sorted(found)


def file_folder(path: Path) -> Folder:
    """An empty directory of archives at ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    return Folder(mb.FileArchives(path=path))


def s3_folder(s3: Any, bucket: str, prefix: str = "backups/", **overrides: object) -> Folder:
    """An empty prefix of archives in ``bucket`` (``overrides``: S3Config fields)."""
    location = mb.S3Archives(s3=s3.config(**overrides), bucket=bucket, prefix=prefix)
    return Folder(location, s3.client())
