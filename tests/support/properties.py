"""Hypothesis settings and strategies -> property tests that run bounded, the same everywhere."""

from __future__ import annotations

import math
import random
from itertools import cycle

from hypothesis import settings
from hypothesis import strategies as st


def bounded(max_examples: int) -> settings:
    """At most ``max_examples`` examples, no deadline (the machine is shared), and the
    same examples on every run: derandomized, with no example database, so CI tries
    exactly what a developer's run tried and a failure reproduces anywhere."""
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None)


def cut(data: bytes, sizes: list[int], most: int = 300) -> list[bytes]:
    """``data`` cut into consecutive chunks of ``sizes``, empty ones included.

    The first chunks have exactly ``sizes``; after them the sizes repeat, scaled up as
    needed so that there are about ``most`` chunks at most (a 1 MB stream in one-byte
    chunks would take a million thread hops to read). ``sizes`` must hold a positive size.
    """
    assert any(sizes), sizes
    chunks: list[bytes] = []
    position = 0
    for size in sizes:
        chunks.append(data[position : position + size])
        position += size
    rounds = (len(data) - position) / sum(sizes) if position < len(data) else 0
    scale = max(1, math.ceil(rounds * len(sizes) / most))
    for size in cycle(sizes):
        if position >= len(data):
            break
        chunks.append(data[position : position + size * scale])
        position += size * scale
    return chunks


def seeded_bytes(size: int, seed: int) -> bytes:
    """``size`` bytes from ``seed``: random, or runs of one byte (long repeats compress
    to almost nothing, which matters to the codecs' framing)."""
    rng = random.Random(seed)
    if seed % 2:
        return rng.randbytes(size)
    out = bytearray()
    while len(out) < size:
        out += bytes([rng.randrange(256)]) * rng.randrange(1, 5000)
    return bytes(out[:size])


def chunk_sizes(largest: int = 70_000) -> st.SearchStrategy[list[int]]:
    """Sizes to cut a stream by: empty, tiny (fewer bytes than a codec's magic number)
    and large chunks, ending with a positive one so the cutting always progresses."""
    size = st.one_of(st.integers(0, 8), st.integers(0, largest))
    return st.builds(
        lambda sizes, last: [*sizes, last], st.lists(size, max_size=8), st.integers(1, largest)
    )


def contents(largest: int = 300_000) -> st.SearchStrategy[bytes]:
    """Member contents: small drawn bytes, sizes around the 512-byte tar block, and
    seeded data up to ``largest`` bytes (drawing that many bytes would exhaust hypothesis)."""
    near_block = st.builds(
        lambda blocks, delta: max(0, blocks * 512 + delta), st.integers(0, 600), st.integers(-1, 1)
    )
    sized = st.one_of(near_block, st.integers(0, largest))
    return st.one_of(
        st.binary(max_size=1100), st.builds(seeded_bytes, sized, st.integers(0, 2**32))
    )


_component = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="/\x00"), min_size=1, max_size=40
).filter(lambda part: part not in {".", ".."})
_long_component = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/"),
    min_size=90,
    max_size=260,
).filter(lambda part: part not in {".", ".."})


def member_names() -> st.SearchStrategy[str]:
    """Safe relative paths (no empty, ``.`` or ``..`` component, no NUL), any Unicode
    but surrogates, long ones among them: what needs PAX records and what fits ustar."""
    return st.lists(st.one_of(_component, _long_component), min_size=1, max_size=6).map("/".join)
