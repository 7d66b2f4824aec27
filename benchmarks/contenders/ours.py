"""One of our operations -> the argv that runs it in a process of its own, py-spy optional."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from harness.measure import Run
from harness.settings import Settings

__all__ = ["Ours", "check_dump_size"]

_PROCESS = Path(__file__).resolve().parent / "ours_process.py"
_PROFILE_SUFFIX = {"flamegraph": ".svg", "speedscope": ".json", "raw": ".txt"}


class Ours:
    """Builds the commands of our contenders, which read the servers from ``spec``."""

    def __init__(self, settings: Settings, spec: Path) -> None:
        self.settings = settings
        self.spec = spec
        self._profiles = 0

    def command(self, prefix: list[str], *args: str) -> list[str]:
        """``ours_process.py ARGS`` after ``prefix``; with ``--profile``, under py-spy."""
        command = [sys.executable, str(_PROCESS), *args, "--spec", str(self.spec)]
        if self.settings.profile is not None:
            # py-spy samples our python process (and not the pg_dump child); its own
            # CPU and memory then count in the measurements, which are for orientation only.
            self._profiles += 1
            label = re.sub(r"[^A-Za-z0-9.]+", "_", "-".join(a.lstrip("-") for a in args))
            out = self.settings.profile / f"{self._profiles:02d}-{label[:80]}"
            py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            command = [
                py_spy,
                "record",
                "--nonblocking",
                "--rate",
                "200",
                "--format",
                self.settings.profile_format,
                "--output",
                str(out) + _PROFILE_SUFFIX[self.settings.profile_format],
                "--",
                *command,
            ]
        return [*prefix, *command]


def check_dump_size(run: Run, expected: int) -> None:
    """Our backup dumped the database it was meant to (sizes vary by a few bytes)."""
    got = run.info.get("dump_bytes")
    if not isinstance(got, int | float) or abs(got - expected) > expected / 100:
        raise RuntimeError(f"the backup dumped {got} bytes, expected about {expected:,}")
