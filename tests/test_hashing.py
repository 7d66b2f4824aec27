"""Chunks -> their SHA-256 off the event loop: the same digest as hashlib's, in order."""

from __future__ import annotations

import hashlib
import threading

import pytest

from monetr_backup._hashing import BATCH_BYTES, INLINE_BYTES, OffloadedSha256

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "sizes",
    [
        [],
        [0, 1, 5],
        [INLINE_BYTES - 1],
        [INLINE_BYTES],
        [BATCH_BYTES - 1, 1, 7],
        [3 * BATCH_BYTES + 7, 0, INLINE_BYTES * 3, 11],
    ],
)
async def test_the_digest_is_hashlibs_over_the_chunks_in_order(sizes: list[int]) -> None:
    chunks = [bytes([n % 251 + 1]) * size for n, size in enumerate(sizes)]
    digest = OffloadedSha256()
    for chunk in chunks:
        await digest.update(chunk)
    assert await digest.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()


async def test_big_batches_are_hashed_in_a_worker_thread_small_ends_inline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the module promises the event loop: a batch never hashes on it, and a small
    object never costs a thread hop."""
    threads: list[bool] = []
    original = OffloadedSha256._update

    def spy(self: OffloadedSha256, chunks: list[bytes | bytearray]) -> None:
        threads.append(threading.current_thread() is not threading.main_thread())
        original(self, chunks)

    monkeypatch.setattr(OffloadedSha256, "_update", spy)
    digest = OffloadedSha256()
    await digest.update(bytes(BATCH_BYTES))
    await digest.update(bytes(100))
    await digest.hexdigest()
    assert threads == [True, False]
    small = OffloadedSha256()
    await small.update(bytes(INLINE_BYTES))
    await small.hexdigest()
    assert threads == [True, False, True]
