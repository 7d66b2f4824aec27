"""Compressed archive bytes -> tar bytes: the codec detected from the first bytes.

Blocking piece sources, for the worker thread that parses the tar (see ``tar_read``).
A piece is a ``bytes`` object the decompressor made (or, uncompressed, the chunk as it
came): handed on as it is, never written to again, so the tar reader can pass member
content to the event loop without copying it into buffers of its own first.

Each codec's stream must end where the format says: one whole gzip member followed by
at most one tar record of zeros, zstd frames of which the last is complete (its checksum
included). The libraries' own readers are laxer (ISA-L skips any number of zeros after a
gzip member, as gzip(1) does; python-zstandard's stream reader takes a cut frame for the
end of the stream), so a cut or padded archive would pass.
"""

from __future__ import annotations

import tarfile
from typing import IO, Protocol, cast

import zstandard
from isal import isal_zlib

from .._config import Codec
from .._units import MIB

__all__ = ["PieceSource", "decompressed", "detect_codec"]

#: The most one piece of decompressed bytes holds (zstd fills it; a gzip piece is what
#: inflating ``_GZIP_INPUT_SIZE`` of input gives).
READ_SIZE = MIB
#: The bytes that tell the codec: zstd's magic number is the longest.
HEAD_SIZE = 4
_GZIP_MAGIC = b"\x1f\x8b"
#: Compressed bytes inflated per call: ~900 KB out on a monetr dump, under the 1 MiB a
#: call may make, so the input a call leaves over (which zlib's API hands back as a
#: copy) is rare and small.
_GZIP_INPUT_SIZE = 256 * 1024
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class PieceSource(Protocol):
    """A blocking stream of bytes, read a piece at a time."""

    def read1(self) -> bytes:
        """The next bytes (at least one, never reused by the source); ``b""`` at the end."""
        ...


def detect_codec(head: bytes) -> Codec:
    """The codec of a stream starting with ``head`` (at least four bytes)."""
    if head.startswith(_GZIP_MAGIC):
        return Codec.GZIP
    if head.startswith(_ZSTD_MAGIC):
        return Codec.ZSTD
    return Codec.NONE


class _Input:
    """A piece source read in slices of at most a given size (views, not copies)."""

    def __init__(self, source: PieceSource, first: bytes) -> None:
        self._source = source
        self._view = memoryview(first)

    def take(self, limit: int) -> memoryview:
        """``limit`` bytes (fewer only at the end of the stream, empty after it).

        Short pieces are joined (a copy of compressed bytes, a few times fewer than
        what they inflate to) so that each inflate call makes a piece of useful size.
        """
        if len(self._view) < limit:
            pieces = [self._view]
            size = len(self._view)
            while size < limit and (piece := self._source.read1()):
                pieces.append(memoryview(piece))
                size += len(piece)
            self._view = pieces[0] if len(pieces) == 1 else memoryview(b"".join(pieces))
        out = self._view[:limit]
        self._view = self._view[limit:]
        return out


class _Plain:
    """An uncompressed stream: the head, then the source's pieces as they are."""

    def __init__(self, source: PieceSource, head: bytes) -> None:
        self._source = source
        self._head = head

    def read1(self) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        return self._source.read1()


class _GzipMember:
    """gzip bytes -> their content: exactly one gzip member (RFC 1952), nothing after it.

    Inflated by ISA-L with a bound on each call's output, so a member of zeros that
    inflates a thousandfold costs no more memory than any other.
    """

    def __init__(self, source: _Input) -> None:
        self._source = source
        self._inflate = isal_zlib.decompressobj(wbits=31)
        self._tail = b""
        self._done = False

    def read1(self) -> bytes:
        while not self._inflate.eof:
            data: bytes | memoryview = self._tail or self._source.take(_GZIP_INPUT_SIZE)
            if not data:
                raise EOFError("the gzip stream ends before its end-of-stream marker")
            out = self._inflate.decompress(data, READ_SIZE)
            self._tail = self._inflate.unconsumed_tail
            if out:
                return out
        if not self._done:
            self._check_end()
            self._done = True
        return b""

    def _check_end(self) -> None:
        # The trailer (CRC-32 and length) has been checked by now. After it, as after the
        # tar stream, only what a tape-blocking writer pads with may follow: zeros, up to
        # one tar record. A second member, or a few GB of zeros, are not this format.
        rest = self._inflate.unused_data + self._tail
        while len(rest) <= tarfile.RECORDSIZE and (more := self._source.take(_GZIP_INPUT_SIZE)):
            rest += more
        if rest.count(0) != len(rest):
            raise OSError("data after the end of the gzip stream")
        if len(rest) > tarfile.RECORDSIZE:
            raise OSError("more zero padding after the gzip stream than one tar record")


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


class _ZstdInput:
    """The compressed bytes on their way to the zstd decoder, checked for a cut frame."""

    def __init__(self, source: _Input) -> None:
        self._source = source
        self._frames = _ZstdFrames()

    def read(self, size: int = -1) -> bytes:
        view = self._source.take(size if size > 0 else READ_SIZE)
        if not view:
            if not self._frames.between_frames:
                raise EOFError("the zstd stream ends inside a frame")
            return b""
        self._frames.feed(view)
        return bytes(view)


class _Zstd:
    """zstd bytes -> their content, a bounded piece at a time."""

    def __init__(self, source: _Input) -> None:
        decompressor = zstandard.ZstdDecompressor()
        source_file = cast(IO[bytes], _ZstdInput(source))
        self._reader = decompressor.stream_reader(source_file, read_across_frames=True)

    def read1(self) -> bytes:
        return self._reader.read(READ_SIZE)


def decompressed(source: PieceSource) -> PieceSource:
    """The tar bytes in ``source``, the codec told from its first ``HEAD_SIZE`` bytes."""
    head = b""
    while len(head) < HEAD_SIZE and (piece := source.read1()):
        head = head + piece if head else piece
    codec = detect_codec(head[:HEAD_SIZE])
    if codec is Codec.GZIP:
        return _GzipMember(_Input(source, head))
    if codec is Codec.ZSTD:
        return _Zstd(_Input(source, head))
    return _Plain(source, head)
