"""The tests' fault proxy -> requests framed right on kept-alive connections, and each fault as
promised (what the client sees, what the server saw)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from monetr_backup.stages import open_s3_client, open_s3_upload
from monetr_backup.testing import TemporarySeaweedS3

from support.fault_proxy import (
    Rule,
    complete_upload,
    create_upload,
    fault_proxy,
    get_object,
    put_object,
    refused_endpoint,
    upload_part,
)
from support.sizes import MIB, MIN_PART
from support.targets import multipart_uploads, object_keys

pytestmark = pytest.mark.anyio


# --- framing, against an upstream of this test's own that spells every framing out ------


async def _echo_upstream(stream: SocketStream, bodies: list[bytes]) -> None:
    """Answers by path: ``/length`` echoes the body with a Content-Length, ``/chunked`` in
    three chunks and a trailer, ``/eof`` unframed then closes; HEAD gets a length and no body."""
    reader = BufferedByteReceiveStream(stream)
    async with stream:
        while True:
            try:
                head = await reader.receive_until(b"\r\n\r\n", 65536)
            except anyio.IncompleteRead:
                return
            lines = head.decode().split("\r\n")
            method, path, _ = lines[0].split(" ")
            headers = {
                k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
            }
            body = b""
            if headers.get("transfer-encoding") == "chunked":
                while size := int(await reader.receive_until(b"\r\n", 100), 16):
                    body += await reader.receive_exactly(size)
                    assert await reader.receive_exactly(2) == b"\r\n"
                assert await reader.receive_until(b"\r\n", 100) == b""
            elif "content-length" in headers:
                body = await reader.receive_exactly(int(headers["content-length"]))
            bodies.append(body)
            if method == "HEAD":
                await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            elif path == "/length":
                await stream.send(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            elif path == "/chunked":
                third = len(body) // 3
                pieces = [body[:third], body[third : 2 * third], body[2 * third :]]
                out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-t\r\n\r\n"
                for piece in pieces:
                    out += b"%x;ext=1\r\n%s\r\n" % (len(piece), piece)
                await stream.send(out + b"0\r\nx-t: done\r\n\r\n")
            elif path == "/eof":
                await stream.send(b"HTTP/1.1 200 OK\r\n\r\n" + body)
                return


@asynccontextmanager
async def echo_upstream() -> AsyncIterator[tuple[int, list[bytes]]]:
    bodies: list[bytes] = []
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, lambda stream: _echo_upstream(stream, bodies))
        yield listener.extra(SocketAttribute.local_port), bodies
        tg.cancel_scope.cancel()


async def test_every_framing_passes_on_one_kept_alive_connection() -> None:
    """A chunked request body, a Content-Length response, a chunked response with
    extensions and a trailer, a HEAD answer with a length but no body, then an unframed
    response ended by the close: all byte-exact, on one client connection."""
    big = os.urandom(3 * MIB + 5)
    async with (
        echo_upstream() as (port, bodies),
        fault_proxy(port) as proxy,
        await anyio.connect_tcp("127.0.0.1", proxy.port) as conn,
    ):
        reader = BufferedByteReceiveStream(conn)
        chunked = b"3\r\nabc\r\n%x\r\n%s\r\n0\r\n\r\n" % (70000, b"x" * 70000)
        await conn.send(
            b"PUT /length HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked
        )
        assert (
            await reader.receive_until(b"\r\n\r\n", 1000)
            == b"HTTP/1.1 200 OK\r\nContent-Length: 70003"
        )
        assert await reader.receive_exactly(70003) == b"abc" + b"x" * 70000

        await conn.send(
            b"POST /chunked HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)
        )
        assert b"Transfer-Encoding: chunked" in await reader.receive_until(b"\r\n\r\n", 1000)
        echoed = b""
        while True:
            size = int((await reader.receive_until(b"\r\n", 100)).split(b";")[0], 16)
            if size == 0:
                break
            echoed += await reader.receive_exactly(size)
            assert await reader.receive_exactly(2) == b"\r\n"
        assert await reader.receive_until(b"\r\n\r\n", 100) == b"x-t: done"
        assert echoed == big

        await conn.send(b"HEAD /head HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (
            await reader.receive_until(b"\r\n\r\n", 1000)
            == b"HTTP/1.1 200 OK\r\nContent-Length: 1000"
        )

        await conn.send(b"GET /eof HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nlast")
        assert await reader.receive_until(b"\r\n\r\n", 1000) == b"HTTP/1.1 200 OK"
        assert await read_to_end(reader) == b"last"
    assert bodies == [b"abc" + b"x" * 70000, big, b"", b"last"]
    assert proxy.connections == 1
    assert [(e.method, e.target, e.status) for e in proxy.log] == [
        ("PUT", "/length", 200),
        ("POST", "/chunked", 200),
        ("HEAD", "/head", 200),
        ("GET", "/eof", 200),
    ]


async def read_to_end(reader: BufferedByteReceiveStream) -> bytes:
    """Everything until the peer closes."""
    data = b""
    while True:
        try:
            data += await reader.receive()
        except anyio.EndOfStream:
            return data


async def read_into(body: Any, received: list[bytes]) -> None:
    """Read a streaming response body in small pieces, keeping what arrived."""
    async with body as stream:
        while chunk := await stream.read(100):
            received.append(chunk)


# --- against SeaweedFS, with a client that does not retry ---------------------------------


@asynccontextmanager
async def plain_client(s3: TemporarySeaweedS3, endpoint_url: str) -> AsyncIterator[Any]:
    """An aiobotocore client that tries each request once, so each fault shows."""
    config = AioConfig(
        s3={"addressing_style": "path"}, retries={"total_max_attempts": 1, "mode": "standard"}
    )
    kwargs = {**s3.client_kwargs(), "endpoint_url": endpoint_url}
    async with get_session().create_client("s3", config=config, **kwargs) as client:
        yield client


async def test_s3_requests_pass_through_on_kept_alive_connections(
    s3: TemporarySeaweedS3, bucket: str
) -> None:
    """The library's own client through the proxy: a multipart upload, a large GET, HEAD
    and listings all come out right, and connections are reused."""
    data = os.urandom(2 * MIN_PART + 123)
    async with (
        fault_proxy(s3.ports["s3"]) as proxy,
        open_s3_client(s3.config(endpoint_url=proxy.endpoint_url)) as client,
    ):
        async with open_s3_upload(client, bucket, "big", part_size=MIN_PART) as upload:
            await upload.write(data)
            await upload.commit()
        for i in range(5):
            await client.put_object(Bucket=bucket, Key=f"small/{i}", Body=b"%d" % i)
        response = await client.get_object(Bucket=bucket, Key="big")
        async with response["Body"] as body:
            got = await body.read()
        head = await client.head_object(Bucket=bucket, Key="big")
        listing = await client.list_objects_v2(Bucket=bucket)
    assert got == data
    assert head["ContentLength"] == len(data)
    assert len(listing["Contents"]) == 6
    statuses = {e.status for e in proxy.log}
    assert statuses <= {200, 404}, [(e.method, e.target, e.status) for e in proxy.log]
    assert len(proxy.log) >= 14
    assert proxy.connections <= 4  # concurrent part uploads may open a second or third


async def test_an_answered_fault_never_reaches_the_server(
    s3: TemporarySeaweedS3, bucket: str
) -> None:
    """``status=503``: the client gets SlowDown, the server never saw the PUT; the next
    one (times=1) goes through on the same connection."""
    rule = put_object(bucket, "k", status=503)
    async with (
        fault_proxy(s3.ports["s3"], rule) as proxy,
        plain_client(s3, proxy.endpoint_url) as client,
    ):
        with pytest.raises(ClientError) as caught:
            await client.put_object(Bucket=bucket, Key="k", Body=b"first")
        assert caught.value.response["Error"]["Code"] == "SlowDown"
        assert object_keys(s3.client(), bucket) == []
        await client.put_object(Bucket=bucket, Key="k", Body=b"second")
    assert rule.hits == 1
    assert [(e.action, e.status) for e in proxy.log] == [("fail 503", None), ("pass", 200)]
    # botocore's PUTs carry "Expect: 100-continue": answered without a 100, the client
    # might still send its body, so the proxy closes that connection.
    assert proxy.log[0].headers["expect"] == "100-continue"
    assert proxy.connections == 2
    assert s3.client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"second"


async def test_a_reset_request_never_reaches_the_server(
    s3: TemporarySeaweedS3, bucket: str
) -> None:
    """aiohttp itself sends an idempotent request again once after a reset: two resets
    reach the client."""
    rule = put_object(bucket, reset=True, times=2)
    async with (
        fault_proxy(s3.ports["s3"], rule) as proxy,
        plain_client(s3, proxy.endpoint_url) as client,
    ):
        with pytest.raises((EndpointConnectionError, ConnectionClosedError)):
            await client.put_object(Bucket=bucket, Key="k", Body=b"x" * 100_000)
    assert rule.hits == 2
    assert [(e.action, e.status) for e in proxy.log] == [("reset", None)] * 2
    assert object_keys(s3.client(), bucket) == []


@pytest.mark.parametrize("lose", ["drop", "500"])
async def test_a_lost_response_was_processed_by_the_server(
    lose: str, s3: TemporarySeaweedS3, bucket: str
) -> None:
    """The server stores the object; the client sees the connection drop (twice: aiohttp
    repeats an idempotent request once), or a 500."""
    rule = put_object(bucket, "k", lose=lose, times=2 if lose == "drop" else 1)
    async with (
        fault_proxy(s3.ports["s3"], rule) as proxy,
        plain_client(s3, proxy.endpoint_url) as client,
    ):
        with pytest.raises(ConnectionClosedError if lose == "drop" else ClientError):
            await client.put_object(Bucket=bucket, Key="k", Body=b"stored")
        # A 500 keeps the connection: the next request goes on it.
        await client.head_object(Bucket=bucket, Key="k")
    assert [e.status for e in proxy.log] == ([200] * 3 if lose == "drop" else [200, 200])
    assert proxy.connections == (3 if lose == "drop" else 1)
    assert s3.client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"stored"


async def test_a_lost_create_leaves_an_upload_the_client_never_heard_of(
    s3: TemporarySeaweedS3, bucket: str
) -> None:
    rule = create_upload(lose="500")
    async with (
        fault_proxy(s3.ports["s3"], rule) as proxy,
        plain_client(s3, proxy.endpoint_url) as client,
    ):
        with pytest.raises(ClientError, match="InternalError"):
            await client.create_multipart_upload(Bucket=bucket, Key="k")
    assert proxy.exchanges(rule)[0].status == 200
    uploads = multipart_uploads(s3.client(), bucket)
    assert [u["Key"] for u in uploads] == ["k"]
    s3.client().abort_multipart_upload(Bucket=bucket, Key="k", UploadId=uploads[0]["UploadId"])


async def test_a_cut_response_ends_after_the_given_bytes(
    s3: TemporarySeaweedS3, bucket: str
) -> None:
    data = os.urandom(MIB)
    s3.client().put_object(Bucket=bucket, Key="k", Body=data)
    rule = get_object(bucket, "k", cut_after=1000)
    async with (
        fault_proxy(s3.ports["s3"], rule) as proxy,
        plain_client(s3, proxy.endpoint_url) as client,
    ):
        response = await client.get_object(Bucket=bucket, Key="k")
        received: list[bytes] = []
        with pytest.raises(Exception, match=r"(?i)payload|length|connection"):
            await read_into(response["Body"], received)
        assert b"".join(received) == data[:1000]
        response = await client.get_object(Bucket=bucket, Key="k")  # times=1: whole again
        async with response["Body"] as body:
            assert await body.read() == data
    assert [e.action for e in proxy.log] == ["cut 1000", "pass"]


async def test_delays_skip_and_times(s3: TemporarySeaweedS3, bucket: str) -> None:
    """``skip=1, times=2``: the 2nd and 3rd matching requests wait ``delay`` (before the
    server sees them) or ``response_delay`` (after it answered); the others do not."""
    before = Rule(method="PUT", path="/a$", skip=1, times=2, delay=0.3)
    after = Rule(method="PUT", path="/b$", response_delay=0.3)
    async with (
        fault_proxy(s3.ports["s3"], before, after) as proxy,
        plain_client(s3, proxy.endpoint_url) as client,
    ):
        took = []
        for _ in range(4):
            started = time.monotonic()
            await client.put_object(Bucket=bucket, Key="a", Body=b"a")
            took.append(time.monotonic() - started)
        started = time.monotonic()
        await client.put_object(Bucket=bucket, Key="b", Body=b"b")
        took.append(time.monotonic() - started)
    slow = [t >= 0.3 for t in took]
    assert slow == [False, True, True, False, True], took
    assert (before.seen, before.hits, after.hits) == (3, 2, 1)


async def test_rules_select_by_method_and_query(s3: TemporarySeaweedS3, bucket: str) -> None:
    """Create, parts and Complete of one multipart upload are told apart."""
    rules = [create_upload(times=None), upload_part(times=None), complete_upload(times=None)]
    async with (
        fault_proxy(s3.ports["s3"], *rules) as proxy,
        open_s3_client(s3.config(endpoint_url=proxy.endpoint_url)) as client,
        open_s3_upload(client, bucket, "k", part_size=MIN_PART) as upload,
    ):
        await upload.write(os.urandom(MIN_PART + 1))
        await upload.commit()
    assert [rule.hits for rule in rules] == [1, 2, 1]
    assert all(e.status == 200 for rule in rules for e in proxy.exchanges(rule))


async def test_refused_endpoint_refuses() -> None:
    with refused_endpoint() as url, pytest.raises(OSError, match=r"connection attempts failed"):
        await anyio.connect_tcp("127.0.0.1", int(url.rsplit(":", 1)[1]))
