#!/usr/bin/env python3
"""Arguments -> the servers, the data, each chosen case in turn -> its tables, then all again."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from cases import CASES  # noqa: E402
from harness.bench import Bench  # noqa: E402
from harness.log import log  # noqa: E402
from harness.machine import load_average, machine_info  # noqa: E402
from harness.settings import MIB, Settings  # noqa: E402

from monetr_backup.testing import (  # noqa: E402
    DEFAULT_PG_BIN_DIR,
    TemporaryPostgres,
    TemporarySeaweedS3,
)


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
        "--costs-mib",
        type=float,
        help="the costs case's small dump size, against --dump-mib (default 256; quick: 16)",
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
        " ours-source, ours-backup, direct, proxy, costs, ceiling; e.g. --only ours,limit",
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
        costs_mib=args.costs_mib if args.costs_mib is not None else (16 if quick else 256),
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
        f"memory sizes={','.join(f'{m:g}' for m in settings.memory_mib)} MiB, "
        f"costs sizes={settings.costs_mib:g},{settings.dump_mib:g} MiB"
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
