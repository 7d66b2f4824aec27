"""The dump stream -> pg_restore (custom format) or psql (plain SQL), in one transaction.

The program cannot commit before it reaches the end of its input, and :class:`PgRestore`
keeps the end from it until the restore has read and checked the whole archive and calls
:meth:`PgRestore.commit`. On any other way out (a mismatch, an error, a cancellation)
the program is killed and the single transaction rolls back, leaving the database as it
was; a database the restore created is dropped again.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from .._config import DumpFormat, PostgresConfig
from .._errors import DatabaseConnectionError, PgRestoreError
from .programs import Tool, client_env, find_binary, open_tool
from .server import drop_database, prepare_target

__all__ = ["PgRestore", "open_pg_restore", "restore_args"]

#: What writing to the tool's stdin raises once it has quit reading.
_PIPE_ERRORS = (anyio.BrokenResourceError, BrokenPipeError, ConnectionResetError)


def restore_args(
    dump_format: DumpFormat, *, clean: bool, no_owner: bool, role: str | None
) -> tuple[str, list[str]]:
    """The program and arguments that apply a dump of ``dump_format`` from stdin."""
    if dump_format is DumpFormat.CUSTOM:
        args = ["--single-transaction", "--exit-on-error", "--no-password"]
        if clean:
            args += ["--clean", "--if-exists"]
        if no_owner:
            args.append("--no-owner")
        if role:
            args.append(f"--role={role}")
        # -d is required for pg_restore to connect at all; the name comes from PGDATABASE.
        return "pg_restore", [*args, "--dbname=", "--format=custom"]
    if no_owner:
        # Ownership is spelled out as SQL in a plain dump; psql cannot leave it out.
        raise PgRestoreError(
            "no_owner needs a custom-format dump; a plain dump's ALTER ... OWNER statements "
            "always run (back up with dump_format='custom')"
        )
    args = ["--no-psqlrc", "--quiet", "--single-transaction", "--no-password"]
    args += ["--set=ON_ERROR_STOP=1", "--file=-"]
    return "psql", args


_CLEAN_PLAIN_SQL = b"""\
DO $$
DECLARE s record;
BEGIN
  FOR s IN SELECT nspname FROM pg_namespace
           WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
             AND nspname NOT LIKE 'pg_temp_%' AND nspname NOT LIKE 'pg_toast_temp_%'
  LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', s.nspname);
  END LOOP;
END $$;
CREATE SCHEMA public AUTHORIZATION pg_database_owner;
GRANT USAGE ON SCHEMA public TO PUBLIC;
COMMENT ON SCHEMA public IS 'standard public schema';
"""


def _prologue(dump_format: DumpFormat, *, clean: bool, role: str | None) -> bytes:
    # psql has no --clean or --role: the same effect, inside the same transaction.
    if dump_format is not DumpFormat.PLAIN:
        return b""
    sql = b""
    if role:
        sql += b"SET ROLE " + _quote_ident(role).encode() + b";\n"
    if clean:
        sql += _CLEAN_PLAIN_SQL
    return sql


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PgRestore:
    """A :class:`~monetr_backup.stages.DatabaseTarget`: the dump into one transaction.

    :meth:`write` always holds the latest chunk back from the program, so it cannot
    reach the end of its input and commit; only :meth:`commit` releases it, closes
    stdin and waits for the program to finish. Anything else kills the program and the
    transaction rolls back. See :func:`open_pg_restore`.
    """

    def __init__(self, tool: Tool | None, program: str, *, created: bool) -> None:
        self._tool = tool
        self._program = program
        #: Whether the target database was created for this restore.
        self.created = created
        self._held: bytes | None = None
        self.committed = False
        #: Dump bytes handed to the program (all of them, after commit).
        self.applied = 0

    async def _send(self, data: bytes) -> None:
        assert self._tool is not None
        assert self._tool.process.stdin is not None
        try:
            await self._tool.process.stdin.send(data)
        except _PIPE_ERRORS:
            # The program quit reading: its exit status and stderr say why.
            raise await self._failure() from None

    async def _failure(self) -> PgRestoreError:
        assert self._tool is not None
        returncode = await self._tool.process.wait()
        return PgRestoreError(
            f"{self._program} failed (exit status {returncode})",
            stderr_tail=await self._tool.stderr_text(),
        )

    async def write(self, data: bytes) -> None:
        """Hand the program the previous chunk and hold ``data`` back."""
        if self._tool is None:
            return  # a dry run: the dump is read and checked only
        if self._held is not None:
            await self._send(self._held)
            self.applied += len(self._held)
        self._held = data

    async def commit(self) -> None:
        """Release the last chunk and close stdin: the program reaches the end and commits."""
        if self._tool is None:
            self.committed = True
            return
        if self._held is not None:
            await self._send(self._held)
            self.applied += len(self._held)
            self._held = None
        assert self._tool.process.stdin is not None
        with contextlib.suppress(*_PIPE_ERRORS):
            await self._tool.process.stdin.aclose()
        if await self._tool.process.wait() != 0:
            raise await self._failure()
        self.committed = True

    async def abort(self) -> None:
        """Kill the program before it commits: the transaction rolls back."""
        self._held = None
        if self._tool is not None and self._tool.process.returncode is None:
            self._tool.process.kill()


@asynccontextmanager
async def open_pg_restore(
    config: PostgresConfig,
    dump_format: DumpFormat,
    *,
    create_database: bool = False,
    clean: bool = False,
    no_owner: bool = False,
    role: str | None = None,
    dry_run: bool = False,
) -> AsyncIterator[PgRestore]:
    """Apply a dump of ``dump_format`` to ``config.database`` in one transaction.

    The target is checked first: it must exist (or ``create_database`` creates it) and
    hold no tables unless ``clean``. Leaving the block without :meth:`PgRestore.commit`
    kills the program, so nothing is committed, and drops a database this call created.
    With ``dry_run`` the target is checked but no program runs.
    """
    program, args = restore_args(dump_format, clean=clean, no_owner=no_owner, role=role)
    binary = find_binary(program, config.bin_dir)
    created = await prepare_target(config, create=create_database, clean=clean, dry_run=dry_run)
    try:
        if dry_run:
            yield PgRestore(None, program, created=created)
            return
        async with open_tool(
            [str(binary), *args],
            env=client_env(config),
            stdin=subprocess.PIPE,
        ) as tool:
            target = PgRestore(tool, program, created=created)
            prologue = _prologue(dump_format, clean=clean, role=role)
            if prologue:
                await target._send(prologue)
            yield target
    except BaseException as exc:
        if created:
            with anyio.CancelScope(shield=True):
                try:
                    await drop_database(config)
                except DatabaseConnectionError as drop_error:
                    # The restore's own error is the one to raise; the leftover is a note.
                    exc.add_note(
                        f"database {config.database!r}, created by this restore, could not be "
                        f"dropped ({drop_error}); drop it by hand"
                    )
        raise
