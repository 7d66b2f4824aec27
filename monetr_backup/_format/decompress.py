"""Compressed archive bytes -> tar bytes: the codec detected from the first bytes.

Blocking file objects, for the worker thread that parses the tar (see ``tar_read``).
Each codec's stream must end where the format says: one whole gzip member followed by
at most one tar record of zeros, zstd frames of which the last is complete (its checksum
included). The libraries' own readers are laxer (ISA-L skips any number of zeros after a
gzip member, as gzip(1) does; python-zstandard's stream reader takes a cut frame for the
end of the stream), so a cut or padded archive would pass.
"""

from __future__ import annotations

import io
import tarfile
from typing import IO, cast

import zstandard
from isal import isal_zlib

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


class _GzipMember(io.RawIOBase):
    """gzip bytes -> their content: exactly one gzip member (RFC 1952), nothing after it.

    Inflated by ISA-L with a bound on each call's output, so a member of zeros that
    inflates a thousandfold costs no more memory than any other.
    """

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self._inflate = isal_zlib.decompressobj(wbits=31)
        self._tail = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._inflate.eof:
            data = self._tail or self._source.read(READ_SIZE)
            if not data:
                raise EOFError("the gzip stream ends before its end-of-stream marker")
            out = self._inflate.decompress(data, len(buffer))
            self._tail = self._inflate.unconsumed_tail
            if out:
                buffer[: len(out)] = out
                return len(out)
        # The trailer (CRC-32 and length) has been checked by now. After it, as after the
        # tar stream, only what a tape-blocking writer pads with may follow: zeros, up to
        # one tar record. A second member, or a few GB of zeros, are not this format.
        rest = self._inflate.unused_data + self._tail
        rest += self._source.read(max(0, tarfile.RECORDSIZE + 1 - len(rest)))
        if rest.count(0) != len(rest):
            raise OSError("data after the end of the gzip stream")
        if len(rest) > tarfile.RECORDSIZE:
            raise OSError("more zero padding after the gzip stream than one tar record")
        return 0


class _ZstdFrames:
    """Follows the frame structure of a zstd stream (RFC 8878) without decoding it.

    Only the headers are read (a few bytes per 128 KiB block), to tell a stream that
    ends between frames from one cut inside a frame, its checksum included.
    """

    _ZSTD = 0xFD2FB528
    _SKIPPABLE = 0x184D2A50

    def __init__(self) -> None:
        self._state = "magic"
        self._need = 4
        self._field = bytearray()
        self._skip = 0
        self._checksum = False

    @property
    def between_frames(self) -> bool:
        """Whether every frame seen so far is complete."""
        return self._state == "magic" and not self._field and not self._skip

    def feed(self, data: memoryview) -> None:
        """Follow ``data``, the next bytes of the stream."""
        position = 0
        while position < len(data):
            if self._skip:
                step = min(self._skip, len(data) - position)
                self._skip -= step
                position += step
                continue
            step = min(self._need - len(self._field), len(data) - position)
            self._field += data[position : position + step]
            position += step
            if len(self._field) == self._need:
                field = int.from_bytes(self._field, "little")
                self._field.clear()
                self._advance(field)

    def _advance(self, field: int) -> None:
        state = self._state
        if state == "magic":
            if field == self._ZSTD:
                self._state, self._need = "descriptor", 1
            elif field & 0xFFFFFFF0 == self._SKIPPABLE:
                self._state, self._need = "skippable", 4
            else:
                raise OSError("not a zstd frame after the previous one")
        elif state == "skippable":
            self._skip, self._state, self._need = field, "magic", 4
        elif state == "descriptor":
            single_segment = bool(field & 0x20)
            self._checksum = bool(field & 0x04)
            content_size = (1 if single_segment else 0, 2, 4, 8)[field >> 6]
            dictionary_id = (0, 1, 2, 4)[field & 0x03]
            self._skip = (0 if single_segment else 1) + dictionary_id + content_size
            self._state, self._need = "block", 3
        elif state == "block":
            # An RLE block (type 1) holds one byte, however many it stands for.
            self._skip = 1 if (field >> 1) & 0x03 == 1 else field >> 3
            if field & 0x01:
                self._state, self._need = ("checksum", 4) if self._checksum else ("magic", 4)
        else:
            self._state, self._need = "magic", 4


class _ZstdInput(io.RawIOBase):
    """The compressed bytes on their way to the zstd decoder, checked for a cut frame."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self._frames = _ZstdFrames()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = self._source.readinto(buffer)  # type: ignore[attr-defined]
        if not count:
            if not self._frames.between_frames:
                raise EOFError("the zstd stream ends inside a frame")
            return 0
        self._frames.feed(memoryview(buffer)[:count])
        return int(count)


def decompressed(raw: io.RawIOBase) -> IO[bytes]:
    """The tar bytes in ``raw``, whose first read must return ``HEAD_SIZE`` bytes (fewer
    only if the stream is shorter): ``peek`` reads once, and the codec is told from them."""
    buffered = io.BufferedReader(raw, READ_SIZE)
    codec = detect_codec(buffered.peek(HEAD_SIZE)[:HEAD_SIZE])
    if codec is Codec.GZIP:
        return cast(IO[bytes], io.BufferedReader(_GzipMember(buffered), READ_SIZE))
    if codec is Codec.ZSTD:
        source = cast(IO[bytes], _ZstdInput(buffered))
        reader = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
        return cast(IO[bytes], io.BufferedReader(cast(io.RawIOBase, reader), READ_SIZE))
    return cast(IO[bytes], buffered)
