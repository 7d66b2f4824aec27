"""The ``monetr_backup`` logger -> the records it made while a block ran, at INFO and up."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

PREFIX = "monetr_backup."


class Records(logging.Handler):
    """Keeps every record handed to it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self, *names: str) -> list[logging.LogRecord]:
        """The records whose ``monetr_backup.event`` is one of ``names``."""
        return [record for record in self.records if extra(record, "event") in names]

    def phases(self) -> list[tuple[object, object]]:
        """(event, phase) of every phase start and end, in order."""
        return [
            (extra(record, "event"), extra(record, "phase"))
            for record in self.events("phase start", "phase end")
        ]


def extra(record: logging.LogRecord, name: str) -> object:
    """The record's ``monetr_backup.<name>`` extra (``None`` if it has none)."""
    return record.__dict__.get(PREFIX + name)


def extras(record: logging.LogRecord) -> dict[str, object]:
    """Every ``monetr_backup.*`` extra of the record, without the prefix."""
    return {
        key.removeprefix(PREFIX): value
        for key, value in record.__dict__.items()
        if key.startswith(PREFIX)
    }


@contextmanager
def captured(level: int = logging.INFO) -> Iterator[Records]:
    """The library's records at ``level`` and above while the block runs (the logger's
    level is set for the block, since a library's logger inherits the root's WARNING)."""
    logger = logging.getLogger("monetr_backup")
    handler = Records()
    old_level = logger.level
    logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
