"""An archive in S3 or a local dump -> a new database: pg_restore against our restore."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable

from contenders import pg_tools
from harness.bench import BACKUP_BUCKET, Bench
from harness.log import log
from harness.measure import Run
from harness.race import Contender, run_interleaved, summarize
from harness.report import failed_row, fmt, print_table, race_cells, ratio
from harness.settings import MB, MIB

__all__ = ["run_case"]


def run_case(bench: Bench) -> None:
    """Race pg_restore from a local file, aws s3 cp | pg_restore and our restore."""
    settings = bench.settings
    db, dump_bytes = bench.database(settings.dump_mib)
    bench.buckets()
    bench.aws.wait()
    pg_dump = pg_tools.program(bench.pg, "pg_dump")
    expected = bench.transactions
    log(f"\n# case restore: {dump_bytes / MIB:.1f} MiB dump, {settings.rounds} round(s)")
    log("  preparing the archives (not timed)")
    if bench.restore_archive is not None:
        ours_key = bench.restore_archive
        prepared = Run(ok=True)
    else:
        ours_key = "bench/restore/ours.tar.gz"
        prepared = bench.meter.run(
            lambda t: bench.ours.command(t, "backup", "--key", ours_key),
            bench.pg_env(db),
            json_output=True,
        )
        if not prepared.ok:
            log(f"  WARNING: our backup for the restore case failed: {prepared.error}")
    aws_key = "bench/restore/monetr.Fc.dump"
    aws_ready = False
    if bench.aws.path is not None and not settings.quick:
        upload = subprocess.run(
            [
                "bash",
                "-o",
                "pipefail",
                "-c",
                f"{pg_dump} -Fc | " + bench.aws.cp("-", f"s3://{BACKUP_BUCKET}/{aws_key}"),
            ],
            env=bench.aws.env | bench.pg_env(db),
            capture_output=True,
            check=False,
        )
        aws_ready = upload.returncode == 0
        if not aws_ready:
            log(f"  WARNING: uploading the -Fc dump failed: {upload.stderr[-800:]!r}")

    def target(slug: str, r: int) -> str:
        return f"restore_{slug}_{r}"

    def create(slug: str) -> Callable[[int], None]:
        def before(r: int) -> None:
            bench.pg.drop_database(target(slug, r))
            bench.pg.create_database(target(slug, r))

        return before

    def check(slug: str) -> Callable[[int, Run], None]:
        def after(r: int, run: Run) -> None:
            bench.check_restored(target(slug, r), expected)

        return after

    def drop(slug: str) -> Callable[[int], None]:
        return lambda r: bench.pg.drop_database(target(slug, r))

    contenders = [
        Contender(
            "pg_restore < local file (-Fc -Z0)",
            lambda r, t: (
                f"{shlex.join(t)} {pg_tools.restore(bench.pg, target('local', r))} "
                + shlex.quote(str(bench.main_dump))
            ),
            bench.pg_env("postgres"),
            before=create("local"),
            after=check("local"),
            cleanup=drop("local"),
            # "limit" too: --only ours,limit gives restore's ratio as it gives backup's.
            tags="limit baseline pg_restore",
        )
    ]
    if aws_ready and not settings.quick:
        contenders.append(
            Contender(
                "aws s3 cp - | pg_restore (-Fc)",
                lambda r, t: (
                    f"{shlex.join(t)} "
                    + bench.aws.cp(f"s3://{BACKUP_BUCKET}/{aws_key}", "-")
                    + f" | {pg_tools.restore(bench.pg, target('aws', r))}"
                ),
                bench.aws.env | bench.pg_env("postgres"),
                before=create("aws"),
                after=check("aws"),
                cleanup=drop("aws"),
                tags="aws shell",
            )
        )
    if prepared.ok:
        contenders.append(
            Contender(
                "monetr_backup.restore (S3)",
                lambda r, t: bench.ours.command(
                    t, "restore", "--key", ours_key, "--database", target("ours", r)
                ),
                bench.pg_env("postgres"),
                json_output=True,
                before=create("ours"),
                after=check("ours"),
                cleanup=drop("ours"),
                tags="ours",
            )
        )
    run_interleaved("restore", contenders, settings.rounds, bench.meter, settings)
    bench.delete(BACKUP_BUCKET, ours_key)
    bench.delete(BACKUP_BUCKET, aws_key)

    summaries = {c.name: summarize(c) for c in contenders}
    base = summaries[contenders[0].name]
    base_rate = dump_bytes / MB / base.wall if base else None
    ours = summaries.get("monetr_backup.restore (S3)")
    ours_rate = dump_bytes / MB / ours.wall if ours else None
    headers = [
        "contender",
        "wall s",
        "min-max s",
        "MB/s",
        "x pg_restore",
        "ours x",
        "CPU s",
        "srv CPU s",
        "RSS MiB",
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
        disk = s.info.get("write_bytes")
        rows.append(
            [
                *race_cells(c, s, rate, base_rate, ratio(ours_rate, rate)),
                fmt(s.rss, ".0f"),
                fmt(s.info.get("elapsed")),
                fmt(disk / MIB if disk is not None else None, ".2f"),
            ]
        )
    if not prepared.ok:
        rows.append(["monetr_backup.restore (S3)", "FAILED", "backup for it failed"])
        rows[-1] += ["-"] * (len(headers) - 3)
    notes = [
        f"into a new empty database each run ({expected:,} transactions checked after each);"
        f" MB/s = {dump_bytes:,} dump bytes / wall time",
        f"every contender runs pg_restore {pg_tools.RESTORE_ARGS}; ours reads a default archive"
        + (
            ", the aws row a pg_dump -Fc (compressed) object"
            if aws_ready and not settings.quick
            else " (aws row: not in --quick / without awscli)"
        ),
        "RSS MiB: pg_restore for the local file; aws for the pipe; our python (max with its"
        " pg_restore child) for ours",
        "srv CPU s: PostgreSQL (COPY, index builds) + SeaweedFS",
    ]
    bench.tables.append(print_table("restore (S3/local -> database)", headers, rows, notes))
