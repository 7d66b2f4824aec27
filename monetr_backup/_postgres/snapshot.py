"""A REPEATABLE READ transaction -> an exported snapshot that pg_dump and our queries share.

pg_dump takes its own snapshot when it starts; storage is read later still. Exporting one
from a transaction of ours (``pg_export_snapshot()``) and handing it to pg_dump with
``--snapshot`` lets this transaction read the ``files`` rows exactly as the dump has
them. The transaction stays open until the dump has finished (pg_dump must import the
snapshot while it exists), read-only, so it only holds back vacuum as pg_dump itself does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import asyncpg

from .._config import PostgresConfig
from .._errors import DatabaseConnectionError
from .._format.documents import KmsKey, MonetrFacts
from .server import _session, connect

__all__ = ["FileRow", "Snapshot", "live_files", "open_snapshot"]

_PG_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

#: monetr's ``files`` table, with the columns the file set needs (others are ignored).
_FILES_TABLE_SQL = """
SELECT count(*) = 6 FROM information_schema.columns
WHERE table_schema = 'public' AND table_name = 'files'
  AND column_name IN ('file_id', 'account_id', 'kind', 'size', 'reconciled_at', 'deleted_at')
"""
#: A live upload: not yet reconciled and deleted by monetr's cleanup job.
_LIVE_FILES_SQL = """
SELECT file_id, account_id, kind, size FROM public.files
WHERE reconciled_at IS NULL AND deleted_at IS NULL
ORDER BY kind, account_id, file_id
"""


_HAS_MIGRATIONS_SQL = "SELECT to_regclass('public.schema_migrations') IS NOT NULL"
_SCHEMA_VERSION_SQL = "SELECT MAX(version)::text FROM public.schema_migrations"
_KMS_KEYS_SQL = """
SELECT key_id, version, count(*) FROM public.secrets
GROUP BY key_id, version ORDER BY key_id NULLS FIRST, version NULLS FIRST
"""
_HAS_SECRETS_SQL = """
SELECT count(*) = 2 FROM information_schema.columns
WHERE table_schema = 'public' AND table_name = 'secrets' AND column_name IN ('key_id', 'version')
"""


@dataclass(frozen=True, slots=True)
class FileRow:
    """One live row of monetr's ``files`` table."""

    file_id: str
    account_id: str
    kind: str
    size: int


class Snapshot:
    """An open snapshot: its id for ``pg_dump --snapshot``, and queries in it."""

    def __init__(self, connection: asyncpg.Connection, snapshot_id: str) -> None:
        self._connection = connection
        #: What ``pg_dump --snapshot`` takes.
        self.snapshot_id = snapshot_id

    async def live_files(self) -> list[FileRow] | None:
        """The live ``files`` rows, or ``None`` if this is not a monetr database."""
        try:
            return await _live_files(self._connection)
        except _PG_ERRORS as exc:
            raise DatabaseConnectionError(
                f"reading the files rows failed: {type(exc).__name__}: {exc}"
            ) from exc

    async def monetr_facts(self) -> MonetrFacts:
        """The schema version and the KMS keys of the ``secrets`` rows, where present."""
        try:
            version = None
            if await self._connection.fetchval(_HAS_MIGRATIONS_SQL):
                version = await self._connection.fetchval(_SCHEMA_VERSION_SQL)
            keys = []
            if await self._connection.fetchval(_HAS_SECRETS_SQL):
                keys = await self._connection.fetch(_KMS_KEYS_SQL)
        except _PG_ERRORS as exc:
            raise DatabaseConnectionError(
                f"reading the schema version and KMS keys failed: {type(exc).__name__}: {exc}"
            ) from exc
        return MonetrFacts(
            schema_version=int(version) if version is not None and version.isdigit() else None,
            kms_keys=[KmsKey(key_id=row[0], version=row[1], secrets=row[2]) for row in keys],
        )


@asynccontextmanager
async def open_snapshot(config: PostgresConfig) -> AsyncIterator[Snapshot]:
    """A read-only REPEATABLE READ transaction on ``config.database`` and its snapshot."""
    where = f"database {config.database!r} at {config.host}:{config.port} as {config.user!r}"
    # Connecting and closing shielded: asyncpg cancelled mid-handshake can leak the
    # connection (see server._session); the transaction in between is ordinary.
    with anyio.CancelScope(shield=True), anyio.fail_after(config.connect_timeout + 5):
        try:
            connection = await connect(config)
        except _PG_ERRORS as exc:
            raise DatabaseConnectionError(
                f"cannot open a snapshot of {where}: {type(exc).__name__}: {exc}"
            ) from exc
        transaction = connection.transaction(isolation="repeatable_read", readonly=True)
        try:
            await transaction.start()
            snapshot_id = str(await connection.fetchval("SELECT pg_export_snapshot()"))
        except BaseException as exc:
            await connection.close()
            if isinstance(exc, _PG_ERRORS):
                raise DatabaseConnectionError(
                    f"cannot export a snapshot of {where}: {type(exc).__name__}: {exc}"
                ) from exc
            raise
    try:
        yield Snapshot(connection, snapshot_id)
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(config.connect_timeout):
            try:
                await transaction.rollback()
            finally:
                await connection.close()


async def live_files(config: PostgresConfig) -> list[FileRow] | None:
    """The live ``files`` rows of ``config.database`` now (``None``: not a monetr database)."""
    async with _session(config, config.database) as connection:
        return await _live_files(connection)


async def _live_files(connection: asyncpg.Connection) -> list[FileRow] | None:
    if not await connection.fetchval(_FILES_TABLE_SQL):
        return None
    rows = await connection.fetch(_LIVE_FILES_SQL)
    return [FileRow(row[0], row[1], row[2], int(row[3] or 0)) for row in rows]
