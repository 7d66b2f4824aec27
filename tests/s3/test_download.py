"""An S3 download cut off mid-body -> resumed by a ranged If-Match GET, or a clean error."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import anyio
import pytest

import monetr_backup as mb
from monetr_backup.testing import TemporarySeaweedS3

from support.proxy import cutting_proxy
from support.targets import new_bucket, tree, write_files

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def big_archive(
    s3: TemporarySeaweedS3, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, bytes]]:
    """A ~3 MB storage-only archive of incompressible files in its own bucket."""
    root = tmp_path_factory.mktemp("big-archive")
    files = {f"blobs/{i:02d}.bin": os.urandom(1024 * 1024 + 17 * i) for i in range(3)}
    write_files(root, files)
    bucket = new_bucket(s3)
    anyio.run(
        functools.partial(
            mb.backup,
            mb.S3Archive(s3=s3.config(), bucket=bucket, key="big.tar.gz"),
            storage=mb.DirectoryStorage(path=root),
            options=mb.BackupOptions(codec=mb.Codec.GZIP),
        )
    )
    return bucket, files


CUT_AFTER = 200 * 1024


@pytest.mark.reliability(
    "fault",
    "the archive download cut mid-body by a proxy",
    "resumed with a ranged If-Match GET; restore correct",
)
async def test_download_resumes_after_a_cut_connection(
    big_archive: tuple[str, dict[str, bytes]], s3: TemporarySeaweedS3, tmp_path: Path
) -> None:
    """The proxy cuts the first GET after 200 KiB of its response; the reader resumes
    with a ranged If-Match GET from the byte it got to, and the restore is complete."""
    bucket, files = big_archive
    async with cutting_proxy(s3.ports["s3"], CUT_AFTER) as proxy:
        result = await mb.restore(
            mb.S3Archive(
                s3=s3.config(endpoint_url=proxy.endpoint_url), bucket=bucket, key="big.tar.gz"
            ),
            storage=mb.DirectoryStorage(path=tmp_path / "files"),
        )
    assert proxy.cuts == 1
    gets = [head for head in proxy.requests if head.startswith(b"GET ")]
    assert len(gets) == 2
    ranged = proxy.ranged_gets()
    assert ranged == [gets[1]]
    resumed_at = int(ranged[0].lower().split(b"range: bytes=")[1].split(b"-")[0])
    assert 0 < resumed_at < CUT_AFTER
    assert b"\r\nif-match: " in ranged[0].lower()
    assert sorted(result.objects_restored) == sorted(files)
    assert tree(tmp_path / "files") == files


async def test_download_of_an_object_replaced_meanwhile_fails(
    big_archive: tuple[str, dict[str, bytes]], s3: TemporarySeaweedS3, tmp_path: Path
) -> None:
    """The object is replaced between the cut and the resumed GET: the If-Match request
    is refused, so bytes of two versions are never spliced (SourceError, nothing restored)."""
    bucket, _ = big_archive
    key = "replaced.tar.gz"
    client = s3.client()
    client.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": "big.tar.gz"})

    def replace() -> None:
        client.put_object(Bucket=bucket, Key=key, Body=b"another version")

    async with cutting_proxy(s3.ports["s3"], CUT_AFTER, on_cut=replace) as proxy:
        with pytest.raises(mb.ArchiveReadError, match="changed while it was downloaded"):
            await mb.restore(
                mb.S3Archive(s3=s3.config(endpoint_url=proxy.endpoint_url), bucket=bucket, key=key),
                storage=mb.DirectoryStorage(path=tmp_path / "files"),
            )
    assert proxy.cuts == 1
    assert len(proxy.ranged_gets()) == 1
    assert tree(tmp_path / "files") == {}


@pytest.mark.reliability(
    "fault",
    "the archive download cut mid-body, no resumes allowed",
    "ArchiveReadError; nothing restored",
)
async def test_download_cut_without_resumes_fails(
    big_archive: tuple[str, dict[str, bytes]], s3: TemporarySeaweedS3, tmp_path: Path
) -> None:
    """With ``max_resumes=0`` the cut is an error (SourceError) and nothing is restored."""
    bucket, _ = big_archive
    async with cutting_proxy(s3.ports["s3"], CUT_AFTER) as proxy:
        with pytest.raises(mb.ArchiveReadError, match=r"big\.tar\.gz"):
            await mb.restore(
                mb.S3Archive(
                    s3=s3.config(endpoint_url=proxy.endpoint_url),
                    bucket=bucket,
                    key="big.tar.gz",
                    max_resumes=0,
                ),
                storage=mb.DirectoryStorage(path=tmp_path / "files"),
            )
    assert proxy.cuts == 1
    assert proxy.ranged_gets() == []
    assert tree(tmp_path / "files") == {}
