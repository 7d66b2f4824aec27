"""PostgreSQL 16 and 18 wheels -> servers run as `postgres` from a copy; a seed without pgcrypto."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from monetr_backup.testing import (
    WHEEL_POSTGRES,
    PostgresServer,
    TemporaryPostgres,
    wheel_postgres_bin_dir,
)

from support.databases import Databases, server_major

each_wheel = pytest.mark.parametrize("major", sorted(WHEEL_POSTGRES), ids=lambda m: f"pg{m}")

#: The tables the seed fills.
SEEDED_TABLES = (
    "logins",
    "accounts",
    "users",
    "secrets",
    "links",
    "bank_accounts",
    "funding_schedules",
    "spending",
    "files",
    "transactions",
)


def content_digest(pg: PostgresServer, database: str) -> str:
    """Per seeded table (one query): row count and MD5 of its rows as text, in a fixed order."""
    rows = " UNION ALL ".join(
        f"SELECT '{table}', count(*), md5(coalesce(string_agg(t::text, E'\\n' "
        f"ORDER BY t::text COLLATE \"C\"), '')) FROM {table} t"
        for table in SEEDED_TABLES
    )
    return pg.psql(f"SET TimeZone = 'UTC'; {rows}", database)


@pytest.fixture(scope="module")
def digest_15(pg: PostgresServer) -> Iterator[str]:
    """:func:`content_digest` of a database seeded on the session's PostgreSQL 15."""
    databases = Databases(pg)
    try:
        yield content_digest(pg, databases.create(seed=True))
    finally:
        databases.drop_all()


def pgcrypto_available(pg: PostgresServer) -> bool:
    """Whether the server could create the pgcrypto extension."""
    sql = "SELECT count(*) FROM pg_available_extensions WHERE name = 'pgcrypto'"
    return pg.psql(sql).strip() == "1"


def has_pgcrypto(pg: PostgresServer, database: str) -> bool:
    """Whether ``database`` has the pgcrypto extension installed."""
    found = pg.psql("SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto'", database)
    return found.strip() == "1"


@each_wheel
def test_from_wheel_runs_a_copy_as_postgres_and_removes_it(major: int) -> None:
    """The postmaster runs the copy in the cluster's temporary directory (the venv may be
    closed to ``postgres``); once stopped, the copy is gone and ``bin_dir`` is the wheel's."""
    wheel_bin = wheel_postgres_bin_dir(major)
    with TemporaryPostgres.from_wheel(major) as pg:
        assert pg.base_dir is not None
        assert pg.pid is not None
        base_dir = pg.base_dir
        assert pg.bin_dir.is_relative_to(base_dir)
        assert pg.config("postgres").bin_dir == pg.bin_dir
        assert Path(os.readlink(f"/proc/{pg.pid}/exe")).is_relative_to(base_dir)
        assert server_major(pg) == major
        if os.geteuid() == 0:
            assert Path(f"/proc/{pg.pid}").stat().st_uid == pwd.getpwnam(pg.os_user).pw_uid
        assert not pgcrypto_available(pg)
    assert not base_dir.exists()
    assert pg.bin_dir == wheel_bin


@each_wheel
def test_wheel_bin_dir_holds_that_version(major: int) -> None:
    """Its client programs run for the current user, straight from the wheel."""
    for program in ("pg_dump", "pg_restore", "psql"):
        version = subprocess.run(
            [str(wheel_postgres_bin_dir(major) / program), "--version"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert re.fullmatch(rf"{program} \(PostgreSQL\) {major}\.\d+\n", version), version


def test_no_wheel_for_another_major() -> None:
    with pytest.raises(ValueError, match="no wheel known to ship PostgreSQL 17"):
        wheel_postgres_bin_dir(17)


@each_wheel
def test_the_seed_needs_no_pgcrypto_and_matches_15(
    major: int, request: pytest.FixtureRequest, digest_15: str
) -> None:
    """On a server without pgcrypto the seed works, two seeded databases dump
    identically, and every row is the one the PostgreSQL 15 seed (with pgcrypto) holds."""
    wheel: PostgresServer = request.getfixturevalue(f"pg{major}")
    on_wheel = Databases(wheel)
    try:
        first, second = on_wheel.create(seed=True), on_wheel.create(seed=True)

        assert not has_pgcrypto(wheel, first)
        dump = wheel.pg_dump_text(first, restrict_key="k")
        assert b"pgcrypto" not in dump
        assert wheel.pg_dump_text(second, restrict_key="k") == dump
        assert content_digest(wheel, first) == digest_15
        # generate_ulid() makes ids for new rows, as in monetr.
        made = wheel.psql(
            "INSERT INTO accounts (timezone, locale, created_at) "
            "VALUES ('UTC', 'en_US', now()) RETURNING account_id",
            first,
        )
        assert re.fullmatch(r"acct_[0-9A-HJKMNP-TV-Z]{26}\n", made), made
    finally:
        on_wheel.drop_all()


def test_the_seed_keeps_pgcrypto_where_the_server_has_it(pg: PostgresServer) -> None:
    """monetr's database has pgcrypto: on a server that has it, so does the seeded one."""
    if not pgcrypto_available(pg):
        pytest.skip("the session's server has no pgcrypto (MONETR_BACKUP_TEST_PG_DSN)")
    databases = Databases(pg)
    try:
        seeded = databases.create(seed=True)
        assert has_pgcrypto(pg, seeded)
        assert b"CREATE EXTENSION IF NOT EXISTS pgcrypto" in pg.pg_dump_text(seeded)
    finally:
        databases.drop_all()
