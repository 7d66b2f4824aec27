"""Case name -> the function that races its contenders and prints its table, in run order."""

from __future__ import annotations

from collections.abc import Callable

from harness.bench import Bench

from . import backup, ceiling, costs, memory, objects, restore

__all__ = ["CASES"]

CASES: dict[str, Callable[[Bench], None]] = {
    "backup": backup.run_case,
    "restore": restore.run_case,
    "costs": costs.run_case,
    "ceiling": ceiling.run_case,
    "objects": objects.run_case,
    "memory": memory.run_case,
}
