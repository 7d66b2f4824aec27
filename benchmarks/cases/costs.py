"""Two dump sizes -> our backup and restore at each -> CPU per process, fixed and per GB."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from contenders.ours import check_dump_size
from harness.bench import BACKUP_BUCKET, Bench
from harness.log import log
from harness.measure import Run
from harness.race import Contender, median, run_interleaved
from harness.report import fmt, print_table
from harness.settings import MB, MIB

__all__ = ["TARGETS", "fit", "run_case"]

#: 1 GB of dump, as issue 12's CPU-s/GB counts it.
GB = 1_000_000_000
#: Issue 12's per-byte targets in CPU-s per GB of dump: operation -> row kind -> most.
TARGETS: dict[str, dict[str, float]] = {
    "backup": {"python": 4.5, "loop": 1.5},
    "restore": {"python": 4.0, "loop": 1.5},
}


@dataclass
class Size:
    """One of the two databases: its name, its dump's bytes and its transactions."""

    label: str
    database: str
    dump_bytes: int
    transactions: int


def fit(small: tuple[int, float], big: tuple[int, float]) -> tuple[float, float]:
    """Two (dump bytes, seconds) points -> (fixed seconds, seconds per GB): a straight line.

    NaN for both when the sizes are equal or a point is missing (NaN).
    """
    (small_bytes, small_s), (big_bytes, big_s) = small, big
    if big_bytes == small_bytes or math.isnan(small_s) or math.isnan(big_s):
        return math.nan, math.nan
    per_byte = (big_s - small_s) / (big_bytes - small_bytes)
    return small_s - per_byte * small_bytes, per_byte * GB


def _info(key: str) -> Callable[[Run], float | None]:
    def value(run: Run) -> float | None:
        got = run.info.get(key)
        return float(got) if isinstance(got, int | float) else None

    return value


def _child(run: Run) -> float | None:
    """pg_dump or pg_restore: the process tree's CPU without our python's own."""
    own = _info("cpu_self")(run)
    return run.cpu - own if own is not None else None


def _server(name: str) -> Callable[[Run], float | None]:
    return lambda run: run.server_cpus.get(name)


def _median(c: Contender, value: Callable[[Run], float | None]) -> float:
    """The median of ``value`` over ``c``'s successful runs (NaN for none)."""
    return median([v for v in map(value, c.good) if v is not None])


def _cell(c: Contender, value: float, spec: str = ".2f") -> str:
    """``value`` for ``c``'s column, or why there is none (``not run``, ``FAILED``)."""
    if not c.good:
        return "not run" if not c.runs else "FAILED"
    return fmt(value, spec)


def run_case(bench: Bench) -> None:
    """Our backup and restore at ``--costs-mib`` and ``--dump-mib``: what each process spends."""
    settings = bench.settings
    bench.buckets()
    sizes: list[Size] = []
    for label, mib in (("small", settings.costs_mib), ("big", settings.dump_mib)):
        name, dump_bytes = bench.database(mib)
        count = int(bench.pg.psql("SELECT count(*) FROM transactions", name))
        sizes.append(Size(label, name, dump_bytes, count))
    log(
        f"\n# case costs: our backup and restore at"
        f" {' and '.join(f'{s.dump_bytes / MIB:.1f}' for s in sizes)} MiB of dump,"
        f" {settings.rounds} round(s)"
    )
    #: Size label -> the archive its restores read: the first good backup's, or a prepared one.
    archives: dict[str, str] = {}

    def key(size: Size, r: int) -> str:
        return f"bench/costs/{size.label}/round-{r}"

    def backup_command(size: Size, r: int) -> Callable[[list[str]], list[str]]:
        return lambda t: bench.ours.command(
            t, "backup", "--database", size.database, "--key", key(size, r)
        )

    def backed_up(size: Size) -> Callable[[int, Run], None]:
        def after(r: int, run: Run) -> None:
            check_dump_size(run, size.dump_bytes)
            if size.label not in archives:
                archives[size.label] = key(size, r)
            else:
                bench.delete(BACKUP_BUCKET, key(size, r))

        return after

    def target(size: Size, r: int) -> str:
        return f"costs_{size.label}_{r}"

    def before_restore(size: Size) -> Callable[[int], None]:
        def before(r: int) -> None:
            if size.label not in archives:
                # The backup rows did not run (--only) or failed: an archive of our own.
                prepared = bench.meter.run(
                    backup_command(size, -1), bench.pg_env(size.database), json_output=True
                )
                if prepared.ok:
                    archives[size.label] = key(size, -1)
                else:
                    log(f"  WARNING: the backup for the {size.label} restores failed")
            bench.pg.drop_database(target(size, r))
            bench.pg.create_database(target(size, r))

        return before

    def restored(size: Size) -> Callable[[int, Run], None]:
        def after(r: int, run: Run) -> None:
            bench.check_restored(target(size, r), size.transactions)

        return after

    groups: dict[str, list[Contender]] = {"backup": [], "restore": []}
    for size in sizes:
        groups["backup"].append(
            Contender(
                f"backup of {size.dump_bytes / MIB:.0f} MiB",
                lambda r, t, size=size: backup_command(size, r)(t),  # type: ignore[misc]
                bench.pg_env(size.database),
                json_output=True,
                after=backed_up(size),
                cleanup=lambda r, size=size: bench.delete(  # type: ignore[misc]
                    BACKUP_BUCKET, key(size, r)
                ),
                tags=f"ours costs costs-backup costs-{size.label}",
            )
        )
    for size in sizes:
        groups["restore"].append(
            Contender(
                f"restore of {size.dump_bytes / MIB:.0f} MiB",
                lambda r, t, size=size: bench.ours.command(  # type: ignore[misc]
                    t,
                    "restore",
                    "--key",
                    archives.get(size.label, key(size, -1)),
                    "--database",
                    target(size, r),
                ),
                bench.pg_env("postgres"),
                json_output=True,
                before=before_restore(size),
                after=restored(size),
                cleanup=lambda r, size=size: bench.pg.drop_database(  # type: ignore[misc]
                    target(size, r)
                ),
                tags=f"ours costs costs-restore costs-{size.label}",
            )
        )
    try:
        run_interleaved(
            "costs", groups["backup"] + groups["restore"], settings.rounds, bench.meter, settings
        )
    finally:
        for archive in archives.values():
            bench.delete(BACKUP_BUCKET, archive)
    for operation, contenders in groups.items():
        bench.tables.append(_table(bench, operation, sizes, contenders))


