"""Real backups, restores and verifies -> the ``monetr_backup`` logger's records.

One INFO record per phase start and end, in order, with the counters and durations in
``extra=``; a "done" record; WARNINGs for the objects passed over or missing; one ERROR
for a failure. That no record holds a secret is tested in tests/test_secrets.py, which
watches every record of every logger during real operations.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest

import monetr_backup as mb
from monetr_backup.stages import ProgressTracker
from monetr_backup.testing import seed_storage_dir

from support.env import Env
from support.logs import Records, captured, extra, extras
from support.monetr import live_rows
from support.samples import Sample

pytestmark = pytest.mark.anyio

BACKUP_PHASES = ["starting", "dumping database", "copying storage", "committing"]
RESTORE_PHASES = ["starting", "restoring database", "restoring storage", "committing"]
VERIFY_PHASES = ["starting", "checking dump", "checking storage"]


def start_and_end(phases: list[str]) -> list[tuple[object, object]]:
    return [pair for phase in phases for pair in (("phase start", phase), ("phase end", phase))]


def check_operation(records: Records, operation: str, phases: list[str]) -> dict[str, object]:
    """One start and one end per phase, in order, then one "done"; returns done's extras."""
    assert records.phases() == start_and_end(phases)
    for record in records.events("phase start", "phase end", "done"):
        assert record.name == "monetr_backup"
        assert record.levelno == logging.INFO
        assert extra(record, "operation") == operation
    for record in records.events("phase end", "done"):
        duration = extra(record, "duration_s")
        assert isinstance(duration, float)
        assert duration >= 0
    (done,) = records.events("done")
    assert records.records.index(done) > records.records.index(records.events("phase end")[-1])
    return extras(done)


def test_extra_keys_do_not_collide_with_record_attributes() -> None:
    """logging refuses (KeyError) an extra that would overwrite a LogRecord attribute."""
    record = logging.makeLogRecord({})
    reserved = {*record.__dict__, "message", "asctime"}
    with captured() as records:
        ProgressTracker(None, operation="backup").phase(mb.Phase.DONE)
    (done,) = records.events("done")
    # (A formatter adds "message" and "asctime" to a record it formats.)
    keys = [key for key in done.__dict__ if key not in reserved]
    assert keys, "the record has no extras"
    assert all(key.startswith("monetr_backup.") for key in keys), keys


async def test_backup_restore_and_verify_log_their_phases(env: Env, tmp_path: Path) -> None:
    """A backup whose storage lacks one live row's object, then a restore and a verify of
    its archive: each logs its phases with the counts and sizes, and the missing object
    gets a WARNING from the backup (the file set) and from the restore (the check of the
    restored instance)."""
    database = env.databases.create(seed=True)
    storage = tmp_path / "storage"
    seed_storage_dir(storage, count=20)
    rows = live_rows(env.pg, database)
    gone = sorted(rows)[0]
    (storage / gone).unlink()
    archive = mb.FileArchive(path=tmp_path / "backup.tar.gz")

    with captured() as records:
        manifest = await mb.backup(
            archive,
            database=env.pg.config(database),
            storage=mb.DirectoryStorage(path=storage),
        )
    done = check_operation(records, "backup", BACKUP_PHASES)
    assert done["dump_bytes"] == manifest.dump_bytes
    assert done["objects_done"] == manifest.object_count == len(rows) - 1
    assert done["objects_total"] == len(rows)
    assert done["archive_bytes"] == archive.path.stat().st_size
    assert isinstance(done["dump_bytes_estimate"], int)
    (dumped,) = [r for r in records.events("phase end") if extra(r, "phase") == "dumping database"]
    assert extra(dumped, "dump_bytes") == manifest.dump_bytes
    (missing,) = records.events("missing")
    assert missing.levelno == logging.WARNING
    assert extra(missing, "key") == gone
    assert gone in missing.getMessage()

    target = env.databases.create()
    restored = tmp_path / "restored"
    with captured() as records:
        result = await mb.restore(
            archive,
            database=env.pg.config(target),
            storage=mb.DirectoryStorage(path=restored),
        )
    done = check_operation(records, "restore", RESTORE_PHASES)
    assert done["dump_bytes"] == manifest.dump_bytes
    assert done["objects_done"] == manifest.object_count
    assert done["archive_bytes"] == done["archive_bytes_total"] == archive.path.stat().st_size
    assert result.missing_files == [gone]
    (missing,) = records.events("missing")
    assert (missing.levelno, extra(missing, "key")) == (logging.WARNING, gone)

    with captured() as records:
        report = await mb.verify(archive)
    assert report.ok
    done = check_operation(records, "verify", VERIFY_PHASES)
    assert done["archive_bytes"] == archive.path.stat().st_size
    assert [r for r in records.records if r.levelno >= logging.WARNING] == []


@pytest.mark.reliability(
    "hostile input",
    "a restore of an archive cut short, with the library's log records captured",
    "one ERROR record naming the error's type and message; no 'done' record",
)
async def test_a_failed_restore_logs_one_error(env: Env, sample: Sample) -> None:
    sample_archive = sample.archives[mb.DumpFormat.CUSTOM]
    cut = env.tmp_path / "cut.tar.gz"
    cut.write_bytes(sample_archive.read_bytes()[: sample_archive.stat().st_size // 2])
    with captured() as records, pytest.raises(mb.CorruptArchiveError) as info:
        await mb.restore(mb.FileArchive(path=cut), database=env.pg.config(env.databases.create()))
    (failed,) = [record for record in records.records if record.levelno >= logging.ERROR]
    assert extra(failed, "event") == "failed"
    assert extra(failed, "error_type") == type(info.value).__name__
    assert extra(failed, "error") == str(info.value)
    assert str(info.value) in failed.getMessage()
    # A restore of the database alone: its storage members are checked, not written. The
    # cut is found where it is (the reader inflates as it goes, not a whole buffer ahead).
    assert extra(failed, "phase") in ["starting", "restoring database", "checking storage"]
    assert records.events("done") == []
    # Every phase that started before the failure ended, except the one it failed in.
    starts = [phase for event, phase in records.phases() if event == "phase start"]
    assert starts[-1] == extra(failed, "phase")


@pytest.mark.reliability(
    "cancellation",
    "a backup cancelled from its progress callback while copying storage, logs captured",
    "one WARNING 'cancelled' record naming the phase; no ERROR, no 'done'",
)
async def test_a_cancelled_backup_logs_a_warning(env: Env) -> None:
    storage = env.tmp_path / "storage"
    seed_storage_dir(storage, count=5)
    with captured() as records:
        with anyio.CancelScope() as scope:

            def cancel(progress: mb.Progress) -> None:
                if progress.phase is mb.Phase.COPYING_STORAGE:
                    scope.cancel()

            await mb.backup(
                mb.FileArchive(path=env.tmp_path / "never.tar.gz"),
                storage=mb.DirectoryStorage(path=storage),
                progress=cancel,
            )
    assert scope.cancelled_caught
    (cancelled,) = records.events("cancelled")
    assert cancelled.levelno == logging.WARNING
    assert extra(cancelled, "phase") == "copying storage"
    assert [r for r in records.records if r.levelno >= logging.ERROR] == []
    assert records.events("done") == []
    assert not (env.tmp_path / "never.tar.gz").exists()
