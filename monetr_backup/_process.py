"""Running PostgreSQL's client programs (pg_dump, pg_restore, psql) as subprocesses.

``open_tool`` drains the program's stderr into a bounded tail (so errors can quote it
without unbounded memory) and guarantees the process is gone when the block exits: an
early exit kills it, under a shielded scope, so no orphan survives a failure or cancel.
"""

from __future__ import annotations

import subprocess
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import anyio
from anyio.abc import Process

__all__ = ["StderrTail", "Tool", "open_tool", "tool_version"]

#: How much of a program's stderr is kept for error messages.
STDERR_TAIL_BYTES = 8192


@dataclass
class StderrTail:
    """The last ``STDERR_TAIL_BYTES`` a program wrote to stderr."""

    chunks: deque[bytes] = field(default_factory=deque)
    size: int = 0

    def add(self, chunk: bytes) -> None:
        """Append ``chunk``, forgetting what no longer fits."""
        self.chunks.append(chunk)
        self.size += len(chunk)
        while self.size - len(self.chunks[0]) >= STDERR_TAIL_BYTES:
            self.size -= len(self.chunks.popleft())

    def text(self) -> str:
        """The tail, decoded."""
        return b"".join(self.chunks)[-STDERR_TAIL_BYTES:].decode(errors="replace").strip()


@dataclass(frozen=True, slots=True)
class Tool:
    """A running client program and what it has said on stderr."""

    process: Process
    stderr: StderrTail
    stderr_closed: anyio.Event

    async def stderr_text(self) -> str:
        """The stderr tail, once the program has closed stderr (exited) or after 1 s."""
        with anyio.move_on_after(1):
            await self.stderr_closed.wait()
        return self.stderr.text()


async def tool_version(binary: Path) -> str:
    """``<program> --version``, e.g. ``pg_dump (PostgreSQL) 15.8``."""
    result = await anyio.run_process([str(binary), "--version"], check=False)
    return result.stdout.decode(errors="replace").strip()


@asynccontextmanager
async def open_tool(
    args: Sequence[str],
    *,
    env: dict[str, str],
    stdin: int | IO[bytes] | None = subprocess.DEVNULL,
    stdout: int | IO[bytes] | None = subprocess.DEVNULL,
) -> AsyncIterator[Tool]:
    """Run ``args``; the block must wait for the process itself if it wants it to finish.

    Whatever is still running when the block exits is killed first: that also ends any
    pipe the process held, unblocking readers, before the stderr task is awaited.
    """
    tail = StderrTail()
    process = await anyio.open_process(
        list(args), stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=env
    )

    closed = anyio.Event()

    async def drain_stderr() -> None:
        assert process.stderr is not None
        try:
            async for chunk in process.stderr:
                tail.add(chunk)
        finally:
            closed.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(drain_stderr)
            try:
                yield Tool(process, tail, closed)
            finally:
                if process.returncode is None:
                    process.kill()
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
            await process.aclose()
