"""The dump stream -> pg_restore (custom format) or psql (plain SQL), in one transaction.

The program cannot commit before it reaches the end of its input, and :class:`PgRestore`
keeps the end from it until the restore has read and checked the whole archive and calls
:meth:`PgRestore.commit`. On any other way out (a mismatch, an error, a cancellation)
the program is killed and the single transaction rolls back, leaving the database as it
was; a database the restore created is dropped again.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import anyio.lowlevel
import anyio.to_thread

from .._config import DumpFormat, PostgresConfig
from .._errors import DatabaseConnectionError, PgRestoreError
from .programs import (
    Tool,
    check_client,
    client_env,
    find_client,
    large_pipe,
    open_tool,
    version_numbers,
)
from .server import drop_database, prepare_target, probe_server

__all__ = ["PgRestore", "open_pg_restore", "restore_args"]

#: What writing to the tool's stdin raises once it has quit reading.
_PIPE_ERRORS = (anyio.BrokenResourceError, BrokenPipeError, ConnectionResetError)
#: Dump chunks are gathered up to this much, then written in one worker-thread hop: on
#: the event loop, the pipe's many small partial writes and wake-ups were the loop's
#: largest cost in a restore.
WRITE_BATCH = 1024 * 1024


def _write_all(fd: int, pieces: list[bytes]) -> None:
    """Blocking: write every piece to ``fd``; a full pipe waits until the program reads."""
    views = [memoryview(piece) for piece in pieces]
    start = 0
    while start < len(views):
        count = os.writev(fd, views[start:])
        while start < len(views) and count >= len(views[start]):
            count -= len(views[start])
            start += 1
        if count:
            views[start] = views[start][count:]


class _PipeEnd:
    """Our end of the pipe into the program: closed once, by commit or on the way out."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        """Close the end (the program reads to the end of its input) unless closed already."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


async def _write_to(tool: Tool, fd: int, pieces: list[bytes]) -> bool:
    """Write ``pieces`` to the program's stdin from a worker thread; False if it quit reading.

    A worker thread cannot be interrupted, and a program that stops reading (waiting for a
    lock, say) would keep it blocked. So a cancellation meanwhile kills the program: its
    end of the pipe closes, the write ends with EPIPE, and the thread with it, at once.
    """
    finished = False

    async def kill_unless_finished() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            if not finished and tool.process.returncode is None:
                tool.process.kill()

    written = False
    async with anyio.create_task_group() as tg:
        tg.start_soon(kill_unless_finished)
        try:
            await anyio.to_thread.run_sync(_write_all, fd, pieces)
            written = True
        except _PIPE_ERRORS:
            pass
        finally:
            finished = True
            tg.cancel_scope.cancel()
    if not written:
        # Killed for a cancellation: that, not the broken pipe, is what happened.
        await anyio.lowlevel.checkpoint_if_cancelled()
    return written


def restore_args(
    dump_format: DumpFormat, *, no_owner: bool, role: str | None
) -> tuple[str, list[str]]:
    """The program and arguments that apply a dump of ``dump_format`` from stdin."""
    if dump_format is DumpFormat.CUSTOM:
        args = ["--single-transaction", "--exit-on-error", "--no-password"]
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


def _convert_args(*, no_owner: bool) -> list[str]:
    """pg_restore turning a custom-format dump on stdin into an SQL script on stdout."""
    return ["--format=custom", "--file=-", "--no-password", *(["--no-owner"] if no_owner else [])]


async def _tool_error(tool: Tool, program: str, psql_version: str = "") -> PgRestoreError:
    returncode = await tool.process.wait()
    stderr = await tool.stderr_text()
    message = f"{program} failed (exit status {returncode})"
    if program == "psql" and "invalid command \\restrict" in stderr:
        message += ": " + _restrict_hint(psql_version)
    return PgRestoreError(message, stderr_tail=stderr)


