"""A PostgreSQL server -> fresh databases, dumps restored by the stock tools, dumps compared."""

from __future__ import annotations

import os
import subprocess

from monetr_backup import DumpFormat
from monetr_backup.testing import PostgresServer, seed_monetr_like

from .names import unique_name


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


class Databases:
    """Creates uniquely named databases for one test and drops them afterwards."""

    def __init__(self, pg: PostgresServer) -> None:
        self.pg = pg
        self.created: list[str] = []

    def create(self, *, template: str | None = None, seed: bool = False) -> str:
        """A new database: empty (``template0``), a clone of ``template``, or monetr-seeded."""
        name = unique_name("t").replace("-", "_")
        source = quote_ident(template) if template else "template0"
        self.pg.psql(f"CREATE DATABASE {quote_ident(name)} TEMPLATE {source} ENCODING 'UTF8'")
        self.created.append(name)
        if seed:
            seed_monetr_like(self.pg, name)
        return name

    def drop_all(self) -> None:
        """Drop every database this test made (or registered), newest first."""
        for name in reversed(self.created):
            self.pg.drop_database(name)
        self.created.clear()


def new_database_name(databases: Databases) -> str:
    """A name for a database the restore is to create (dropped after the test either way)."""
    name = unique_name("t_new").replace("-", "_")
    databases.created.append(name)
    return name


def database_exists(pg: PostgresServer, name: str) -> bool:
    """Whether database ``name`` exists on the server."""
    literal = "'" + name.replace("'", "''") + "'"
    return pg.psql(f"SELECT count(*) FROM pg_database WHERE datname = {literal}") == "1\n"


def _tool_env(pg: PostgresServer, database: str) -> dict[str, str]:
    """The environment for the stock client programs: libpq settings for ``database`` only."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    return {**env, **pg.env(database), "PGCLIENTENCODING": "UTF8"}


def restore_dump(pg: PostgresServer, dump: bytes, dump_format: DumpFormat, database: str) -> None:
    """Restore ``dump`` into the empty ``database`` with the stock tools, reading stdin."""
    if dump_format is DumpFormat.CUSTOM:
        args = [
            str(pg.bin_dir / "pg_restore"),
            "--exit-on-error",
            "--single-transaction",
            "--no-password",
            f"--dbname={database}",
        ]
    else:
        args = [
            str(pg.bin_dir / "psql"),
            "--no-psqlrc",
            "--quiet",
            "--no-password",
            "--single-transaction",
            "-v",
            "ON_ERROR_STOP=1",
        ]
    proc = subprocess.run(
        args, input=dump, capture_output=True, env=_tool_env(pg, database), check=False
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")


def assert_same_database(pg: PostgresServer, expected: str, actual: str) -> None:
    """``pg_dump -Fp`` of both databases is identical.

    The plain dump names no database (that only happens with ``--create``), so no
    normalisation is needed beyond a fixed ``\\restrict`` key.
    """
    want = pg.pg_dump_text(expected, restrict_key="monetrbackuptest")
    got = pg.pg_dump_text(actual, restrict_key="monetrbackuptest")
    assert expected.encode() not in want
    assert b"COPY public.events" in want
    assert got == want


def server_checks_passwords(pg: PostgresServer) -> bool:
    """Whether the server refuses a wrong password over TCP (a server given through
    MONETR_BACKUP_TEST_PG_DSN might trust every local connection)."""
    env = {**_tool_env(pg, pg.database), "PGPASSWORD": "surely-not-the-password"}
    args = [str(pg.bin_dir / "psql"), "-X", "-tA", "-c", "SELECT 1"]
    return subprocess.run(args, env=env, capture_output=True, check=False).returncode != 0


def server_major(pg: PostgresServer) -> int:
    """The server's major version (``SHOW server_version_num`` // 10000)."""
    return int(pg.psql("SHOW server_version_num")) // 10000
