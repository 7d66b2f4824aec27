"""What the stages exchange: members on the way in, sinks and targets on the way out.

Everything that writes for an operation speaks one vocabulary: ``write`` as often as
needed, then exactly one of ``commit`` (make it visible) or ``abort`` (leave nothing).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._config import DumpFormat

__all__ = [
    "ArchiveSink",
    "DatabaseTarget",
    "DumpPart",
    "DumpSource",
    "Member",
    "Outcome",
    "StorageTarget",
    "StoredObject",
]


@dataclass(frozen=True, slots=True)
class Member:
    """One archive member: a name, its exact size, and its bytes as a stream.

    ``size`` must be known before the first byte is written (a tar header carries it),
    and ``chunks`` must produce exactly ``size`` bytes; the encoder checks both.
    """

    name: str
    size: int
    #: The content; a ``bytearray`` in it is never written to again (a dump part's
    #: blocks are the buffers pg_dump's output was read into, handed on uncopied).
    chunks: AsyncIterable[bytes | bytearray]
    #: Modification time (seconds since the epoch) recorded in the tar header.
    mtime: float = 0.0

    @classmethod
    def from_bytes(cls, name: str, data: bytes, *, mtime: float = 0.0) -> Member:
        """A member whose content is already in memory (small documents, dump parts)."""
        return cls.from_chunks(name, [data], mtime=mtime)

    @classmethod
    def from_chunks(
        cls, name: str, chunks: Sequence[bytes | bytearray], *, mtime: float = 0.0
    ) -> Member:
        """A member whose content is in memory as a list of chunks (a dump part)."""
        return cls(name=name, size=sum(map(len, chunks)), chunks=_each(chunks), mtime=mtime)


@dataclass(frozen=True, slots=True)
class DumpPart:
    """One part of the dump: its bytes as blocks, and their SHA-256.

    The blocks may be the ``bytearray`` buffers they were read into: nobody writes to
    them again.
    """

    blocks: Sequence[bytes | bytearray]
    sha256: str

    @property
    def size(self) -> int:
        """The part's length in bytes."""
        return sum(map(len, self.blocks))


@runtime_checkable
class DumpSource(Protocol):
    """A database dump as ``archive_members`` takes it (``open_pg_dump`` yields one).

    ``parts`` are read to their end first; only then is ``wait`` (which raises if the
    dump did not complete) called.
    """

    @property
    def parts(self) -> AsyncIterable[DumpPart]:
        """The dump in parts of exactly ``part_size`` bytes (the last may be shorter)."""

    @property
    def dump_format(self) -> DumpFormat:
        """The pg_dump output format."""

    @property
    def part_size(self) -> int:
        """The size of every part but the last."""

    @property
    def version(self) -> str:
        """``pg_dump --version`` of the program that made the dump."""

    @property
    def server_version(self) -> str:
        """The version of the server that was dumped."""

    async def wait(self) -> None:
        """Return once the dump is known complete; raise if it is not."""


async def _each(chunks: Sequence[bytes | bytearray]) -> AsyncIterator[bytes | bytearray]:
    for chunk in chunks:
        if chunk:
            yield chunk


@runtime_checkable
class ArchiveSink(Protocol):
    """Where a backup writes the archive, all or nothing.

    :func:`monetr_backup.backup` calls :meth:`write` for every chunk of the compressed
    archive, then :meth:`commit` once every stage has succeeded. On any failure or
    cancellation it calls :meth:`abort` instead (shielded from cancellation), which must
    leave nothing visible at the destination. Bring your own to send archives anywhere.
    """

    async def write(self, data: bytes) -> None:
        """Accept the next bytes of the archive (may wait: that is back-pressure)."""

    async def commit(self) -> None:
        """Make the complete archive visible at the destination."""

    async def abort(self) -> None:
        """Discard everything written so far; safe to call more than once."""


@dataclass(slots=True)
class Outcome:
    """What happened to each key: written, skipped, or in conflict."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


@dataclass(slots=True)
class StoredObject:
    """A storage object as the archive reader yields it.

    Read ``chunks`` before asking the reader for the next object, or leave them: the
    reader reads what was left itself, since every byte counts for the manifest check.
    """

    key: str
    size: int
    chunks: AsyncIterator[bytes]


@runtime_checkable
class StorageTarget(Protocol):
    """Where a restore puts storage objects, all or nothing.

    :func:`monetr_backup.restore` calls :meth:`write` for every object in the archive,
    then, once the whole archive has checked out and the database has committed,
    :meth:`commit`; on any failure or cancellation :meth:`abort` instead (shielded), which
    must leave the target as it was. ``outcome`` says which keys were written, skipped or
    in conflict.
    """

    @property
    def outcome(self) -> Outcome:
        """Keys written (after commit), skipped, or left alone as conflicts."""

    async def write(self, item: StoredObject) -> None:
        """Stage ``item``, or decide to skip it; nothing may be visible before commit."""

    async def commit(self) -> None:
        """Make every staged object visible."""

    async def abort(self) -> None:
        """Remove everything staged; safe to call more than once."""


@runtime_checkable
class DatabaseTarget(Protocol):
    """Where a restore applies the dump, all or nothing.

    :meth:`write` receives the dump stream in order; :meth:`commit` is called once the
    whole archive has checked out, :meth:`abort` on any failure or cancellation
    (shielded), which must leave the database as it was.
    """

    async def write(self, data: bytes) -> None:
        """Apply the next bytes of the dump, uncommitted."""

    async def commit(self) -> None:
        """Commit everything written."""

    async def abort(self) -> None:
        """Roll back everything written; safe to call more than once."""
