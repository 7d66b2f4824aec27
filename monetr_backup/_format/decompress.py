"""Compressed archive bytes -> tar bytes: the codec detected from the first bytes.

Blocking file objects, for the worker thread that parses the tar (see ``tar_read``).
"""

from __future__ import annotations

import io
from typing import IO, cast

import zstandard
from isal import igzip

from .._config import Codec
from .._units import MIB

__all__ = ["decompressed", "detect_codec"]

READ_SIZE = MIB
#: The bytes that tell the codec: zstd's magic number is the longest.
HEAD_SIZE = 4
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def detect_codec(head: bytes) -> Codec:
    """The codec of a stream starting with ``head`` (at least four bytes)."""
    if head.startswith(_GZIP_MAGIC):
        return Codec.GZIP
    if head.startswith(_ZSTD_MAGIC):
        return Codec.ZSTD
    return Codec.NONE


def decompressed(raw: io.RawIOBase) -> IO[bytes]:
    """The tar bytes in ``raw``, whose first read must return ``HEAD_SIZE`` bytes (fewer
    only if the stream is shorter): ``peek`` reads once, and the codec is told from them."""
    buffered = io.BufferedReader(raw, READ_SIZE)
    codec = detect_codec(buffered.peek(HEAD_SIZE)[:HEAD_SIZE])
    if codec is Codec.GZIP:
        return cast(IO[bytes], igzip.IGzipFile(fileobj=buffered, mode="rb"))  # type: ignore[no-untyped-call]
    if codec is Codec.ZSTD:
        reader = zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
        return cast(IO[bytes], io.BufferedReader(cast(io.RawIOBase, reader), READ_SIZE))
    return cast(IO[bytes], buffered)
