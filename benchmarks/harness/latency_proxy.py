"""HTTP requests on 127.0.0.1 -> the same requests to S3, each a fixed delay later."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["running", "serve"]

READ_SIZE = 256 * 1024


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, asyncio.CancelledError):
        await writer.wait_closed()


async def _handle(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    target: tuple[str, int],
    delay: float,
) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection(*target)
    except OSError:
        await _close(client_writer)
        return
    new_request = True

    async def upstream() -> None:
        nonlocal new_request
        while data := await client_reader.read(READ_SIZE):
            if new_request:
                new_request = False
                await asyncio.sleep(delay)
            server_writer.write(data)
            await server_writer.drain()
        if server_writer.can_write_eof():
            server_writer.write_eof()

    async def downstream() -> None:
        nonlocal new_request
        while data := await server_reader.read(READ_SIZE):
            new_request = True
            client_writer.write(data)
            await client_writer.drain()
        if client_writer.can_write_eof():
            client_writer.write_eof()

    tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
    try:
        # Both directions end on EOF; an error in one (a reset) ends the other too.
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        await _close(server_writer)
        await _close(client_writer)


async def serve(
    target: tuple[str, int], delay: float, *, port: int = 0, max_seconds: float = 4 * 3600
) -> None:
    """Proxy 127.0.0.1:``port`` to ``target`` with ``delay`` per request, for ``max_seconds``.

    Stands in for the round trip to a real S3 endpoint: on loopback a GET costs about a
    millisecond, so a client that fetches objects one after another looks as fast as one
    that overlaps its requests. Here each request waits ``delay`` seconds before it
    reaches the server, which is what a sequential client pays per request on a real
    network (~20 ms to S3), and what concurrency can hide.

    A "request" is the first bytes the client sends after the server last sent something
    on that connection (or after connecting), which is exactly the start of each request
    on an HTTP/1.1 keep-alive connection. A request body that follows a ``100 Continue``
    is delayed again: that is one more round trip on a real network too. Prints
    ``listening 127.0.0.1:<port>`` once it accepts connections.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _handle(reader, writer, target, delay)

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    bound = server.sockets[0].getsockname()
    print(f"listening {bound[0]}:{bound[1]}", flush=True)
    async with server:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.serve_forever(), timeout=max_seconds)


@contextlib.contextmanager
def running(target: str, delay_ms: float, env: dict[str, str]) -> Iterator[str]:
    """This module as a process of its own in front of ``target``: yields its endpoint URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--target",
            target,
            "--delay-ms",
            str(delay_ms),
            "--max-seconds",
            str(6 * 3600),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("listening "):
            raise RuntimeError(f"latency proxy did not start: {line!r}")
        yield "http://" + line.split()[1]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> None:
    """``python benchmarks/harness/latency_proxy.py --target 127.0.0.1:8333 --delay-ms 20``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to (loopback)")
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    parser.add_argument("--max-seconds", type=float, default=4 * 3600)
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the target must be on loopback")
    try:
        asyncio.run(
            serve(
                (host, int(port)),
                args.delay_ms / 1000,
                port=args.port,
                max_seconds=args.max_seconds,
            )
        )
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
