"""The S3 multipart sink on its own, against the real server."""

from __future__ import annotations

import random

import pytest
from backup_support import MIB, MIN_PART, multipart_uploads, object_keys

from monetr_backup import DestinationError, S3Config, open_s3_client, open_s3_upload
from monetr_backup.testing import TemporarySeaweedS3

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
    with pytest.raises(DestinationError, match="after aborted"):
        await upload.write(b"late")
