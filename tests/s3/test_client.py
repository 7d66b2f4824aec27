"""S3Config -> an aiobotocore client: fast timestamps, payload signed only without TLS."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest
from botocore.utils import parse_timestamp

from monetr_backup import S3Config
from monetr_backup._s3 import client as s3_client_module
from monetr_backup._s3 import upload as upload_module
from monetr_backup.stages import open_s3_client
from monetr_backup.testing import TemporarySeaweedS3

pytestmark = pytest.mark.anyio


KEY = "archive.bin"


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-26T22:02:17.000Z",  # ListObjectsV2 LastModified
        "2026-11-26T22:02:17Z",
        "2026-11-26T22:02:17.123456+01:00",
        "Thu, 26 Nov 2026 22:02:17 GMT",  # Last-Modified header
        "1700000000",  # not S3's, but botocore's parser accepts it: so must ours
    ],
)
def test_fast_timestamp_parser_agrees_with_botocore(value: str) -> None:
    parsed = s3_client_module._parse_timestamp(value)
    assert parsed == parse_timestamp(value)
    assert parsed.utcoffset() is not None


async def test_clients_use_the_fast_timestamp_parser(
    s3_config: S3Config, bucket: str, s3: TemporarySeaweedS3
) -> None:
    s3.client().put_object(Bucket=bucket, Key=KEY, Body=b"x")
    async with open_s3_client(s3_config) as aio:
        listed = await aio.list_objects_v2(Bucket=bucket)
        got = await aio.get_object(Bucket=bucket, Key=KEY)
        await got["Body"].read()
    # The stdlib parsers give datetime.timezone.utc; botocore's dateutil gives tzutc().
    assert listed["Contents"][0]["LastModified"].tzinfo is UTC
    assert got["LastModified"].tzinfo is UTC


class Sent(Exception):
    """Raised by a before-send hook: the request was built and signed, not sent."""


@pytest.mark.parametrize(
    ("endpoint", "environment", "signed"),
    [
        ("https://s3.example.test", None, False),
        ("http://127.0.0.1:9", None, True),
        (None, None, False),  # AWS itself
        (None, "http://127.0.0.1:9", True),  # AWS_ENDPOINT_URL: plain http after all
    ],
    ids=["https", "http", "aws", "http-from-environment"],
)
async def test_payload_is_signed_only_without_tls(
    endpoint: str | None,
    environment: str | None,
    *,
    signed: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over TLS the server-checked CRC32 covers a part, so botocore must not SHA-256 it;
    over plain http the payload signature is all there is, so it must."""
    if environment is not None:
        monkeypatch.setenv("AWS_ENDPOINT_URL", environment)
    config = S3Config(endpoint_url=endpoint, access_key="AKIDTEST", secret_key="secret")
    headers: dict[str, str] = {}

    def capture(request: Any, **_: Any) -> None:
        for name, value in request.headers.items():
            headers[name.lower()] = value.decode() if isinstance(value, bytes) else value
        raise Sent

    async with open_s3_client(config) as client:
        client.meta.events.register("before-send.s3.UploadPart", capture)
        with pytest.raises(Sent):
            await client.upload_part(
                Bucket="bucket",
                Key=KEY,
                UploadId="upload",
                PartNumber=1,
                Body=b"part",
                ChecksumCRC32=upload_module._crc32(b"part"),
            )

    assert (headers["x-amz-content-sha256"] != "UNSIGNED-PAYLOAD") == signed
    assert headers["x-amz-checksum-crc32"] == upload_module._crc32(b"part")
    assert headers["user-agent"].startswith("monetr-backup/")