def _table(bench: Bench, operation: str, sizes: list[Size], contenders: list[Contender]) -> str:
    """The table of one operation: a row per process, a column per size, then the fit."""
    small, big = sizes
    targets = TARGETS[operation]
    child = "pg_dump" if operation == "backup" else "pg_restore"
    rows_of: list[tuple[str, Callable[[Run], float | None], str | None]] = [
        ("our python (cpu_self)", _info("cpu_self"), "python"),
        ("our python during the call (cpu_call)", _info("cpu_call"), "python"),
        ("our python before the call (cpu_start)", _info("cpu_start"), None),
        ("the event loop (cpu_loop)", _info("cpu_loop"), "loop"),
        (f"{child} (process tree - cpu_self)", _child, None),
        ("client process tree (CPU s)", lambda run: run.cpu, None),
        ("PostgreSQL", _server("postgres"), None),
        ("SeaweedFS", _server("seaweedfs"), None),
    ]
    headers = [
        "process",
        f"CPU s @ {small.dump_bytes / MIB:.0f} MiB",
        f"CPU s @ {big.dump_bytes / MIB:.0f} MiB",
        "fixed s",
        "CPU-s/GB",
        "target CPU-s/GB",
        "met",
    ]
    rows = []
    for label, value, kind in rows_of:
        at = [_median(c, value) for c in contenders]
        fixed, per_gb = fit((small.dump_bytes, at[0]), (big.dump_bytes, at[1]))
        most = targets.get(kind) if kind else None
        met = "-"
        if most is not None and not math.isnan(per_gb):
            met = "yes" if per_gb <= most else "no"
        rows.append(
            [
                label,
                *(_cell(c, v) for c, v in zip(contenders, at, strict=True)),
                fmt(fixed),
                fmt(per_gb),
                f"<= {most:.1f}" if most is not None else "-",
                met,
            ]
        )
    walls = [_median(c, lambda run: run.wall) for c in contenders]
    fixed, per_gb = fit((small.dump_bytes, walls[0]), (big.dump_bytes, walls[1]))
    rates = [
        f"{fmt(w)} s, {fmt(s.dump_bytes / MB / w, '.1f')} MB/s" if c.good else _cell(c, w)
        for c, w, s in zip(contenders, walls, sizes, strict=True)
    ]
    rows.append(["wall time (s, MB/s of dump)", *rates, fmt(fixed), fmt(per_gb), "-", "-"])
    runs = " and ".join(f"{len(c.good)}" for c in contenders)
    what = (
        "monetr_backup.backup, database -> S3, defaults"
        if operation == "backup"
        else "monetr_backup.restore, S3 -> a new empty database, defaults"
    )
    notes = [
        f"{what}; dumps of {small.dump_bytes:,} and {big.dump_bytes:,} bytes"
        f" (pg_dump -Fc -Z0); medians of {runs} run(s) per size, before the fit",
        "fit: per byte = (big - small) / (bytes big - bytes small), shown per GB of dump"
        " (10^9 bytes); fixed s = small - per byte x bytes small",
        "cpu_self: our python at exit (RUSAGE_SELF); cpu_call: the process during the library"
        " call (time.process_time); cpu_start: before it (interpreter, imports);"
        " cpu_loop: the event loop's thread during the call (time.thread_time)",
        f"{child}: user+sys of the whole process tree (getrusage children) minus cpu_self;"
        " PostgreSQL: postmaster + reaped backends; SeaweedFS: the weed process",
        "target: issue 12's per-byte figure for our process and for the event loop",
    ]
    title = f"costs: {operation} CPU per process, fixed and per GB"
    return print_table(title, headers, rows, notes)
