"""An archive's bytes -> its members; anything after the end of the archive is damage."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

import monetr_backup as mb
from monetr_backup.stages import open_tar_entries

from support.archives import regular
from support.targets import tree

pytestmark = pytest.mark.anyio


async def test_data_after_the_end_of_the_archive_is_damage(tmp_path: Path) -> None:
    """A second gzip member appended after the archive is reported, not ignored."""
    root = tmp_path / "storage"
    root.mkdir()
    (root / "f").write_bytes(b"content")
    archive = tmp_path / "a.tar.gz"
    await mb.backup(mb.FileArchive(path=archive), storage=mb.DirectoryStorage(path=root))
    assert (await mb.verify(mb.FileArchive(path=archive))).ok

    appended = tmp_path / "appended.tar.gz"
    appended.write_bytes(archive.read_bytes() + gzip.compress(b"more tar data" * 100))
    report = await mb.verify(mb.FileArchive(path=appended))
    assert not report.ok
    assert "data after the end of the" in report.problems[0].message
    with pytest.raises(mb.CorruptArchiveError, match="after the end"):
        await mb.restore(
            mb.FileArchive(path=appended), storage=mb.DirectoryStorage(path=tmp_path / "t")
        )
    assert tree(tmp_path / "t") == {}


@pytest.mark.reliability(
    "fault",
    "the archive's bytes stop coming (a stalled download) after the first member",
    "the first member and its content reach the consumer before the stall; leaving then "
    "ends the reader",
)
async def test_a_member_is_handed_on_before_the_reader_waits_for_more_bytes() -> None:
    """The reader sends the events it batched before it blocks on input: a member whose
    bytes have all arrived is not held back until more of the archive comes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("first", "second"):
            info, _ = regular(name, name.encode() * 100)
            tar.addfile(info, io.BytesIO(name.encode() * 100))
    whole = buffer.getvalue()
    second = whole.index(b"second")  # inside the second member's header block

    async def stalled() -> AsyncIterator[bytes]:
        yield whole[:second]
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with open_tar_entries(stalled()) as entries:
            entry = await anext(entries)
            assert entry.name == "first"
            assert b"".join([chunk async for chunk in entry.chunks]) == b"first" * 100
            assert entry.sha256 == hashlib.sha256(b"first" * 100).hexdigest()


def _sparse_header_with_extensions(count: int) -> bytes:
    """An old-GNU sparse header (type ``S``) announcing ``count`` extension blocks."""
    info = tarfile.TarInfo("monetr-backup-20240305T141502Z/header.json")
    block = bytearray(info.tobuf(tarfile.GNU_FORMAT)[:512])
    block[156] = ord("S")
    block[482] = 1  # isextended: another block of the sparse map follows
    block[148:156] = b"        "
    block[148:156] = b"%06o\0 " % sum(block)
    # 21 map entries (offset, size: 12 octal bytes each) per block, none of them zero, so
    # the stdlib's parser keeps every one.
    extension = bytearray(b"00000000001\0" * 42 + bytes(8))
    extension[504] = 1
    return bytes(block) + bytes(extension) * count + bytes(512) + bytes(1024)


def _long_name_chain(count: int) -> bytes:
    """``count`` GNU long-name headers in a row, each naming the next header."""
    out = b""
    for _ in range(count):
        info = tarfile.TarInfo("././@LongLink")
        info.type = tarfile.GNUTYPE_LONGNAME
        info.size = 11
        out += info.tobuf(tarfile.GNU_FORMAT)[:512] + b"x" * 10 + bytes(502)
    return out + bytes(1024)


@pytest.mark.reliability(
    "hostile input",
    "a sparse header with 100,000 extension blocks; a chain of 5,000 GNU long-name headers",
    "CorruptArchiveError, read in bounded memory (the stdlib would expand or recurse)",
)
@pytest.mark.parametrize("case", ["sparse-extensions", "long-name-chain"])
async def test_header_forms_the_stdlib_would_expand_are_refused(case: str, tmp_path: Path) -> None:
    """Refused as corrupt, not an IndexError or RecursionError out of tarfile's parser,
    and without the sparse map's blocks piling up in memory first."""
    data = _sparse_header_with_extensions(100_000) if case == "sparse-extensions" else None
    path = tmp_path / "hostile.tar.gz"
    path.write_bytes(gzip.compress(data or _long_name_chain(5000), 1))
    tracemalloc.start()
    try:
        report = await mb.verify(mb.FileArchive(path=path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not report.ok
    assert report.problems[0].kind == "CorruptArchiveError"
    assert peak < 32 * 1024 * 1024
    with pytest.raises(mb.CorruptArchiveError):
        await mb.restore(
            mb.FileArchive(path=path), storage=mb.DirectoryStorage(path=tmp_path / "t")
        )
    assert not (tmp_path / "t").exists()
