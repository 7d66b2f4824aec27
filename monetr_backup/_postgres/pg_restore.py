"""The dump stream -> pg_restore (custom format) or psql (plain SQL), in one transaction.

The feeder always holds the latest chunk back from the process. The dump stream ends
only after its SHA-256 has matched the dump summary; then ``before_commit`` runs (the
restore reads and checks the rest of the archive there, up to its manifest), and only
then does the last chunk go in and stdin close. Until then pg_restore/psql cannot reach
the end of its input, so it cannot commit: on a mismatch (or any error, or cancellation)
the process is killed and the single transaction rolls back, leaving the database as it
was.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterable, Awaitable, Callable

import anyio

from .._config import DumpFormat, PostgresConfig
from .._errors import RestoreError
from .programs import client_env, find_binary, open_tool

__all__ = ["restore_args", "run_restore"]

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
        raise RestoreError(
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


async def run_restore(
    config: PostgresConfig,
    database: str,
    dump_format: DumpFormat,
    dump: AsyncIterable[bytes],
    *,
    clean: bool = False,
    no_owner: bool = False,
    role: str | None = None,
    before_commit: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Apply ``dump`` to ``database``; return the number of dump bytes applied.

    ``before_commit`` is awaited once the whole dump stream has been read, while the last
    chunk is still held back: whatever it raises aborts the restore before the commit.
    Raises :class:`RestoreError` with the tool's stderr tail if it fails, and re-raises
    whatever ``dump`` or ``before_commit`` raises after the process has been killed.
    """
    program, args = restore_args(dump_format, clean=clean, no_owner=no_owner, role=role)
    binary = find_binary(program, config.bin_dir)
    applied = 0
    async with open_tool(
        [str(binary), *args],
        env=client_env(config, database=database),
        stdin=subprocess.PIPE,
    ) as tool:
        stdin = tool.process.stdin
        assert stdin is not None
        held: bytes | None = None
        try:
            prologue = _prologue(dump_format, clean=clean, role=role)
            if prologue:
                await stdin.send(prologue)
            async for chunk in dump:
                if held is not None:
                    await stdin.send(held)
                    applied += len(held)
                held = chunk
        except _PIPE_ERRORS:
            # The tool quit reading: its exit status and stderr say why.
            pass
        else:
            # The dump stream has verified itself. Outside the pipe-error handler: an
            # error of before_commit must abort the restore, not pass for the tool's.
            if before_commit is not None:
                await before_commit()
            # Release the last chunk: the tool reaches the end of its input and commits.
            with contextlib.suppress(*_PIPE_ERRORS):
                if held is not None:
                    await stdin.send(held)
                    applied += len(held)
                await stdin.aclose()
        returncode = await tool.process.wait()
        if returncode != 0:
            text = await tool.stderr_text()
            detail = f"; {program} stderr:\n{text}" if text else ""
            raise RestoreError(f"{program} failed (exit status {returncode}){detail}")
    return applied
