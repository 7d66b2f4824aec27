"""Progress messages -> stdout, one whole line at a time."""

from __future__ import annotations

import sys
import threading

__all__ = ["log"]

_LOCK = threading.Lock()


def log(message: str) -> None:
    """Print ``message`` and flush; lines never interleave."""
    # Whole lines only: background setup threads log too.
    with _LOCK:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()
