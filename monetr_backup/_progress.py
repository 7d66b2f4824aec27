"""Progress reporting: counters the pipeline bumps and a callback that sees snapshots."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Progress", "ProgressCallback"]


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot of a running backup or restore.

    Totals are ``None`` where they are not known up front; ``dump_bytes_estimate`` is
    the database's on-disk size, which is only a rough guide to the dump's size.
    """

    phase: str = "starting"
    dump_bytes: int = 0
    dump_bytes_estimate: int | None = None
    objects_done: int = 0
    objects_total: int | None = None
    object_bytes: int = 0
    #: Archive bytes (after compression) handed to the destination.
    archive_bytes: int = 0
    #: Archive bytes the destination has durably accepted (uploaded parts).
    archive_bytes_stored: int = 0


ProgressCallback = Callable[[Progress], None]


class ProgressTracker:
    """Holds the current :class:`Progress` and tells the callback about every change."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self.current = Progress()

    def update(self, **changes: object) -> None:
        """Replace some fields and notify."""
        self.current = dataclasses.replace(self.current, **changes)  # type: ignore[arg-type]
        if self._callback is not None:
            self._callback(self.current)

    def add(self, **increments: int) -> None:
        """Add to counters and notify."""
        changes = {name: getattr(self.current, name) + value for name, value in increments.items()}
        self.update(**changes)
