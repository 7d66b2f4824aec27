"""Tar bytes -> compressed bytes (gzip, zstd or none), off the event loop.

Small chunks (tar headers, padding) are batched so one worker-thread hop carries at
least ``batch_size`` bytes; ISA-L and zstandard release the GIL while they work, so
compression overlaps with reading pg_dump and uploading.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Protocol

import anyio.to_thread
import zstandard
from isal import isal_zlib

from .._config import Codec
from .._units import MIB

__all__ = ["DEFAULT_LEVELS", "batch_size_for", "compress"]

#: Defaults picked by measurement on a monetr-like dump (benchmarks/cpu_costs.py): ISA-L
#: levels 1 and 2 run within 10% of each other (350-390 MB/s on one core), but level 2
#: writes 3.46x smaller output against 3.34x (level 3 halves the speed for 3.56x), which
#: is also less for the uploader and the server to handle.
DEFAULT_LEVELS: dict[Codec, int] = {Codec.GZIP: 2, Codec.ZSTD: 3, Codec.NONE: 0}

_GZIP_WBITS = 16 + isal_zlib.MAX_WBITS
#: The most uncompressed bytes one batch holds when it is sized to a dump part (see
#: :func:`batch_size_for`): the batch is already in memory, its compressed copy is not.
MAX_BATCH = 8 * MIB


def batch_size_for(part_size: int) -> int:
    """The batch for dump parts of ``part_size``: one thread hop per part, as the reader makes."""
    return max(MIB, min(part_size, MAX_BATCH))


class _Compressor(Protocol):
    def compress(self, data: bytes | bytearray, /) -> bytes: ...
    def flush(self) -> bytes: ...


def _compressor(codec: Codec, level: int) -> _Compressor | None:
    if codec is Codec.GZIP:
        if level > isal_zlib.ISAL_BEST_COMPRESSION:
            # ISA-L stops at level 3; gzip's usual 4-9 come from zlib, slower but as asked.
            return zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)
        return isal_zlib.compressobj(level, isal_zlib.DEFLATED, _GZIP_WBITS)
    if codec is Codec.ZSTD:
        return zstandard.ZstdCompressor(level=level, write_checksum=True).compressobj()
    return None


async def rebatch(
    chunks: AsyncIterable[bytes | bytearray], batch_size: int
) -> AsyncIterator[list[bytes | bytearray]]:
    """Group ``chunks`` into lists of at least ``batch_size`` bytes (the last may be less)."""
    pending: list[bytes | bytearray] = []
    size = 0
    async for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= batch_size:
            yield pending
            pending, size = [], 0
    if pending:
        yield pending


async def compress(
    chunks: AsyncIterable[bytes | bytearray],
    codec: Codec = Codec.GZIP,
    level: int | None = None,
    *,
    batch_size: int = MIB,
) -> AsyncIterator[bytes]:
    """Yield ``chunks`` compressed with ``codec`` as one stream (a ``.gz``/``.zst`` file).

    What comes out is ``bytes``: uncompressed, a ``bytearray`` chunk (a dump block) is
    copied once here, so sinks and the age stage only ever see immutable chunks.
    """
    compressor = _compressor(codec, DEFAULT_LEVELS[codec] if level is None else level)
    if compressor is None:
        async for chunk in chunks:
            yield bytes(chunk) if isinstance(chunk, bytearray) else chunk
        return

    def run(
        batch: list[bytes | bytearray], compress: Callable[[bytes | bytearray], bytes]
    ) -> bytes:
        return b"".join([compress(piece) for piece in batch])

    async for batch in rebatch(chunks, batch_size):
        out = await anyio.to_thread.run_sync(run, batch, compressor.compress)
        if out:
            yield out
    tail = compressor.flush()
    if tail:
        yield tail
