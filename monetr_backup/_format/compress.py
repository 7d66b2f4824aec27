"""Tar bytes -> compressed bytes (gzip, zstd or none), off the event loop.

Small chunks (tar headers, padding) are batched so one worker-thread hop carries at
least ``batch_size`` bytes; ISA-L and zstandard release the GIL while they work, so
compression overlaps with reading pg_dump and uploading.
"""

from __future__ import annotations

import os
import zlib
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol, cast

import anyio.to_thread
import zstandard
from isal import isal_zlib

from .._config import Codec
from .._threads import StageThread
from .._units import MIB

__all__ = ["DEFAULT_LEVELS", "batch_size_for", "compress", "default_threads"]

#: Defaults picked by measurement on a monetr-like dump (benchmarks/cpu_costs.py): ISA-L
#: levels 1 and 2 run within 10% of each other (350-390 MB/s on one core), but level 2
#: writes 3.46x smaller output against 3.34x (level 3 halves the speed for 3.56x), which
#: is also less for the uploader and the server to handle.
DEFAULT_LEVELS: dict[Codec, int] = {Codec.GZIP: 2, Codec.ZSTD: 3, Codec.NONE: 0}

_GZIP_WBITS = 16 + isal_zlib.MAX_WBITS
#: The most uncompressed bytes one batch holds when it is sized to a dump part (see
#: :func:`batch_size_for`): the batch is already in memory, its compressed copy is not.
MAX_BATCH = 8 * MIB


#: gzip's header as the parallel writer gives it (RFC 1952): deflate, no flags, no mtime,
#: OS unknown. The trailer is the CRC-32 and length of the whole content.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
#: Deflate's window: each batch is primed with this much of the input before it.
_WINDOW = 32 * 1024
#: A final, empty, fixed-Huffman deflate block: ends a stream of sync-flushed batches.
_FINAL_BLOCK = b"\x03\x00"


def default_threads(cpu_count: int | None = None) -> int:
    """Compression threads for a machine of ``cpu_count`` cores (default: this one's).

    Half the cores, at most 4: pg_dump's server and the upload need the rest. On 2 cores
    that is 1, a single stream as before: there the whole machine is busy already
    (benchmarks/RESULTS.md, issue 12), and a second thread only adds the cost of splitting.
    """
    cores = os.cpu_count() if cpu_count is None else cpu_count
    return max(1, min(4, (cores or 1) // 2))


def batch_size_for(part_size: int) -> int:
    """The batch for dump parts of ``part_size``: one thread hop per part, as the reader makes."""
    return max(MIB, min(part_size, MAX_BATCH))


class _Compressor(Protocol):
    def compress(self, data: bytes | bytearray, /) -> bytes: ...
    def flush(self) -> bytes: ...


def _compressor(codec: Codec, level: int, threads: int = 1) -> _Compressor | None:
    if codec is Codec.GZIP:
        if level > isal_zlib.ISAL_BEST_COMPRESSION:
            # ISA-L stops at level 3; gzip's usual 4-9 come from zlib, slower but as asked.
            return zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)
        return isal_zlib.compressobj(level, isal_zlib.DEFLATED, _GZIP_WBITS)
    if codec is Codec.ZSTD:
        workers = threads if threads > 1 else 0
        return zstandard.ZstdCompressor(
            level=level, write_checksum=True, threads=workers
        ).compressobj()
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
    threads: int = 1,
) -> AsyncIterator[bytes]:
    """Yield ``chunks`` compressed with ``codec`` as one stream (a ``.gz``/``.zst`` file).

    With ``threads`` > 1, up to that many batches compress at once: gzip as independent
    deflate runs (each primed with the 32 KiB before it, so the ratio barely changes)
    joined into one standard gzip member with the CRC-32 combined, as pigz writes it;
    zstd with its own worker threads.

    What comes out is ``bytes``: uncompressed, a ``bytearray`` chunk (a dump block) is
    copied once here, so sinks and the age stage only ever see immutable chunks.
    """
    level = DEFAULT_LEVELS[codec] if level is None else level
    if codec is Codec.GZIP and threads > 1:
        async for out in _parallel_gzip(chunks, level, batch_size, threads):
            yield out
        return
    compressor = _compressor(codec, level, threads)
    if compressor is None:
        async for chunk in chunks:
            yield bytes(chunk) if isinstance(chunk, bytearray) else chunk
        return

    def run(
        batch: list[bytes | bytearray], compress: Callable[[bytes | bytearray], bytes]
    ) -> bytes:
        return b"".join([compress(piece) for piece in batch])

    # One thread compresses every batch: its output buffers stay in one malloc arena.
    worker = StageThread("monetr-backup-compress")
    try:
        async for batch in rebatch(chunks, batch_size):
            out = await worker.run(run, batch, compressor.compress)
            if out:
                yield out
        # In a thread: with worker threads, zstd compresses what is queued during the flush.
        tail = await worker.run(compressor.flush)
        if tail:
            yield tail
    finally:
        worker.close()