def _restrict_hint(psql_version: str) -> str:
    # Since the releases of August 2025 (CVE-2025-8714) pg_dump opens every plain dump
    # (and pg_restore its SQL output) with a \restrict line; a psql from before them
    # rejects that line, and ON_ERROR_STOP ends the script there, before any statement.
    numbers = ".".join(map(str, version_numbers(psql_version))) or "found"
    return (
        f"psql {numbers} does not know the \\restrict command at the top of this plain dump, "
        "which pg_dump writes since PostgreSQL 13.22, 14.19, 15.14, 16.10, 17.6 and 18; "
        "restore it with a psql of one of those releases or newer (install it, or point "
        "PostgresConfig.bin_dir at its bin folder). Nothing was restored"
    )


class PgRestore:
    """A :class:`~monetr_backup.stages.DatabaseTarget`: the dump into one transaction.

    :meth:`write` always holds the latest chunk back from the program, so it cannot
    reach the end of its input and commit; only :meth:`commit` releases it, closes
    stdin and waits for the program to finish. Anything else kills the program and the
    transaction rolls back. See :func:`open_pg_restore`.

    With an ``applier``, the program fed is a converter (pg_restore writing SQL) whose
    output reaches the applier (psql) through a pump in our process; the applier's input
    is closed, so it can commit, only once the converter has exited successfully.
    """

    def __init__(
        self,
        tool: Tool | None,
        program: str,
        *,
        stdin: _PipeEnd | None = None,
        created: bool,
        applier: Tool | None = None,
        pumped: anyio.Event | None = None,
        psql_version: str = "",
    ) -> None:
        self._tool = tool
        self._program = program
        #: ``psql --version`` of the psql applying the SQL, if one does (for its errors).
        self._psql_version = psql_version
        self._applier = applier
        self._pumped = pumped
        #: Whether the target database was created for this restore.
        self.created = created
        #: Our end of the pipe into the program's stdin, until commit closes it.
        self._stdin = stdin
        self._held: bytes | None = None
        #: Chunks released to the program but not yet written: at most ``WRITE_BATCH``.
        self._pending: list[bytes] = []
        self._pending_size = 0
        self.committed = False
        #: Dump bytes handed to the program (all of them, after commit).
        self.applied = 0

    async def _send(self, pieces: list[bytes]) -> None:
        assert self._tool is not None
        assert self._stdin is not None
        if not await _write_to(self._tool, self._stdin.fd, pieces):
            # The program quit reading: its exit status and stderr say why.
            raise await self._failure()

    async def _flush(self) -> None:
        pieces, size = self._pending, self._pending_size
        self._pending, self._pending_size = [], 0
        if pieces:
            await self._send(pieces)
            self.applied += size

    async def _failure(self) -> PgRestoreError:
        assert self._tool is not None
        if self._applier is not None:
            # The converter only feeds the applier: an applier that failed is the cause.
            with anyio.move_on_after(1):
                if await self._applier.process.wait() != 0:
                    return await _tool_error(self._applier, "psql", self._psql_version)
        return await _tool_error(self._tool, self._program, self._psql_version)

    async def write(self, data: bytes) -> None:
        """Hand the program the previous chunk and hold ``data`` back."""
        if self._tool is None:
            return  # a dry run: the dump is read and checked only
        if self._held is not None:
            self._pending.append(self._held)
            self._pending_size += len(self._held)
        self._held = data
        if self._pending_size >= WRITE_BATCH:
            await self._flush()
        else:
            # Still a checkpoint, as a write to the program was: a restore cancelled from its
            # progress callback stops here, not a phase later.
            await anyio.lowlevel.checkpoint_if_cancelled()

    async def commit(self) -> None:
        """Release the last chunk and close stdin: the program reaches the end and commits."""
        if self._tool is None:
            self.committed = True
            return
        if self._held is not None:
            self._pending.append(self._held)
            self._pending_size += len(self._held)
            self._held = None
        await self._flush()
        assert self._stdin is not None
        # The end of its input: the program can finish, and commit.
        self._stdin.close()
        if await self._tool.process.wait() != 0:
            raise await self._failure()
        if self._applier is not None:
            assert self._pumped is not None
            assert self._applier.process.stdin is not None
            await self._pumped.wait()
            with contextlib.suppress(*_PIPE_ERRORS):
                await self._applier.process.stdin.aclose()
            if await self._applier.process.wait() != 0:
                raise await _tool_error(self._applier, "psql", self._psql_version)
        self.committed = True

    async def abort(self) -> None:
        """Kill the program(s) before they commit: the transaction rolls back."""
        self._held = None
        self._pending, self._pending_size = [], 0
        for tool in (self._tool, self._applier):
            if tool is not None and tool.process.returncode is None:
                tool.process.kill()


