"""The recorded dump -> our backup pipeline alone, 1 and 2 compress threads -> MB/s and CPU."""

from __future__ import annotations

import math
import os

from harness.bench import Bench
from harness.log import log
from harness.measure import Run, clean_env
from harness.race import Contender, run_interleaved, summarize
from harness.report import failed_row, fmt, print_table, ratio
from harness.settings import MB, MIB

__all__ = ["THREADS", "run_case"]

#: Compress threads -> issue 12's target: MB/s with one thread, the speed-up with two.
THREADS: dict[int, tuple[str, float]] = {1: ("MB/s", 330.0), 2: ("x 1 thread", 1.6)}
GB = 1_000_000_000


def run_case(bench: Bench) -> None:
    """Run ``ours_process.py ceiling`` on the recorded dump with 1 and 2 threads."""
    settings = bench.settings
    _db, dump_bytes = bench.database(settings.dump_mib)
    dump = bench.main_dump
    log(
        f"\n# case ceiling: {dump_bytes / MIB:.1f} MiB recorded dump -> our pipeline ->"
        f" nowhere, {settings.rounds} round(s)"
    )

    def whole(r: int, run: Run) -> None:
        if run.info.get("dump_bytes") != dump_bytes:
            raise RuntimeError(f"read {run.info.get('dump_bytes')} bytes, not {dump_bytes:,}")

    contenders = [
        Contender(
            f"ceiling, {threads} compress thread{'s' if threads > 1 else ''}",
            lambda r, t, threads=threads: bench.ours.command(  # type: ignore[misc]
                t, "ceiling", "--dump", str(dump), "--threads", str(threads)
            ),
            clean_env(),
            json_output=True,
            after=whole,
            tags=f"ours ceiling ceiling-{threads}",
        )
        for threads in THREADS
    ]
    run_interleaved("ceiling", contenders, settings.rounds, bench.meter, settings)

    headers = [
        "threads",
        "MB/s",
        "in-proc s",
        "CPU s",
        "CPU-s/GB",
        "loop CPU-s/GB",
        "x 1 thread",
        "RSS MiB",
        "dump/archive",
        "target",
        "met",
    ]
    rows = []
    one_thread: float | None = None
    for c, (threads, (unit, most)) in zip(contenders, THREADS.items(), strict=True):
        s = summarize(c)
        if s is None:
            rows.append(failed_row(c, len(headers)))
            continue
        elapsed = s.info.get("elapsed", math.nan)
        rate = dump_bytes / MB / elapsed
        if threads == 1:
            one_thread = rate
        speedup = rate / one_thread if one_thread else math.nan
        reached = rate if unit == "MB/s" else speedup
        cpu = s.info.get("cpu_call", math.nan)
        loop = s.info.get("cpu_loop", math.nan)
        archive = s.info.get("archive_bytes")
        rows.append(
            [
                str(threads),
                fmt(rate, ".1f"),
                fmt(elapsed),
                fmt(cpu),
                fmt(cpu / dump_bytes * GB),
                fmt(loop / dump_bytes * GB),
                ratio(rate, one_thread),
                fmt(s.rss, ".0f"),
                ratio(dump_bytes, archive),
                f">= {most:g} {unit}" if unit == "MB/s" else f">= {most:g}x",
                "-" if math.isnan(reached) else ("yes" if reached >= most else "no"),
            ]
        )
    notes = [
        f"{dump_bytes:,} bytes of pg_dump -Fc -Z0 recorded in a local file (page cache),"
        " read in backup()'s part size -> dump part members -> tar -> gzip with"
        " BackupOptions' defaults -> a discarding sink; no database, no S3",
        "MB/s: dump bytes / in-proc s (the pipeline only, no interpreter start-up);"
        " CPU s: the process during it (time.process_time), loop: its event-loop thread",
        f"RSS MiB: peak of the process; medians of {settings.rounds} round(s), interleaved;"
        " target: issue 12 (>= 330 MB/s with 1 thread, >= 1.6x that with 2)",
        f"this machine has {os.cpu_count()} cores; another process busy on them shows here",
    ]
    bench.tables.append(print_table("ceiling (our process alone)", headers, rows, notes))
