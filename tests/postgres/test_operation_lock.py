"""Two runs on one database at once -> the second refused by our advisory lock, at once.

A backup of a database holds the lock in it for its whole run; a restore holds one in
the maintenance database (by the target's name) and one in the target when it exists.
The runs held open here wait inside a storage source or a storage target of the test's
own, so the overlap is certain, not a matter of timing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

import monetr_backup as mb
from monetr_backup._postgres.lock import LOCK_CLASS, LOCK_KEY, target_key
from monetr_backup.stages import DirectoryTarget, Member, StoredObject
from monetr_backup.testing import PostgresServer

from support.databases import database_exists, new_database_name
from support.env import Env
from support.logs import captured, extra
from support.samples import RESTRICT_KEY, Sample

pytestmark = pytest.mark.anyio

#: An overlapping run must be refused at once, not after a wait.
REFUSED_WITHIN = 10.0


def our_locks(pg: PostgresServer, database: str) -> int:
    """How many of our advisory locks are held for ``database`` (in it, or in the
    maintenance database by its name)."""
    unsigned = LOCK_KEY & 0xFFFF_FFFF_FFFF_FFFF
    in_target = (
        f"d.datname = '{database}' AND l.classid = {unsigned >> 32} "
        f"AND l.objid = {unsigned & 0xFFFF_FFFF} AND l.objsubid = 1"
    )
    in_maintenance = (
        f"d.datname = 'postgres' AND l.classid = {LOCK_CLASS & 0xFFFF_FFFF} "
        f"AND l.objid = {target_key(database) & 0xFFFF_FFFF} AND l.objsubid = 2"
    )
    sql = (
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
        f"WHERE l.locktype = 'advisory' AND (({in_target}) OR ({in_maintenance}))"
    )
    return int(pg.psql(sql))


async def held_storage(started: anyio.Event, release: anyio.Event) -> AsyncIterator[Member]:
    """A storage source that waits for ``release`` before its one object."""
    started.set()
    await release.wait()
    yield Member.from_bytes("data/held.txt", b"held")


class HeldTarget(DirectoryTarget):
    """A storage target whose first write waits for ``release``: the restore holding it
    has created its database and handed pg_restore the whole dump, uncommitted."""

    def __init__(self, path: Path, started: anyio.Event, release: anyio.Event) -> None:
        super().__init__(path, mb.Overwrite.NEVER)
        self.started = started
        self.release = release

    async def write(self, item: StoredObject) -> None:
        self.started.set()
        await self.release.wait()
        await super().write(item)


async def test_an_overlapping_backup_is_refused_and_the_first_completes(
    env: Env, tmp_path: Path
) -> None:
    """The second backup of a database fails at once with ConcurrentOperationError,
    naming the session that holds the lock, and leaves nothing in its folder (no
    archive, no partial file); the first then completes."""
    database = env.pg.config(env.databases.create(seed=True))
    first = mb.FileArchive(path=tmp_path / "first.tar.gz")
    elsewhere = tmp_path / "second"
    elsewhere.mkdir()
    started, release = anyio.Event(), anyio.Event()
    manifests: list[mb.Manifest] = []

    async def run_first() -> None:
        manifests.append(
            await mb.backup(first, database=database, storage=held_storage(started, release))
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_first)
        await started.wait()
        assert our_locks(env.pg, database.database) == 1
        with (
            captured() as records,
            anyio.fail_after(REFUSED_WITHIN),
            pytest.raises(mb.ConcurrentOperationError) as info,
        ):
            await mb.backup(mb.FileArchive(path=elsewhere / "second.tar.gz"), database=database)
        assert list(elsewhere.iterdir()) == []
        # A skipped run to a scheduler: one "failed" record, at WARNING, and no ERROR.
        (failed,) = records.events("failed")
        assert failed.levelno == logging.WARNING
        assert extra(failed, "error_type") == "ConcurrentOperationError"
        assert [r for r in records.records if r.levelno >= logging.ERROR] == []
        release.set()
    assert isinstance(info.value, mb.DatabaseError)
    assert info.value.holder_pid is not None
    assert str(info.value.holder_pid) in str(info.value)
    assert repr(database.database) in str(info.value)
    assert manifests[0].object_count == 1
    assert first.path.exists()
    assert our_locks(env.pg, database.database) == 0


async def test_a_restore_over_a_running_backup_is_refused(
    env: Env, tmp_path: Path, sample: Sample
) -> None:
    """A restore (clean) into the database a backup is reading is refused before it
    touches it; the backup completes and the database is as it was."""
    name = env.databases.create(seed=True)
    database = env.pg.config(name)
    before = env.pg.pg_dump_text(name, restrict_key=RESTRICT_KEY)
    started, release = anyio.Event(), anyio.Event()

    async def run_backup() -> None:
        await mb.backup(
            mb.FileArchive(path=tmp_path / "b.tar.gz"),
            database=database,
            storage=held_storage(started, release),
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_backup)
        await started.wait()
        with anyio.fail_after(REFUSED_WITHIN), pytest.raises(mb.ConcurrentOperationError):
            await mb.restore(
                mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM]),
                database=database,
                options=mb.RestoreOptions(clean=True),
            )
        release.set()
    assert (tmp_path / "b.tar.gz").exists()
    assert env.pg.pg_dump_text(name, restrict_key=RESTRICT_KEY) == before


async def test_two_restores_creating_one_database_exclude_each_other(
    env: Env, sample: Sample, tmp_path: Path
) -> None:
    """While a restore that created its target is applying the dump (the target exists,
    empty, its transaction open), a second restore into that name is refused by the lock
    in the maintenance database, and leaves the first one's database alone; the first
    then completes."""
    name = new_database_name(env.databases)
    archive = mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM])
    applying, release = anyio.Event(), anyio.Event()
    options = mb.RestoreOptions(create_database=True)
    results: list[mb.RestoreResult] = []

    async def run_first() -> None:
        results.append(
            await mb.restore(
                archive,
                database=env.pg.config(name),
                storage=HeldTarget(tmp_path / "files", applying, release),
                options=options,
            )
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_first)
        await applying.wait()
        assert database_exists(env.pg, name)
        assert our_locks(env.pg, name) == 1  # the maintenance lock; the target is new
        with anyio.fail_after(REFUSED_WITHIN), pytest.raises(mb.ConcurrentOperationError):
            await mb.restore(archive, database=env.pg.config(name), options=options)
        assert database_exists(env.pg, name)
        release.set()
    assert results[0].database_created
    assert results[0].database_restored
    assert our_locks(env.pg, name) == 0


@pytest.mark.reliability(
    "cancellation",
    "a backup, then a restore creating its database, each cancelled while it holds the lock",
    "the lock is released (no advisory lock of ours left); the next run takes it",
)
async def test_the_lock_is_released_on_cancellation(
    env: Env, tmp_path: Path, sample: Sample
) -> None:
    database = env.pg.config(env.databases.create(seed=True))
    started, release = anyio.Event(), anyio.Event()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: mb.backup(
                    mb.FileArchive(path=tmp_path / "cancelled.tar.gz"),
                    database=database,
                    storage=held_storage(started, release),
                )
            )
            await started.wait()
            assert our_locks(env.pg, database.database) == 1
            scope.cancel()
    assert scope.cancelled_caught
    assert our_locks(env.pg, database.database) == 0
    await mb.backup(mb.FileArchive(path=tmp_path / "next.tar.gz"), database=database)

    name = new_database_name(env.databases)
    applying = anyio.Event()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: mb.restore(
                    mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM]),
                    database=env.pg.config(name),
                    storage=HeldTarget(tmp_path / "files", applying, anyio.Event()),
                    options=mb.RestoreOptions(create_database=True),
                )
            )
            await applying.wait()
            assert our_locks(env.pg, name) == 1
            scope.cancel()
    assert our_locks(env.pg, name) == 0
    assert not database_exists(env.pg, name)


class FailingTarget(DirectoryTarget):
    """A storage target whose first write fails: after the lock, the database created."""

    async def write(self, item: StoredObject) -> None:
        raise mb.StorageTargetError("the test's target refuses every object")


@pytest.mark.reliability(
    "fault",
    "a restore into a database it creates, failing in its storage target after the dump",
    "the typed error; the database dropped and the lock released",
)
async def test_the_lock_is_released_when_a_restore_fails(
    env: Env, sample: Sample, tmp_path: Path
) -> None:
    name = new_database_name(env.databases)
    with pytest.raises(mb.StorageTargetError):
        await mb.restore(
            mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM]),
            database=env.pg.config(name),
            storage=FailingTarget(tmp_path / "files", mb.Overwrite.NEVER),
            options=mb.RestoreOptions(create_database=True),
        )
    assert our_locks(env.pg, name) == 0
    assert not database_exists(env.pg, name)
    # The next restore into that name takes the lock and creates the database.
    result = await mb.restore(
        mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM]),
        database=env.pg.config(name),
        options=mb.RestoreOptions(create_database=True),
    )
    assert result.database_created
