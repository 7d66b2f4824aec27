"""Hostile members and foreign or missing archives -> refused before anything is written."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

import monetr_backup as mb
from monetr_backup.testing import PostgresServer, TemporarySeaweedS3

from support.archives import TOP, build_tar, header_json, regular, special
from support.databases import Databases, database_exists, new_database_name
from support.samples import restore_into_new
from support.targets import bucket_objects, new_bucket

pytestmark = pytest.mark.anyio


HOSTILE = {
    "dot-dot": regular("../x", b"escape"),
    "dot-dot-inside": regular(f"{TOP}/storage/../../x", b"escape"),
    "absolute": regular("/etc/x", b"escape"),
    "empty-component": regular(f"{TOP}/storage/a//x", b"escape"),
    "symlink": special(f"{TOP}/storage/link", tarfile.SYMTYPE, "/etc/passwd"),
    "hardlink": special(f"{TOP}/storage/hard", tarfile.LNKTYPE, f"{TOP}/header.json"),
    "directory": special(f"{TOP}/storage/folder", tarfile.DIRTYPE),
    "fifo": special(f"{TOP}/storage/fifo", tarfile.FIFOTYPE),
    "outside-top": regular("monetr-backup-20990101T000000Z/storage/x", b"elsewhere"),
}


@pytest.mark.parametrize("hostile", list(HOSTILE), ids=list(HOSTILE))
async def test_hostile_member_in_storage_section(
    hostile: str, s3: TemporarySeaweedS3, tmp_path: Path
) -> None:
    """A hostile member after a valid header and a valid object is refused with
    UnsafeMemberError, and nothing is left in the target folder (or, for a few kinds, in
    the bucket the valid object had already been put into)."""
    archive = tmp_path / "hostile.tar"
    archive.write_bytes(
        build_tar(
            [
                regular(f"{TOP}/header.json", header_json(TOP)),
                regular(f"{TOP}/storage/ok.txt", b"fine"),
                HOSTILE[hostile],
                regular(f"{TOP}/storage/after.txt", b"never reached"),
            ]
        )
    )
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(mb.UnsafeMemberError) as caught:
        await mb.restore(mb.FileArchive(path=archive), storage=mb.DirectoryStorage(path=target))
    assert caught.value.member == HOSTILE[hostile][0].name
    assert list(target.iterdir()) == []

    if hostile not in {"dot-dot", "symlink", "outside-top"}:
        return  # each S3 client costs ~1 s to start: a few kinds are enough here
    bucket = new_bucket(s3)
    with pytest.raises(mb.UnsafeMemberError):
        await mb.restore(mb.FileArchive(path=archive), storage=s3.storage(bucket))
    assert bucket_objects(s3, bucket) == {}


@pytest.mark.parametrize("hostile", ["dot-dot", "symlink", "hardlink", "outside-top"])
async def test_hostile_member_in_dump_section(
    hostile: str, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    """A hostile member where the dump parts should be: refused before pg_restore gets a
    byte, and the database the restore created is dropped again."""
    archive = tmp_path / "hostile.tar"
    archive.write_bytes(
        build_tar(
            [
                regular(f"{TOP}/header.json", header_json(TOP, dump_format=mb.DumpFormat.PLAIN)),
                HOSTILE[hostile],
            ]
        )
    )
    target = new_database_name(databases)
    with pytest.raises(mb.UnsafeMemberError):
        await restore_into_new(pg, archive, target)
    assert not database_exists(pg, target)


# Random bytes, the zstd magic before random bytes, an empty file and a future format
# version are variants of tests/support/hostile.py (test_hostile_corpus.py).
FOREIGN = {
    "tar-without-header": build_tar([regular("notes/readme.txt", b"hello")]),
    "header-not-first": build_tar(
        [regular(f"{TOP}/storage/x", b"x"), regular(f"{TOP}/header.json", header_json(TOP))]
    ),
    "random-gzip-magic": b"\x1f\x8b" + os.urandom(4096),
    "header-only": build_tar([regular(f"{TOP}/header.json", header_json(TOP))]),
    "bad-header-json": build_tar([regular(f"{TOP}/header.json", b'{"format_version": 1}')]),
}


@pytest.mark.reliability(
    "hostile input",
    "not an archive of ours: empty, random, a zip, a foreign tar, a future format ...",
    "CorruptArchiveError; nothing written",
)
@pytest.mark.parametrize("foreign", list(FOREIGN), ids=list(FOREIGN))
async def test_foreign_archive(foreign: str, tmp_path: Path) -> None:
    """Anything that is not a complete archive of ours raises CorruptArchiveError and writes
    nothing."""
    archive = tmp_path / "foreign.bin"
    archive.write_bytes(FOREIGN[foreign])
    target = tmp_path / "target"
    with pytest.raises(mb.CorruptArchiveError):
        await mb.restore(mb.FileArchive(path=archive), storage=mb.DirectoryStorage(path=target))
    assert not target.exists() or list(target.iterdir()) == []


async def test_missing_archive(s3: TemporarySeaweedS3, tmp_path: Path) -> None:
    """No file, no object: ArchiveReadError naming where it looked."""
    with pytest.raises(mb.ArchiveReadError, match="no archive"):
        await mb.restore(mb.FileArchive(path=tmp_path / "nope.tar.gz"))
    bucket = new_bucket(s3)
    with pytest.raises(mb.ArchiveReadError, match="no archive"):
        await mb.restore(mb.S3Archive(s3=s3.config(), bucket=bucket, key="nope.tar.gz"))