def _raw_deflate(level: int, window: bytes) -> _Compressor:
    if level > isal_zlib.ISAL_BEST_COMPRESSION:
        if window:
            return zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, zdict=window)
        return zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    if window:
        return isal_zlib.compressobj(level, isal_zlib.DEFLATED, -isal_zlib.MAX_WBITS, zdict=window)
    return isal_zlib.compressobj(level, isal_zlib.DEFLATED, -isal_zlib.MAX_WBITS)


def _deflate_batch(
    level: int, window: bytes, batch: Sequence[bytes | bytearray]
) -> tuple[bytes, int, int]:
    """Worker thread: the batch as raw deflate blocks ending on a byte boundary (a sync
    flush, not the final block), its CRC-32 and its length."""
    compressor = _raw_deflate(level, window)
    out = [compressor.compress(piece) for piece in batch]
    flush = cast(Callable[[int], bytes], compressor.flush)
    out.append(flush(zlib.Z_SYNC_FLUSH))
    crc = 0
    for piece in batch:
        crc = isal_zlib.crc32(piece, crc)
    return b"".join(out), crc, sum(map(len, batch))


def _tail(batch: Sequence[bytes | bytearray]) -> bytes:
    """The last ``_WINDOW`` bytes of the batch: the dictionary of the next one."""
    pieces: list[bytes | bytearray] = []
    size = 0
    for piece in reversed(batch):
        pieces.append(piece)
        size += len(piece)
        if size >= _WINDOW:
            break
    return b"".join(reversed(pieces))[-_WINDOW:]


async def _parallel_gzip(
    chunks: AsyncIterable[bytes | bytearray], level: int, batch_size: int, threads: int
) -> AsyncIterator[bytes]:
    """One gzip member of batches deflated in ``threads`` threads, in order."""
    executor = ThreadPoolExecutor(threads, thread_name_prefix="monetr-backup-gzip")
    running: deque[Future[tuple[bytes, int, int]]] = deque()
    crc = length = 0
    window = b""

    async def oldest() -> bytes:
        nonlocal crc, length
        out, batch_crc, batch_length = await anyio.to_thread.run_sync(running.popleft().result)
        crc = isal_zlib.crc32_combine(crc, batch_crc, batch_length)
        length += batch_length
        return out

    try:
        yield _GZIP_HEADER
        async for batch in rebatch(chunks, batch_size):
            running.append(executor.submit(_deflate_batch, level, window, batch))
            window = _tail(batch)
            if len(running) > threads:
                yield await oldest()
        while running:
            yield await oldest()
        yield _FINAL_BLOCK + crc.to_bytes(4, "little") + (length & 0xFFFFFFFF).to_bytes(4, "little")
    finally:
        # Leaving early: batches not started are dropped, running ones end on their own.
        executor.shutdown(wait=False, cancel_futures=True)
