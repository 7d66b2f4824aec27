"""Archive bytes -> decompressed tar members, streaming.

Decompression and tar parsing run together in one worker thread, using the stdlib's
``tarfile`` in stream mode (``r|``), so PAX and GNU headers are parsed by the same code
that reads every other tar, and CPU-heavy inflate stays off the event loop. The thread
pulls compressed chunks from, and pushes members to, bounded memory object streams:
the archive is read at the pace the consumer takes members.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import anyio
import anyio.from_thread
import anyio.to_thread
import zstandard
from anyio.streams.memory import MemoryObjectReceiveStream
from isal import isal_zlib

from .._errors import CorruptArchiveError, single_errors
from .._units import MIB
from .decompress import HEAD_SIZE, decompressed

__all__ = ["TarEntry", "open_tar_entries"]

READ_SIZE = MIB
#: ISA-L's inflate raises its own error, neither zlib's nor an OSError, on a bad deflate
#: block (its stubs declare it an instance, not a class).
_ISAL_ERROR = cast("type[Exception]", isal_zlib.error)


class TarEntry:
    """One member as it is read: its header, then its content as a stream.

    Consume ``chunks`` before asking for the next entry; ``sha256`` is set once the
    content has been read to its end.
    """

    def __init__(self, info: tarfile.TarInfo, events: MemoryObjectReceiveStream[_Event]) -> None:
        self.info = info
        self.sha256: str | None = None
        self.chunks: AsyncIterator[bytes] = self._content(events)

    @property
    def name(self) -> str:
        """The member's name as stored."""
        return self.info.name

    @property
    def size(self) -> int:
        """The member's declared size."""
        return self.info.size

    async def _content(self, events: MemoryObjectReceiveStream[_Event]) -> AsyncIterator[bytes]:
        async for event in events:
            if isinstance(event, bytes):
                yield event
            elif isinstance(event, _End):
                self.sha256 = event.sha256
                return
            elif isinstance(event, _Failed):
                raise event.error
        raise CorruptArchiveError("archive ended inside a member", member=self.name)


class _Pull(io.RawIOBase):
    """A blocking file object whose reads fetch chunks from the event loop.

    However the source cut its bytes, the reader sees one stream: an empty chunk is not
    taken for the end of it, and the first read holds the bytes the codec is told by
    (a download cut after its first byte resumes with the second).
    """

    def __init__(self, receive: MemoryObjectReceiveStream[bytes]) -> None:
        self._receive = receive
        self._chunk = memoryview(b"")
        self._wanted = HEAD_SIZE

    def readable(self) -> bool:
        return True

    def _fetch(self) -> bytes | None:
        try:
            return anyio.from_thread.run(self._receive.receive)
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return None

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while len(self._chunk) < self._wanted and (more := self._fetch()) is not None:
            self._chunk = memoryview(bytes(self._chunk) + more if self._chunk else more)
        self._wanted = 1
        size = min(len(buffer), len(self._chunk))
        buffer[:size] = self._chunk[:size]
        self._chunk = self._chunk[size:]
        return size


@dataclass(frozen=True, slots=True)
class _Start:
    info: tarfile.TarInfo


@dataclass(frozen=True, slots=True)
class _End:
    sha256: str


@dataclass(frozen=True, slots=True)
class _Failed:
    error: CorruptArchiveError


_Event = _Start | bytes | _End | _Failed


def _parse(raw: _Pull, emit: Callable[[_Event], object]) -> None:
    """Runs in the worker thread: emit every member's header, content and digest."""
    current: str | None = None
    try:
        with tarfile.open(fileobj=decompressed(raw), mode="r|", bufsize=READ_SIZE) as archive:
            while (info := archive.next()) is not None:
                # Stream mode keeps every TarInfo it has seen; we need none of them.
                archive.members.clear()  # type: ignore[attr-defined]
                current = info.name
                emit(_Start(info))
                digest = hashlib.sha256()
                content = archive.extractfile(info) if info.isreg() else None
                if content is not None:
                    while chunk := content.read(READ_SIZE):
                        digest.update(chunk)
                        emit(chunk)
                emit(_End(digest.hexdigest()))
                current = None
            # Past the first end-of-archive block only zero padding may follow, as much as
            # tar itself writes (the second block, then up to a whole record): reading a
            # few GB of zeros someone appended would take seconds per GB. Reading on to
            # the end also makes the decompressor check its trailer (gzip CRC and length,
            # zstd checksum), and catches data appended after the archive.
            assert archive.fileobj is not None
            rest = archive.fileobj.read(tarfile.RECORDSIZE + 1)
            if rest.count(0) != len(rest):
                raise tarfile.ReadError("data after the end of the archive")
            if len(rest) > tarfile.RECORDSIZE:
                raise tarfile.ReadError(
                    "more zero padding after the end of the archive than one tar record"
                )
    except (
        tarfile.TarError,
        EOFError,
        OSError,
        zlib.error,
        _ISAL_ERROR,
        zstandard.ZstdError,
    ) as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, EOFError) or "unexpected end" in reason:
            reason = f"archive is truncated ({reason})"
        error = CorruptArchiveError(f"unreadable archive: {reason}", member=current)
        error.__cause__ = exc
        emit(_Failed(error))


@asynccontextmanager
async def open_tar_entries(chunks: AsyncIterable[bytes]) -> AsyncIterator[AsyncIterator[TarEntry]]:
    """Read the (compressed or plain) tar archive in ``chunks`` member by member.

    The codec is detected from the first bytes. A corrupt, truncated or foreign stream
    raises :class:`CorruptArchiveError` naming the member being read.
    """
    raw_send, raw_receive = anyio.create_memory_object_stream[bytes](2)
    event_send, event_receive = anyio.create_memory_object_stream[_Event](4)
    closing = threading.Event()

    async def pump() -> None:
        async with raw_send:
            async for chunk in chunks:
                await raw_send.send(chunk)

    def parse() -> None:
        with event_send:
            try:
                _parse(_Pull(raw_receive), lambda e: anyio.from_thread.run(event_send.send, e))
            except BaseException:
                if closing.is_set():
                    return  # the consumer left: the failure is only our way out
                raise

    with single_errors():
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(pump)
                tg.start_soon(anyio.to_thread.run_sync, parse)
                try:
                    yield _entries(event_receive)
                finally:
                    # Unblock the thread wherever it waits: on input (the pump's end closes it)
                    # or on output (a closed receiver makes its next send fail).
                    closing.set()
                    event_receive.close()
                    tg.cancel_scope.cancel()
        finally:
            # The pump and the thread have stopped: close what they may have left open (the
            # thread never closes its input, and a task cancelled before it ran closes nothing),
            # or each stream warns about being left unclosed when it is collected.
            for stream in (raw_send, raw_receive, event_send):
                stream.close()


async def _entries(events: MemoryObjectReceiveStream[_Event]) -> AsyncIterator[TarEntry]:
    async for event in events:
        if isinstance(event, _Failed):
            raise event.error
        if not isinstance(event, _Start):
            raise CorruptArchiveError("tar member content read out of order")
        entry = TarEntry(event.info, events)
        yield entry
        # Drain whatever the consumer left unread so the next header comes next.
        async for _ in entry.chunks:
            pass
