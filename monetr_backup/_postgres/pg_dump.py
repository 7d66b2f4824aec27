"""pg_dump's stdout -> fixed-size dump parts.

pg_dump writes about 8 KiB at a time. Reading that through the event loop costs a wakeup
and a Python-level copy per write, which at 100+ MB/s keeps the loop busy doing nothing
else. Instead its stdout is a pipe of our own (enlarged to 1 MiB where Linux allows),
and a worker thread fills each part in place with ``readv``: one thread hop per part.

``open_pg_dump`` owns the subprocess, the reader and the task draining stderr, so it is
an async context manager. Leaving it early (an error downstream, a cancellation) kills
pg_dump first, which ends the reader's blocking read, so nothing outlives the backup.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream

from .._config import DumpFormat, PostgresConfig
from .._errors import PgDumpError, single_errors
from .._protocols import DumpPart
from .._threads import StageThread
from .programs import Tool, check_client, client_env, find_client, large_pipe, open_tool
from .server import ServerInfo, probe_server

__all__ = ["PgDump", "dump_client", "open_pg_dump", "read_part"]

#: Parts are lists of blocks of this size: big enough that per-block work is negligible.
BLOCK = 1024 * 1024


def dump_args(dump_format: DumpFormat) -> list[str]:
    """pg_dump's arguments for ``dump_format`` (the connection comes from the environment)."""
    if dump_format is DumpFormat.CUSTOM:
        # -Z0: the archive codec compresses the whole stream; compressing twice only costs CPU.
        return ["--format=custom", "--compress=0", "--no-password"]
    return ["--format=plain", "--no-password"]


def read_part(fd: int, size: int) -> list[bytes | bytearray]:
    """Blocking: read up to ``size`` bytes from ``fd``, as blocks of at most ``BLOCK``.

    A part stays a list of blocks rather than one joined buffer: joining would copy the
    whole part once more and hold it twice. The blocks are the buffers read into, not
    copies: nothing writes to them after this (the tar encoder, the compressors, the
    hashes and the sinks only read). Returns an empty list at end of file.
    """
    blocks: list[bytes | bytearray] = []
    remaining = size
    while remaining:
        block = bytearray(min(BLOCK, remaining))
        view = memoryview(block)
        filled = 0
        while filled < len(block):
            count = os.readv(fd, [view[filled:]])
            if count == 0:
                break
            filled += count
        view.release()
        if filled:
            del block[filled:]
            blocks.append(block)
        remaining -= filled
        if filled < len(block):
            break
    return blocks


def read_hashed_part(fd: int, size: int) -> DumpPart:
    """Blocking: :func:`read_part`, hashing the part.

    Hashing here, in the reader thread that mostly waits for pg_dump anyway, keeps the
    SHA-256 pass off the path of compression.
    """
    blocks = read_part(fd, size)
    digest = hashlib.sha256()
    for block in blocks:
        digest.update(block)
    return DumpPart(blocks, digest.hexdigest())


class PgDump:
    """A running pg_dump: its output as parts, and a check of how it ended.

    A :class:`~monetr_backup.stages.DumpSource`, as ``archive_members`` takes it.
    """

    def __init__(
        self,
        tool: Tool,
        parts: MemoryObjectReceiveStream[DumpPart],
        *,
        dump_format: DumpFormat,
        part_size: int,
        version: str,
        server_version: str,
    ) -> None:
        self._tool = tool
        #: The dump in parts of exactly ``part_size`` bytes (the last may be shorter).
        self.parts: AsyncIterator[DumpPart] = parts
        self.dump_format = dump_format
        self.part_size = part_size
        #: ``pg_dump --version`` of the binary that runs.
        self.version = version
        #: ``SHOW server_version`` of the server it dumps.
        self.server_version = server_version

    @property
    def pid(self) -> int:
        """The subprocess's process id."""
        return self._tool.process.pid

    async def wait(self) -> None:
        """Wait for pg_dump to exit; raise :class:`PgDumpError` unless it succeeded.

        Call after reading every part: only then is the dump known complete.
        """
        returncode = await self._tool.process.wait()
        if returncode != 0:
            reason = "was killed" if returncode < 0 else "failed"
            raise PgDumpError(
                f"pg_dump {reason}",
                returncode=returncode,
                stderr_tail=await self._tool.stderr_text(),
            )


async def dump_client(config: PostgresConfig, server: ServerInfo) -> tuple[Path, str]:
    """The pg_dump for ``server`` and its ``--version``; ClientVersionError if it is older."""
    binary, version = await find_client("pg_dump", config.bin_dir)
    check_client("pg_dump", version, server.server_version)
    return binary, version


@asynccontextmanager
async def open_pg_dump(
    config: PostgresConfig,
    dump_format: DumpFormat = DumpFormat.CUSTOM,
    *,
    part_size: int,
    read_ahead: int = 1,
    extra_args: Sequence[str] = (),
    server: ServerInfo | None = None,
) -> AsyncIterator[PgDump]:
    """Start pg_dump for ``config.database``, reading its output in ``part_size`` parts.

    Up to ``read_ahead`` parts wait in memory for the consumer (plus the one being
    filled), so pg_dump keeps writing while the previous part is compressed and
    uploaded; beyond that, the pipe fills and pg_dump blocks: back-pressure.
    ``server`` is what a preflight check already learned; without it one runs first,
    so a server that cannot be reached fails here, before pg_dump starts.
    """
    if server is None:
        server = await probe_server(config)
    binary, version = await dump_client(config, server)
    read_fd, write_fd = large_pipe()
    async with AsyncExitStack() as stack:
        stack.enter_context(single_errors())
        stack.callback(os.close, read_fd)
        try:
            tool = await stack.enter_async_context(
                open_tool(
                    [str(binary), *dump_args(dump_format), *extra_args],
                    env=client_env(config),
                    stdout=write_fd,
                )
            )
        finally:
            # Only pg_dump may hold the write end, so its exit is our end of file.
            os.close(write_fd)
        send, receive = anyio.create_memory_object_stream[DumpPart](read_ahead)

        async def read_parts() -> None:
            # One thread reads every part: their buffers stay in one malloc arena.
            reader = StageThread("monetr-backup-pg-dump")
            try:
                async with send:
                    while True:
                        part = await reader.run(read_hashed_part, read_fd, part_size)
                        if not part.blocks:
                            break
                        try:
                            await send.send(part)
                        except anyio.BrokenResourceError:
                            return  # the consumer left (its own error says why)
                        if part.size < part_size:
                            break
            finally:
                reader.close()

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_parts)
            try:
                with receive:
                    yield PgDump(
                        tool,
                        receive,
                        dump_format=dump_format,
                        part_size=part_size,
                        version=version,
                        server_version=server.server_version,
                    )
                await tool.process.wait()
            finally:
                # Killing pg_dump closes the pipe's write end, which ends the reader
                # thread's blocking read: only then can the task group finish.
                if tool.process.returncode is None:
                    tool.process.kill()
