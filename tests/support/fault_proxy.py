"""An S3 endpoint -> a loopback HTTP proxy in front of it that delays, fails, loses or cuts
chosen requests.

The proxy understands just enough HTTP/1.1 to keep a keep-alive connection in step: request
and response bodies framed by Content-Length, chunked transfer encoding or (responses) the
end of the connection, ``Expect: 100-continue``, responses without a body (HEAD, 1xx, 204,
304). Bodies are streamed through in pieces, never held whole. Every request it sees is
logged as an :class:`Exchange`, with the status the server answered (if it was asked).

A :class:`Rule` picks requests (method, path, query parameters, how many, after how many)
and says what happens to them: a delay before forwarding or before passing the answer
on, an S3 error answered without forwarding, a reset connection, a response lost after
the server processed the request (the client sees the connection drop, or a 500), or a
response cut after some bytes of its body. Rules are tried in order; the first that
matches a request and has hits left acts on it. Create rules inside the event loop.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, quote, urlsplit

import anyio
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

__all__ = [
    "Exchange",
    "FaultProxy",
    "Rule",
    "abort_upload",
    "complete_upload",
    "create_upload",
    "fault_proxy",
    "get_object",
    "object_path",
    "put_object",
    "refused_endpoint",
    "upload_part",
]

#: Body bytes moved at a time.
PIECE = 64 * 1024
#: Longest request or response head accepted.
MAX_HEAD = 64 * 1024

#: S3 error codes for the statuses a rule may answer with (botocore retries all of them).
_ERROR_CODES = {
    500: ("InternalError", "We encountered an internal error. Please try again."),
    502: ("BadGateway", "Bad gateway."),
    503: ("SlowDown", "Please reduce your request rate."),
    504: ("GatewayTimeout", "Gateway timeout."),
}
_REASONS = {
    100: "Continue",
    200: "OK",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class _ProtocolError(Exception):
    """The peer sent something this proxy cannot frame: the connection is closed."""


@dataclass
class Exchange:
    """One request the proxy received, and what became of it."""

    #: Which client connection carried it (1, 2, ... in order of arrival).
    connection: int
    method: str
    #: The request target as sent: percent-encoded path and query.
    target: str
    #: Request headers, names lower-cased (the last value of a repeated header).
    headers: dict[str, str]
    #: What the proxy did: ``pass``, ``fail <status>``, ``reset``, ``lose drop``,
    #: ``lose 500``, ``cut <bytes>`` (``delay`` is logged as ``pass`` with its rule).
    action: str = "pass"
    #: The server's status, if the request reached it and it answered.
    status: int | None = None
    #: The rule that acted on it, if any.
    rule: Rule | None = None

    @property
    def path(self) -> str:
        """The percent-encoded path, without the query."""
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        """The query parameters (a bare ``?uploads`` maps to ``""``)."""
        return dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))


@dataclass(eq=False)
class Rule:
    """Which requests to act on, and how.

    Selection: ``method`` (exact), ``path`` (a regular expression searched in the
    percent-encoded path), ``query`` (a parameter the request must carry, e.g.
    ``uploads``, ``partNumber``, ``uploadId``), ``without`` (one it must not carry).
    The first ``skip`` matching requests pass untouched; the next ``times`` (``None``:
    all of them) are acted on.

    Action, in this order: wait ``delay`` seconds; then either answer ``status`` (an S3
    error, nothing forwarded), or ``reset`` the connection (nothing forwarded), or
    forward the request and, once the server answered, wait ``response_delay`` seconds,
    then ``lose`` the answer (``"drop"``: close the connection; ``"500"``: answer 500
    instead) or pass its head and ``cut_after`` body bytes on and close the connection,
    or else pass it on whole.
    """

    method: str | None = None
    path: str | None = None
    query: str | None = None
    without: str | None = None
    times: int | None = 1
    skip: int = 0
    delay: float = 0.0
    response_delay: float = 0.0
    status: int | None = None
    reset: bool = False
    lose: Literal["drop", "500"] | None = None
    cut_after: int | None = None
    #: Called (synchronously) when the rule starts acting on a request.
    on_hit: Callable[[Exchange], None] | None = None
    #: Called (synchronously) when the server's answer to such a request arrives, before
    #: ``response_delay`` and before the client sees any of it.
    on_answer: Callable[[Exchange], None] | None = None
    #: Requests that matched (skipped ones included).
    seen: int = 0
    #: Requests acted on.
    hits: int = 0
    #: Set on the first hit.
    hit: anyio.Event = field(default_factory=anyio.Event)

    def __post_init__(self) -> None:
        actions = [self.status is not None, self.reset, self.lose is not None]
        actions.append(self.cut_after is not None)
        if sum(actions) > 1:
            raise ValueError("a rule answers, resets, loses or cuts: one of them")
        if self.status is not None and self.status not in _ERROR_CODES:
            raise ValueError(f"status must be one of {sorted(_ERROR_CODES)}")

    def matches(self, exchange: Exchange) -> bool:
        """Whether ``exchange`` is one this rule selects (ignoring skip and times)."""
        if self.method is not None and exchange.method != self.method:
            return False
        if self.path is not None and not re.search(self.path, exchange.path):
            return False
        query = exchange.query
        if self.query is not None and self.query not in query:
            return False
        return self.without is None or self.without not in query

    @property
    def exhausted(self) -> bool:
        """Whether the rule has no hits left."""
        return self.times is not None and self.hits >= self.times

    @property
    def action(self) -> str:
        if self.status is not None:
            return f"fail {self.status}"
        if self.reset:
            return "reset"
        if self.lose is not None:
            return f"lose {self.lose}"
        if self.cut_after is not None:
            return f"cut {self.cut_after}"
        return "pass"


def object_path(bucket: str, key: str | None = None) -> str:
    """A ``path`` pattern for ``key`` in ``bucket`` (any key there if ``None``), as botocore
    encodes it in a path-style request."""
    if key is None:
        return f"^/{re.escape(bucket)}/."
    return f"^/{re.escape(bucket)}/{re.escape(quote(key, safe='/~'))}$"


def create_upload(**action: object) -> Rule:
    """CreateMultipartUpload (``POST ?uploads``)."""
    return Rule(method="POST", query="uploads", **action)  # type: ignore[arg-type]


def upload_part(**action: object) -> Rule:
    """UploadPart (``PUT ?partNumber=&uploadId=``)."""
    return Rule(method="PUT", query="partNumber", **action)  # type: ignore[arg-type]


def complete_upload(**action: object) -> Rule:
    """CompleteMultipartUpload (``POST ?uploadId=``)."""
    return Rule(method="POST", query="uploadId", **action)  # type: ignore[arg-type]


def abort_upload(**action: object) -> Rule:
    """AbortMultipartUpload (``DELETE ?uploadId=``)."""
    return Rule(method="DELETE", query="uploadId", **action)  # type: ignore[arg-type]


def get_object(bucket: str, key: str | None = None, **action: object) -> Rule:
    """GetObject of ``key`` (any key if ``None``) in ``bucket``, ranged GETs included."""
    return Rule(method="GET", path=object_path(bucket, key), **action)  # type: ignore[arg-type]


def put_object(bucket: str, key: str | None = None, **action: object) -> Rule:
    """PutObject (not UploadPart) of ``key`` (any key if ``None``) in ``bucket``."""
    return Rule(
        method="PUT",
        path=object_path(bucket, key),
        without="partNumber",
        **action,  # type: ignore[arg-type]
    )


# --- HTTP framing ----------------------------------------------------------------------


@dataclass
class _Head:
    raw: bytes
    start: str
    headers: dict[str, str]

    @classmethod
    def parse(cls, raw: bytes) -> _Head:
        try:
            lines = raw.decode("latin-1").split("\r\n")
        except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes anything
            raise _ProtocolError(str(exc)) from exc
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise _ProtocolError(f"bad header line {line!r}")
            headers[name.strip().lower()] = value.strip()
        return cls(raw + b"\r\n\r\n", lines[0], headers)

    def framing(self) -> tuple[str, int]:
        """("chunked", 0), ("length", n), or ("none", 0) when nothing says there is a body."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return "chunked", 0
        if "content-length" in self.headers:
            try:
                return "length", int(self.headers["content-length"])
            except ValueError as exc:
                raise _ProtocolError("bad Content-Length") from exc
        return "none", 0

    @property
    def wants_close(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"


Send = Callable[[bytes], Awaitable[None]] | None


async def _read_head(reader: BufferedByteReceiveStream) -> _Head | None:
    """The next head, or ``None`` if the peer closed cleanly between messages."""
    try:
        raw = await reader.receive_until(b"\r\n\r\n", MAX_HEAD)
    except (anyio.IncompleteRead, anyio.EndOfStream):
        return None
    except anyio.DelimiterNotFound as exc:
        raise _ProtocolError("head too long") from exc
    return _Head.parse(raw)


async def _copy_length(reader: BufferedByteReceiveStream, size: int, send: Send) -> None:
    left = size
    while left:
        data = await reader.receive(min(left, PIECE))
        left -= len(data)
        if send is not None:
            await send(data)


async def _copy_chunked(reader: BufferedByteReceiveStream, send: Send) -> None:
    """Forward a chunked body with its framing as it came (sizes, extensions, trailers)."""
    while True:
        line = await reader.receive_until(b"\r\n", 4096)
        if send is not None:
            await send(line + b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise _ProtocolError(f"bad chunk size line {line!r}") from exc
        if size == 0:
            break
        await _copy_length(reader, size + 2, send)  # the data and its CRLF
    while True:  # trailers, up to the empty line
        line = await reader.receive_until(b"\r\n", MAX_HEAD)
        if send is not None:
            await send(line + b"\r\n")
        if not line:
            return


async def _copy_to_eof(reader: BufferedByteReceiveStream, send: Send) -> None:
    while True:
        try:
            data = await reader.receive(PIECE)
        except anyio.EndOfStream:
            return
        if send is not None:
            await send(data)


async def _copy_body(
    reader: BufferedByteReceiveStream, framing: tuple[str, int], send: Send
) -> None:
    kind, size = framing
    if kind == "length":
        await _copy_length(reader, size, send)
    elif kind == "chunked":
        await _copy_chunked(reader, send)
    elif kind == "eof":
        await _copy_to_eof(reader, send)


def _error_response(status: int, *, head_only: bool, close: bool) -> bytes:
    code, message = _ERROR_CODES[status]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>fault-proxy</RequestId></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        "Content-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\n"
        "x-amz-request-id: fault-proxy\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    ).encode()
    return head if head_only else head + body


def _reset(stream: SocketStream) -> None:
    """Make the coming close an RST: the client sees "connection reset by peer"."""
    raw: socket.socket = stream.extra(SocketAttribute.raw_socket)
    with contextlib.suppress(OSError):
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class _Cut(Exception):
    """The response body reached the rule's ``cut_after``."""


class _Upstream:
    """The proxy's keep-alive connection to the server, for one client connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stream: SocketStream | None = None
        self.reader: BufferedByteReceiveStream | None = None

    async def open(self) -> tuple[SocketStream, BufferedByteReceiveStream]:
        if self.stream is None or self.reader is None:
            self.stream = await anyio.connect_tcp("127.0.0.1", self.port)
            self.reader = BufferedByteReceiveStream(self.stream)
        return self.stream, self.reader

    async def close(self) -> None:
        if self.stream is not None:
            with anyio.CancelScope(shield=True):
                await self.stream.aclose()
        self.stream = self.reader = None


# --- the proxy -------------------------------------------------------------------------


class FaultProxy:
    """An HTTP/1.1 reverse proxy on 127.0.0.1 in front of ``127.0.0.1:<target_port>``.

    Use :func:`fault_proxy` to run one; :meth:`add` rules at any time.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.rules: list[Rule] = []
        #: Every request received, in order of arrival.
        self.log: list[Exchange] = []
        self.connections = 0

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the proxy."""
        return f"http://127.0.0.1:{self.port}"

    def add(self, *rules: Rule) -> Rule:
        """Append ``rules`` (tried in order); returns the last one."""
        self.rules.extend(rules)
        return rules[-1]

    def exchanges(self, rule: Rule) -> list[Exchange]:
        """The requests ``rule`` selected (skipped ones included), in order."""
        return [exchange for exchange in self.log if rule.matches(exchange)]

    def _rule_for(self, exchange: Exchange) -> Rule | None:
        for rule in self.rules:
            if rule.exhausted or not rule.matches(exchange):
                continue
            rule.seen += 1
            if rule.seen <= rule.skip:
                return None
            rule.hits += 1
            rule.hit.set()
            exchange.rule = rule
            exchange.action = rule.action
            if rule.on_hit is not None:
                rule.on_hit(exchange)
            return rule
        return None

    async def handle(self, client: SocketStream) -> None:
        """Serve one client connection, request after request, until either side closes."""
        self.connections += 1
        number = self.connections
        upstream = _Upstream(self.target_port)
        reader = BufferedByteReceiveStream(client)
        try:
            async with client:
                while await self._one(number, client, reader, upstream):
                    pass
        except (
            _ProtocolError,
            _Cut,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            anyio.EndOfStream,
            anyio.IncompleteRead,
            anyio.DelimiterNotFound,
            OSError,
        ):
            pass  # either side gave up: so does this connection
        finally:
            await upstream.close()

    async def _one(
        self,
        number: int,
        client: SocketStream,
        reader: BufferedByteReceiveStream,
        upstream: _Upstream,
    ) -> bool:
        """Serve one request; whether the connection can carry another."""
        head = await _read_head(reader)
        if head is None:
            return False
        method, _, rest = head.start.partition(" ")
        target = rest.rpartition(" ")[0]
        exchange = Exchange(number, method, target, head.headers)
        self.log.append(exchange)
        rule = self._rule_for(exchange)
        framing = head.framing()
        expect = head.headers.get("expect", "").lower() == "100-continue"
        if rule is not None and rule.delay:
            await anyio.sleep(rule.delay)

        if rule is not None and rule.reset:
            _reset(client)
            return False
        if rule is not None and rule.status is not None:
            # With Expect the client holds its body back: the connection cannot go on.
            if not expect:
                await _copy_body(reader, framing, None)
            close = expect or head.wants_close
            await client.send(_error_response(rule.status, head_only=method == "HEAD", close=close))
            return not close

        stream, up_reader = await upstream.open()
        await stream.send(head.raw)
        answer: _Head | None
        body_sent = not expect
        if expect:
            answer = await _read_head(up_reader)
            if answer is not None and _status(answer) == 100:
                await client.send(answer.raw)
                await _copy_body(reader, framing, stream.send)
                body_sent = True
                answer = await _read_head(up_reader)
        else:
            await _copy_body(reader, framing, stream.send)
            answer = await _read_head(up_reader)
        while answer is not None and _status(answer) == 100:
            answer = await _read_head(up_reader)  # an interim answer the client did not ask for
        if answer is None:
            raise _ProtocolError("the server closed the connection without answering")
        status = _status(answer)
        exchange.status = status
        if rule is not None and rule.on_answer is not None:
            rule.on_answer(exchange)
        if method == "HEAD" or status in {204, 304} or 100 <= status < 200:
            response_framing: tuple[str, int] = ("none", 0)
        else:
            response_framing = answer.framing()
            if response_framing[0] == "none":
                response_framing = ("eof", 0)
        server_closes = answer.wants_close or response_framing[0] == "eof"
        if rule is not None and rule.response_delay:
            await anyio.sleep(rule.response_delay)

        if rule is not None and rule.lose is not None:
            await _copy_body(up_reader, response_framing, None)
            if server_closes:
                await upstream.close()
            if rule.lose == "drop" or not body_sent:
                return False
            await client.send(_error_response(500, head_only=method == "HEAD", close=False))
            return not head.wants_close
        if rule is not None and rule.cut_after is not None:
            await client.send(answer.raw)
            await _copy_body(up_reader, response_framing, _cutter(client, rule.cut_after))
            # A body shorter than the cut: it all went through, and the cut is the close.
            raise _Cut

        await client.send(answer.raw)
        await _copy_body(up_reader, response_framing, client.send)
        if server_closes:
            await upstream.close()
        return body_sent and not server_closes and not head.wants_close


def _status(head: _Head) -> int:
    try:
        return int(head.start.split(" ", 2)[1])
    except (IndexError, ValueError) as exc:
        raise _ProtocolError(f"bad status line {head.start!r}") from exc


def _cutter(client: SocketStream, limit: int) -> Callable[[bytes], Awaitable[None]]:
    forwarded = 0

    async def send(data: bytes) -> None:
        nonlocal forwarded
        if forwarded + len(data) >= limit:
            if limit > forwarded:
                await client.send(data[: limit - forwarded])
            raise _Cut
        forwarded += len(data)
        await client.send(data)

    return send


@asynccontextmanager
async def fault_proxy(target_port: int, *rules: Rule) -> AsyncIterator[FaultProxy]:
    """Run a :class:`FaultProxy` (with ``rules``) on a free port of 127.0.0.1 until the
    block ends; every connection it holds is closed by then."""
    proxy = FaultProxy(target_port)
    proxy.rules.extend(rules)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener, anyio.create_task_group() as tg:
        proxy.port = listener.extra(SocketAttribute.local_port)
        tg.start_soon(listener.serve, proxy.handle)
        try:
            yield proxy
        finally:
            tg.cancel_scope.cancel()


@contextlib.contextmanager
def refused_endpoint() -> Iterator[str]:
    """An ``http://127.0.0.1:<port>`` that refuses every connection while the block runs:
    the port is bound (so nothing else takes it) but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
