"""Archive bytes -> the compressed archive: an age v1 stream decrypted, anything else as is.

An age stream is told by its first line, ``age-encryption.org/v1``, before the codec is
looked at. Its header (which recipients it is for) is at the very start: it is read and
matched against the identities when the stream is opened, so a missing or wrong identity
fails before anything downstream starts. The payload is decrypted by pyrage (the Rust
``age`` crate) in a thread of its own, one batch at a time (``age_stream``). age
authenticates every 64 KiB chunk and marks the last one: a flipped byte, a cut or bytes
appended make it fail, and the last bytes are handed on only once the whole stream has
checked out, so a reader can never see a complete archive that was not.
"""

from __future__ import annotations

import functools
import io
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager

import anyio.to_thread
import pyrage
from pydantic import SecretStr

from .._errors import CorruptArchiveError, DecryptionError
from .._keys import Identity, identities_from
from .._units import MIB
from .age_stream import AgeThread, TrailingDataError
from .compress import rebatch

__all__ = ["AGE_MAGIC", "MAX_HEADER_SIZE", "is_age", "open_decrypted"]

#: The first line of every binary age v1 file.
AGE_MAGIC = b"age-encryption.org/v1\n"
_ARMOR = b"-----BEGIN AGE ENCRYPTED FILE-----"
#: An age header is a few hundred bytes per recipient; one that does not end within this
#: many bytes is refused rather than buffered.
MAX_HEADER_SIZE = MIB
_HEADER_END = b"\n--- "


def is_age(head: bytes) -> bool:
    """Whether a stream starting with ``head`` is a binary age v1 file."""
    return head.startswith(AGE_MAGIC)


@asynccontextmanager
async def open_decrypted(
    chunks: AsyncIterable[bytes],
    identities: Sequence[Identity | SecretStr | str],
    *,
    batch_size: int = MIB,
) -> AsyncIterator[AsyncIterator[bytes]]:
    """The bytes of ``chunks``, decrypted if they are an age stream, else unchanged.

    ``identities``: age secret keys or identity files, or SSH private keys, as text
    (``SecretStr`` best) or parsed.

    On entering, an age stream's header is read and opened with ``identities``:
    :class:`DecryptionError` if none is given or none matches, :class:`CorruptArchiveError`
    if the header is damaged. Damage further on raises :class:`CorruptArchiveError` from
    the stream. The decryption's thread ends with the block.
    """
    keys = [
        key
        for given in identities
        for key in (identities_from([given]) if isinstance(given, SecretStr | str) else [given])
    ]
    source = aiter(chunks)
    head = bytearray()
    while len(head) < len(AGE_MAGIC) and (chunk := await anext(source, None)) is not None:
        head += chunk
    if not is_age(bytes(head[: len(AGE_MAGIC)])):
        if head.startswith(_ARMOR):
            raise CorruptArchiveError(
                "the archive is an ASCII-armored age file (age -a): decrypt it with "
                "age -d first, or encrypt it without -a"
            )
        async with aclosing(_plain(bytes(head), source)) as plain:
            yield plain
        return
    if not keys:
        raise DecryptionError(
            "the archive is encrypted (age): give the identity that opens it "
            "(RestoreOptions(identities=...), or identities= for verify and inspect)"
        )
    await _read_header(head, source)

    def run(ciphertext: io.BufferedIOBase, plaintext: io.BufferedIOBase) -> None:
        pyrage.decrypt_io(ciphertext, plaintext, keys)

    engine = AgeThread(run)
    try:
        # The first step holds the whole header: age has matched it by the time it asks
        # for more, so a wrong identity is raised here, in the caller's task.
        first = await _step(engine, bytes(head), len(keys))
        async with aclosing(_payload(engine, first, source, len(keys), batch_size)) as plain:
            yield plain
    finally:
        engine.close()


async def _read_header(head: bytearray, source: AsyncIterator[bytes]) -> None:
    """Read on until ``head`` holds the header's last line (its MAC) or is too large."""
    searched = 0
    while True:
        end = head.find(_HEADER_END, max(0, searched - len(_HEADER_END)))
        if end >= 0 and head.find(b"\n", end + 1) >= 0:
            return
        if len(head) > MAX_HEADER_SIZE:
            raise CorruptArchiveError(
                f"the archive's age header does not end within {MAX_HEADER_SIZE} bytes"
            )
        searched = len(head)
        chunk = await anext(source, None)
        if chunk is None:
            raise CorruptArchiveError("the archive is truncated inside its age header")
        head += chunk


async def _plain(head: bytes, source: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    if head:
        yield head
    async for chunk in source:
        yield chunk


async def _payload(
    engine: AgeThread,
    first: bytes,
    source: AsyncIterator[bytes],
    identity_count: int,
    batch_size: int,
) -> AsyncGenerator[bytes, None]:
    # Each step's output is handed on only after the next step succeeded, and the last
    # only once age has checked the stream's end. The steps overlap age's work with the
    # reader's (wait=False): two batches in flight at most.
    pending = first
    async for batch in rebatch(source, batch_size):
        out = await _step(engine, b"".join(batch), identity_count, wait=False)
        if pending:
            yield pending
        pending = out
    pending += await _step(engine, b"", identity_count)
    if pending:
        yield pending


async def _step(engine: AgeThread, data: bytes, identity_count: int, *, wait: bool = True) -> bytes:
    try:
        return await anyio.to_thread.run_sync(functools.partial(engine.step, data, wait=wait))
    except pyrage.DecryptError as exc:
        reason = str(exc)
        if "No matching keys" in reason:
            raise DecryptionError(
                f"none of the {identity_count} identities given opens this archive: it is "
                "encrypted to other recipients"
            ) from None
        raise CorruptArchiveError(f"the archive's age header is unreadable ({reason})") from exc
    except TrailingDataError as exc:
        raise CorruptArchiveError(f"the encrypted archive is damaged ({exc})") from exc
    except OSError as exc:
        # age's payload errors (a chunk that fails authentication, a cut, bytes appended)
        # all read "decryption error": say what it means.
        raise CorruptArchiveError(
            f"the encrypted archive is damaged, truncated or extended: a chunk failed "
            f"authentication ({exc})"
        ) from exc
