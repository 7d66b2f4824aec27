"""An archive sink -> the same sink, counting and hashing (SHA-256) every byte written to it."""

from __future__ import annotations

import hashlib

import anyio.to_thread

from .._locations import FileArchive, S3Archive
from .._protocols import ArchiveSink

__all__ = ["OFFLOAD_BYTES", "HashingSink", "hashed"]

#: Chunks at least this long are hashed in a worker thread (hashlib releases the GIL),
#: shorter ones on the event loop. Measured here (SHA-NI, ~1.56 GB/s; benchmarks/
#: cpu_costs.py: 0.18 s of one core per GB of dump with the default codec): a compressed
#: chunk (~300 KB: 1 MiB batches, 3.5x) takes ~0.3 ms inline, while the thread hop made
#: a GiB of such chunks ~35% slower (1.47 s against 1.09 s); from 1 MiB on (Codec.NONE's
#: large pieces) a thread costs no more and keeps the loop free for the upload's tasks.
OFFLOAD_BYTES = 1024 * 1024


class HashingSink:
    """Passes every write on to ``sink`` after adding it to a SHA-256 and a byte count.

    The bytes hashed are exactly those handed to the sink, in order: what the file or
    object holds once committed. A write the sink refused is counted all the same, but
    then the backup fails and no entry is ever written from these figures.
    """

    def __init__(self, sink: ArchiveSink) -> None:
        self.sink = sink
        self._hash = hashlib.sha256()
        self.size = 0

    async def write(self, data: bytes) -> None:
        """Hash ``data``, then write it to the sink."""
        if len(data) >= OFFLOAD_BYTES:
            await anyio.to_thread.run_sync(self._hash.update, data)
        else:
            self._hash.update(data)
        self.size += len(data)
        await self.sink.write(data)

    async def commit(self) -> None:
        """Commit the sink."""
        await self.sink.commit()

    async def abort(self) -> None:
        """Abort the sink."""
        await self.sink.abort()

    def hexdigest(self) -> str:
        """The SHA-256 of everything written so far."""
        return self._hash.hexdigest()


def hashed(archive: object, sink: ArchiveSink) -> ArchiveSink:
    """``sink`` wrapped in a :class:`HashingSink` when ``archive`` is a location that gets
    a catalog entry (a file or an S3 object); a sink of the caller's as it is."""
    return HashingSink(sink) if isinstance(archive, FileArchive | S3Archive) else sink
