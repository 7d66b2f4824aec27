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
        return cls(name=name, size=len(data), chunks=_once(data), mtime=mtime)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data
