"""A database target with tables, missing, or for no dump -> refused or cleaned, never half-done."""

from __future__ import annotations

from pathlib import Path

import pytest

import monetr_backup as mb
from monetr_backup.testing import PostgresServer

from support.archives import TOP, build_tar, flip_member_byte, header_json, last_dump_part, regular
from support.databases import Databases, database_exists, new_database_name
from support.samples import RESTRICT_KEY, Sample, copy_archive, restore_into_new

pytestmark = pytest.mark.anyio


#: Changes a copy of the sample database: rows gone and changed, a table dropped.
#: (Only objects the dump has: ``pg_restore --clean`` drops just those; see below.)
DRIFT_SQL = """
DELETE FROM transactions WHERE amount < 0;
UPDATE logins SET first_name = 'Changed', email = 'changed-' || email;
DROP TABLE files;
"""


@pytest.mark.parametrize("dump_format", list(mb.DumpFormat))
async def test_target_with_tables_is_refused_unless_clean(
    dump_format: mb.DumpFormat, sample: Sample, pg: PostgresServer, databases: Databases
) -> None:
    """A database that has tables is refused (TargetNotEmptyError) and left as it was;
    with ``clean=True`` its objects are replaced and it then equals the source."""
    target = databases.create(template=sample.database)
    pg.psql(DRIFT_SQL, target)
    before = pg.pg_dump_text(target, restrict_key=RESTRICT_KEY)
    assert before != sample.dump
    archive = mb.FileArchive(path=sample.archives[dump_format])

    with pytest.raises(mb.TargetNotEmptyError, match="already has"):
        await mb.restore(archive, database=pg.config(target))
    assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == before

    result = await mb.restore(
        archive, database=pg.config(target), options=mb.RestoreOptions(clean=True)
    )
    assert result.database_restored
    assert not result.database_created
    assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == sample.dump


async def test_clean_plain_restore_drops_objects_the_dump_does_not_have(
    sample: Sample, pg: PostgresServer, databases: Databases
) -> None:
    """For plain dumps ``clean`` drops the user schemas first (same transaction), so a
    table and a schema the source never had are gone afterwards too."""
    target = databases.create()
    pg.psql(
        "CREATE SCHEMA stale; CREATE TABLE stale.t (id int); CREATE TABLE extra (x int);", target
    )
    await mb.restore(
        mb.FileArchive(path=sample.archives[mb.DumpFormat.PLAIN]),
        database=pg.config(target),
        options=mb.RestoreOptions(clean=True),
    )
    assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == sample.dump


@pytest.mark.parametrize("dump_format", list(mb.DumpFormat))
async def test_clean_restore_over_a_drifted_schema(
    dump_format: mb.DumpFormat, sample: Sample, pg: PostgresServer, databases: Databases
) -> None:
    """``clean`` over a database whose schema has drifted since the backup (a column gone,
    another added, a view depending on the table, as after a monetr upgrade): every user
    schema is dropped first in the same transaction, so the restore the operator needs
    most goes through and the database then equals the source. (``pg_restore --clean``
    stopped at ``ALTER TABLE IF EXISTS ... ALTER COLUMN id DROP DEFAULT``.)"""
    target = databases.create(template=sample.database)
    pg.psql(
        # A same-named table with other columns, one an identity whose sequence pg_restore
        # does not know, and a view depending on the table.
        "ALTER TABLE transactions DROP COLUMN transaction_id CASCADE;"
        "ALTER TABLE transactions ADD COLUMN id bigserial;"
        "CREATE VIEW drift_view AS SELECT count(*) FROM transactions;",
        target,
    )
    await mb.restore(
        mb.FileArchive(path=sample.archives[dump_format]),
        database=pg.config(target),
        options=mb.RestoreOptions(clean=True),
    )
    assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == sample.dump


async def test_failing_clean_restore_rolls_back(
    sample: Sample, pg: PostgresServer, databases: Databases
) -> None:
    """The clean's drops and the restore are one transaction: when psql fails (here at a
    role that does not exist), the restore raises PgRestoreError with psql's message and
    the database is exactly as it was, drifted objects included."""
    target = databases.create(template=sample.database)
    pg.psql(DRIFT_SQL + "CREATE VIEW drift_view AS SELECT count(*) FROM transactions;", target)
    before = pg.pg_dump_text(target, restrict_key=RESTRICT_KEY)
    with pytest.raises(mb.PgRestoreError, match='role "no_such_role" does not exist'):
        await mb.restore(
            mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM]),
            database=pg.config(target),
            options=mb.RestoreOptions(clean=True, role="no_such_role"),
        )
    assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == before


async def test_damaged_dump_under_clean_rolls_back_the_drops(
    sample: Sample, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    """A flipped byte in the last dump part with ``clean``: the schemas were already
    dropped inside the transaction when the damage is found; it rolls back, and the
    target keeps every object it had."""
    path = copy_archive(sample, mb.DumpFormat.CUSTOM, tmp_path)
    flip_member_byte(path, last_dump_part(path), index=100)
    target = databases.create(template=sample.database)
    pg.psql(DRIFT_SQL, target)
    before = pg.pg_dump_text(target, restrict_key=RESTRICT_KEY)
    with pytest.raises(mb.ChecksumError):
        await mb.restore(
            mb.FileArchive(path=path),
            database=pg.config(target),
            options=mb.RestoreOptions(clean=True),
        )
    assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == before


async def test_target_checks(
    sample: Sample, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    """A missing database without ``create_database`` is a DatabaseConnectionError; a
    database target for an archive without a dump is a PgRestoreError. Neither is created."""
    missing = new_database_name(databases)
    with pytest.raises(mb.DatabaseConnectionError, match="does not exist"):
        await mb.restore(
            mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM]),
            database=pg.config(missing),
        )
    archive = tmp_path / "storage-only.tar"
    archive.write_bytes(build_tar([regular(f"{TOP}/header.json", header_json(TOP))]))
    with pytest.raises(mb.PgRestoreError, match="no database dump"):
        await restore_into_new(pg, archive, missing)
    assert not database_exists(pg, missing)
