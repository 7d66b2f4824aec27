"""A dry run -> every check and every conflict reported, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

import monetr_backup as mb
from monetr_backup.testing import PostgresServer, TemporarySeaweedS3

from support.databases import Databases, database_exists, new_database_name
from support.samples import Sample
from support.targets import bucket_objects, new_bucket, put_objects, tree, write_files

pytestmark = pytest.mark.anyio


async def test_dry_run_writes_nothing_but_reports_conflicts(
    sample: Sample, pg: PostgresServer, s3: TemporarySeaweedS3, databases: Databases, tmp_path: Path
) -> None:
    """``dry_run`` reads and checks everything and the targets (conflicts are reported)
    but creates no database, no file and no object."""
    archive = mb.FileArchive(path=sample.archives[mb.DumpFormat.PLAIN])
    keys = sorted(sample.files)
    existing = {keys[0]: b"mine", keys[-1]: b"also mine"}
    root = tmp_path / "target"
    write_files(root, existing)
    target_db = new_database_name(databases)

    result = await mb.restore(
        archive,
        database=pg.config(target_db),
        storage=mb.DirectoryStorage(path=root),
        options=mb.RestoreOptions(dry_run=True, create_database=True),
    )
    assert result.dry_run
    assert not result.database_restored
    assert not result.database_created
    assert result.dump_bytes == 0
    assert sorted(result.conflicts) == sorted(existing)
    assert result.objects_restored == []
    assert not database_exists(pg, target_db)
    assert tree(root) == existing

    bucket = new_bucket(s3)
    put_objects(s3, bucket, existing)
    result = await mb.restore(
        archive,
        storage=s3.storage(bucket),
        options=mb.RestoreOptions(dry_run=True, overwrite=mb.Overwrite.SKIP),
    )
    assert sorted(result.objects_skipped) == sorted(existing)
    assert result.conflicts == result.objects_restored == []
    assert bucket_objects(s3, bucket) == existing

    # Dry runs check the database target too: one with tables is still refused.
    busy = databases.create(template=sample.database)
    with pytest.raises(mb.TargetNotEmptyError):
        await mb.restore(archive, database=pg.config(busy), options=mb.RestoreOptions(dry_run=True))
