"""Counters the stages bump -> snapshots for the caller's callback, and log records.

The tracker sees every phase change of an operation, so it is also where the
operation's log records come from (see :data:`LOGGER_NAME` and the README's "Logging").
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from ._errors import ConcurrentOperationError

__all__ = ["LOGGER_NAME", "Phase", "Progress", "ProgressCallback", "ProgressTracker", "log"]

#: The library's logger. Only a ``NullHandler`` is attached (in ``__init__.py``), as the
#: logging HOWTO asks of libraries: where records go is the application's choice.
LOGGER_NAME = "monetr_backup"
log = logging.getLogger(LOGGER_NAME)
#: Every ``extra=`` key starts with this: dotted names cannot collide with a
#: ``LogRecord`` attribute (those are identifiers), and a formatter can pick them out.
EXTRA_PREFIX = "monetr_backup."
#: How many skipped, missing or conflicting keys get a WARNING each; the rest are counted
#: in one more record.
WARN_LIMIT = 100

#: The smoothed rate's time constant, in seconds: the weight of a past sample decays by
#: ``1/e`` every ``RATE_TAU`` seconds.
RATE_TAU = 5.0
#: Samples closer together than this are merged, so that a callback called on every
#: counter change (``progress_interval=0``) does not make the rate jitter.
RATE_MIN_SAMPLE = 0.05


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
    ``done_bytes`` against ``total_bytes`` is what a progress bar draws: for a backup,
    dump and object bytes against the size estimate plus the objects' total; for a
    restore or verify, archive bytes read against the archive's size.
    """

    phase: Phase = Phase.STARTING
    dump_bytes: int = 0
    dump_bytes_estimate: int | None = None
    objects_done: int = 0
    #: Backup: the live ``files`` rows' objects (mode ``referenced``); ``None`` in mode
    #: ``all`` (known only once the whole storage has been listed).
    objects_total: int | None = None
    object_bytes: int = 0
    #: Backup: the sum of the ``files`` rows' sizes, when ``objects_total`` is known.
    object_bytes_total: int | None = None
    #: Backup: archive bytes (after compression) handed to the destination. Restore and
    #: verify: archive bytes read.
    archive_bytes: int = 0
    #: Archive bytes the destination has durably accepted (uploaded parts).
    archive_bytes_stored: int = 0
    #: Restore and verify: the archive's size (file size, or S3 Content-Length).
    archive_bytes_total: int | None = None
    #: The work done so far, in bytes (see above).
    done_bytes: int = 0
    #: The whole work, in bytes, or ``None`` where it cannot be known up front.
    total_bytes: int | None = None
    #: ``done_bytes`` per second, smoothed; ``None`` before the first measurement.
    rate: float | None = None
    #: Seconds left at ``rate``; ``None`` without a total, a rate, or once ``done_bytes``
    #: has passed an estimated total; 0 once the operation is done (with a total).
    eta: float | None = None


ProgressCallback = Callable[[Progress], None]
"""What ``progress=`` takes: a function called with each :class:`Progress` snapshot."""


def _extra(**values: object) -> dict[str, object]:
    return {EXTRA_PREFIX + name: value for name, value in values.items()}


