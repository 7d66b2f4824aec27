"""Contenders -> their runs, interleaved round by round -> a Summary of medians each."""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from .log import log
from .measure import Meter, Run
from .settings import Settings

__all__ = ["Contender", "Summary", "median", "run_interleaved", "summarize"]


@dataclass
class Contender:
    """One row of a case's table: how to run it, its checks, and the runs so far."""

    name: str
    #: Builds the command from the RSS-recording prefix: a list (argv) or a bash string.
    command: Callable[[int, list[str]], list[str] | str]
    env: dict[str, str]
    json_output: bool = False
    #: Called before each round's run (not timed): create a database, write a file ...
    before: Callable[[int], None] | None = None
    #: Called after each successful run (not timed): size the object, check, clean up.
    after: Callable[[int, Run], None] | None = None
    #: Called after a failed run (not timed).
    cleanup: Callable[[int], None] | None = None
    #: Run in the first ``max_rounds`` rounds only (a check rather than a race).
    max_rounds: int | None = None
    #: Short words ``--only`` matches besides the name (limit, baseline, aws, ours ...).
    tags: str = ""
    runs: list[Run] = field(default_factory=list)

    @property
    def good(self) -> list[Run]:
        """The successful runs."""
        return [r for r in self.runs if r.ok]


def run_interleaved(
    case: str, contenders: list[Contender], rounds: int, meter: Meter, settings: Settings
) -> None:
    """Run every contender once per round (A B C A B C ...), logging each run."""
    for r in range(rounds):
        for c in contenders:
            if c.runs and not c.runs[-1].ok and not c.good:
                # Failed every time so far: do not spend more rounds on it.
                continue
            if c.max_rounds is not None and r >= c.max_rounds:
                continue
            if settings.only and not any(o in f"{c.name} {c.tags}".lower() for o in settings.only):
                continue
            if c.before is not None:
                c.before(r)
            run = meter.run(
                lambda prefix, c=c, r=r: c.command(r, prefix),  # type: ignore[misc]
                c.env,
                json_output=c.json_output,
            )
            if run.ok and c.after is not None:
                try:
                    c.after(r, run)
                except Exception as exc:
                    run = Run(ok=False, wall=run.wall, error=f"check after the run failed: {exc}")
            if not run.ok and c.cleanup is not None:
                with contextlib.suppress(Exception):
                    c.cleanup(r)
            c.runs.append(run)
            if run.ok:
                rss = f"{run.rss_mib:.0f} MiB" if run.rss_mib is not None else "-"
                # Our process alone (without its pg_dump/pg_restore child), when it says.
                own = run.info.get("cpu_self")
                python = f", python cpu {float(own):.2f} s" if own is not None else ""
                loop = run.info.get("cpu_loop")
                python += f" (loop {float(loop):.2f} s)" if loop is not None else ""
                log(
                    f"  [{case} {r + 1}/{rounds}] {c.name}: {run.wall:.2f} s, "
                    f"cpu {run.cpu:.2f} s{python}, rss {rss}"
                )
            else:
                log(f"  [{case} {r + 1}/{rounds}] {c.name}: FAILED {run.error}")
                if not settings.keep_going:
                    raise SystemExit(f"{c.name} failed")


def median(values: list[float]) -> float:
    """The median, or NaN (shown as ``-``) for no values."""
    return statistics.median(values) if values else float("nan")


@dataclass
class Summary:
    """Medians over a contender's successful runs (``info``: of its numeric JSON fields)."""

    wall: float
    wall_min: float
    wall_max: float
    cpu: float
    server_cpu: float
    #: Each server's median (``postgres``, ``seaweedfs``), of the runs that measured it.
    server_cpus: dict[str, float]
    rss: float | None
    info: dict[str, float]
    rounds: int


def summarize(c: Contender) -> Summary | None:
    """The medians of ``c``'s successful runs, or None if it has none."""
    runs = c.good
    if not runs:
        return None
    rss = [r.rss_mib for r in runs if r.rss_mib is not None]
    keys = {k for r in runs for k, v in r.info.items() if isinstance(v, int | float)}
    info = {k: median([float(r.info[k]) for r in runs if k in r.info]) for k in keys}
    walls = [r.wall for r in runs]
    servers = {name for r in runs for name in r.server_cpus}
    server_cpus = {
        name: median([r.server_cpus[name] for r in runs if name in r.server_cpus])
        for name in sorted(servers)
    }
    return Summary(
        wall=median(walls),
        wall_min=min(walls),
        wall_max=max(walls),
        cpu=median([r.cpu for r in runs]),
        server_cpu=median([r.server_cpu for r in runs]),
        server_cpus=server_cpus,
        rss=median(rss) if rss else None,
        info=info,
        rounds=len(runs),
    )
