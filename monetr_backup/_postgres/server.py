"""The settings -> a checked server: preflight, and preparing (or dropping) a restore target."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

import anyio
import asyncpg

from .._config import PostgresConfig
from .._errors import DatabaseConnectionError, TargetNotEmptyError
from .programs import tls_settings

__all__ = ["ServerInfo", "connect", "drop_database", "prepare_target", "probe_server"]


async def connect(config: PostgresConfig, database: str | None = None) -> asyncpg.Connection:
    """An asyncpg connection to ``database`` (default: the configured one)."""
    tls = tls_settings(config)
    return await asyncpg.connect(
        # asyncpg reads certificate paths from a DSN's query, like libpq does.
        f"postgresql://?{urlencode(tls)}" if tls else None,
        host=config.host,
        port=config.port,
        user=config.user,
        database=database or config.database,
        password=config.password.get_secret_value() if config.password else None,
        timeout=config.connect_timeout,
    )


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What the preflight check learned about the server."""

    server_version: str
    database_size: int


#: What asyncpg raises for a server that cannot be reached or used.
_PG_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
#: Seconds a session may take beyond ``connect_timeout``.
_SESSION_SLACK = 5.0


@asynccontextmanager
async def _session(config: PostgresConfig, database: str) -> AsyncIterator[asyncpg.Connection]:
    """A short asyncpg session, shielded from cancellation and bounded in time.

    asyncpg cancelled mid-handshake or mid-query can leak the connection or raise
    ``ConnectionError`` from a loop callback (MagicStack/asyncpg#464, #1211). These
    sessions take milliseconds, so a cancellation waits for them (a few seconds at worst)
    rather than risking that. Every asyncpg error becomes :class:`DatabaseConnectionError`
    here, the one place that maps them; a database that does not exist stays asyncpg's
    ``InvalidCatalogNameError`` for the caller that may create it.
    """
    where = f"database {database!r} at {config.host}:{config.port} as {config.user!r}"
    with anyio.CancelScope(shield=True):
        try:
            with anyio.fail_after(config.connect_timeout + _SESSION_SLACK):
                try:
                    conn = await connect(config, database)
                except asyncpg.InvalidCatalogNameError:
                    raise
                except _PG_ERRORS as exc:
                    # asyncpg's messages name host, user and database, never the password.
                    raise DatabaseConnectionError(
                        f"cannot connect to {where}: {type(exc).__name__}: {exc}"
                    ) from exc
                try:
                    yield conn
                except _PG_ERRORS as exc:
                    raise DatabaseConnectionError(
                        f"talking to {where} failed: {type(exc).__name__}: {exc}"
                    ) from exc
                finally:
                    await conn.close()
        except TimeoutError as exc:
            raise DatabaseConnectionError(f"{where} did not answer in time") from exc


async def probe_server(config: PostgresConfig, *, database: str | None = None) -> ServerInfo:
    """Connect once with asyncpg: check credentials, read the version and database size.

    Failing here gives a clear error before any subprocess starts or upload begins.
    """
    try:
        async with _session(config, database or config.database) as conn:
            version = await conn.fetchval("SHOW server_version")
            size = await conn.fetchval("SELECT pg_database_size(current_database())")
    except asyncpg.InvalidCatalogNameError as exc:
        raise DatabaseConnectionError(
            f"database {database or config.database!r} does not exist"
        ) from exc
    return ServerInfo(server_version=str(version), database_size=int(size))


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_USER_TABLES_SQL = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp_%'
"""


async def prepare_target(
    config: PostgresConfig, *, create: bool, clean: bool, dry_run: bool
) -> bool:
    """Check a restore target: it exists (or may be created) and is empty (or ``clean``).

    Returns whether the database was created (so a failed restore can drop it again).
    Sessions are shielded (see :func:`_session`), so once CREATE DATABASE has run the
    caller always learns that it did: a cancellation cannot leave a database nobody drops.
    """
    try:
        async with _session(config, config.database) as conn:
            tables = await conn.fetchval(_USER_TABLES_SQL)
    except asyncpg.InvalidCatalogNameError as exc:
        if not create:
            raise DatabaseConnectionError(
                f"database {config.database!r} does not exist (set create_database=True)"
            ) from exc
        if dry_run:
            return False
        await _admin_execute(config, f"CREATE DATABASE {_quote_ident(config.database)}")
        return True
    if tables and not clean:
        raise TargetNotEmptyError(
            f"database {config.database!r} already has {tables} tables or other relations; "
            "restore into an empty database, or set clean=True to replace them"
        )
    return False


async def drop_database(config: PostgresConfig) -> None:
    """Drop the database a failed restore created."""
    # FORCE: a backend the killed restore left behind must not keep the database alive.
    sql = f"DROP DATABASE IF EXISTS {_quote_ident(config.database)} WITH (FORCE)"
    await _admin_execute(config, sql)


async def _admin_execute(config: PostgresConfig, sql: str) -> None:
    # CREATE/DROP DATABASE cannot run inside the target itself: use the maintenance DB.
    try:
        async with _session(config, "postgres") as conn:
            await conn.execute(sql)
    except (DatabaseConnectionError, asyncpg.InvalidCatalogNameError) as exc:
        raise DatabaseConnectionError(
            f"{sql.split(' ', maxsplit=1)[0]} DATABASE failed: {exc}"
        ) from exc
