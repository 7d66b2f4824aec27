"""A public namespace's exports -> reporting that namespace as their module."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["publish"]


def publish(namespace: dict[str, Any], names: Iterable[str]) -> None:
    """Set ``__module__`` of every class and function in ``names`` to the namespace's.

    Reprs, tracebacks and generated docs then show ``monetr_backup.FileArchive``, the
    path to import it from, not the private module it is defined in (as httpcore does).
    """
    for name in names:
        value = namespace[name]
        if isinstance(value, type) or hasattr(value, "__code__"):
            value.__module__ = namespace["__name__"]
