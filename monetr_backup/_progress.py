"""Counters the stages bump -> snapshots for the caller's callback, at a bounded rate."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Phase", "Progress", "ProgressCallback", "ProgressTracker"]


class Phase(StrEnum):
    """What a backup or restore is doing now; every change gets its own snapshot."""

    STARTING = "starting"
    #: Backup: pg_dump's output going into the archive.
    DUMPING_DATABASE = "dumping database"
    #: Backup: storage objects going into the archive.
    COPYING_STORAGE = "copying storage"
    #: Restore: the dump going into pg_restore/psql (not committed yet).
    RESTORING_DATABASE = "restoring database"
    #: Restore without a database target, verify: the dump read and checked only.
    CHECKING_DUMP = "checking dump"
    #: Restore: storage objects staged at the target (not visible yet).
    RESTORING_STORAGE = "restoring storage"
    #: Restore without a storage target: objects read and checked only.
    CHECKING_STORAGE = "checking storage"
    #: Everything checked out; the archive, database and files are being made visible.
    COMMITTING = "committing"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot of a running backup or restore.

    Totals are ``None`` where they are not known up front; ``dump_bytes_estimate`` is
    the database's on-disk size, which is only a rough guide to the dump's size.
    """

    phase: Phase = Phase.STARTING
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
    """Holds the current :class:`Progress` and hands the callback a snapshot now and then.

    Counters move thousands of times per GB; a callback that prints or redraws wants a
    few snapshots a second. A snapshot goes out on every phase change and otherwise at
    most once per ``interval`` seconds; :meth:`flush` sends the latest one if it is
    still unsent (call it when the operation ends, so the caller sees the final counts).
    """

    def __init__(self, callback: ProgressCallback | None, interval: float = 0.5) -> None:
        self._callback = callback
        self._interval = interval
        self._sent_at = float("-inf")
        self._unsent = False
        self.current = Progress()

    def _notify(self, force: bool) -> None:
        if self._callback is None:
            return
        now = time.monotonic()
        if force or now - self._sent_at >= self._interval:
            self._sent_at = now
            self._unsent = False
            self._callback(self.current)
        else:
            self._unsent = True

    def phase(self, phase: Phase) -> None:
        """Enter ``phase``; always reported (the snapshot before it goes first if unsent)."""
        self.flush()
        self.current = dataclasses.replace(self.current, phase=phase)
        self._notify(force=True)

    def update(self, **changes: object) -> None:
        """Replace some fields."""
        self.current = dataclasses.replace(self.current, **changes)  # type: ignore[arg-type]
        self._notify(force=False)

    def add(self, **increments: int) -> None:
        """Add to counters."""
        changes = {name: getattr(self.current, name) + value for name, value in increments.items()}
        self.update(**changes)

    def flush(self) -> None:
        """Deliver the latest snapshot if the interval held it back."""
        if self._unsent:
            self._notify(force=True)
