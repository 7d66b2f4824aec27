"""PostgresConfig -> libpq settings: a DSN parsed, TLS paths and password in the environment."""

from __future__ import annotations

import pytest

import monetr_backup as mb
from monetr_backup._postgres.programs import client_env

from support.env import Env

pytestmark = pytest.mark.anyio


def test_postgres_config_from_dsn() -> None:
    """A DSN fills every field, unquoting user and password; the password stays secret."""
    config = mb.PostgresConfig.from_dsn(
        "postgresql://mon%40tr:p%40ss@db.local:6543/monetr?sslmode=require", connect_timeout=3
    )
    assert (config.host, config.port, config.user, config.database, config.sslmode) == (
        "db.local",
        6543,
        "mon@tr",
        "monetr",
        "require",
    )
    assert config.password is not None
    assert config.password.get_secret_value() == "p@ss"
    assert "p@ss" not in repr(config)
    assert config.connect_timeout == 3
    with pytest.raises(ValueError, match="postgresql://"):
        mb.PostgresConfig.from_dsn("mysql://x@y/z")


def test_tls_settings_reach_the_client_programs() -> None:
    """monetr's CA, certificate and key paths go to pg_dump/pg_restore/psql as libpq's
    PGSSL* variables; the password travels in PGPASSWORD only."""
    config = mb.PostgresConfig.from_dsn(
        "postgresql://u:pw-7c1e9b@h/d?sslmode=verify-full&sslrootcert=/ca.pem"
        "&sslcert=/c.pem&sslkey=/k.pem"
    )
    env = client_env(config)
    assert {key: value for key, value in env.items() if key.startswith("PGSSL")} == {
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": "/ca.pem",
        "PGSSLCERT": "/c.pem",
        "PGSSLKEY": "/k.pem",
    }
    assert env["PGPASSWORD"] == "pw-7c1e9b"
    # A password no other variable could hold by chance (the environment may say "secret").
    assert [key for key, value in env.items() if "pw-7c1e9b" in value] == ["PGPASSWORD"]


async def test_sslmode_require_against_a_server_without_tls(env: Env) -> None:
    """sslmode reaches the preflight connection too: require fails against a plain server."""
    config = env.pg.config("postgres", sslmode="require")
    with pytest.raises(mb.DatabaseConnectionError, match="SSL"):
        await mb.backup(mb.FileArchive(path=env.output_dir / "x.tar.gz"), database=config)
    assert list(env.output_dir.iterdir()) == []
