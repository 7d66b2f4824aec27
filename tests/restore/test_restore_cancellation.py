"""A restore cancelled midway -> no database it created, no child process, no file left."""

from __future__ import annotations

import os
import random
import signal
import threading
from pathlib import Path

import anyio
import pytest

import monetr_backup as mb
from monetr_backup.testing import PostgresServer

from support.databases import Databases, database_exists, new_database_name
from support.processes import child_processes
from support.samples import PART_SIZE, RESTRICT_KEY, Sample
from support.targets import snapshot, tree

pytestmark = pytest.mark.anyio


@pytest.mark.reliability(
    "cancellation",
    "restore cancelled midway (dump flowing, or files staged), new and existing database",
    "cancelled; created database dropped, existing unchanged, no file, no child process",
)
@pytest.mark.parametrize(
    ("dump_format", "phase"),
    [
        (mb.DumpFormat.CUSTOM, "restoring database"),
        (mb.DumpFormat.PLAIN, "restoring database"),
        (mb.DumpFormat.CUSTOM, "restoring storage"),
    ],
)
async def test_cancelled_restore_leaves_nothing(
    *,
    dump_format: mb.DumpFormat,
    phase: str,
    sample: Sample,
    pg: PostgresServer,
    databases: Databases,
    tmp_path: Path,
) -> None:
    """Cancelled midway (once dump bytes flow, or once a few storage files are staged and
    pg_restore waits for the dump's last chunk): the database the restore created is
    dropped, an existing one is unchanged, no pg_restore/psql child is left, and no file
    (temporary or not) is in the storage folder."""
    archive = mb.FileArchive(path=sample.archives[dump_format])
    children = child_processes()
    existing = databases.create()
    before = pg.pg_dump_text(existing, restrict_key=RESTRICT_KEY)

    def midway(progress: mb.Progress) -> bool:
        if phase == "restoring database":
            return progress.dump_bytes > PART_SIZE
        return progress.phase == phase and progress.objects_done >= 3

    for target, create in [(new_database_name(databases), True), (existing, False)]:
        seen: list[mb.Progress] = []
        with anyio.CancelScope() as scope:

            def on_progress(
                progress: mb.Progress,
                scope: anyio.CancelScope = scope,
                seen: list[mb.Progress] = seen,
            ) -> None:
                seen.append(progress)
                if midway(progress):
                    scope.cancel()

            await mb.restore(
                archive,
                database=pg.config(target),
                storage=mb.DirectoryStorage(path=tmp_path / "files"),
                options=mb.RestoreOptions(create_database=create, progress_interval=0),
                progress=on_progress,
            )
        assert scope.cancelled_caught
        assert seen[-1].phase == phase
        if phase == "restoring database":
            assert PART_SIZE < seen[-1].dump_bytes < sample.manifests[dump_format].dump_bytes
        else:
            assert seen[-1].dump_bytes == sample.manifests[dump_format].dump_bytes
            assert 3 <= seen[-1].objects_done < len(sample.files)
        if create:
            assert not database_exists(pg, target)
        else:
            assert pg.pg_dump_text(existing, restrict_key=RESTRICT_KEY) == before
        assert child_processes() == children
        assert tree(tmp_path / "files") == {}


RESTORE_PHASES = [
    mb.Phase.STARTING,
    mb.Phase.RESTORING_DATABASE,
    mb.Phase.RESTORING_STORAGE,
    mb.Phase.COMMITTING,
    mb.Phase.DONE,
]


