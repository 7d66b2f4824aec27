"""Bytes -> async streams of them, cut at random places into chunks of awkward sizes."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterable


async def each(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` as an async iterator."""
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
