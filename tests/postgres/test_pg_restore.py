"""The pg_restore/psql target -> options a dump format cannot honour refused before any change."""

from __future__ import annotations

from pathlib import Path

import pytest

import monetr_backup as mb

from support.env import Env
from support.processes import open_files_under

pytestmark = pytest.mark.anyio


async def test_no_owner_with_a_plain_dump_is_refused_up_front(
    env: Env, source_db: str, tmp_path: Path
) -> None:
    """psql cannot skip ownership: asking for it is an error before any database is made."""
    archive = tmp_path / "plain.tar.gz"
    await mb.backup(
        mb.FileArchive(path=archive),
        database=env.pg.config(source_db),
        options=mb.BackupOptions(dump_format=mb.DumpFormat.PLAIN),
    )
    target = env.databases.create()
    env.pg.drop_database(target)
    with pytest.raises(mb.PgRestoreError, match="no_owner"):
        await mb.restore(
            mb.FileArchive(path=archive),
            database=env.pg.config(target),
            options=mb.RestoreOptions(no_owner=True, create_database=True),
        )
    exists = env.pg.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{target}'")
    assert exists.strip() == "0"
    # Refused after reading the header: the archive must be closed now, not when the
    # abandoned reader is garbage-collected.
    assert open_files_under(tmp_path) == []
