"""What the stages exchange: members on the way in, sinks and targets on the way out.

Everything that writes for an operation speaks one vocabulary: ``write`` as often as
needed, then exactly one of ``commit`` (make it visible) or ``abort`` (leave nothing).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["ArchiveSink", "Member", "Outcome"]


@dataclass(frozen=True, slots=True)
class Member:
    """One archive member: a name, its exact size, and its bytes as a stream.

    ``size`` must be known before the first byte is written (a tar header carries it),
    and ``chunks`` must produce exactly ``size`` bytes; the encoder checks both.
    """

    name: str
    size: int
    chunks: AsyncIterable[bytes]
    #: Modification time (seconds since the epoch) recorded in the tar header.
    mtime: float = 0.0

    @classmethod
    def from_bytes(cls, name: str, data: bytes, *, mtime: float = 0.0) -> Member:
        """A member whose content is already in memory (small documents, dump parts)."""
        return cls.from_chunks(name, [data], mtime=mtime)

    @classmethod
    def from_chunks(cls, name: str, chunks: list[bytes], *, mtime: float = 0.0) -> Member:
        """A member whose content is in memory as a list of chunks (a dump part)."""
        return cls(name=name, size=sum(map(len, chunks)), chunks=_each(chunks), mtime=mtime)


async def _each(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        if chunk:
            yield chunk


@runtime_checkable
class ArchiveSink(Protocol):
    """An async byte sink with all-or-nothing semantics.

    :func:`monetr_backup.backup` calls :meth:`write` for every chunk of the compressed
    archive, then :meth:`commit` once every stage has succeeded. On any failure or
    cancellation it calls :meth:`abort` instead (shielded from cancellation), which must
    leave nothing visible at the destination. Bring your own to send archives anywhere.
    """

    async def write(self, data: bytes) -> None:
        """Accept the next bytes of the archive (may wait: that is back-pressure)."""

    async def commit(self) -> None:
        """Make the complete archive visible at the destination."""

    async def abort(self) -> None:
        """Discard everything written so far; safe to call more than once."""


@dataclass(slots=True)
class Outcome:
    """What happened to each key: written, skipped, or in conflict."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
