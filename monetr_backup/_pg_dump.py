"""pg_dump's stdout -> fixed-size dump parts.

``open_pg_dump`` owns the subprocess and the task draining its stderr, so it is an
async context manager: leaving it early (an error downstream, a cancellation) kills
pg_dump under a shielded scope, so no process outlives the backup.
"""

from __future__ import annotations

import subprocess
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.lowlevel
from anyio.abc import ByteReceiveStream, Process

from ._config import DumpFormat, PostgresConfig
from ._errors import PgDumpError
from ._postgres import client_env, find_binary

__all__ = ["PgDump", "open_pg_dump", "read_parts"]

#: How much of pg_dump's stderr is kept for the error message.
STDERR_TAIL_BYTES = 8192
#: Largest single read from the pipe; a pipe rarely holds more than 64 KiB anyway.
READ_SIZE = 256 * 1024


def dump_args(dump_format: DumpFormat) -> list[str]:
    """pg_dump's arguments for ``dump_format`` (the connection comes from the environment)."""
    if dump_format is DumpFormat.CUSTOM:
        # -Z0: the archive codec compresses the whole stream; compressing twice only costs CPU.
        return ["--format=custom", "--compress=0", "--no-password"]
    return ["--format=plain", "--no-password"]


async def tool_version(binary: Path) -> str:
    """``pg_dump --version`` (or any client's), e.g. ``pg_dump (PostgreSQL) 15.8``."""
    result = await anyio.run_process([str(binary), "--version"], check=False)
    return result.stdout.decode(errors="replace").strip()


@dataclass
class _StderrTail:
    chunks: deque[bytes] = field(default_factory=deque)
    size: int = 0

    def add(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.size += len(chunk)
        while self.size - len(self.chunks[0]) >= STDERR_TAIL_BYTES:
            self.size -= len(self.chunks.popleft())

    def text(self) -> str:
        return b"".join(self.chunks)[-STDERR_TAIL_BYTES:].decode(errors="replace").strip()


class PgDump:
    """A running pg_dump: its stdout as a stream, and a check of how it ended."""

    def __init__(self, process: Process, version: str, tail: _StderrTail) -> None:
        self._process = process
        self._tail = tail
        #: ``pg_dump --version`` of the binary that runs.
        self.version = version

    @property
    def pid(self) -> int:
        """The subprocess's process id."""
        return self._process.pid

    @property
    def stdout(self) -> ByteReceiveStream:
        """The dump stream."""
        assert self._process.stdout is not None
        return self._process.stdout

    async def wait(self) -> None:
        """Wait for pg_dump to exit; raise :class:`PgDumpError` unless it succeeded.

        Call after reading stdout to its end: only then is the dump known complete.
        """
        returncode = await self._process.wait()
        if returncode != 0:
            # Let the stderr drain catch up with what the process wrote before exiting.
            await anyio.lowlevel.checkpoint()
            reason = "was killed" if returncode < 0 else "failed"
            raise PgDumpError(
                f"pg_dump {reason}", returncode=returncode, stderr_tail=self._tail.text()
            )


@asynccontextmanager
async def open_pg_dump(
    config: PostgresConfig,
    dump_format: DumpFormat = DumpFormat.CUSTOM,
    *,
    extra_args: Sequence[str] = (),
) -> AsyncIterator[PgDump]:
    """Start pg_dump for ``config.database``; kill it if the block exits early."""
    binary = find_binary("pg_dump", config.bin_dir)
    version = await tool_version(binary)
    tail = _StderrTail()
    process = await anyio.open_process(
        [str(binary), *dump_args(dump_format), *extra_args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=client_env(config),
    )

    async def drain_stderr() -> None:
        assert process.stderr is not None
        async for chunk in process.stderr:
            tail.add(chunk)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(drain_stderr)
            yield PgDump(process, version, tail)
            # A clean exit still waits for pg_dump, so it never lingers as a zombie.
            await process.wait()
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
            await process.aclose()


async def read_parts(stream: ByteReceiveStream, part_size: int) -> AsyncIterator[bytes]:
    """Yield ``stream`` in parts of exactly ``part_size`` bytes (the last may be shorter).

    Reads never ask for more than the current part still needs, so a part is filled in
    place with one copy at the end, never sliced out of a larger buffer.
    """
    while True:
        part = bytearray()
        try:
            while len(part) < part_size:
                part += await stream.receive(min(READ_SIZE, part_size - len(part)))
        except anyio.EndOfStream:
            if part:
                yield bytes(part)
            return
        yield bytes(part)
