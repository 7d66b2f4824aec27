"""Any bytes, written to a pipe in any sizes -> read_part's parts: exact sizes, nothing lost."""

from __future__ import annotations

import os
import threading

from hypothesis import given
from hypothesis import strategies as st

from monetr_backup._postgres.pg_dump import BLOCK, read_part

from support.properties import bounded, seeded_bytes

#: About this many writes at most per example: each is a syscall and a thread switch.
MOST_WRITES = 2000
#: About this many parts at most per example.
MOST_PARTS = 300


@st.composite
def pipe_cases(draw: st.DrawFn) -> tuple[bytes, list[int], int]:
    """Data, the sizes it is written in (repeated), and a part size; tiny writes and
    tiny parts come with less data, so every example stays quick."""
    writes = draw(
        st.lists(
            st.one_of(st.integers(1, 600), st.integers(1, 2 * BLOCK + 5)), min_size=1, max_size=8
        )
    )
    part_size = draw(
        st.one_of(
            st.integers(1, 5000),
            st.integers(BLOCK - 2, BLOCK + 2),
            st.integers(2 * BLOCK - 1, 2 * BLOCK + 1),
            st.integers(1, 3 * BLOCK),
        )
    )
    average_write = sum(writes) // len(writes)
    longest = min(3 * BLOCK + 1000, MOST_PARTS * part_size, MOST_WRITES * average_write)
    size = draw(
        st.one_of(
            st.integers(0, longest),
            # Hypothesis favours small numbers; the long streams are where blocks fill.
            st.integers(longest // 2, longest),
            # Exactly a whole number of parts, and one byte either side of it.
            st.builds(
                lambda parts, delta: max(0, parts * part_size + delta),
                st.integers(0, max(1, longest // part_size)),
                st.integers(-1, 1),
            ),
        )
    )
    return seeded_bytes(size, draw(st.integers(0, 2**32))), writes, part_size


def _write_all(fd: int, data: bytes, writes: list[int]) -> None:
    with os.fdopen(fd, "wb", buffering=0) as out:
        position = 0
        while position < len(data):
            for size in writes:
                piece = memoryview(data)[position : position + size]
                while piece:
                    piece = piece[out.write(piece) or 0 :]
                position += size


@bounded(max_examples=200)
@given(pipe_cases())
def test_read_part_cuts_any_pipe_stream_into_exact_parts(
    case: tuple[bytes, list[int], int],
) -> None:
    """Whatever sizes pg_dump writes in and whatever the part size: the parts
    concatenate to the data, every part but the last holds exactly ``part_size`` bytes
    (the last at least one), every block is a full BLOCK but a part's last, and once the
    data is out the reader gets an empty list (the end of the dump)."""
    data, writes, part_size = case
    read_fd, write_fd = os.pipe()
    writer = threading.Thread(target=_write_all, args=(write_fd, data, writes))
    writer.start()
    try:
        parts: list[list[bytes | bytearray]] = []
        while part := read_part(read_fd, part_size):
            parts.append(part)
        assert read_part(read_fd, part_size) == []
    finally:
        writer.join()
        os.close(read_fd)

    assert b"".join(b"".join(part) for part in parts) == data
    sizes = [sum(map(len, part)) for part in parts]
    assert all(size == part_size for size in sizes[:-1])
    assert len(parts) == -(-len(data) // part_size)
    if parts:
        assert 0 < sizes[-1] <= part_size
    for part in parts:
        assert all(len(block) == BLOCK for block in part[:-1])
        assert 0 < len(part[-1]) <= BLOCK
