#!/usr/bin/env python3
"""Arguments -> the servers, the data, each chosen case in turn -> its tables, then all again."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from contenders import aws_shell, objects_loop, pg_tools  # noqa: E402
from contenders.ours import check_dump_size  # noqa: E402
from harness import latency_proxy  # noqa: E402
from harness.bench import BACKUP_BUCKET, PROXY_BUCKET, STORAGE_BUCKET, Bench  # noqa: E402
from harness.log import log  # noqa: E402
from harness.machine import load_average, machine_info  # noqa: E402
from harness.measure import Run, clean_env  # noqa: E402
from harness.race import Contender, run_interleaved, summarize  # noqa: E402
from harness.report import failed_row, fmt, print_table, race_cells, ratio  # noqa: E402
from harness.settings import MB, MIB, Settings  # noqa: E402

from monetr_backup.testing import (  # noqa: E402
    DEFAULT_PG_BIN_DIR,
    TemporaryPostgres,
    TemporarySeaweedS3,
)


def case_backup(bench: Bench) -> None:
    """Race the producer limit, the shell pipelines and our backup to S3."""
    settings = bench.settings
    db, dump_bytes = bench.database(settings.dump_mib)
    bench.storage()
    bench.aws.wait()
    pg_env = bench.pg_env(db)
    pg_dump = pg_tools.program(bench.pg, "pg_dump")

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
        pipelines = aws_shell.backup_pipelines(pg_dump, quick=settings.quick)
        for name, slug, producer in pipelines:
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


def case_restore(bench: Bench) -> None:
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
            name = target(slug, r)
            try:
                count = int(bench.pg.psql("SELECT count(*) FROM transactions", name))
            finally:
                bench.pg.drop_database(name)
            if count != expected:
                raise RuntimeError(f"{name} has {count} transactions, expected {expected}")

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
            tags="baseline pg_restore",
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


def case_objects(bench: Bench) -> None:
    """Race the sequential GET loop against our object source and backup(storage=...)."""
    settings = bench.settings
    bench.buckets()
    bench.storage()
    env = clean_env()
    proxied_bucket = PROXY_BUCKET if settings.proxy_objects < settings.objects else STORAGE_BUCKET
    proxied = (
        (bench.proxy_count, bench.proxy_bytes)
        if proxied_bucket == PROXY_BUCKET
        else (bench.object_count, bench.object_bytes)
    )
    log(
        f"\n# case objects: {bench.object_count:,} objects ({bench.object_bytes / MIB:.1f} MiB)"
        f" direct, {proxied[0]:,} ({proxied[1] / MIB:.1f} MiB) through a"
        f" {settings.delay_ms:g} ms proxy, {settings.rounds} round(s)"
    )
    groups: list[tuple[str, list[Contender], tuple[int, int]]] = []
    s3_port = f"127.0.0.1:{bench.s3.ports['s3']}"
    with latency_proxy.running(s3_port, settings.delay_ms, env) as proxy_url:
        for label, where, bucket, endpoint, counts in (
            ("direct", "direct", STORAGE_BUCKET, None, (bench.object_count, bench.object_bytes)),
            (f"+{settings.delay_ms:g} ms", "proxy", proxied_bucket, proxy_url, proxied),
        ):
            extra = ["--endpoint", endpoint] if endpoint else []
            contenders = [
                Contender(
                    f"sequential botocore GET -> tar ({label})",
                    lambda r, t, bucket=bucket, endpoint=endpoint: (  # type: ignore[misc]
                        objects_loop.command(t, bench.spec, bucket, endpoint)
                    ),
                    env,
                    json_output=True,
                    tags=f"baseline sequential {where}",
                ),
                Contender(
                    f"ours: s3_objects -> encode_tar ({label})",
                    lambda r, t, bucket=bucket, extra=extra: bench.ours.command(  # type: ignore[misc]
                        t, "objects", "--bucket", bucket, "--mode", "source", *extra
                    ),
                    env,
                    json_output=True,
                    tags=f"ours ours-source {where}",
                ),
                Contender(
                    f"ours: backup(storage=S3Storage) ({label})",
                    lambda r, t, bucket=bucket, extra=extra: bench.ours.command(  # type: ignore[misc]
                        t, "objects", "--bucket", bucket, "--mode", "backup", *extra
                    ),
                    env,
                    json_output=True,
                    tags=f"ours ours-backup {where}",
                ),
            ]
            if where == "proxy":
                # The plain generator fetches one object at a time by design: through the
                # proxy it only repeats the sequential baseline.
                contenders = [c for c in contenders if "ours-source" not in c.tags]
                # The sequential baseline is latency-bound (a delay per GET, ~5 min for
                # 10,000 objects) and varies little: one round.
                contenders[0].max_rounds = 1
            groups.append((label, contenders, counts))
        everyone = [c for _, cs, _ in groups for c in cs]
        run_interleaved("objects", everyone, settings.rounds, bench.meter, settings)

    headers = [
        "contender",
        "objects",
        "MiB",
        "wall s",
        "min-max s",
        "objects/s",
        "MB/s",
        "x sequential",
        "CPU s",
        "srv CPU s",
        "RSS MiB",
        "in-proc s",
    ]
    rows = []
    for _label, contenders, (count, size) in groups:
        base = summarize(contenders[0])
        base_wall = base.wall if base else None
        for c in contenders:
            s = summarize(c)
            if s is None:
                rows.append(failed_row(c, len(headers)))
                continue
            seen = int(s.info.get("objects", 0))
            rows.append(
                [
                    c.name,
                    f"{seen:,}" + ("" if seen == count else f" (!= {count:,})"),
                    fmt(size / MIB, ".1f"),
                    fmt(s.wall),
                    f"{s.wall_min:.1f}-{s.wall_max:.1f}",
                    fmt(seen / s.wall, ".0f"),
                    fmt(size / MB / s.wall, ".1f"),
                    ratio(base_wall, s.wall),
                    fmt(s.cpu),
                    fmt(s.server_cpu),
                    fmt(s.rss, ".0f"),
                    fmt(s.info.get("elapsed")),
                ]
            )
    notes = [
        f"small objects of {settings.object_size} bytes plus"
        f" {len(settings.large_objects)} large ones; everything written as tar to /dev/null",
        "x sequential: speed relative to the sequential baseline in the same setting"
        " (direct or through the proxy)",
        f"proxy: 127.0.0.1 TCP proxy adding {settings.delay_ms:g} ms before each request"
        " (benchmarks/harness/latency_proxy.py)",
        "backup(storage=...) row: the full storage path of backup() (manifest hashing"
        " included), codec none, into a discarding ArchiveSink",
        "s3_objects row: the plain generator, one GET at a time (direct only; through the"
        " proxy it would repeat the sequential baseline)",
        "through the proxy the sequential baseline runs in round 1 only (latency-bound)",
    ]
    bench.tables.append(print_table("storage objects (S3 -> tar)", headers, rows, notes))


def case_memory(bench: Bench) -> None:
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


CASES: dict[str, Callable[[Bench], None]] = {
    "backup": case_backup,
    "restore": case_restore,
    "objects": case_objects,
    "memory": case_memory,
}


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """The command line -> Settings, with the full or the ``--quick`` defaults filled in."""
    parser = argparse.ArgumentParser(
        description="Benchmark monetr_backup against pg_dump and the shell alternatives.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 round (CI smoke)")
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"comma-separated subset of {','.join(CASES)} (default: all)",
    )
    parser.add_argument("--rounds", type=int, help="rounds per case (default 3; quick: 1)")
    parser.add_argument(
        "--dump-mib", type=float, help="target pg_dump -Fc -Z0 size (default 1024; quick: 64)"
    )
    parser.add_argument("--objects", type=int, help="small objects (default 10000; quick: 100)")
    parser.add_argument("--object-size", type=int, default=4096, help="bytes per small object")
    parser.add_argument(
        "--proxy-objects",
        type=int,
        help="small objects in the run through the latency proxy (default: all of them;"
        " quick: 20); the sequential baseline costs ~30 ms each there, so it runs one round",
    )
    parser.add_argument("--delay-ms", type=float, default=20.0, help="proxy delay per request")
    parser.add_argument(
        "--memory-mib",
        help="dump sizes for the memory case, comma-separated (default 256,2048; quick: 16,64)",
    )
    parser.add_argument(
        "--no-aws",
        action="store_true",
        help="skip the awscli contenders (--quick skips them unless --aws is given)",
    )
    parser.add_argument("--aws", action="store_true", help="--quick: run the awscli contenders too")
    parser.add_argument(
        "--only",
        default="",
        help="run only contenders whose name or tags contain one of these comma-separated"
        " substrings (case-insensitive); tags: limit, baseline, aws, shell, ours, ours-s3,"
        " ours-source, ours-backup, direct, proxy; e.g. --only ours,limit",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run our contenders under py-spy record, writing one profile per run to DIR"
        " (perturbs their figures)",
    )
    parser.add_argument(
        "--profile-format", choices=["flamegraph", "speedscope", "raw"], default="flamegraph"
    )
    parser.add_argument(
        "--stop-on-error",
        action="store_true",
        help="stop at the first failing contender instead of marking it and going on",
    )
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}")
    quick = bool(args.quick)
    objects = args.objects if args.objects is not None else (100 if quick else 10_000)
    memory = args.memory_mib or ("16,64" if quick else "256,2048")
    settings = Settings(
        quick=quick,
        cases=cases,
        rounds=args.rounds if args.rounds is not None else (1 if quick else 3),
        dump_mib=args.dump_mib if args.dump_mib is not None else (64 if quick else 1024),
        objects=objects,
        object_size=args.object_size,
        large_objects=[MIB] if quick else [MIB, 2 * MIB, 5 * MIB, 8 * MIB],
        proxy_objects=min(
            objects,
            args.proxy_objects if args.proxy_objects is not None else (20 if quick else objects),
        ),
        delay_ms=args.delay_ms,
        memory_mib=[float(x) for x in memory.split(",") if x.strip()],
        # Installing awscli alone takes ~17 s: more than --quick's minute can spare.
        aws=not args.no_aws and (not quick or args.aws),
        keep_going=not args.stop_on_error,
        only=[o.strip().lower() for o in args.only.split(",") if o.strip()],
        profile=args.profile.resolve() if args.profile else None,
        profile_format=args.profile_format,
    )
    if settings.profile is not None:
        settings.profile.mkdir(parents=True, exist_ok=True)
    if settings.rounds < 1:
        parser.error("--rounds must be at least 1")
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    """Print the machine, start the servers, run the chosen cases, print every table again."""
    settings = parse_args(argv)
    started = time.perf_counter()
    log("# monetr_backup benchmarks" + (" (--quick)" if settings.quick else ""))
    log(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    info = machine_info(DEFAULT_PG_BIN_DIR)
    for name, value in info:
        log(f"  {name:<13} {value}")
    log(
        f"settings: cases={','.join(settings.cases)} rounds={settings.rounds} "
        f"dump={settings.dump_mib:g} MiB objects={settings.objects} x "
        f"{settings.object_size} B + {len(settings.large_objects)} large, "
        f"proxy objects={settings.proxy_objects}, delay={settings.delay_ms:g} ms, "
        f"memory sizes={','.join(f'{m:g}' for m in settings.memory_mib)} MiB"
    )
    work = Path(tempfile.mkdtemp(prefix="monetr-bench-"))
    try:
        log("starting PostgreSQL and SeaweedFS")
        with TemporaryPostgres() as pg, TemporarySeaweedS3() as s3:
            bench = Bench(settings, pg, s3, work)
            bench.buckets()
            # Installing awscli and uploading objects overlap the database generation.
            if "backup" in settings.cases or "restore" in settings.cases:
                bench.aws.start()
            if "backup" in settings.cases or "objects" in settings.cases:
                bench.start_storage()
            for case, run_case in CASES.items():
                if case in settings.cases:
                    case_started = time.perf_counter()
                    run_case(bench)
                    log(
                        f"  ({case} took {time.perf_counter() - case_started:.0f} s;"
                        f" load average {load_average()})"
                    )
            log("\n# summary")
            for table in bench.tables:
                log(table)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"\ntotal time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
