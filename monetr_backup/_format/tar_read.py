"""Archive bytes -> decompressed tar members, streaming.

Decompression and tar parsing run together in one worker thread, so CPU-heavy inflate
and the per-member SHA-256 stay off the event loop. Headers are parsed by the stdlib
(``tarfile.TarInfo.fromtarfile``: ustar, PAX records, GNU long names), the same code that
reads every other tar; member content is not read through ``tarfile`` but handed on in
the pieces the decompressor made (see ``decompress``), which are immutable ``bytes``:
no re-buffering, no joins, and a consumer may hold a chunk as long as it likes. The
thread pulls compressed chunks from, and pushes batches of events to, bounded memory
object streams: the archive is read at the pace the consumer takes members.
"""

from __future__ import annotations

import hashlib
import tarfile
import threading
import zlib
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import anyio
import anyio.from_thread
import anyio.to_thread
import zstandard
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from isal import isal_zlib

from .._errors import CorruptArchiveError, single_errors
from .._units import MIB
from .decompress import PieceSource, decompressed

__all__ = ["TarEntry", "open_tar_entries"]

#: The most content bytes one chunk handed to the consumer holds.
READ_SIZE = MIB
#: Events are sent to the event loop in batches of up to this much content, or this many
#: events: one thread hop per batch rather than per chunk, header and digest (a restore
#: of 10,000 small objects took three hops per object).
BATCH_BYTES = MIB
BATCH_EVENTS = 256
#: Chunks of archive bytes that have arrived together are joined up to this size (a
#: download gives 16-64 KiB at a time): what inflate takes per call, and, uncompressed,
#: the pieces handed on.
GATHER_BYTES = 256 * 1024
#: Compressed chunks waiting for the reader thread, and batches of events waiting for
#: the consumer: what is read ahead of it (a progress total counts archive bytes read).
RAW_BUFFER = 2
EVENT_BUFFER = 2
#: A PAX or GNU long-name header is read whole, before anything checks it: this bounds
#: the memory a header that claims to be huge can take (a real one is a few hundred bytes).
MAX_HEADER_DATA = MIB
#: ISA-L's inflate raises its own error, neither zlib's nor an OSError, on a bad deflate
#: block (its stubs declare it an instance, not a class).
_ISAL_ERROR = cast("type[Exception]", isal_zlib.error)
_EMPTY = memoryview(b"")
#: ``TarFile.next``'s header errors, which typeshed does not declare.
_STDLIB = vars(tarfile)
_EOF_HEADER: type[Exception] = _STDLIB["EOFHeaderError"]
_EMPTY_HEADER: type[Exception] = _STDLIB["EmptyHeaderError"]
_BAD_HEADER: tuple[type[Exception], ...] = (
    _STDLIB["InvalidHeaderError"],
    _STDLIB["TruncatedHeaderError"],
)
_SUBSEQUENT_HEADER: type[Exception] = _STDLIB["SubsequentHeaderError"]


class TarEntry:
    """One member as it is read: its header, then its content as a stream.

    Consume ``chunks`` before asking for the next entry; ``sha256`` is set once the
    content has been read to its end.
    """

    def __init__(self, info: tarfile.TarInfo, events: _Inbox) -> None:
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

    async def _content(self, events: _Inbox) -> AsyncIterator[bytes]:
        while (event := await events.next()) is not None:
            if isinstance(event, bytes):
                yield event
            elif isinstance(event, _End):
                self.sha256 = event.sha256
                return
            elif isinstance(event, _Failed):
                raise event.error
        raise CorruptArchiveError("archive ended inside a member", member=self.name)


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


class _Inbox:
    """The event loop's side: the thread's batches of events, one event at a time."""

    def __init__(self, receive: MemoryObjectReceiveStream[list[_Event]]) -> None:
        self._receive = receive
        self._queue: deque[_Event] = deque()

    async def next(self) -> _Event | None:
        while not self._queue:
            try:
                self._queue.extend(await self._receive.receive())
            except anyio.EndOfStream:
                return None
        return self._queue.popleft()


