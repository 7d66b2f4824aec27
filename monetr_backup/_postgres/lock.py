"""A backup or restore of a database -> a PostgreSQL advisory lock held for the whole run.

Two runs of one instance at once (cron firing while last night's backup still runs, a
restore started over a running backup) would race: the second is refused at once, with
:class:`ConcurrentOperationError`, before it writes anything.

The lock is a session-level ``pg_try_advisory_lock`` on a connection of its own, held
until the operation has finished (committed, aborted or cancelled) and released by
closing that connection, which PostgreSQL does for any session that ends, even one whose
client died. Advisory locks belong to one database, so:

- a backup locks :data:`LOCK_KEY` in the database it dumps;
- a restore locks :data:`LOCK_KEY` in the target database when it exists, so that it
  and a backup of that database exclude each other; and first, always, the pair
  (:data:`LOCK_CLASS`, :func:`target_key` of the target's name) in the maintenance
  database ``postgres``, which exists when the target does not yet: two restores that
  would both create one database exclude each other there.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import asyncpg

from .._config import PostgresConfig
from .._errors import ConcurrentOperationError, DatabaseConnectionError
from .server import connect

__all__ = ["LOCK_CLASS", "LOCK_KEY", "MAINTENANCE_DATABASE", "backup_lock", "restore_lock"]

#: What the keys are derived from.
LOCK_NAME = "monetr_backup"
_DIGEST = hashlib.sha256(LOCK_NAME.encode()).digest()
#: ``pg_try_advisory_lock(bigint)`` in the database backed up or restored: the first
#: 8 bytes of SHA-256("monetr_backup"), big-endian, signed (6891533182244017885).
LOCK_KEY = int.from_bytes(_DIGEST[:8], "big", signed=True)
#: ``pg_try_advisory_lock(int, int)`` in the maintenance database: the first 4 bytes of
#: the same digest, signed (1604560106); the second key is :func:`target_key`.
LOCK_CLASS = int.from_bytes(_DIGEST[:4], "big", signed=True)
MAINTENANCE_DATABASE = "postgres"

_PG_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

#: The session holding an advisory lock, if this role may see it (pg_locks shows all).
_HOLDER_SQL = """
SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = $3
LIMIT 1
"""


def target_key(database: str) -> int:
    """The second key of a restore's lock in the maintenance database: a signed CRC32 of
    the target's name (a collision only makes two restores of different databases wait)."""
    return int.from_bytes(zlib.crc32(database.encode()).to_bytes(4, "big"), "big", signed=True)


def _lock_tag(keys: tuple[int, ...]) -> tuple[int, int, int]:
    """What pg_locks shows for the keys: classid, objid, objsubid (1: bigint, 2: a pair)."""
    if len(keys) == 1:
        unsigned = keys[0] & 0xFFFF_FFFF_FFFF_FFFF
        return unsigned >> 32, unsigned & 0xFFFF_FFFF, 1
    return keys[0] & 0xFFFF_FFFF, keys[1] & 0xFFFF_FFFF, 2


@asynccontextmanager
async def _advisory_lock(
    config: PostgresConfig, database: str, keys: tuple[int, ...], what: str
) -> AsyncIterator[None]:
    """Hold the advisory lock ``keys`` in ``database`` on a session of its own."""
    where = f"database {database!r} at {config.host}:{config.port}"
    # Shielded and bounded, as every short session (see server._session): asyncpg
    # cancelled mid-handshake can leak the connection, and with it the lock.
    try:
        with anyio.CancelScope(shield=True), anyio.fail_after(config.connect_timeout + 5):
            try:
                connection = await connect(config, database)
            except _PG_ERRORS as exc:
                raise DatabaseConnectionError(
                    f"cannot connect to {where} as {config.user!r} to take the lock: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            try:
                args = ", ".join(f"${n}" for n in range(1, len(keys) + 1))
                taken = await connection.fetchval(f"SELECT pg_try_advisory_lock({args})", *keys)
                holder = None
                if not taken:
                    holder = await connection.fetchval(_HOLDER_SQL, *_lock_tag(keys))
            except BaseException as exc:
                await connection.close()
                if isinstance(exc, _PG_ERRORS):
                    raise DatabaseConnectionError(
                        f"taking the lock in {where} failed: {type(exc).__name__}: {exc}"
                    ) from exc
                raise
            if not taken:
                await connection.close()
                by = f" (PostgreSQL backend pid {holder})" if holder is not None else ""
                raise ConcurrentOperationError(
                    f"another backup or restore of {what} is running{by}: it holds the advisory "
                    f"lock {', '.join(map(str, keys))} in {where}; nothing was done, try again "
                    "once it has finished",
                    holder_pid=holder,
                )
    except TimeoutError as exc:
        # A slow connect and a slow query each within bounds, together not: typed as a
        # connection problem, as server._session types it.
        raise DatabaseConnectionError(
            f"taking the lock in {where} took over {config.connect_timeout + 5:g} s"
        ) from exc
    try:
        yield
    finally:
        # Closing the session releases the lock; a connection that will not close in
        # time is dropped, which releases it as well.
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(config.connect_timeout):
                await connection.close()
            if not connection.is_closed():
                connection.terminate()


@asynccontextmanager
async def backup_lock(config: PostgresConfig) -> AsyncIterator[None]:
    """A backup of ``config.database``: :data:`LOCK_KEY` in that database."""
    async with _advisory_lock(config, config.database, (LOCK_KEY,), repr(config.database)):
        yield


@asynccontextmanager
async def restore_lock(config: PostgresConfig) -> AsyncIterator[None]:
    """A restore into ``config.database``: the maintenance lock, then the target's own."""
    name = config.database
    async with AsyncExitStack() as stack:
        keys = (LOCK_CLASS, target_key(name))
        await stack.enter_async_context(
            _advisory_lock(config, MAINTENANCE_DATABASE, keys, repr(name))
        )
        try:
            await stack.enter_async_context(_advisory_lock(config, name, (LOCK_KEY,), repr(name)))
        except DatabaseConnectionError as exc:
            # A target that does not exist yet: nobody can be backing it up, and any
            # other restore of it waits on the maintenance lock.
            if not isinstance(exc.__cause__, asyncpg.InvalidCatalogNameError):
                raise
        yield