@pytest.mark.reliability(
    "cancellation",
    "restore cancelled at each progress phase, into a new and an existing database",
    "before committing: cancelled, targets as they were; from committing on: restored, returned",
)
@pytest.mark.parametrize("create", [True, False], ids=["new-db", "existing-db"])
@pytest.mark.parametrize("phase", RESTORE_PHASES)
async def test_cancel_at_each_phase(
    *,
    phase: mb.Phase,
    create: bool,
    sample: Sample,
    pg: PostgresServer,
    databases: Databases,
    tmp_path: Path,
) -> None:
    """Cancelled as the restore enters ``phase``. Up to the point of no return both targets
    stay as they were; from COMMITTING on the database commit and the files' publishing
    run shielded to the end, so the restore returns and everything is in place (issue 9:
    it used to raise "cancelled" with the database committed and files half published)."""
    target = new_database_name(databases) if create else databases.create()
    before = pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) if not create else b""
    files = tmp_path / "files"
    files.mkdir()
    (files / "kept.txt").write_bytes(b"was here")
    folder_before = snapshot(files)
    children = child_processes()
    results: list[mb.RestoreResult] = []
    with anyio.CancelScope() as scope:

        def on_progress(progress: mb.Progress) -> None:
            if progress.phase is phase:
                scope.cancel()

        results.append(
            await mb.restore(
                mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM]),
                database=pg.config(target),
                storage=mb.DirectoryStorage(path=files),
                options=mb.RestoreOptions(create_database=create, progress_interval=0),
                progress=on_progress,
            )
        )
    committed = phase in {mb.Phase.COMMITTING, mb.Phase.DONE}
    assert scope.cancelled_caught is not committed
    if committed:
        assert results[0].database_restored
        assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == sample.dump
        assert tree(files) == {**sample.files, "kept.txt": b"was here"}
    else:
        assert results == []
        if create:
            assert not database_exists(pg, target)
        else:
            assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == before
        assert snapshot(files) == folder_before
    assert child_processes() == children


@pytest.mark.reliability(
    "cancellation",
    "restore with create_database cancelled after random delays (around CREATE DATABASE)",
    "returned and restored, or cancelled with the database not there",
)
async def test_cancel_around_create_database(
    sample: Sample, pg: PostgresServer, databases: Databases
) -> None:
    """Cancelled after short random delays, the first ones landing while CREATE DATABASE
    runs: whenever the restore did not return, the database it created is gone (issue 9
    item 4: the create used to happen before the cleanup that drops it was in place)."""
    delays = random.Random(9).sample(range(0, 120), 16)
    for delay in sorted(delays):
        target = new_database_name(databases)
        returned = False
        with anyio.move_on_after(delay / 1000):
            await mb.restore(
                mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM]),
                database=pg.config(target),
                options=mb.RestoreOptions(create_database=True),
            )
            returned = True
        if returned:
            assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == sample.dump
        else:
            assert not database_exists(pg, target), f"left behind after {delay} ms"


@pytest.mark.reliability(
    "cancellation",
    "restore cancelled while pg_restore is stopped (SIGSTOP) and the pipe to it is full",
    "cancelled within seconds: pg_restore killed, the created database dropped, no child",
)
async def test_cancel_while_pg_restore_stopped(
    *, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    """The dump is written to pg_restore from a worker thread, which a full pipe blocks and
    nothing can interrupt. Cancelled while pg_restore reads nothing at all (stopped), the
    restore must still end at once: it kills pg_restore, which ends the write. A watchdog
    resumes pg_restore after 30 s, so a regression fails on the time instead of hanging."""
    source = databases.create()
    # ~13 MB of dump, far more than the pipe and the batch hold.
    pg.psql(
        "CREATE TABLE filler AS SELECT i, repeat(md5(i::text), 4) AS text"
        " FROM generate_series(1, 100000) i",
        source,
    )
    archive = mb.FileArchive(path=tmp_path / "big.tar.gz")
    await mb.backup(archive, database=pg.config(source))
    target = new_database_name(databases)
    children = child_processes()
    stopped: list[int] = []
    watchdogs: list[threading.Timer] = []
    with anyio.CancelScope() as scope:

        def on_progress(progress: mb.Progress) -> None:
            if stopped or progress.dump_bytes < 2 * 1024 * 1024:
                return
            (pid,) = [p for p, name in child_processes().items() if name == "pg_restore"]
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
            watchdog = threading.Timer(30, lambda: os.kill(pid, signal.SIGCONT))
            watchdog.start()
            watchdogs.append(watchdog)
            # Long enough for the thread to fill the pipe and block in write().
            scope.deadline = anyio.current_time() + 1

        await mb.restore(
            archive,
            database=pg.config(target),
            options=mb.RestoreOptions(create_database=True, progress_interval=0),
            progress=on_progress,
        )
    for watchdog in watchdogs:
        watchdog.cancel()
    assert scope.cancelled_caught
    assert stopped, "pg_restore was never stopped: the dump is too small for this test"
    cancelled_at = scope.deadline
    assert anyio.current_time() - cancelled_at < 10
    assert not database_exists(pg, target)
    assert child_processes() == children