class _Link(PieceSource):
    """The thread's side: compressed chunks in, batches of events out, one hop for both.

    However the source cut its bytes, the reader sees one stream: an empty chunk is not
    taken for the end of it. Before the thread waits for input it sends what it has, so
    a member is there for the consumer as soon as its bytes have arrived.
    """

    def __init__(
        self, receive: MemoryObjectReceiveStream[bytes], send: MemoryObjectSendStream[list[_Event]]
    ) -> None:
        self._receive = receive
        self._send = send
        self._pending: list[_Event] = []
        self._pending_bytes = 0

    def emit(self, event: _Event, size: int = 0) -> None:
        self._pending.append(event)
        self._pending_bytes += size
        if self._pending_bytes >= BATCH_BYTES or len(self._pending) >= BATCH_EVENTS:
            self.flush()

    def _take_batch(self) -> list[_Event]:
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        return batch

    def flush(self) -> None:
        if self._pending:
            anyio.from_thread.run(self._send.send, self._take_batch())

    async def _exchange(self, batch: list[_Event]) -> list[bytes] | None:
        if batch:
            await self._send.send(batch)
        try:
            chunks = [await self._receive.receive()]
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return None
        # Whatever else has arrived already comes along, without waiting for more: fewer
        # hops, and pieces big enough that the consumer is not handed 16 KiB at a time.
        size = len(chunks[0])
        while size < GATHER_BYTES:
            try:
                chunk = self._receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
            chunks.append(chunk)
            size += len(chunk)
        return chunks

    def read1(self) -> bytes:
        while (chunks := anyio.from_thread.run(self._exchange, self._take_batch())) is not None:
            if len(chunks) == 1 and chunks[0]:
                return chunks[0]
            if joined := b"".join(chunks):
                return joined
        return b""


class _Tape:
    """Decompressed tar bytes -> header blocks and member content.

    Content comes out in the decompressor's own pieces where a piece lies inside one
    member (no copy); only where a piece spans a member's end is the part inside it
    copied out. ``read`` and ``tell`` are the file object ``TarInfo.fromtarfile`` reads
    headers through.
    """

    def __init__(self, source: PieceSource) -> None:
        self._source = source
        self._piece = b""
        self._view = _EMPTY
        self.position = 0

    def take(self, limit: int) -> bytes:
        """Up to ``limit`` (> 0) bytes; ``b""`` at the end of the stream."""
        if not self._view:
            self._piece = self._source.read1()
            if not self._piece:
                return b""
            self._view = memoryview(self._piece)
        view = self._view
        if len(view) <= limit:
            # The rest of the piece: the piece itself if none of it was taken yet.
            out = self._piece if len(view) == len(self._piece) else bytes(view)
            self._piece, self._view = b"", _EMPTY
        else:
            out = bytes(view[:limit])
            self._view = view[limit:]
        self.position += len(out)
        return out

    def read(self, size: int) -> bytes:
        if size > MAX_HEADER_DATA:
            raise tarfile.ReadError(f"a tar header of {size} bytes is more than we read")
        pieces = []
        while size and (piece := self.take(size)):
            pieces.append(piece)
            size -= len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def tell(self) -> int:
        return self.position

    def skip(self, size: int) -> None:
        while size:
            piece = self.take(min(size, READ_SIZE))
            if not piece:
                raise tarfile.ReadError("unexpected end of data")
            size -= len(piece)


_SPARSE = "a sparse member (this format has none)"


