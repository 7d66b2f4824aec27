"""Compressed archive bytes -> an age v1 stream, encrypted to the given recipients.

pyrage (the Rust ``age`` crate) does the encryption in a thread of its own, fed one batch
at a time (``age_stream``): the archive is never held whole, and the pace is the sink's.
The header and manifest are inside the encrypted stream; only the recipients' public
keys are needed here, so the backup host holds no secret.
"""

from __future__ import annotations

import functools
import io
from collections.abc import AsyncGenerator, AsyncIterable, Sequence

import anyio.to_thread
import pyrage

from .._errors import BackupError
from .._keys import Recipient, parse_recipient
from .._units import MIB
from .age_stream import AgeThread
from .compress import rebatch

__all__ = ["encrypt"]


async def encrypt(
    chunks: AsyncIterable[bytes],
    recipients: Sequence[Recipient | str],
    *,
    batch_size: int = MIB,
) -> AsyncGenerator[bytes, None]:
    """Yield ``chunks`` encrypted as one age v1 stream (binary, not armored) to every one
    of ``recipients`` (``age1...`` or SSH public keys, as text or parsed); any one of
    their identities decrypts it.

    Close it (``aclosing``) when stopping early: that stops the encryption's thread.
    """
    if not recipients:
        raise ValueError("encrypt needs at least one recipient")
    keys = [parse_recipient(key) if isinstance(key, str) else key for key in recipients]

    def run(source: io.BufferedIOBase, sink: io.BufferedIOBase) -> None:
        pyrage.encrypt_io(source, sink, keys)

    engine = AgeThread(run)
    try:
        async for batch in rebatch(chunks, batch_size):
            # Overlapped: age encrypts this batch while the next one is compressed.
            out = await _step(engine, b"".join(batch), wait=False)
            if out:
                yield out
        out = await _step(engine, b"")
        if out:
            yield out
    finally:
        engine.close()


async def _step(engine: AgeThread, data: bytes, *, wait: bool = True) -> bytes:
    try:
        return await anyio.to_thread.run_sync(functools.partial(engine.step, data, wait=wait))
    except Exception as exc:
        # Nothing of ours can make age fail here (the keys were checked): say so plainly.
        raise BackupError(f"encrypting the archive failed: {exc}") from exc
