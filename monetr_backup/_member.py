"""The unit every source yields and the tar encoder consumes."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

__all__ = ["Member"]


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
