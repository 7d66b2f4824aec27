"""Where archive bytes go: the protocol every destination implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["ArchiveSink"]


@runtime_checkable
class ArchiveSink(Protocol):
    """An async byte sink with all-or-nothing semantics.

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
