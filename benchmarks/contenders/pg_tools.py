"""PostgreSQL's own clients -> the producer-limit and pg_restore baseline commands."""

from __future__ import annotations

import shlex

from monetr_backup.testing import PostgresServer

__all__ = ["RESTORE_ARGS", "dump_to_null", "program", "restore"]

#: What every restore runs pg_restore with, ours included.
RESTORE_ARGS = "--single-transaction --exit-on-error --no-password"


def program(pg: PostgresServer, name: str) -> str:
    """The shell-quoted path of the server's client program ``name``."""
    return shlex.quote(str(pg.bin_dir / name))


def dump_to_null(pg: PostgresServer, prefix: list[str]) -> str:
    """The producer limit: ``pg_dump -Fc -Z0 > /dev/null`` after ``prefix``."""
    return f"{shlex.join(prefix)} {program(pg, 'pg_dump')} -Fc -Z0 > /dev/null"


def restore(pg: PostgresServer, database: str) -> str:
    """``pg_restore`` into ``database``, reading the archive named after it or stdin."""
    return f"{program(pg, 'pg_restore')} {RESTORE_ARGS} -d {database}"
