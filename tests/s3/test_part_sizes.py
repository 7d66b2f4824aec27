"""Part numbers -> part sizes that grow as an upload goes on, so it never runs out of parts."""

from __future__ import annotations

import os

import pytest

from monetr_backup import BackupOptions, Codec, DirectoryStorage, Progress, S3Archive, backup
from monetr_backup._s3.upload import part_size_for
from monetr_backup._units import S3_MAX_PART_SIZE, S3_MIN_PART_SIZE

from support.archives import check_archive_file
from support.env import Env
from support.sizes import GIB, MIB, MIN_PART
from support.targets import multipart_uploads, write_bytes, write_files


def test_part_sizes_double_every_tenth_of_max_parts() -> None:
    base = 8 * MIB
    assert [part_size_for(n, base, 10_000) for n in (1, 1000, 1001, 2000, 2001)] == [
        base,
        base,
        2 * base,
        2 * base,
        4 * base,
    ]
    assert part_size_for(10_000, base, 10_000) == base << 9
    # Fewer than ten parts: the size doubles with every part.
    assert [part_size_for(n, 5 * MIB, 3) for n in (1, 2, 3)] == [5 * MIB, 10 * MIB, 20 * MIB]


def test_part_sizes_reach_past_the_largest_s3_object() -> None:
    """With the defaults the upload can never run out of parts before S3's 5 TiB limit,
    and no part is ever smaller than S3's minimum or larger than its maximum."""
    sizes = [part_size_for(n, 8 * MIB, 10_000) for n in range(1, 10_001)]
    assert sum(sizes) > 5 * 1024 * GIB
    assert sizes == sorted(sizes)
    assert min(sizes) >= S3_MIN_PART_SIZE
    assert max(sizes) <= S3_MAX_PART_SIZE
    assert part_size_for(10_000, 1 * GIB, 10_000) == S3_MAX_PART_SIZE


@pytest.mark.anyio
async def test_parts_grow_past_max_parts(env: Env) -> None:
    """~27 MiB of incompressible archive with max_parts=3 at 5 MiB parts (which would need
    six) still uploads: the part size doubles, and the last part takes the rest."""
    client, bucket = env.client, env.bucket
    files = {f"blob-{i}.bin": os.urandom(9 * MIB + 1000 * i) for i in range(3)}
    source = env.tmp_path / "random"
    write_files(source, files)
    stored: list[int] = []

    def on_progress(progress: Progress) -> None:
        total = sum(stored)
        if progress.archive_bytes_stored > total:
            stored.append(progress.archive_bytes_stored - total)

    await backup(
        S3Archive(
            s3=env.s3.config(), bucket=bucket, key="big.tar", part_size=MIN_PART, max_parts=3
        ),
        storage=DirectoryStorage(path=source),
        # Every snapshot: the test reads each part's report off the counter.
        options=BackupOptions(codec=Codec.NONE, progress_interval=0),
        progress=on_progress,
    )

    size = client.head_object(Bucket=bucket, Key="big.tar")["ContentLength"]
    assert size > 5 * MIN_PART
    part_sizes = [
        client.head_object(Bucket=bucket, Key="big.tar", PartNumber=n)["ContentLength"]
        for n in (1, 2, 3)
    ]
    assert client.head_object(Bucket=bucket, Key="big.tar", PartNumber=1)["PartsCount"] == 3
    assert part_sizes == [MIN_PART, 2 * MIN_PART, size - 3 * MIN_PART]
    # The uploader reported each part as the server accepted it.
    assert sorted(stored) == sorted(part_sizes)
    assert multipart_uploads(client, bucket) == []

    archive = env.tmp_path / "big.tar"
    write_bytes(archive, client.get_object(Bucket=bucket, Key="big.tar")["Body"].read())
    extracted = check_archive_file(archive, Codec.NONE, env.tmp_path / "x")
    assert extracted.objects == files
    assert extracted.header.database is None
