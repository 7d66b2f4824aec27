"""A restore cancelled midway -> no database it created, no child process, no file left."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import monetr_backup as mb
from monetr_backup.testing import PostgresServer

from support.databases import Databases, database_exists, new_database_name
from support.processes import child_processes
from support.samples import PART_SIZE, RESTRICT_KEY, Sample
from support.targets import tree

pytestmark = pytest.mark.anyio


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
