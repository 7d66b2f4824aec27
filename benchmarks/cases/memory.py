"""Databases of growing size -> our backup of each -> its peak RSS, against the smallest."""

from __future__ import annotations

from contenders.ours import check_dump_size
from harness.bench import BACKUP_BUCKET, Bench
from harness.log import log
from harness.measure import Run
from harness.race import Contender, run_interleaved, summarize
from harness.report import failed_row, fmt, print_table, ratio
from harness.settings import MB, MIB

__all__ = ["run_case"]


def run_case(bench: Bench) -> None:
    """Run our backup at each ``--memory-mib`` size and compare its peak RSS."""
    settings = bench.settings
    bench.buckets()
    sizes = []
    for mib in settings.memory_mib:
        name, dump_bytes = bench.database(mib)
        sizes.append((mib, name, dump_bytes))
    log(f"\n# case memory: ours at {', '.join(f'{m:g}' for m, _, _ in sizes)} MiB of dump")

    def key(name: str, r: int) -> str:
        return f"bench/memory/{name}/round-{r}"

    contenders = []
    for _mib, name, dump_bytes in sizes:

        def after(r: int, run: Run, name: str = name, dump_bytes: int = dump_bytes) -> None:
            run.info["object_bytes"] = bench.object_size(BACKUP_BUCKET, key(name, r))
            bench.delete(BACKUP_BUCKET, key(name, r))
            check_dump_size(run, dump_bytes)

        contenders.append(
            Contender(
                f"backup of {dump_bytes / MIB:.0f} MiB dump",
                lambda r, t, name=name: bench.ours.command(  # type: ignore[misc]
                    t, "backup", "--database", name, "--key", key(name, r)
                ),
                bench.pg_env(name),
                json_output=True,
                after=after,
                cleanup=lambda r, name=name: bench.delete(  # type: ignore[misc]
                    BACKUP_BUCKET, key(name, r)
                ),
                tags=f"ours {name}",
            )
        )
    run_interleaved("memory", contenders, settings.rounds, bench.meter, settings)
    headers = [
        "contender",
        "wall s",
        "MB/s",
        "CPU s",
        "RSS MiB",
        "min-max RSS",
        "RSS x smallest",
        "python RSS",
        "disk w MiB",
    ]
    rows = []
    first_rss: float | None = None
    for c, (_mib, _name, dump_bytes) in zip(contenders, sizes, strict=True):
        s = summarize(c)
        if s is None:
            rows.append(failed_row(c, len(headers)))
            continue
        if first_rss is None:
            first_rss = s.rss
        rss_all = [r.rss_mib for r in c.good if r.rss_mib is not None]
        disk = s.info.get("write_bytes")
        self_rss = s.info.get("maxrss_kib")
        rows.append(
            [
                c.name,
                fmt(s.wall),
                fmt(dump_bytes / MB / s.wall, ".1f"),
                fmt(s.cpu),
                fmt(s.rss, ".0f"),
                f"{min(rss_all):.0f}-{max(rss_all):.0f}" if rss_all else "-",
                ratio(s.rss, first_rss),
                fmt(self_rss / 1024 if self_rss else None, ".0f"),
                fmt(disk / MIB if disk is not None else None, ".2f"),
            ]
        )
    notes = [
        "monetr_backup.backup with defaults, database only, to S3",
        "RSS MiB: /usr/bin/time peak RSS of our process tree's largest process;"
        " python RSS: ru_maxrss of the python process itself",
    ]
    bench.tables.append(print_table("memory (peak RSS of our backup)", headers, rows, notes))
