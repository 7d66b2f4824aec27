"""This machine -> the facts a run prints first (CPU, memory, versions, load)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .settings import MIB

__all__ = ["first_line", "load_average", "machine_info"]


def first_line(args: Sequence[str]) -> str:
    """The first line a command prints (a version), or why there is none."""
    try:
        out = subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"<{exc}>"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "?"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: above ~1 the figures are noisy."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_info(pg_bin: Path) -> list[tuple[str, str]]:
    """(label, value) pairs: nproc, CPU, memory, kernel, versions and the load average."""
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / MIB:.1f} GiB"
    versions = []
    for name in ("monetr-backup", "aiobotocore", "botocore", "isal", "zstandard", "anyio"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{name} {importlib.metadata.version(name)}")
    return [
        ("nproc", str(os.cpu_count())),
        ("cpu", cpu),
        ("memory", mem),
        ("kernel", platform.release()),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("pg_dump", first_line([str(pg_bin / "pg_dump"), "--version"])),
        ("gzip", first_line(["gzip", "--version"])),
        ("packages", ", ".join(versions)),
        ("load average", load_average()),
    ]
