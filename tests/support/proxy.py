"""An S3 endpoint -> a TCP proxy in front of it that cuts one download off mid-body."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
from anyio.abc import SocketAttribute, SocketStream


class CuttingProxy:
    """Forwards bytes both ways between clients on 127.0.0.1 and an S3 endpoint.

    The first connection that carries a ``GET`` request is cut (both sides closed) after
    ``cut_after`` bytes of the server's response have been forwarded; every later
    connection and request passes untouched. The request heads it saw are kept (a body is
    told from the next head by its Content-Length), so a test can check that the client
    came back with a ranged request, or what an upload's headers were. Use :func:`cutting_proxy`
    to run one.
    """

    def __init__(
        self, target_port: int, cut_after: int, on_cut: Callable[[], None] | None = None
    ) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        #: Called at the cut, before the connection closes (so before any resumed request).
        self.on_cut = on_cut
        self.port = 0
        #: Request heads (request line and headers) seen from clients, in order.
        self.requests: list[bytes] = []
        #: How many connections were cut.
        self.cuts = 0
        #: Response bytes forwarded on the cut connection before the cut.
        self.forwarded_before_cut = 0
        self._armed = True

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the proxy."""
        return f"http://127.0.0.1:{self.port}"

    def ranged_gets(self) -> list[bytes]:
        """The GET request heads that asked for a byte range."""
        return [
            head
            for head in self.requests
            if head.startswith(b"GET ") and b"\r\nrange: bytes=" in head.lower()
        ]

    async def handle(self, client: SocketStream) -> None:
        """Forward one client connection to the target, cutting it if it is the chosen one."""
        async with client, await anyio.connect_tcp("127.0.0.1", self.target_port) as server:
            done = anyio.Event()
            chosen = False

            async def upstream() -> None:
                nonlocal chosen
                pending = b""
                body_left = 0  # of the request whose head was seen last: not a head
                async for data in client:
                    pending += data
                    while True:
                        if body_left:
                            skipped = min(body_left, len(pending))
                            pending = pending[skipped:]
                            body_left -= skipped
                        if body_left or b"\r\n\r\n" not in pending:
                            break
                        head, pending = pending.split(b"\r\n\r\n", 1)
                        self.requests.append(head + b"\r\n\r\n")
                        body_left = _content_length(head)
                        if self._armed and head.startswith(b"GET "):
                            self._armed = False
                            chosen = True
                    await server.send(data)
                await server.send_eof()

            async def downstream() -> None:
                forwarded = 0
                async for data in server:
                    if chosen and forwarded + len(data) >= self.cut_after:
                        await client.send(data[: self.cut_after - forwarded])
                        self.forwarded_before_cut = self.cut_after
                        self.cuts += 1
                        if self.on_cut is not None:
                            self.on_cut()
                        return
                    if chosen:
                        forwarded += len(data)
                    await client.send(data)

            async def pipe(direction: Callable[[], Awaitable[None]]) -> None:
                # Either side may drop its connection at any time; that ends this one.
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await direction()
                if direction is downstream:
                    done.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(pipe, upstream)
                tg.start_soon(pipe, downstream)
                await done.wait()
                tg.cancel_scope.cancel()
            # Leaving the ``async with`` closes both sockets: on the cut connection the
            # client sees its response end in the middle of the body.


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


@asynccontextmanager
async def cutting_proxy(
    target_port: int, cut_after: int, on_cut: Callable[[], None] | None = None
) -> AsyncIterator[CuttingProxy]:
    """Run a :class:`CuttingProxy` on a free port of 127.0.0.1 until the block ends."""
    proxy = CuttingProxy(target_port, cut_after, on_cut)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener, anyio.create_task_group() as tg:
        proxy.port = listener.extra(SocketAttribute.local_port)
        tg.start_soon(listener.serve, proxy.handle)
        try:
            yield proxy
        finally:
            tg.cancel_scope.cancel()
