"""PostgreSQL going down mid-restore -> the restore's own error, naming what it could not undo."""

from __future__ import annotations

from pathlib import Path

import pytest

import monetr_backup as mb
from monetr_backup.testing import TemporaryPostgres

from support.databases import database_exists
from support.processes import child_processes
from support.samples import PART_SIZE, Sample
from support.targets import snapshot

pytestmark = pytest.mark.anyio


@pytest.mark.reliability(
    "fault",
    "PostgreSQL stopped (immediate) while a restore into a new database runs",
    "PgRestoreError from the restore itself, a note naming the database it could not drop",
)
async def test_server_down_mid_restore_into_a_new_database(sample: Sample, tmp_path: Path) -> None:
    """The server goes away while the dump flows into a database the restore created.
    The database cannot be dropped then; the error raised is the restore's (not the failed
    DROP's), and a note names the database left behind so it can be dropped by hand
    (issue 9 item 6). The storage folder is untouched and no child process is left."""
    files = tmp_path / "files"
    files.mkdir()
    children = child_processes()
    with TemporaryPostgres() as server:
        crashed = False

        def on_progress(progress: mb.Progress) -> None:
            nonlocal crashed
            if not crashed and progress.dump_bytes > PART_SIZE:
                crashed = True
                server.crash()

        with pytest.raises(mb.PgRestoreError) as caught:
            await mb.restore(
                mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM]),
                database=server.config("restored"),
                storage=mb.DirectoryStorage(path=files),
                options=mb.RestoreOptions(create_database=True, progress_interval=0),
                progress=on_progress,
            )
        assert crashed
        notes = "\n".join(getattr(caught.value, "__notes__", []))
        assert "database 'restored', created by this restore, could not be dropped" in notes
        assert "drop it by hand" in notes
        server.recover()
        # Left behind, as the note says; a second look proves the note right.
        assert database_exists(server, "restored")
    assert snapshot(files) == {}
    assert child_processes() == children
