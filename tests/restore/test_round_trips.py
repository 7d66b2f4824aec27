"""Backup then restore -> the source's pg_dump and storage objects, for every location and format.

Against a real PostgreSQL and a real S3 server (SeaweedFS), no mocks: the restored
database's ``pg_dump`` is compared with the source's, storage objects byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import monetr_backup as mb
from monetr_backup.testing import PostgresServer, TemporarySeaweedS3

from support.databases import Databases, database_exists, new_database_name
from support.samples import PART_SIZE, RESTRICT_KEY, Sample
from support.targets import bucket_objects, modes, new_bucket, partial_files, put_objects, tree

pytestmark = pytest.mark.anyio


def assert_private_tree(root: Path) -> None:
    """Folders 0700 and files 0600, like monetr writes them; no temporary files left."""
    for relative, mode in modes(root).items():
        wanted = 0o700 if (root / relative).is_dir() else 0o600
        assert mode == wanted, f"{relative}: mode {mode:o}"
    assert partial_files(root) == []


ROUND_TRIPS = [
    pytest.param(location, dump_format, kind, codec, id=f"{location}-{dump_format}-{kind}-{codec}")
    for location, dump_format, kind, codec in [
        ("s3", mb.DumpFormat.CUSTOM, "directory", mb.Codec.GZIP),
        ("s3", mb.DumpFormat.PLAIN, "s3", mb.Codec.ZSTD),
        ("s3", mb.DumpFormat.CUSTOM, "s3", mb.Codec.NONE),
        ("s3", mb.DumpFormat.PLAIN, "directory", mb.Codec.GZIP),
        ("file", mb.DumpFormat.CUSTOM, "directory", mb.Codec.ZSTD),
        ("file", mb.DumpFormat.PLAIN, "directory", mb.Codec.NONE),
        ("file", mb.DumpFormat.CUSTOM, "s3", mb.Codec.GZIP),
        ("file", mb.DumpFormat.PLAIN, "s3", mb.Codec.GZIP),
    ]
]


@pytest.mark.parametrize(("location", "dump_format", "kind", "codec"), ROUND_TRIPS)
async def test_round_trip(
    *,
    location: str,
    dump_format: mb.DumpFormat,
    kind: str,
    codec: mb.Codec,
    sample: Sample,
    pg: PostgresServer,
    s3: TemporarySeaweedS3,
    databases: Databases,
    tmp_path: Path,
) -> None:
    """Backup then restore gives a database whose pg_dump equals the source's and
    byte-identical storage objects, for every archive location, dump format, storage
    kind (and codec)."""
    s3_config = s3.config()
    storage_source: mb.DirectoryStorage | mb.S3Storage
    storage_target: mb.DirectoryStorage | mb.S3Storage
    if kind == "directory":
        storage_source = mb.DirectoryStorage(path=sample.storage)
        storage_target = mb.DirectoryStorage(path=tmp_path / "restored")
    else:
        source_bucket, target_bucket = new_bucket(s3), new_bucket(s3)
        put_objects(s3, source_bucket, sample.files)
        storage_source = s3.storage(source_bucket)
        storage_target = s3.storage(target_bucket)
    destination: mb.FileArchive | mb.S3Archive
    archive: mb.FileArchive | mb.S3Archive
    if location == "file":
        destination = mb.FileArchive(path=tmp_path / "backup.tar")
        archive = mb.FileArchive(path=tmp_path / "backup.tar")
    else:
        archive_bucket = new_bucket(s3)
        destination = mb.S3Archive(s3=s3_config, bucket=archive_bucket, key="b/backup.tar")
        archive = mb.S3Archive(s3=s3_config, bucket=archive_bucket, key="b/backup.tar")

    manifest = await mb.backup(
        destination,
        database=pg.config(sample.database),
        storage=storage_source,
        options=mb.BackupOptions(
            dump_format=dump_format,
            dump_part_size=PART_SIZE,
            codec=codec,
            storage_mode=mb.StorageMode.ALL,
        ),
    )
    assert sum("/dump/part-" in entry.name for entry in manifest.members) >= 4

    target_db = new_database_name(databases)
    result = await mb.restore(
        archive,
        database=pg.config(target_db),
        storage=storage_target,
        options=mb.RestoreOptions(create_database=True),
    )

    assert result.manifest == manifest
    assert result.header.dump_format is dump_format
    assert result.header.codec is codec
    assert (result.database_restored, result.database_created, result.dry_run) == (
        True,
        True,
        False,
    )
    assert result.dump_bytes == manifest.dump_bytes > 0
    assert sorted(result.objects_restored) == sorted(sample.files)
    assert result.objects_skipped == result.conflicts == []
    assert pg.pg_dump_text(target_db, restrict_key=RESTRICT_KEY) == sample.dump
    if isinstance(storage_target, mb.DirectoryStorage):
        assert tree(storage_target.path) == sample.files
        assert_private_tree(storage_target.path)
    else:
        assert bucket_objects(s3, storage_target.bucket) == sample.files


async def test_restore_storage_only_and_database_only(
    sample: Sample, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    """Leaving out ``database=`` or ``storage=`` restores one side only, and still reads
    and checks the whole archive."""
    archive = mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM])
    target_db = new_database_name(databases)
    result = await mb.restore(
        archive,
        storage=mb.DirectoryStorage(path=tmp_path / "files"),
        options=mb.RestoreOptions(create_database=True),
    )
    assert not result.database_restored
    assert not database_exists(pg, target_db)
    assert tree(tmp_path / "files") == sample.files

    result = await mb.restore(
        archive,
        database=pg.config(target_db),
        options=mb.RestoreOptions(create_database=True),
    )
    assert result.database_restored
    assert result.objects_restored == []
    assert pg.pg_dump_text(target_db, restrict_key=RESTRICT_KEY) == sample.dump
