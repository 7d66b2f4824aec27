"""A restored monetr instance that works: each live row's file there, owned as monetr runs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import monetr_backup as mb
from monetr_backup.testing import PostgresServer

from support.databases import Databases, new_database_name
from support.monetr import live_rows
from support.samples import Sample

pytestmark = pytest.mark.anyio


async def test_restore_reports_rows_whose_file_is_missing(
    sample: Sample, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    """The sample's folder holds 10 of the files its 20 rows name: after the restore, the
    result lists exactly the live rows whose object the storage target lacks."""
    target = new_database_name(databases)
    result = await mb.restore(
        mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM]),
        database=pg.config(target),
        storage=mb.DirectoryStorage(path=tmp_path / "files"),
        options=mb.RestoreOptions(create_database=True),
    )
    expected = sorted(set(live_rows(pg, target)) - set(sample.files))
    assert expected, "the sample must have rows without files"
    assert sorted(result.missing_files or []) == expected

    # Only storage, or a dry run: nothing to check against.
    dry = await mb.restore(
        mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM]),
        storage=mb.DirectoryStorage(path=tmp_path / "other"),
    )
    assert dry.missing_files is None


def owners(root: Path) -> dict[str, tuple[int, int, int]]:
    """path -> (uid, gid, mode) of everything under ``root``."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        found[path.relative_to(root).as_posix()] = (
            info.st_uid,
            info.st_gid,
            stat.S_IMODE(info.st_mode),
        )
    return found


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
@pytest.mark.parametrize("given", [None, (1234, 4321)], ids=["target-owner", "given-owner"])
async def test_directory_restore_as_root_owns_files_as_monetr_does(
    given: tuple[int, int] | None, sample: Sample, tmp_path: Path
) -> None:
    """Run as root, a restore into monetr's storage folder (owned by uid/gid 1000, as
    monetr's container runs) creates every folder 0700 and file 0600 owned by that user,
    or by the owner given; the target folder itself and anything outside keep theirs."""
    root = tmp_path / "storage"
    root.mkdir(mode=0o750)
    os.chown(root, 1000, 1000)
    root_before = os.stat(root)
    outside_before = os.stat(tmp_path)
    await mb.restore(
        mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM]),
        storage=mb.DirectoryStorage(path=root, owner=given),
    )
    uid, gid = given or (1000, 1000)
    found = owners(root)
    assert set(found) >= set(sample.files)
    for name, (owner, group, mode) in found.items():
        assert (owner, group) == (uid, gid), name
        assert mode == (0o600 if name in sample.files else 0o700), name
    after = os.stat(root)
    assert (after.st_uid, after.st_gid, after.st_mode) == (
        root_before.st_uid,
        root_before.st_gid,
        root_before.st_mode,
    )
    outside = os.stat(tmp_path)
    assert (outside.st_uid, outside.st_mode) == (
        outside_before.st_uid,
        outside_before.st_mode,
    )
