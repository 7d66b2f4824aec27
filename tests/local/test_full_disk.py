"""A full filesystem (a real tmpfs) under the local stages -> a typed error, nothing left."""

from __future__ import annotations

from pathlib import Path

import pytest

import monetr_backup as mb

from support.env import Env
from support.processes import child_processes
from support.samples import Sample
from support.targets import snapshot
from support.tmpfs import small_tmpfs

pytestmark = pytest.mark.anyio


@pytest.mark.reliability(
    "fault",
    "the archive's filesystem fills up during a backup to a local file",
    "ArchiveWriteError; no archive and no temporary file left",
)
async def test_backup_to_a_full_filesystem(env: Env, source_db: str) -> None:
    """The dump does not fit in a 1 MiB tmpfs: ArchiveWriteError naming the disk's error,
    and the filesystem is as empty as it was (the .partial file is gone too)."""
    children = child_processes()
    with small_tmpfs("1m") as folder:
        with pytest.raises(mb.ArchiveWriteError, match="No space left on device"):
            await mb.backup(
                mb.FileArchive(path=folder / "monetr.tar"),
                database=env.pg.config(source_db),
                options=mb.BackupOptions(codec=mb.Codec.NONE),
            )
        assert snapshot(folder) == {}
    assert child_processes() == children


@pytest.mark.reliability(
    "fault",
    "the storage target's filesystem fills up during a directory restore",
    "StorageTargetError; the directory exactly as it was, the database not created",
)
async def test_restore_into_a_full_filesystem(sample: Sample, env: Env, tmp_path: Path) -> None:
    """Storage objects that do not fit a 64 KiB tmpfs: StorageTargetError, every file and
    folder as before, and the database the restore created dropped again."""
    target = env.databases.create()
    env.pg.drop_database(target)
    with small_tmpfs("64k") as folder:
        (folder / "kept").mkdir(mode=0o750)
        (folder / "kept" / "note.txt").write_bytes(b"was here")
        before = snapshot(folder)
        with pytest.raises(mb.StorageTargetError, match="No space left on device"):
            await mb.restore(
                mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM]),
                database=env.pg.config(target),
                storage=mb.DirectoryStorage(path=folder),
                options=mb.RestoreOptions(create_database=True),
            )
        assert snapshot(folder) == before
    assert env.pg.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{target}'") == "0\n"
