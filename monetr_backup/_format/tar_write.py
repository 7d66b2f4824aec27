"""Members -> tar bytes, streaming.

Headers come from the stdlib (``tarfile.TarInfo.tobuf``) in PAX format, which adds
extended headers only where a name or size does not fit the ustar fields. Member
content is passed through untouched and never buffered.
"""

from __future__ import annotations

import tarfile
from collections.abc import AsyncIterable, AsyncIterator

from .._errors import StorageSourceError
from .._protocols import Member

__all__ = ["encode_tar"]

BLOCK = tarfile.BLOCKSIZE
# tarfile and GNU tar pad the archive to a whole record; doing the same keeps
# byte-for-byte parity with what those tools write.
RECORD = tarfile.RECORDSIZE


def tar_header(member: Member) -> bytes:
    """The header block(s) for ``member``: a regular file, mode 0600, owned by root."""
    info = tarfile.TarInfo(member.name)
    info.size = member.size
    info.mtime = int(member.mtime)
    info.mode = 0o600
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def _padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


async def encode_tar(members: AsyncIterable[Member]) -> AsyncIterator[bytes | bytearray]:
    """Yield a complete tar archive holding ``members``, in order.

    Members' chunks are passed on as they come (a dump part's blocks are ``bytearray``
    buffers nobody writes to again): a consumer that keeps chunks must not change them.
    Raises :class:`StorageSourceError` if a member yields more or fewer bytes than it declared
    (for instance a file that changed while it was read).
    """
    written = 0
    async for member in members:
        header = tar_header(member)
        yield header
        written += len(header)
        remaining = member.size
        async for chunk in member.chunks:
            remaining -= len(chunk)
            if remaining < 0:
                raise StorageSourceError(
                    f"member {member.name!r} produced more than its declared {member.size} bytes"
                )
            yield chunk
        if remaining:
            raise StorageSourceError(
                f"member {member.name!r} ended {remaining} bytes short of its declared "
                f"{member.size} bytes"
            )
        pad = _padding(member.size)
        if pad:
            yield pad
        written += member.size + len(pad)
    # Two zero blocks mark the end, then zeros up to a whole record.
    end = 2 * BLOCK
    end += -(written + end) % RECORD
    yield bytes(end)
