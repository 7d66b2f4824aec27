"""PostgreSQL's client programs (pg_dump, pg_restore, psql): finding and running them.

Credentials reach the programs only through the environment (PGPASSWORD), never argv,
where any local user could read them in /proc.

``open_tool`` drains the program's stderr into a bounded tail (so errors can quote it
without unbounded memory) and guarantees the process is gone when the block exits: an
early exit kills it, under a shielded scope, so no orphan survives a failure or cancel.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import anyio
from anyio.abc import Process

from .._config import PostgresConfig
from .._errors import ClientNotFoundError, ClientVersionError

__all__ = [
    "StderrTail",
    "Tool",
    "check_client",
    "client_env",
    "find_client",
    "large_pipe",
    "open_tool",
    "tls_settings",
    "tool_version",
]

#: How much of a program's stderr is kept for error messages.
STDERR_TAIL_BYTES = 8192
#: Pipe capacity asked for (Linux F_SETPIPE_SZ): fewer, larger reads and writes, and
#: fewer wake-ups of the program at the other end.
PIPE_SIZE = 1024 * 1024
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def large_pipe() -> tuple[int, int]:
    """A close-on-exec pipe ``(read_fd, write_fd)`` of ``PIPE_SIZE`` where the OS allows."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    # Not Linux, or over /proc/sys/fs/pipe-max-size: the default size still works.
    with contextlib.suppress(OSError):
        fcntl.fcntl(read_fd, _F_SETPIPE_SZ, PIPE_SIZE)
    return read_fd, write_fd


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


_DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")


def version_numbers(text: str) -> tuple[int, ...]:
    """The version in ``pg_dump (PostgreSQL) 16.2`` or ``15.18 (Debian 15.18-0+deb12u1)``."""
    match = re.search(r"(\d+)(?:\.(\d+))?", text)
    return tuple(int(number) for number in match.groups() if number) if match else ()


def _candidates(name: str) -> list[Path]:
    """Every ``name`` installed: Debian's versioned folders, newest first, then ``PATH``."""
    found: list[Path] = []
    if _DEBIAN_PG_ROOT.is_dir():
        folders = sorted(
            _DEBIAN_PG_ROOT.iterdir(), key=lambda path: version_numbers(path.name), reverse=True
        )
        found += [folder / "bin" / name for folder in folders if (folder / "bin" / name).is_file()]
    for folder in os.get_exec_path():
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK) and candidate not in found:
            found.append(candidate)
    return found


async def find_client(name: str, bin_dir: Path | None = None) -> tuple[Path, str]:
    """A PostgreSQL client program and its ``--version``: the newest one installed.

    An explicit ``bin_dir`` wins. Otherwise every copy found is asked its version, since
    ``PATH`` may hold an older one (Debian's wrapper, a distribution package) than a
    PostgreSQL installed beside it, and only a client at least as new as the server can
    dump it.
    """
    if bin_dir is not None:
        candidate = bin_dir / name
        if not candidate.is_file():
            raise ClientNotFoundError(f"{name} not found in {bin_dir}")
        return candidate, await tool_version(candidate)
    candidates = _candidates(name)
    if not candidates:
        raise ClientNotFoundError(f"{name} not found: install the PostgreSQL client or set bin_dir")
    versions = [(candidate, await tool_version(candidate)) for candidate in candidates]
    # max() keeps the first of equals: Debian's own folder before a PATH wrapper.
    return max(versions, key=lambda found: version_numbers(found[1]))


def check_client(program: str, client_version: str, server_version: str) -> None:
    """Refuse a client program older (by major version) than the server it would talk to."""
    client, server = version_numbers(client_version), version_numbers(server_version)
    if client and server and client[0] < server[0]:
        raise ClientVersionError(
            f"{program} is version {'.'.join(map(str, client))} and the server "
            f"{'.'.join(map(str, server))}: a client older than the server cannot be trusted "
            f"with it (pg_dump refuses). Install the PostgreSQL {server[0]} client programs "
            "(or newer), or point PostgresConfig.bin_dir at their bin folder"
        )


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
    for name, value in tls_settings(config).items():
        env[f"PG{name.upper()}"] = value
    return env


def tls_settings(config: PostgresConfig) -> dict[str, str]:
    """libpq's TLS settings that are set, by their connection-string names."""
    values = {
        "sslmode": config.sslmode,
        "sslrootcert": config.sslrootcert,
        "sslcert": config.sslcert,
        "sslkey": config.sslkey,
    }
    return {name: str(value) for name, value in values.items() if value is not None}
