"""Bytes -> an S3 object via the multipart sink: parts cut, checked by the server, or nothing."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

import pytest

import monetr_backup as mb
from monetr_backup import ArchiveWriteError, S3Config, UploadChecksum, stages
from monetr_backup._s3 import upload as upload_module
from monetr_backup.stages import open_s3_client, open_s3_upload
from monetr_backup.testing import TemporarySeaweedS3

from support.sizes import MIB, MIN_PART
from support.targets import multipart_uploads, object_keys

pytestmark = pytest.mark.anyio


KEY = "archive.bin"


def odd_chunks(total: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    chunks: list[bytes] = []
    while total > 0:
        size = min(total, rng.choice([1, 333, 65_537, 1_000_003]))
        chunks.append(rng.randbytes(size))
        total -= size
    return chunks


@pytest.mark.parametrize(
    ("total", "expected_parts"),
    [
        (2 * MIN_PART + 3 * MIB + 3, [MIN_PART, MIN_PART, 3 * MIB + 3]),
        (2 * MIN_PART, [MIN_PART, MIN_PART]),
        (MIN_PART - 1, None),  # below one part: a single PutObject
        (0, None),
    ],
    ids=["multipart", "exact-parts", "single-put", "empty"],
)
async def test_upload_cuts_parts_from_any_writes(
    total: int,
    expected_parts: list[int] | None,
    s3: TemporarySeaweedS3,
    s3_config: S3Config,
    bucket: str,
) -> None:
    client = s3.client()
    chunks = odd_chunks(total, total)
    stored: list[int] = []
    async with (
        open_s3_client(s3_config) as aio,
        open_s3_upload(
            aio, bucket, KEY, part_size=MIN_PART, concurrency=2, on_stored=stored.append
        ) as upload,
    ):
        for chunk in chunks:
            await upload.write(chunk)
        assert object_keys(client, bucket) == []  # nothing visible before commit
        await upload.commit()
        assert upload.bytes_written == total

    assert client.get_object(Bucket=bucket, Key=KEY)["Body"].read() == b"".join(chunks)
    assert multipart_uploads(client, bucket) == []
    if expected_parts is None:
        assert upload.upload_id is None
        assert stored == [total]
    else:
        head = client.head_object(Bucket=bucket, Key=KEY, PartNumber=1)
        assert head["PartsCount"] == len(expected_parts)
        sizes = [
            client.head_object(Bucket=bucket, Key=KEY, PartNumber=n)["ContentLength"]
            for n in range(1, len(expected_parts) + 1)
        ]
        assert sizes == expected_parts
        assert sorted(stored) == sorted(expected_parts)


async def test_leaving_without_commit_aborts(
    s3: TemporarySeaweedS3, s3_config: S3Config, bucket: str
) -> None:
    client = s3.client()

    class Stop(Exception):
        pass

    with pytest.RaisesGroup(Stop, allow_unwrapped=True, flatten_subgroups=True):
        async with (
            open_s3_client(s3_config) as aio,
            open_s3_upload(aio, bucket, KEY, part_size=MIN_PART) as upload,
        ):
            for chunk in odd_chunks(3 * MIN_PART, 1):
                await upload.write(chunk)
            assert upload.upload_id is not None
            assert [u["Key"] for u in multipart_uploads(client, bucket)] == [KEY]
            raise Stop

    assert object_keys(client, bucket) == []
    assert multipart_uploads(client, bucket) == []
    with pytest.raises(ArchiveWriteError, match="after aborted"):
        await upload.write(b"late")


EACH_CHECKSUM = pytest.mark.parametrize("checksum", list(UploadChecksum))


#: Past one part (multipart upload), or below it (a single PutObject).
MULTIPART_OR_SINGLE_PUT = pytest.mark.parametrize(
    "total", [2 * MIN_PART + 7, MIB], ids=["multipart", "single-put"]
)


async def upload_once(
    s3_config: S3Config,
    bucket: str,
    data: bytes,
    checksum: UploadChecksum = UploadChecksum.CRC32,
    hooks: dict[str, Callable[..., None]] | None = None,
) -> None:
    """Upload ``data`` in MIN_PART parts, with botocore event ``hooks`` registered."""
    async with open_s3_client(s3_config) as aio:
        for event, hook in (hooks or {}).items():
            aio.meta.events.register(event, hook)
        async with open_s3_upload(aio, bucket, KEY, part_size=MIN_PART, checksum=checksum) as up:
            await up.write(data)
            await up.commit()


@EACH_CHECKSUM
@MULTIPART_OR_SINGLE_PUT
async def test_server_verifies_the_checksum_of_every_write(
    checksum: UploadChecksum,
    total: int,
    s3: TemporarySeaweedS3,
    s3_config: S3Config,
    bucket: str,
) -> None:
    client = s3.client()
    data = random.Random(total).randbytes(total)
    await upload_once(s3_config, bucket, data, checksum)

    assert client.get_object(Bucket=bucket, Key=KEY)["Body"].read() == data
    stored = client.head_object(Bucket=bucket, Key=KEY, ChecksumMode="ENABLED")
    # A CRC32 upload leaves the object's checksum with the server (composite for parts).
    assert ("ChecksumCRC32" in stored) == (checksum is UploadChecksum.CRC32)


@EACH_CHECKSUM
@MULTIPART_OR_SINGLE_PUT
async def test_a_part_damaged_on_the_way_is_refused(
    *,
    checksum: UploadChecksum,
    total: int,
    s3: TemporarySeaweedS3,
    s3_config: S3Config,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The checksum sent is that of other bytes, as if the body changed in transit."""
    function = {UploadChecksum.CRC32: "_crc32", UploadChecksum.MD5: "_content_md5"}[checksum]
    real = getattr(upload_module, function)
    monkeypatch.setattr(upload_module, function, lambda data: real(bytes(data[:-1]) + b"\0"))
    client = s3.client()
    data = b"\xff" * total
    with pytest.raises(ArchiveWriteError, match="BadDigest"):
        await upload_once(s3_config, bucket, data, checksum)

    assert object_keys(client, bucket) == []
    assert multipart_uploads(client, bucket) == []


