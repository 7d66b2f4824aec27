"""run.py's arguments -> Settings, what every case reads; the units of its figures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["MB", "MIB", "Settings"]

MIB = 1024 * 1024
#: Rates are in MB/s of 10^6 bytes.
MB = 1_000_000


@dataclass
class Settings:
    """What to run and at which sizes, as run.py resolved it from its arguments."""

    quick: bool
    cases: list[str]
    rounds: int
    dump_mib: float
    objects: int
    object_size: int
    large_objects: list[int]
    proxy_objects: int
    delay_ms: float
    memory_mib: list[float]
    #: The costs case's small dump size (its big one is ``dump_mib``).
    costs_mib: float
    #: Whether the awscli contenders run; cleared when installing awscli fails.
    aws: bool
    keep_going: bool
    only: list[str]
    profile: Path | None
    profile_format: str
