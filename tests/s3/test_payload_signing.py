"""Upload bodies -> their SHA-256 in the signature over http, hashed off the event loop, or not."""

from __future__ import annotations

import hashlib
import random
import threading
from typing import Any

import botocore.auth
import pytest

from monetr_backup import S3Config
from monetr_backup.stages import open_s3_client, open_s3_upload
from monetr_backup.testing import TemporarySeaweedS3

from support.proxy import cutting_proxy
from support.sizes import MIB, MIN_PART

pytestmark = pytest.mark.anyio


KEY = "archive.bin"
#: Never reached: the proxy only records.
NO_CUT = 1 << 62


def content_sha256(heads: list[bytes]) -> dict[str, str]:
    """``x-amz-content-sha256`` of each upload request, by ``put`` or ``part <n>``."""
    found: dict[str, str] = {}
    for head in heads:
        if not head.startswith(b"PUT "):
            continue
        line, *fields = head.decode("latin-1").split("\r\n")
        target = line.split(" ")[1]
        query = dict(
            item.split("=", 1) for item in target.partition("?")[2].split("&") if "=" in item
        )
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (field.partition(":") for field in fields if field)
        }
        name = f"part {query['partNumber']}" if "partNumber" in query else "put"
        found[name] = headers["x-amz-content-sha256"]
    return found


async def upload(config: S3Config, bucket: str, data: bytes) -> None:
    async with (
        open_s3_client(config) as client,
        open_s3_upload(client, bucket, KEY, part_size=MIN_PART) as sink,
    ):
        await sink.write(data)
        await sink.commit()


@pytest.mark.parametrize(
    ("size", "expected"),
    [(2 * MIN_PART + 3, ["part 1", "part 2", "part 3"]), (MIB, ["put"])],
    ids=["multipart", "single-put"],
)
@pytest.mark.parametrize("payload_signing", [None, False], ids=["default", "opt-out"])
async def test_upload_bodies_are_signed_over_http_unless_opted_out(
    size: int,
    expected: list[str],
    payload_signing: bool | None,
    s3: TemporarySeaweedS3,
    bucket: str,
) -> None:
    """Over plain http the body's SHA-256 is in the signature by default (the server
    accepting the upload shows the signature, made in a thread, is right); with
    ``payload_signing=False`` the bodies go as UNSIGNED-PAYLOAD."""
    data = random.Random(size).randbytes(size)
    async with cutting_proxy(s3.ports["s3"], NO_CUT) as proxy:
        config = s3.config(endpoint_url=proxy.endpoint_url, payload_signing=payload_signing)
        await upload(config, bucket, data)
        sent = content_sha256(proxy.requests)

    assert sorted(sent) == expected
    for name, value in sent.items():
        if payload_signing is False:
            assert value == "UNSIGNED-PAYLOAD"
        else:
            number = int(name.split()[1]) if name != "put" else 1
            body = data[(number - 1) * MIN_PART : number * MIN_PART]
            assert value == hashlib.sha256(body).hexdigest(), name
    stored = s3.client().get_object(Bucket=bucket, Key=KEY)["Body"].read()
    assert stored == data


async def test_upload_bodies_are_hashed_off_the_event_loop(
    s3_config: S3Config, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore hashes each signed body; that must happen in a worker thread, not on the
    event loop that every other task of the backup shares."""
    loop_thread = threading.get_ident()
    hashed: list[tuple[int, int]] = []
    real = hashlib.sha256

    class Recording:
        def __init__(self, data: bytes = b"") -> None:
            self._hash = real()
            self.update(data)

        def update(self, data: bytes) -> None:
            hashed.append((threading.get_ident(), len(data)))
            self._hash.update(data)

        def __getattr__(self, name: str) -> Any:
            # hexdigest, digest, copy, digest_size, block_size (hmac uses it too)
            return getattr(self._hash, name)

    monkeypatch.setattr(botocore.auth, "sha256", Recording)
    data = random.Random(1).randbytes(MIN_PART + MIB)  # one part and a last, smaller one
    await upload(s3_config, bucket, data)

    on_loop = sum(length for thread, length in hashed if thread == loop_thread)
    off_loop = sum(length for thread, length in hashed if thread != loop_thread)
    assert off_loop >= len(data)
    # What is left on the loop: the canonical requests and the small XML bodies.
    assert on_loop < 64 * 1024, on_loop


@pytest.mark.parametrize(
    ("endpoint", "payload_signing", "signed"),
    [
        ("https://s3.example.test", True, True),
        ("https://s3.example.test", None, False),
        ("http://127.0.0.1:9", False, False),
        ("http://127.0.0.1:9", None, True),
    ],
    ids=["https-forced", "https", "http-opt-out", "http"],
)
async def test_payload_signing_setting_decides(
    endpoint: str, payload_signing: bool | None, *, signed: bool
) -> None:
    """``S3Config.payload_signing`` overrides the choice made from the endpoint."""
    config = S3Config(
        endpoint_url=endpoint,
        access_key="AKIDTEST",
        secret_key="secret",
        payload_signing=payload_signing,
    )
    headers: dict[str, Any] = {}

    class Sent(Exception):
        pass

    def capture(request: Any, **_: Any) -> None:
        headers.update({name.lower(): value for name, value in request.headers.items()})
        raise Sent

    async with open_s3_client(config) as client:
        client.meta.events.register("before-send.s3.PutObject", capture)
        with pytest.raises(Sent):
            await client.put_object(Bucket="bucket", Key=KEY, Body=b"body")
    value = headers["x-amz-content-sha256"]
    value = value.decode() if isinstance(value, bytes) else value
    assert value == (hashlib.sha256(b"body").hexdigest() if signed else "UNSIGNED-PAYLOAD")
