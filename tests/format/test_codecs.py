"""A tar stream -> one standard gzip member or zstd frame, at every usual level."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zstandard

from monetr_backup import Codec
from monetr_backup._format.compress import batch_size_for
from monetr_backup.stages import compress

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
