"""What backup and restore share about PostgreSQL: binaries, environment, a preflight check.

Credentials reach the client programs only through the environment (PGPASSWORD), never
argv, where any local user could read them in /proc.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import anyio
import asyncpg

from ._config import PostgresConfig
from ._errors import BackupError, DatabaseConnectionError

__all__ = ["ServerInfo", "client_env", "find_binary", "probe_server"]

_DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name)) or (0,)


def find_binary(name: str, bin_dir: Path | None = None) -> Path:
    """Locate a PostgreSQL client program.

    An explicit ``bin_dir`` wins. Otherwise the newest ``/usr/lib/postgresql/<v>/bin``
    is preferred over ``PATH`` because Debian's ``PATH`` entry is a wrapper that may pick
    an older version than the server needs.
    """
    if bin_dir is not None:
        candidate = bin_dir / name
        if not candidate.is_file():
            raise BackupError(f"{name} not found in {bin_dir}")
        return candidate
    if _DEBIAN_PG_ROOT.is_dir():
        for version_dir in sorted(_DEBIAN_PG_ROOT.iterdir(), key=_version_key, reverse=True):
            candidate = version_dir / "bin" / name
            if candidate.is_file():
                return candidate
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found: install the PostgreSQL client or set bin_dir")
    return Path(found)


def client_env(config: PostgresConfig, *, database: str | None = None) -> dict[str, str]:
    """Environment for ``pg_dump``/``pg_restore``/``psql`` holding the connection settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update(
        PGHOST=config.host,
        PGPORT=str(config.port),
        PGUSER=config.user,
        PGDATABASE=database or config.database,
        PGCONNECT_TIMEOUT=str(max(1, round(config.connect_timeout))),
        # Never prompt: a missing password must fail, not hang on a terminal.
        PGPASSWORD=config.password.get_secret_value() if config.password else "",
    )
    if not config.password:
        del env["PGPASSWORD"]
    if config.sslmode:
        env["PGSSLMODE"] = config.sslmode
    return env


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What the preflight check learned about the server."""

    server_version: str
    database_size: int


async def probe_server(config: PostgresConfig, *, database: str | None = None) -> ServerInfo:
    """Connect once with asyncpg: check credentials, read the version and database size.

    Failing here gives a clear error before any subprocess starts or upload begins.
    """
    target = database or config.database
    try:
        with anyio.fail_after(config.connect_timeout + 5):
            conn = await asyncpg.connect(
                host=config.host,
                port=config.port,
                user=config.user,
                database=target,
                password=config.password.get_secret_value() if config.password else None,
                ssl=config.sslmode,  # type: ignore[arg-type]  # libpq's sslmode names
                timeout=config.connect_timeout,
            )
        try:
            version = await conn.fetchval("SHOW server_version")
            size = await conn.fetchval("SELECT pg_database_size(current_database())")
        finally:
            await conn.close()
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # asyncpg's messages name host, user and database but never the password.
        raise DatabaseConnectionError(
            f"cannot connect to database {target!r} at {config.host}:{config.port} as "
            f"{config.user!r}: {type(exc).__name__}: {exc}"
        ) from exc
    return ServerInfo(server_version=str(version), database_size=int(size))