class ProgressTracker:
    """Holds the current :class:`Progress` and hands the callback a snapshot now and then.

    Counters move thousands of times per GB; a callback that prints or redraws wants a
    few snapshots a second. A snapshot goes out on every phase change and otherwise at
    most once per ``interval`` seconds; :meth:`flush` sends the latest one if it is
    still unsent (call it when the operation ends, so the caller sees the final counts).

    The rate is an exponentially weighted moving average of ``done_bytes`` per second
    over samples taken as snapshots are made (time constant ``RATE_TAU``, 5 s, samples
    at least ``RATE_MIN_SAMPLE``, 50 ms, apart), so a stall shows within seconds and one slow
    object does not swing it; the ETA is what is left of the total at that rate.

    Given an ``operation`` name (``"backup"``, ``"restore"``, ``"verify"``), every phase
    start and end is logged at INFO on the ``monetr_backup`` logger, with the counters
    and durations in ``extra=`` (keys ``monetr_backup.*``, listed in the README).
    """

    def __init__(
        self,
        callback: ProgressCallback | None,
        interval: float = 0.5,
        *,
        operation: str | None = None,
    ) -> None:
        self._callback = callback
        self._interval = interval
        self._sent_at = float("-inf")
        self._unsent = False
        self.current = Progress()
        self.operation = operation
        #: Whether the work's total needs the dump estimate and the objects' total.
        self._expects_dump = False
        self._expects_objects = False
        self._started = time.monotonic()
        self._phase_started = self._started
        self._logged_phase: Phase | None = None
        self._rate: float | None = None
        self._sample_at = self._started
        self._sample_done = 0

    # -- the work, its rate and ETA --------------------------------------------------

    def expect(self, *, dump: bool, objects: bool) -> None:
        """Backup: which parts the total is made of (both must be known for a total)."""
        self._expects_dump = dump
        self._expects_objects = objects

    def _work(self, current: Progress) -> tuple[int, int | None]:
        if self.operation in {"restore", "verify"}:
            return current.archive_bytes, current.archive_bytes_total
        done = current.dump_bytes + current.object_bytes
        total: int | None = 0
        if self._expects_dump:
            total = None if current.dump_bytes_estimate is None else current.dump_bytes_estimate
        if self._expects_objects and total is not None:
            objects = current.object_bytes_total
            total = None if objects is None else total + objects
        if not (self._expects_dump or self._expects_objects):
            total = None
        return done, total

    def _sample(self, now: float, done: int) -> None:
        elapsed = now - self._sample_at
        if elapsed < RATE_MIN_SAMPLE:
            return
        instant = (done - self._sample_done) / elapsed
        if self._rate is None:
            self._rate = instant
        else:
            weight = 1.0 - math.exp(-elapsed / RATE_TAU)
            self._rate += weight * (instant - self._rate)
        self._sample_at, self._sample_done = now, done

    def snapshot(self) -> Progress:
        """The current counters, with the work done, its total, the rate and the ETA."""
        current = self.current
        done, total = self._work(current)
        self._sample(time.monotonic(), done)
        rate = self._rate
        eta = None
        if current.phase is Phase.DONE and total is not None:
            # Whatever the estimate said, nothing is left (an estimate never reached
            # would otherwise leave seconds on the last snapshot).
            eta = 0.0
        elif total is not None and rate is not None and rate > 0 and done <= total:
            eta = (total - done) / rate
        return dataclasses.replace(current, done_bytes=done, total_bytes=total, rate=rate, eta=eta)

    # -- snapshots ---------------------------------------------------------------------

    def _notify(self, force: bool) -> None:
        if self._callback is None:
            return
        now = time.monotonic()
        if force or now - self._sent_at >= self._interval:
            self._sent_at = now
            self._unsent = False
            self._callback(self.snapshot())
        else:
            self._unsent = True

    def phase(self, phase: Phase) -> None:
        """Enter ``phase``; always reported (the snapshot before it goes first if unsent)."""
        self.flush()
        self._log_phase_change(phase)
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

    # -- log records -------------------------------------------------------------------

    def _counters(self) -> dict[str, object]:
        snap = self.snapshot()
        fields = (
            "dump_bytes",
            "dump_bytes_estimate",
            "objects_done",
            "objects_total",
            "object_bytes",
            "object_bytes_total",
            "archive_bytes",
            "archive_bytes_stored",
            "archive_bytes_total",
            "done_bytes",
            "total_bytes",
        )
        return {name: getattr(snap, name) for name in fields}

    def _log_phase_change(self, phase: Phase) -> None:
        if self.operation is None:
            return
        now = time.monotonic()
        previous = self._logged_phase
        if previous is not None and previous is not phase:
            duration = now - self._phase_started
            log.info(
                "%s: %s done in %.2f s",
                self.operation,
                previous.value,
                duration,
                extra=_extra(
                    operation=self.operation,
                    event="phase end",
                    phase=previous.value,
                    duration_s=duration,
                    **self._counters(),
                ),
            )
        if phase is Phase.DONE:
            duration = now - self._started
            counters = self._counters()
            log.info(
                "%s done in %.2f s (%s bytes)",
                self.operation,
                duration,
                counters["done_bytes"],
                extra=_extra(
                    operation=self.operation,
                    event="done",
                    phase=phase.value,
                    duration_s=duration,
                    **counters,
                ),
            )
        elif previous is not phase:
            log.info(
                "%s: %s",
                self.operation,
                phase.value,
                extra=_extra(operation=self.operation, event="phase start", phase=phase.value),
            )
        self._logged_phase = phase
        self._phase_started = now

    @contextmanager
    def failures(self) -> Iterator[None]:
        """Log the error (ERROR) or cancellation (WARNING) that ends the operation.

        An overlap with another operation on the same database is logged at WARNING: a
        scheduler that runs into the previous night's backup still running takes it as a
        skipped run, and alerting on ERROR records should not fire for it.
        """
        try:
            yield
        except Exception as exc:
            if self.operation is not None:
                phase = self.current.phase.value
                level = (
                    logging.WARNING if isinstance(exc, ConcurrentOperationError) else logging.ERROR
                )
                # No traceback: the caller gets the exception itself, to log as it likes.
                log.log(
                    level,
                    "%s failed while %s: %s: %s",
                    self.operation,
                    phase,
                    type(exc).__name__,
                    exc,
                    extra=_extra(
                        operation=self.operation,
                        event="failed",
                        phase=phase,
                        duration_s=time.monotonic() - self._started,
                        error_type=type(exc).__name__,
                        error=str(exc),
                        **self._counters(),
                    ),
                )
            raise
        except BaseException:
            if self.operation is not None:
                phase = self.current.phase.value
                log.warning(
                    "%s cancelled while %s",
                    self.operation,
                    phase,
                    extra=_extra(
                        operation=self.operation,
                        event="cancelled",
                        phase=phase,
                        duration_s=time.monotonic() - self._started,
                    ),
                )
            raise

    def warn_keys(self, event: str, items: list[tuple[str, str]], total: int | None = None) -> None:
        """One WARNING per (key, what happened to it), at most ``WARN_LIMIT`` (100); then
        one counting the rest (``total`` is the whole count, if ``items`` was cut)."""
        if self.operation is None:
            return
        total = len(items) if total is None else total
        for key, what in items[:WARN_LIMIT]:
            log.warning(
                "%s: %s: %s",
                self.operation,
                key,
                what,
                extra=_extra(operation=self.operation, event=event, key=key, reason=what),
            )
        if total > WARN_LIMIT:
            log.warning(
                "%s: %d more %s",
                self.operation,
                total - WARN_LIMIT,
                event,
                extra=_extra(operation=self.operation, event=event, count=total - WARN_LIMIT),
            )