async def test_complete_repeats_every_part_checksum(
    s3_config: S3Config, bucket: str, s3: TemporarySeaweedS3
) -> None:
    """AWS refuses a CRC32 multipart upload whose completion omits the parts' checksums."""
    data = random.Random(3).randbytes(2 * MIN_PART + 7)
    completed: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        completed.extend(params["MultipartUpload"]["Parts"])

    await upload_once(
        s3_config, bucket, data, hooks={"before-parameter-build.s3.CompleteMultipartUpload": record}
    )

    pieces = [data[:MIN_PART], data[MIN_PART : 2 * MIN_PART], data[2 * MIN_PART :]]
    assert [part["ChecksumCRC32"] for part in completed] == [
        upload_module._crc32(piece) for piece in pieces
    ]
    assert s3.client().get_object(Bucket=bucket, Key=KEY)["Body"].read() == data


@MULTIPART_OR_SINGLE_PUT
async def test_a_server_that_ignores_crc32_fails_the_upload(
    total: int, s3_config: S3Config, bucket: str, s3: TemporarySeaweedS3
) -> None:
    """A server that does not echo the CRC32 may have stored the bytes unchecked: the
    upload fails (pointing at UploadChecksum.MD5) and leaves nothing behind."""

    def forget(parsed: dict[str, Any], **_: Any) -> None:
        parsed.pop("ChecksumCRC32", None)  # as a server without flexible checksums

    client = s3.client()
    hooks = {"after-call.s3.UploadPart": forget, "after-call.s3.PutObject": forget}
    with pytest.raises(ArchiveWriteError, match="did not confirm"):
        await upload_once(s3_config, bucket, b"\x01" * total, hooks=hooks)

    assert object_keys(client, bucket) == []
    assert multipart_uploads(client, bucket) == []


async def test_stream_too_big_for_max_parts_fails_cleanly(
    s3: TemporarySeaweedS3, s3_config: mb.S3Config, bucket: str
) -> None:
    """At the last allowed part, data beyond one part is refused with a typed error (not
    buffered without bound), and the multipart upload is aborted."""

    async def upload_three_parts() -> None:
        async with (
            stages.open_s3_client(s3_config) as client,
            stages.open_s3_upload(client, bucket, "big", part_size=MIN_PART, max_parts=1) as upload,
        ):
            for _ in range(3):
                await upload.write(os.urandom(MIN_PART))
            await upload.commit()

    with pytest.raises(mb.ArchiveWriteError, match="max_parts"):
        await upload_three_parts()
    assert object_keys(s3.client(), bucket) == []
    assert multipart_uploads(s3.client(), bucket) == []


@pytest.mark.parametrize("size", [1000, MIN_PART + 1], ids=["put-object", "multipart"])
async def test_a_committed_upload_knows_its_object_by_its_token(
    size: int, s3_config: S3Config, bucket: str
) -> None:
    """What a commit whose answer was lost relies on: the object carries this upload's
    token, so it is recognised as ours even when its ETag proves nothing (SSE-KMS), and
    an object another upload wrote at the key is not."""
    data = os.urandom(size)
    async with open_s3_client(s3_config) as aio:
        async with open_s3_upload(aio, bucket, KEY, part_size=MIN_PART) as first:
            await first.write(data)
            await first.commit()
        assert await first._landed(None, size)  # no ETag to compare: the token decides
        assert not await first._landed(None, size + 1)
        async with open_s3_upload(aio, bucket, KEY, part_size=MIN_PART, overwrite=True) as other:
            await other.write(data)
            await other.commit()
        assert not await first._landed(None, size)
        assert await other._landed(None, size)