class _TarInfo(tarfile.TarInfo):
    """The stdlib's header parser, refusing the sparse forms before it expands them.

    Expanding a sparse map reads extension blocks (old GNU) or map numbers (GNU 1.0) for
    as long as the archive says there are more: a small hostile archive would cost
    unbounded memory before the member's ``sparse`` could be looked at. This format has
    no sparse members.
    """

    def _proc_sparse(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        raise tarfile.ReadError(_SPARSE)

    def _proc_gnusparse_10(self, *args: object) -> None:
        raise tarfile.ReadError(_SPARSE)


class _Headers:
    """What ``TarInfo.fromtarfile`` uses of a ``TarFile``, with a read-mode TarFile's defaults."""

    def __init__(self, tape: _Tape) -> None:
        self.fileobj = tape
        self.encoding = tarfile.ENCODING
        self.errors = "surrogateescape"
        self.pax_headers: dict[str, str] = {}
        #: Where the next header starts: the stdlib's header code sets it.
        self.offset = 0

    def next(self) -> tarfile.TarInfo | None:
        """The next member's header, or None at the end of the archive.

        As ``TarFile.next`` decides: a bad first header is an error, a bad later one the
        end of the archive (what follows it is then checked as padding, and fails).
        """
        self.fileobj.skip(self.offset - self.fileobj.position)
        first = self.offset == 0
        try:
            return _TarInfo.fromtarfile(cast(tarfile.TarFile, self))
        except _EOF_HEADER:
            return None
        except _EMPTY_HEADER:
            if first:
                raise tarfile.ReadError("empty file") from None
            return None
        except _BAD_HEADER as exc:
            if first:
                raise tarfile.ReadError(str(exc)) from None
            return None
        except _SUBSEQUENT_HEADER as exc:
            raise tarfile.ReadError(str(exc)) from None


def _parse(link: _Link) -> None:
    """Runs in the worker thread: emit every member's header, content and digest."""
    current: str | None = None
    try:
        tape = _Tape(decompressed(link))
        headers = _Headers(tape)
        while (info := headers.next()) is not None:
            current = info.name
            if info.sparse is not None:
                raise tarfile.ReadError(_SPARSE)
            link.emit(_Start(info))
            digest = hashlib.sha256()
            if info.isreg():
                remaining = info.size
                while remaining:
                    chunk = tape.take(min(remaining, READ_SIZE))
                    if not chunk:
                        raise tarfile.ReadError("unexpected end of data")
                    remaining -= len(chunk)
                    digest.update(chunk)
                    link.emit(chunk, len(chunk))
            link.emit(_End(digest.hexdigest()))
            current = None
        # Past the first end-of-archive block only zero padding may follow, as much as
        # tar itself writes (the second block, then up to a whole record): reading a
        # few GB of zeros someone appended would take seconds per GB. Reading on to
        # the end also makes the decompressor check its trailer (gzip CRC and length,
        # zstd checksum), and catches data appended after the archive.
        rest = tape.read(tarfile.RECORDSIZE + 1)
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
        # What the stdlib's header parser raises on some malformed headers: a field cut
        # short (IndexError, ValueError), a chain of thousands of extended headers, each
        # parsed by a recursive call (RecursionError).
        IndexError,
        ValueError,
        RecursionError,
    ) as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, EOFError) or "unexpected end" in reason:
            reason = f"archive is truncated ({reason})"
        error = CorruptArchiveError(f"unreadable archive: {reason}", member=current)
        error.__cause__ = exc
        link.emit(_Failed(error))
    link.flush()


@asynccontextmanager
async def open_tar_entries(chunks: AsyncIterable[bytes]) -> AsyncIterator[AsyncIterator[TarEntry]]:
    """Read the (compressed or plain) tar archive in ``chunks`` member by member.

    The codec is detected from the first bytes. A corrupt, truncated or foreign stream
    raises :class:`CorruptArchiveError` naming the member being read.
    """
    raw_send, raw_receive = anyio.create_memory_object_stream[bytes](RAW_BUFFER)
    event_send, event_receive = anyio.create_memory_object_stream[list[_Event]](EVENT_BUFFER)
    closing = threading.Event()

    async def pump() -> None:
        async with raw_send:
            async for chunk in chunks:
                await raw_send.send(chunk)

    def parse() -> None:
        with event_send:
            try:
                _parse(_Link(raw_receive, event_send))
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
                    yield _entries(_Inbox(event_receive))
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


async def _entries(events: _Inbox) -> AsyncIterator[TarEntry]:
    while (event := await events.next()) is not None:
        if isinstance(event, _Failed):
            raise event.error
        if not isinstance(event, _Start):
            raise CorruptArchiveError("tar member content read out of order")
        entry = TarEntry(event.info, events)
        yield entry
        # Drain whatever the consumer left unread so the next header comes next.
        async for _ in entry.chunks:
            pass
