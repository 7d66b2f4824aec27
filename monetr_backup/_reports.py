"""An operation's result -> WARNING records for what it passed over or could not find."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._format.documents import Manifest
from ._progress import ProgressTracker

if TYPE_CHECKING:
    from ._restore import RestoreResult

__all__ = ["warn_backup", "warn_restore"]


def warn_backup(tracker: ProgressTracker, manifest: Manifest) -> None:
    """The manifest's skipped objects, and the live rows whose object was not there."""
    skipped = [(item.key, f"skipped: {item.reason}") for item in manifest.skipped]
    tracker.warn_keys("skipped", skipped, manifest.skipped_count)
    if manifest.file_set is not None:
        for kind, found in manifest.file_set.kinds.items():
            missing = [(key, f"missing: a live {kind} files row's object") for key in found.missing]
            tracker.warn_keys("missing", missing, found.missing_count)


def warn_restore(tracker: ProgressTracker, result: RestoreResult) -> None:
    """Live rows whose object is not at the target, and conflicts left alone."""
    missing = [
        (key, "missing: a live files row's object is not at the target")
        for key in result.missing_files or []
    ]
    tracker.warn_keys("missing", missing)
    conflicts = [
        (key, "conflict: exists at the target, not overwritten") for key in result.conflicts
    ]
    tracker.warn_keys("conflict", conflicts)
