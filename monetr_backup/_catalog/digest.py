"""An archive sink -> the same sink, counting and hashing (SHA-256) every byte written to it."""

from __future__ import annotations

from .._hashing import OffloadedSha256
from .._locations import FileArchive, S3Archive
from .._protocols import ArchiveSink

__all__ = ["HashingSink", "hashed"]


class HashingSink:
    """Passes every write on to ``sink`` after adding it to a SHA-256 and a byte count.

    The bytes hashed are exactly those handed to the sink, in order: what the file or
    object holds once committed. A write the sink refused is counted all the same, but
    then the backup fails and no entry is ever written from these figures.
    """

    def __init__(self, sink: ArchiveSink) -> None:
        self.sink = sink
        self._hash = OffloadedSha256()
        self.size = 0

    async def write(self, data: bytes) -> None:
        """Hash ``data``, then write it to the sink."""
        await self._hash.update(data)
        self.size += len(data)
        await self.sink.write(data)

    async def commit(self) -> None:
        """Commit the sink."""
        await self.sink.commit()

    async def abort(self) -> None:
        """Abort the sink."""
        await self.sink.abort()

    async def hexdigest(self) -> str:
        """The SHA-256 of everything written so far."""
        return await self._hash.hexdigest()


def hashed(archive: object, sink: ArchiveSink) -> ArchiveSink:
    """``sink`` wrapped in a :class:`HashingSink` when ``archive`` is a location that gets
    a catalog entry (a file or an S3 object); a sink of the caller's as it is."""
    return HashingSink(sink) if isinstance(archive, FileArchive | S3Archive) else sink
