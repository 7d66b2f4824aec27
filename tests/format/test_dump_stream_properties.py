"""Arbitrary dump parts -> an archive -> dump_chunks: the same stream, or ChecksumError.

The dump comes from a DumpSource of the test's own (no pg_dump), so hypothesis can draw
the data, the part size, the blocks each part is made of and the chunks the archive is
read back in; then one byte of one part is flipped inside the archive.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import monetr_backup as mb
from monetr_backup.stages import (
    ArchiveReader,
    DumpPart,
    archive_members,
    encode_tar,
    open_tar_entries,
)

from support.archives import TOP
from support.chunks import each
from support.properties import bounded, chunk_sizes, cut, seeded_bytes


class FakeDump:
    """A complete dump of ``data`` in parts of ``part_size``, each part cut into blocks
    of ``block_sizes`` (a :class:`~monetr_backup.stages.DumpSource`, as pg_dump's is)."""

    dump_format = mb.DumpFormat.CUSTOM
    version = "pg_dump (PostgreSQL) 15.0"
    server_version = "15.0"

    def __init__(self, data: bytes, part_size: int, block_sizes: list[int]) -> None:
        self.data = data
        self.part_size = part_size
        self.block_sizes = block_sizes

    @property
    def parts(self) -> AsyncIterator[DumpPart]:
        return self._parts()

    async def _parts(self) -> AsyncIterator[DumpPart]:
        for start in range(0, len(self.data), self.part_size):
            part = self.data[start : start + self.part_size]
            blocks = [block for block in cut(part, self.block_sizes) if block]
            yield DumpPart(blocks, hashlib.sha256(part).hexdigest())

    async def wait(self) -> None:
        return None


def _header(part_size: int) -> mb.Header:
    return mb.Header(
        created_at=datetime(2024, 3, 5, 14, 15, 2, tzinfo=UTC),
        library_version=mb.__version__,
        top_folder=TOP,
        database="monetr",
        dump_format=mb.DumpFormat.CUSTOM,
        dump_part_size=part_size,
        storage=None,
        codec=mb.Codec.NONE,
    )


async def _archive(dump: FakeDump) -> bytes:
    members = archive_members(_header(dump.part_size), dump, None)
    return b"".join([chunk async for chunk in encode_tar(members)])


def _part_offsets(tar: bytes) -> list[int]:
    """Where each dump part's content starts in the tar stream, in order."""
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
        return [info.offset_data for info in archive if "/dump/part-" in info.name]


async def _dump_stream(archive: bytes, read_sizes: list[int]) -> tuple[bytes, BaseException | None]:
    """The dump as the reader delivers it, and what it raised at its end (if anything);
    with no error, the rest of the archive must check out against its manifest too."""
    received: list[bytes] = []
    async with open_tar_entries(each(cut(archive, read_sizes))) as entries:
        reader = ArchiveReader(entries, strict=True)
        await reader.read_header()
        try:
            async for chunk in reader.dump_chunks():
                received.append(chunk)
        except mb.CorruptArchiveError as exc:
            return b"".join(received), exc
        assert [item async for item in reader.objects()] == []
        await reader.finish()
    return b"".join(received), None


@st.composite
def dumps(draw: st.DrawFn) -> FakeDump:
    """Up to 64 parts of 1 byte to 100 KB, in blocks of any sizes."""
    part_size = draw(st.one_of(st.integers(1, 600), st.integers(1, 100_000)))
    longest = min(400_000, 64 * part_size)
    size = draw(st.one_of(st.integers(0, longest), st.integers(longest // 2, longest)))
    data = seeded_bytes(size, draw(st.integers(0, 2**32)))
    return FakeDump(data, part_size, draw(chunk_sizes(largest=2 * part_size)))


@bounded(max_examples=80)
@given(dump=dumps(), read_sizes=chunk_sizes())
def test_dump_chunks_is_the_dump(dump: FakeDump, read_sizes: list[int]) -> None:
    """Whatever the part size, the blocks and the chunks the archive comes in, the
    chained stream of the parts is the dump, and the archive checks out."""
    archive = anyio.run(_archive, dump)
    assert len(_part_offsets(archive)) == -(-len(dump.data) // dump.part_size)
    assert anyio.run(_dump_stream, archive, read_sizes) == (dump.data, None)


FLIPS = 80


@pytest.mark.reliability(
    "hostile input",
    f"one byte of one dump part flipped, in {FLIPS} drawn dumps (data, part size, byte, chunks)",
    "ChecksumError at the end of the dump, naming the dump summary",
)
@bounded(max_examples=FLIPS)
@given(
    dump=dumps(),
    where=st.floats(0, 1, exclude_max=True),
    flip=st.integers(1, 255),
    read_sizes=chunk_sizes(),
)
def test_a_flipped_byte_in_a_part_fails_the_dump_at_its_end(
    dump: FakeDump, where: float, flip: int, read_sizes: list[int]
) -> None:
    """A single byte changed in any part (the tar stays well formed: sizes and headers
    hold) is delivered like any other, and the stream ends in ChecksumError instead of
    returning: a consumer that holds back its commit until the end never commits it."""
    if not dump.data:
        dump = FakeDump(b"\x00", dump.part_size, dump.block_sizes)
    archive = bytearray(anyio.run(_archive, dump))
    index = int(where * len(dump.data))
    part, offset = divmod(index, dump.part_size)
    archive[_part_offsets(bytes(archive))[part] + offset] ^= flip
    damaged = bytearray(dump.data)
    damaged[index] ^= flip

    received, error = anyio.run(_dump_stream, bytes(archive), read_sizes)
    assert isinstance(error, mb.ChecksumError), error
    assert error.member == f"{TOP}/dump/summary.json"
    assert "the digest of the dump parts' SHA-256" in str(error)
    assert received == damaged
