"""The database -> S3: pg_dump alone, pg_dump | aws s3 cp, and our backup, side by side."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable

from contenders import aws_shell, pg_tools
from contenders.ours import check_dump_size
from harness.bench import BACKUP_BUCKET, STORAGE_BUCKET, Bench
from harness.log import log
from harness.measure import Run
from harness.race import Contender, run_interleaved, summarize
from harness.report import failed_row, fmt, print_table, race_cells, ratio
from harness.settings import MB, MIB

__all__ = ["run_case"]


def run_case(bench: Bench) -> None:
    """Race the producer limit, the shell pipelines and our backup to S3."""
    settings = bench.settings
    db, dump_bytes = bench.database(settings.dump_mib)
    bench.storage()
    bench.aws.wait()
    pg_env = bench.pg_env(db)

    def key(slug: str, r: int) -> str:
        return f"bench/backup/{slug}/round-{r}"

    def sized(slug: str) -> Callable[[int, Run], None]:
        def after(r: int, run: Run) -> None:
            run.info["object_bytes"] = bench.object_size(BACKUP_BUCKET, key(slug, r))
            if slug.startswith("ours"):
                check_dump_size(run, dump_bytes)
            if slug == "ours" and bench.restore_archive is None and "restore" in settings.cases:
                # A database-only archive with defaults: what the restore case reads.
                bench.restore_archive = key(slug, r)
            else:
                bench.delete(BACKUP_BUCKET, key(slug, r))

        return after

    def remove(slug: str) -> Callable[[int], None]:
        return lambda r: bench.delete(BACKUP_BUCKET, key(slug, r))

    contenders = [
        Contender(
            "pg_dump -Fc -Z0 > /dev/null",
            lambda r, t: pg_tools.dump_to_null(bench.pg, t),
            pg_env,
            tags="limit baseline",
        )
    ]
    if bench.aws.path is not None:
        aws_env = bench.aws.env | bench.pg_env(db)
        pg_dump = pg_tools.program(bench.pg, "pg_dump")
        for name, slug, producer in aws_shell.backup_pipelines(pg_dump, quick=settings.quick):
            contenders.append(
                Contender(
                    name,
                    lambda r, t, slug=slug, producer=producer: (  # type: ignore[misc]
                        f"{producer} | {shlex.join(t)} "
                        + bench.aws.cp("-", f"s3://{BACKUP_BUCKET}/{key(slug, r)}")
                    ),
                    aws_env,
                    after=sized(slug),
                    cleanup=remove(slug),
                    tags=f"aws shell aws-{slug}",
                )
            )
    ours_env = bench.pg_env(db)
    contenders.append(
        Contender(
            "monetr_backup.backup (defaults)",
            lambda r, t: bench.ours.command(t, "backup", "--database", db, "--key", key("ours", r)),
            ours_env,
            json_output=True,
            after=sized("ours"),
            cleanup=remove("ours"),
            tags="ours",
        )
    )
    contenders.append(
        Contender(
            "monetr_backup.backup + storage (S3 -> S3)",
            lambda r, t: bench.ours.command(
                t,
                "backup",
                "--database",
                db,
                "--key",
                key("ours-s3", r),
                "--storage-bucket",
                STORAGE_BUCKET,
            ),
            ours_env,
            json_output=True,
            after=sized("ours-s3"),
            cleanup=remove("ours-s3"),
            tags="ours ours-s3",
            # Here for the bytes written to disk; one run is enough for that.
            max_rounds=1,
        )
    )
    log(f"\n# case backup: {dump_bytes / MIB:.1f} MiB dump, {settings.rounds} round(s)")
    run_interleaved("backup", contenders, settings.rounds, bench.meter, settings)

    summaries = {c.name: summarize(c) for c in contenders}
    limit = summaries[contenders[0].name]
    ours = summaries["monetr_backup.backup (defaults)"]
    limit_rate = dump_bytes / MB / limit.wall if limit else None
    ours_rate = dump_bytes / MB / ours.wall if ours else None
    headers = [
        "contender",
        "wall s",
        "min-max s",
        "MB/s",
        "x limit",
        "ours x",
        "CPU s",
        "srv CPU s",
        "cores busy",
        "RSS MiB",
        "object MiB",
        "dump/obj",
        "in-proc s",
        "disk w MiB",
    ]
    rows = []
    for c in contenders:
        s = summaries[c.name]
        if s is None:
            rows.append(failed_row(c, len(headers)))
            continue
        rate = dump_bytes / MB / s.wall
        obj = s.info.get("object_bytes")
        disk = s.info.get("write_bytes")
        ours_x = ratio(ours_rate, rate) if "ours-s3" not in c.tags else "-"
        rows.append(
            [
                *race_cells(c, s, rate, limit_rate, ours_x),
                fmt((s.cpu + s.server_cpu) / s.wall),
                fmt(s.rss, ".0f"),
                fmt(obj / MIB if obj else None, ".1f"),
                ratio(dump_bytes, obj) if obj else "-",
                fmt(s.info.get("elapsed")),
                fmt(disk / MIB if disk is not None else None, ".2f"),
            ]
        )
    notes = [
        f"dump: {dump_bytes:,} bytes of pg_dump -Fc -Z0 ({bench.transactions:,} transactions);"
        " MB/s = those bytes / wall time, for every row (1 MB = 10^6 bytes)",
        "x limit: MB/s relative to pg_dump -Fc -Z0 > /dev/null;"
        " ours x: monetr_backup.backup (defaults) MB/s divided by the row's",
        "CPU s: user+sys of the client process tree (pg_dump, gzip, aws / python);"
        " srv CPU s: PostgreSQL + SeaweedFS",
        f"cores busy: (CPU s + srv CPU s) / wall s; this machine has {os.cpu_count()} cores,"
        " so near that figure a row is CPU-bound",
        "RSS MiB: peak RSS of the uploading process (aws, or our python; pg_dump for the limit)",
        "in-proc s: time inside our process around the library call (wall minus start-up);"
        " disk w MiB: write_bytes of our process during the call (/proc/<pid>/io)",
        f"S3 -> S3 row: the same dump plus {bench.object_count:,} storage objects "
        f"({bench.object_bytes / MIB:.1f} MiB) from bucket {STORAGE_BUCKET!r}",
        f"medians of {settings.rounds} round(s), contenders interleaved (S3 -> S3: round 1 only)",
    ]
    bench.tables.append(print_table("backup (database -> S3)", headers, rows, notes))
