"""Real backups and restores -> Progress snapshots with totals, a rate and an ETA.

Totals are what can be known up front: the database's size estimate, the live rows'
objects and bytes (mode ``referenced``), the archive's size for a restore (file size or
the GET's Content-Length). Without a total the ETA is ``None``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import monetr_backup as mb
from monetr_backup.testing import seed_storage_dir

from support.env import Env
from support.monetr import live_rows
from support.targets import put_objects

pytestmark = pytest.mark.anyio


def database_size(env: Env, database: str) -> int:
    return int(env.pg.psql(f"SELECT pg_database_size('{database}')", database))


def check_eta(seen: list[mb.Progress]) -> list[float]:
    """Every ETA is what is left at the snapshot's rate (0 once done, even when the total
    was an estimate never reached); the ETAs given before the end, in order."""
    etas = []
    for progress in seen:
        if progress.phase is mb.Phase.DONE:
            assert progress.eta == (0.0 if progress.total_bytes is not None else None)
            continue
        if progress.eta is None:
            continue
        assert progress.total_bytes is not None
        assert progress.rate is not None
        assert progress.rate > 0
        left = (progress.total_bytes - progress.done_bytes) / progress.rate
        assert progress.eta == pytest.approx(left)
        etas.append(progress.eta)
    return etas


async def test_backup_totals_come_from_the_estimate_and_the_rows(env: Env, tmp_path: Path) -> None:
    """Mode ``referenced``: the objects' count and bytes are the live rows', known from
    the first snapshot of the storage phase; the total adds the database's size."""
    database = env.databases.create(seed=True)
    storage = tmp_path / "storage"
    seed_storage_dir(storage, count=20)
    rows = live_rows(env.pg, database)
    seen: list[mb.Progress] = []
    manifest = await mb.backup(
        mb.FileArchive(path=tmp_path / "b.tar.gz"),
        database=env.pg.config(database),
        storage=mb.DirectoryStorage(path=storage),
        options=mb.BackupOptions(progress_interval=0),
        progress=seen.append,
    )
    estimate = database_size(env, database)
    row_bytes = sum(size for _kind, size in rows.values())
    copying = [p for p in seen if p.phase is mb.Phase.COPYING_STORAGE]
    assert copying
    for progress in copying:
        assert progress.objects_total == len(rows)
        assert progress.object_bytes_total == row_bytes
        assert progress.dump_bytes_estimate == estimate
        assert progress.total_bytes == estimate + row_bytes
        assert progress.done_bytes == progress.dump_bytes + progress.object_bytes
    final = seen[-1]
    assert final.done_bytes == manifest.dump_bytes + manifest.object_bytes
    assert final.rate is not None
    assert final.rate > 0
    # The dump is far smaller than the database's files: the ETA stays meaningful.
    assert manifest.dump_bytes < estimate
    etas = check_eta(seen)
    assert etas


async def test_backup_without_totals_has_a_rate_but_no_eta(env: Env, source_db: str) -> None:
    """Mode ``all`` over a directory (no total without listing it first) and no size
    estimate: no total, so no ETA on any snapshot; the rate is still measured."""
    storage = env.tmp_path / "storage"
    seed_storage_dir(storage, count=5)
    seen: list[mb.Progress] = []
    await mb.backup(
        mb.FileArchive(path=env.output_dir / "b.tar"),
        database=env.pg.config(source_db),
        storage=mb.DirectoryStorage(path=storage),
        options=mb.BackupOptions(
            progress_interval=0,
            storage_mode=mb.StorageMode.ALL,
            estimate_size=False,
            codec=mb.Codec.NONE,
        ),
        progress=seen.append,
    )
    assert len(seen) > 20
    assert all(p.total_bytes is None and p.eta is None for p in seen)
    assert all(p.objects_total is None and p.dump_bytes_estimate is None for p in seen)
    rates = [p.rate for p in seen if p.rate is not None]
    assert rates
    assert max(rates) > 0


@pytest.mark.parametrize("where", ["file", "s3"])
async def test_restore_progress_counts_against_the_archive_size(
    env: Env, source_db: str, where: str
) -> None:
    """An ~11 MB archive restored into a new database: the total is the archive's size
    (a stat, or the GET's Content-Length) from the first chunk on, the bytes read reach
    it, and the ETA falls as the restore goes (each one what is left at that rate)."""
    path = env.output_dir / "big.tar"
    await mb.backup(
        mb.FileArchive(path=path),
        database=env.pg.config(source_db),
        options=mb.BackupOptions(codec=mb.Codec.NONE),
    )
    size = path.stat().st_size
    archive: mb.FileArchive | mb.S3Archive = mb.FileArchive(path=path)
    if where == "s3":
        put_objects(env.s3, env.bucket, {"big.tar": path.read_bytes()})
        archive = mb.S3Archive(s3=env.s3.config(), bucket=env.bucket, key="big.tar")
    seen: list[mb.Progress] = []
    await mb.restore(
        archive,
        database=env.pg.config(env.databases.create()),
        options=mb.RestoreOptions(progress_interval=0),
        progress=seen.append,
    )
    reading = [p for p in seen if p.archive_bytes > 0]
    assert reading
    assert all(p.archive_bytes_total == p.total_bytes == size for p in reading)
    assert seen[-1].done_bytes == seen[-1].archive_bytes == size
    etas = check_eta(seen)
    assert len(etas) >= 3, etas
    assert etas[-1] < etas[0] / 2, etas
    assert seen[-1].rate is not None
    assert seen[-1].rate > 0
