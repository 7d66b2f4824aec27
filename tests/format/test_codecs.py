"""A tar stream -> one standard gzip member or zstd frame, at every usual level."""

from __future__ import annotations

import io
import random
import tarfile
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zstandard

from monetr_backup import Codec
from monetr_backup._format.compress import batch_size_for, default_threads
from monetr_backup.stages import compress, open_tar_entries

from support.archives import gnu_tar_list
from support.chunks import each, pieces, sample_data
from support.processes import run
from support.sizes import MIB

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


@pytest.mark.anyio
@pytest.mark.parametrize("codec", list(Codec))
async def test_what_compress_hands_on_is_immutable_and_the_dump_blocks_are_unchanged(
    codec: Codec,
) -> None:
    """Dump blocks come as the bytearrays pg_dump's output was read into: compress reads
    them without changing them, and what it yields (to sinks and the age stage, which may
    hold it) is bytes, for the uncompressed codec too."""
    blocks = [bytearray(piece) for piece in pieces(DATA, 2) if piece]
    before = [bytes(block) for block in blocks]

    async def chunks() -> AsyncIterator[bytes | bytearray]:
        for block in blocks:
            yield block

    out = [chunk async for chunk in compress(chunks(), codec, batch_size=batch_size_for(MIB))]
    assert all(type(chunk) is bytes for chunk in out)
    assert [bytes(block) for block in blocks] == before
    stream = b"".join(out)
    if codec is Codec.GZIP:
        stream = zlib.decompress(stream, 16 + zlib.MAX_WBITS)
    elif codec is Codec.ZSTD:
        stream = zstandard.ZstdDecompressor().decompressobj().decompress(stream)
    assert stream == DATA


def test_compress_batches_are_a_dump_part_within_bounds() -> None:
    assert batch_size_for(2 * MIB) == 2 * MIB
    assert batch_size_for(1) == MIB
    assert batch_size_for(1 << 30) == 8 * MIB


@pytest.mark.anyio
@pytest.mark.parametrize(("codec", "level"), [(Codec.GZIP, 2), (Codec.GZIP, 6), (Codec.ZSTD, 3)])
@pytest.mark.parametrize("threads", [2, 3])
async def test_parallel_compression_is_one_standard_stream(
    codec: Codec, level: int, threads: int, tmp_path: Path
) -> None:
    """Batches compressed in threads make one gzip member (one zstd frame) that gzip(1),
    GNU tar, Python's tarfile and our own reader all read back, byte for byte."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for number, start in enumerate(range(0, len(DATA), 700_000)):
            content = DATA[start : start + 700_000]
            info = tarfile.TarInfo(f"member-{number}")
            info.size, info.mode = len(content), 0o600
            tar.addfile(info, io.BytesIO(content))
    plain = buffer.getvalue()
    out = [
        chunk
        async for chunk in compress(
            each(pieces(plain, 3)), codec, level, batch_size=256 * 1024, threads=threads
        )
    ]
    stream = b"".join(out)
    path = tmp_path / ("a.tar.gz" if codec is Codec.GZIP else "a.tar.zst")
    path.write_bytes(stream)
    if codec is Codec.GZIP:
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        assert inflate.decompress(stream) == plain
        assert inflate.eof
        assert inflate.unused_data == b""
        run(["gzip", "-t", str(path)])
        with tarfile.open(path, "r:gz") as tar:
            assert [m.name for m in tar.getmembers()] == [f"member-{n}" for n in range(5)]
    else:
        unzstd = zstandard.ZstdDecompressor().decompressobj()
        assert unzstd.decompress(stream) == plain
        assert unzstd.unused_data == b""
        run(["zstd", "-q", "-t", str(path)])
    assert [name for name, _ in gnu_tar_list(path, codec)] == [f"member-{n}" for n in range(5)]
    read = b""
    async with open_tar_entries(each([stream])) as entries:
        async for entry in entries:
            read += b"".join([chunk async for chunk in entry.chunks])
    assert read == DATA


@pytest.mark.anyio
async def test_each_parallel_gzip_batch_is_primed_with_the_window_before_it() -> None:
    """16 KiB of random bytes repeated: one stream stores them once; batches compressed
    apart would store them once per batch unless primed with the 32 KiB before them."""
    data = random.Random(7).randbytes(16 * 1024) * 40
    chunks = [data[i : i + 64 * 1024] for i in range(0, len(data), 64 * 1024)]
    single = b"".join([c async for c in compress(each(chunks), Codec.GZIP)])
    parallel = b"".join(
        [c async for c in compress(each(chunks), Codec.GZIP, batch_size=128 * 1024, threads=2)]
    )
    assert zlib.decompress(parallel, 16 + zlib.MAX_WBITS) == data
    assert len(parallel) < len(single) * 1.1


def test_the_default_is_half_the_cores_at_most_four() -> None:
    assert [default_threads(n) for n in (None, 1, 2, 3, 4, 8, 64)][1:] == [1, 1, 1, 2, 4, 4]
    assert 1 <= default_threads() <= 4
