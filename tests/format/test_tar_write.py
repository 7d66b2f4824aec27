"""Unit tests of the pure stages: tar encoding, compression, dump part cutting, part sizes."""

from __future__ import annotations

import io
import os
import random
import tarfile
import threading
import zlib
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
import zstandard

from monetr_backup import Codec, StorageSourceError
from monetr_backup._postgres.pg_dump import BLOCK, read_part
from monetr_backup._s3.upload import part_size_for
from monetr_backup._units import S3_MAX_PART_SIZE, S3_MIN_PART_SIZE
from monetr_backup.stages import Member, compress, encode_tar

from support.processes import run

MIB = 1024 * 1024
GIB = 1024 * MIB


async def each(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def pieces(data: bytes, seed: int) -> list[bytes]:
    """``data`` cut at random places, with empty and one-byte chunks among them."""
    rng = random.Random(seed)
    out: list[bytes] = [b""]
    position = 0
    while position < len(data):
        size = rng.choice([0, 1, 7, 511, 512, 513, 4096, 65536, 300_000])
        out.append(data[position : position + size])
        position += size
    return out


def sample_data(size: int) -> bytes:
    """Half compressible text, half random bytes."""
    text = ("Café ☕ Ünïcødé 日本語 " * (size // 60 + 1)).encode()[: size // 2]
    return text + random.Random(size).randbytes(size - len(text))


# --- encode_tar ---------------------------------------------------------------------

SPEC = [
    ("monetr-backup-20240305T141502Z/header.json", b'{"a": 1}\n', 1709648102),
    ("monetr-backup-20240305T141502Z/dump/part-000001", sample_data(10240), 1709648102),
    ("monetr-backup-20240305T141502Z/storage/empty", b"", 0),
    ("monetr-backup-20240305T141502Z/storage/one", b"x", 1),
    ("monetr-backup-20240305T141502Z/storage/block", b"b" * 512, 2),
    ("monetr-backup-20240305T141502Z/storage/block+1", b"c" * 513, 3),
    ("monetr-backup-20240305T141502Z/storage/" + "long-" * 30 + "name", b"long", 4),
    ("monetr-backup-20240305T141502Z/storage/ünïcødé/日本語/📄 x.pdf", b"%PDF", 5),
    ("monetr-backup-20240305T141502Z/storage/" + "日本語" * 40, b"u" * 1000, 6),
]


async def encode(spec: list[tuple[str, bytes, int]]) -> bytes:
    async def members() -> AsyncIterator[Member]:
        for number, (name, data, mtime) in enumerate(spec):
            yield Member(name, len(data), each(pieces(data, number)), mtime=mtime)

    return b"".join([chunk async for chunk in encode_tar(members())])


def tarfile_reference(spec: list[tuple[str, bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mtime in spec:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = mtime
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.anyio
@pytest.mark.parametrize("count", [0, 1, len(SPEC)])
async def test_encode_tar_matches_tarfile_byte_for_byte(count: int) -> None:
    """Long and unicode names (PAX records), sizes around the 512-byte block, empty
    members, no members at all: the stream is exactly what ``tarfile`` itself writes."""
    spec = SPEC[:count]
    ours = await encode(spec)
    assert ours == tarfile_reference(spec)
    assert len(ours) % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(ours)) as tar:
        got = [(m.name, tar.extractfile(m).read(), m.mtime) for m in tar]  # type: ignore[union-attr]
    assert got == spec


@pytest.mark.anyio
async def test_encode_tar_gnu_tar_lists_it(tmp_path: Path) -> None:
    path = tmp_path / "x.tar"
    path.write_bytes(await encode(SPEC))
    proc = run(["env", "LC_ALL=C.UTF-8", "tar", "--quoting-style=literal", "-tf", str(path)])
    assert proc.stdout.decode().splitlines() == [name for name, _, _ in SPEC]


@pytest.mark.anyio
@pytest.mark.parametrize(("declared", "actual"), [(10, 11), (10, 9), (0, 1), (1, 0)])
async def test_encode_tar_refuses_a_member_of_the_wrong_size(declared: int, actual: int) -> None:
    async def members() -> AsyncIterator[Member]:
        yield Member("top/changed-while-read", declared, each([b"x" * actual]))

    with pytest.raises(StorageSourceError, match="top/changed-while-read"):
        async for _ in encode_tar(members()):
            pass


# --- compress -----------------------------------------------------------------------

DATA = sample_data(3 * MIB + 12345)


@pytest.mark.anyio
@pytest.mark.parametrize("codec", list(Codec))
@pytest.mark.parametrize("data", [DATA, b""], ids=["3MiB", "empty"])
async def test_compress_is_one_standard_stream(codec: Codec, data: bytes, tmp_path: Path) -> None:
    chunks = pieces(data, 1)
    out = [chunk async for chunk in compress(each(chunks), codec, batch_size=256 * 1024)]
    stream = b"".join(out)
    if codec is Codec.NONE:
        assert stream == data
        return
    path = tmp_path / "stream"
    path.write_bytes(stream)
    if codec is Codec.GZIP:
        # One gzip member, nothing after it; gzip(1) agrees.
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        assert inflate.decompress(stream) == data
        assert inflate.eof
        assert inflate.unused_data == b""
        run(["gzip", "-t", str(path)])
    else:
        # One zstd frame with a content checksum and no declared size; zstd(1) agrees.
        params = zstandard.get_frame_parameters(stream)
        assert params.has_checksum
        if data:  # (an empty frame declares its size, 0)
            assert params.content_size == zstandard.CONTENTSIZE_UNKNOWN
        unzstd = zstandard.ZstdDecompressor().decompressobj()
        assert unzstd.decompress(stream) == data
        assert unzstd.unused_data == b""
        run(["zstd", "-q", "-t", str(path)])
    # Small chunks are batched: about one output chunk per batch, not one per input chunk.
    assert len(out) <= len(data) // (256 * 1024) + 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("codec", "level"),
    [*((Codec.GZIP, level) for level in (0, 1, 3, 6, 9)), (Codec.ZSTD, 1), (Codec.ZSTD, 19)],
)
async def test_compress_levels(codec: Codec, level: int) -> None:
    """Every usual level works, including gzip 4-9 (beyond what ISA-L offers)."""
    stream = b"".join([c async for c in compress(each(pieces(DATA, 2)), codec, level)])
    if codec is Codec.GZIP:
        assert zlib.decompress(stream, 16 + zlib.MAX_WBITS) == DATA
    else:
        assert zstandard.ZstdDecompressor().decompressobj().decompress(stream) == DATA


# --- read_part ----------------------------------------------------------------------


@pytest.mark.parametrize("part_size", [1, 1000, BLOCK, 2 * BLOCK + 7])
def test_read_part_cuts_a_pipe_into_exact_parts(part_size: int) -> None:
    """Parts hold exactly ``part_size`` bytes whatever sizes the writer used (the last
    may be short), as blocks of at most BLOCK bytes; then an empty list at EOF."""
    data = random.Random(part_size).randbytes(3 * BLOCK + 12345 if part_size > 1 else 3000)
    read_fd, write_fd = os.pipe()

    def writer() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as out:
            for chunk in pieces(data, part_size):
                out.write(chunk)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        parts: list[list[bytes]] = []
        while part := read_part(read_fd, part_size):
            parts.append(part)
            if sum(map(len, part)) < part_size:
                break
        assert read_part(read_fd, part_size) == []
    finally:
        thread.join()
        os.close(read_fd)
    sizes = [sum(map(len, part)) for part in parts]
    assert all(size == part_size for size in sizes[:-1])
    assert 0 < sizes[-1] <= part_size
    assert all(0 < len(block) <= BLOCK for part in parts for block in part)
    assert b"".join(b"".join(part) for part in parts) == data


# --- part_size_for ------------------------------------------------------------------


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