async def _pump(converter: Tool, applier: Tool, prologue: bytes, done: anyio.Event) -> None:
    """Copy the converter's SQL into the applier, after ``prologue``."""
    assert converter.process.stdout is not None
    assert applier.process.stdin is not None
    try:
        await applier.process.stdin.send(prologue)
        async for chunk in converter.process.stdout:
            await applier.process.stdin.send(chunk)
    except _PIPE_ERRORS:
        # The applier quit: stop the converter too, or it would block on a full pipe
        # with our writes to it; commit() or write() report the applier's error.
        if converter.process.returncode is None:
            converter.process.kill()
    finally:
        done.set()


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
    hold no tables unless ``clean``. ``clean`` replaces the whole database inside the
    same transaction: every user schema is dropped first, then the dump applied (for a
    custom-format dump through pg_restore's SQL output into psql, because ``pg_restore
    --clean`` stops at the first object whose shape has drifted since the backup, such
    as a column that no longer exists). Leaving the block without
    :meth:`PgRestore.commit` kills the programs, so nothing is committed, and drops a
    database this call created. With ``dry_run`` the target is checked but no program
    runs.
    """
    program, args = restore_args(dump_format, no_owner=no_owner, role=role)
    pipeline = clean and dump_format is DumpFormat.CUSTOM
    binary, version = await find_client(program, config.bin_dir)
    psql, psql_version = binary, version
    if pipeline:
        psql, psql_version = await find_client("psql", config.bin_dir)
    # The maintenance database: the target itself may not exist yet.
    server = await probe_server(config, database="postgres")
    check_client(program, version, server.server_version)
    if pipeline:
        check_client("psql", psql_version, server.server_version)
    created = await prepare_target(config, create=create_database, clean=clean, dry_run=dry_run)
    try:
        if dry_run:
            yield PgRestore(None, program, created=created)
            return
        env = client_env(config)
        # The dump reaches the program through a pipe of our own, written from a thread.
        read_fd, write_fd = large_pipe()
        stdin = _PipeEnd(write_fd)
        async with AsyncExitStack() as stack:
            stack.callback(stdin.close)
            with contextlib.ExitStack() as read_end:
                read_end.callback(os.close, read_fd)
                if pipeline:
                    _, psql_args = restore_args(DumpFormat.PLAIN, no_owner=False, role=None)
                    applier = await stack.enter_async_context(
                        open_tool([str(psql), *psql_args], env=env, stdin=subprocess.PIPE)
                    )
                    tool = await stack.enter_async_context(
                        open_tool(
                            [str(binary), *_convert_args(no_owner=no_owner)],
                            env=env,
                            stdin=read_fd,
                            stdout=subprocess.PIPE,
                        )
                    )
                else:
                    tool = await stack.enter_async_context(
                        open_tool([str(binary), *args], env=env, stdin=read_fd)
                    )
            # The program holds the read end now; ours closed, its exit breaks the pipe.
            if pipeline:
                tg = await stack.enter_async_context(anyio.create_task_group())
                pumped = anyio.Event()
                prologue = _prologue(DumpFormat.PLAIN, clean=True, role=role)
                tg.start_soon(_pump, tool, applier, prologue, pumped)
                target = PgRestore(
                    tool,
                    program,
                    stdin=stdin,
                    created=created,
                    applier=applier,
                    pumped=pumped,
                    psql_version=psql_version,
                )
            else:
                target = PgRestore(
                    tool, program, stdin=stdin, created=created, psql_version=psql_version
                )
                prologue = _prologue(dump_format, clean=clean, role=role)
                if prologue:
                    await target._send([prologue])
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
