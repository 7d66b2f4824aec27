#!/usr/bin/env python3
"""Benchmarks for monetr_backup against the physical limit and the shell alternatives.

Starts a throwaway PostgreSQL 15 and a SeaweedFS S3 server on 127.0.0.1, generates a
monetr-like database and a bucket of storage objects, then runs each case's
contenders interleaved (A B C A B C ...) and prints a table of medians per case::

    python benchmarks/run.py                      # full: ~1 GiB dump, 10,000 objects, 3 rounds
    python benchmarks/run.py --quick              # smoke test, under a minute
    python benchmarks/run.py --cases backup --dump-mib 512 --rounds 3

Every contender runs as a process of its own (ours too: benchmarks/_ours.py), so that
wall time, CPU seconds (user+sys of the whole client-side process tree, from
``RUSAGE_CHILDREN``) and peak RSS (``/usr/bin/time -v`` around the uploading process)
are measured the same way for everyone. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _data  # noqa: E402
import botocore.config  # noqa: E402
import botocore.session  # noqa: E402

from monetr_backup.testing import (  # noqa: E402
    DEFAULT_PG_BIN_DIR,
    TemporaryPostgres,
    TemporarySeaweedS3,
)

MIB = 1024 * 1024
MB = 1_000_000
CASES = ("backup", "restore", "objects", "memory")
TIME_BIN = Path("/usr/bin/time")
AWSCLI_VENV = HERE / ".awscli-venv"
BACKUP_BUCKET = "backups"
STORAGE_BUCKET = "storage"
PROXY_BUCKET = "storage-proxy"
# Fallback for /usr/bin/time: fork/exec the command, wait4() it, write its ru_maxrss.
_RSS_WRAPPER = """\
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"Maximum resident set size (kbytes): {usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


_LOG_LOCK = threading.Lock()


def log(message: str) -> None:
    # Whole lines only: background setup threads log too.
    with _LOG_LOCK:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()


# ---------------------------------------------------------------------------- settings


@dataclass
class Settings:
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
    aws: bool
    keep_going: bool
    only: list[str]
    profile: Path | None
    profile_format: str


def parse_args(argv: Sequence[str] | None = None) -> Settings:
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


# ---------------------------------------------------------------------------- machine


def _first_line(args: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"<{exc}>"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "?"


def machine_info(pg_bin: Path) -> list[tuple[str, str]]:
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
        ("pg_dump", _first_line([str(pg_bin / "pg_dump"), "--version"])),
        ("gzip", _first_line(["gzip", "--version"])),
        ("packages", ", ".join(versions)),
        ("load average", " ".join(f"{x:.2f}" for x in os.getloadavg())),
    ]


# ---------------------------------------------------------------------------- measuring


@dataclass
class Run:
    ok: bool
    wall: float = 0.0
    cpu: float = 0.0
    server_cpu: float = 0.0
    rss_mib: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def _proc_cpu(pid: int | None) -> float:
    """utime+stime of ``pid`` and its reaped children, in seconds (0 if unknown)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # After the command name: state is field 3, utime..cstime are fields 14..17.
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class Meter:
    """Runs one contender and measures it."""

    def __init__(self, work: Path, server_pids: list[int | None]) -> None:
        self.work = work
        self.server_pids = server_pids
        self._n = 0

    def server_cpu(self) -> float:
        return sum(_proc_cpu(pid) for pid in self.server_pids)

    def timer(self) -> tuple[list[str], Path]:
        """A command prefix that records the peak RSS of the command after it."""
        self._n += 1
        path = self.work / f"rss-{self._n}.txt"
        if TIME_BIN.exists():
            return [str(TIME_BIN), "-v", "-o", str(path)], path
        return [sys.executable, "-c", _RSS_WRAPPER, str(path)], path

    def run(
        self,
        command: Callable[[list[str]], list[str] | str],
        env: dict[str, str],
        *,
        json_output: bool,
    ) -> Run:
        prefix, rss_path = self.timer()
        built = command(prefix)
        argv = ["bash", "-o", "pipefail", "-c", built] if isinstance(built, str) else built
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_before = self.server_cpu()
        started = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, check=False)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # Let the postmaster reap the backend that served this run.
        time.sleep(0.1)
        server_cpu = self.server_cpu() - server_before
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        rss = None
        with contextlib.suppress(OSError):
            match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", rss_path.read_text())
            if match:
                rss = int(match.group(1)) / 1024
            rss_path.unlink()
        stdout = proc.stdout.decode(errors="replace")
        if proc.returncode != 0:
            tail = (proc.stderr.decode(errors="replace") + stdout).strip()[-1500:]
            return Run(ok=False, wall=wall, error=f"exit status {proc.returncode}: {tail}")
        info: dict[str, Any] = {}
        if json_output:
            # The last line that is a JSON object (py-spy, when profiling, talks after it).
            for line in reversed(stdout.splitlines()):
                if line.startswith("{"):
                    with contextlib.suppress(json.JSONDecodeError):
                        info = json.loads(line)
                        break
            else:
                return Run(ok=False, wall=wall, error=f"no JSON in output: {stdout[-500:]}")
        return Run(True, wall, cpu, server_cpu, rss, info)


@dataclass
class Contender:
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
        return [r for r in self.runs if r.ok]


def run_interleaved(
    case: str, contenders: list[Contender], rounds: int, meter: Meter, settings: Settings
) -> None:
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
                log(
                    f"  [{case} {r + 1}/{rounds}] {c.name}: {run.wall:.2f} s, "
                    f"cpu {run.cpu:.2f} s, rss {rss}"
                )
            else:
                log(f"  [{case} {r + 1}/{rounds}] {c.name}: FAILED {run.error}")
                if not settings.keep_going:
                    raise SystemExit(f"{c.name} failed")


# ---------------------------------------------------------------------------- tables


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(value: float | None, spec: str = ".2f") -> str:
    if value is None or math.isnan(value):
        return "-"
    return format(value, spec)


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or math.isnan(a) or math.isnan(b) or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def print_table(title: str, headers: list[str], rows: list[list[str]], notes: list[str]) -> str:
    # Markdown: a pipe inside a cell (shell pipelines) must not end the cell.
    headers = [h.replace("|", "\\|") for h in headers]
    rows = [[cell.replace("|", "\\|") for cell in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "| " + " | ".join(parts) + " |"

    out = [f"\n## {title}\n", line(headers)]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out += [line(row) for row in rows]
    out += ["", *(f"  {note}" for note in notes)]
    text = "\n".join(out)
    log(text)
    return text


@dataclass
class Summary:
    wall: float
    wall_min: float
    wall_max: float
    cpu: float
    server_cpu: float
    rss: float | None
    info: dict[str, float]
    rounds: int


def summarize(c: Contender) -> Summary | None:
    runs = c.good
    if not runs:
        return None
    rss = [r.rss_mib for r in runs if r.rss_mib is not None]
    keys = {k for r in runs for k, v in r.info.items() if isinstance(v, int | float)}
    info = {k: median([float(r.info[k]) for r in runs if k in r.info]) for k in keys}
    walls = [r.wall for r in runs]
    return Summary(
        wall=median(walls),
        wall_min=min(walls),
        wall_max=max(walls),
        cpu=median([r.cpu for r in runs]),
        server_cpu=median([r.server_cpu for r in runs]),
        rss=median(rss) if rss else None,
        info=info,
        rounds=len(runs),
    )


def check_dump_size(run: Run, expected: int) -> None:
    """Our backup dumped the database it was meant to (sizes vary by a few bytes)."""
    got = run.info.get("dump_bytes")
    if not isinstance(got, int | float) or abs(got - expected) > expected / 100:
        raise RuntimeError(f"the backup dumped {got} bytes, expected about {expected:,}")


def race_cells(
    c: Contender, s: Summary, rate: float, base_rate: float | None, ours: str
) -> list[str]:
    """The columns the backup and restore tables share: name, time, speed, ratios, CPU."""
    return [
        c.name,
        fmt(s.wall),
        f"{s.wall_min:.1f}-{s.wall_max:.1f}",
        fmt(rate, ".1f"),
        ratio(rate, base_rate),
        ours,
        fmt(s.cpu),
        fmt(s.server_cpu),
    ]


def failed_row(c: Contender, width: int) -> list[str]:
    if not c.runs:
        return [c.name, "not run", *["-"] * (width - 2)]
    error = next((r.error for r in c.runs if not r.ok), "?")
    first = error.strip().splitlines()[-1] if error.strip() else error
    return [c.name, "FAILED", first[:60], *["-"] * (width - 3)]


# ---------------------------------------------------------------------------- environment


class Bench:
    """Servers, data and the pieces every case needs."""

    def __init__(
        self, settings: Settings, pg: TemporaryPostgres, s3: TemporarySeaweedS3, work: Path
    ) -> None:
        self.settings = settings
        self.pg = pg
        self.s3 = s3
        self.work = work
        self.meter = Meter(work, [pg.pid, s3.pid])
        self.python = sys.executable
        self.aws: Path | None = None
        self.aws_env: dict[str, str] = {}
        self._aws_thread: threading.Thread | None = None
        self._aws_logged = False
        self.databases: dict[float, tuple[str, int]] = {}  # target MiB -> (name, dump bytes)
        self.main_db = "monetr"
        self.main_dump = work / "monetr.Fc-Z0.dump"
        self.dump_bytes = 0
        self.transactions = 0
        self.storage_ready = False
        #: Key of a default database-only archive left by the backup case for the restore case.
        self.restore_archive: str | None = None
        self._storage_thread: threading.Thread | None = None
        self._storage_error: BaseException | None = None
        self.object_count = 0
        self.object_bytes = 0
        self.proxy_count = 0
        self.proxy_bytes = 0
        self.spec = work / "spec.json"
        self.spec.touch(mode=0o600)
        self.spec.write_text(
            json.dumps(
                {
                    "pg": {
                        "host": pg.host,
                        "port": pg.port,
                        "user": pg.user,
                        "password": pg.password,
                        "database": self.main_db,
                    },
                    "s3": {
                        "endpoint": s3.endpoint_url,
                        "access_key": s3.access_key,
                        "secret_key": s3.secret_key,
                        "region": s3.region,
                    },
                    "bucket": BACKUP_BUCKET,
                }
            )
        )
        self.tables: list[str] = []
        self._profiles = 0

    # -- environments

    def base_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PG", "AWS_", "PYTHON", "VIRTUAL_ENV"))
        }
        # No .pyc writes: /proc/<pid>/io write_bytes must show only the work itself.
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def pg_env(self, database: str) -> dict[str, str]:
        return self.base_env() | self.pg.env(database) | {"PGCONNECT_TIMEOUT": "10"}

    def tool(self, name: str) -> str:
        return shlex.quote(str(self.pg.bin_dir / name))

    def aws_cp(self, source: str, target: str) -> str:
        assert self.aws is not None
        return shlex.join(
            [
                str(self.aws),
                "s3",
                "cp",
                source,
                target,
                "--endpoint-url",
                self.s3.endpoint_url,
                "--only-show-errors",
                "--no-progress",
            ]
        )

    def ours(self, prefix: list[str], *args: str) -> list[str]:
        command = [self.python, str(HERE / "_ours.py"), *args, "--spec", str(self.spec)]
        if self.settings.profile is not None:
            # py-spy samples our python process (and not the pg_dump child); its own
            # CPU and memory then count in the measurements, which are for orientation only.
            self._profiles += 1
            label = re.sub(r"[^A-Za-z0-9.]+", "_", "-".join(a.lstrip("-") for a in args))
            out = self.settings.profile / f"{self._profiles:02d}-{label[:80]}"
            py_spy = shutil.which("py-spy") or str(Path(self.python).parent / "py-spy")
            suffix = {"flamegraph": ".svg", "speedscope": ".json", "raw": ".txt"}
            command = [
                py_spy,
                "record",
                "--nonblocking",
                "--rate",
                "200",
                "--format",
                self.settings.profile_format,
                "--output",
                str(out) + suffix[self.settings.profile_format],
                "--",
                *command,
            ]
        return [*prefix, *command]

    # -- S3 helpers

    def object_size(self, bucket: str, key: str) -> int:
        return int(self.s3.client().head_object(Bucket=bucket, Key=key)["ContentLength"])

    def delete(self, bucket: str, key: str) -> None:
        with contextlib.suppress(Exception):
            self.s3.client().delete_object(Bucket=bucket, Key=key)

    # -- setup

    def start_awscli(self) -> None:
        """Install awscli (if needed) in the background while data is generated."""
        if self.settings.aws and self._aws_thread is None:
            self._aws_thread = threading.Thread(target=self.ensure_awscli, daemon=True)
            self._aws_thread.start()

    def wait_awscli(self) -> None:
        """Finish :meth:`start_awscli` (or run it now); nothing is timed while it runs."""
        if self._aws_thread is None:
            self.ensure_awscli()
        else:
            self._aws_thread.join()
        if not self._aws_logged:
            self._aws_logged = True
            log(f"  awscli: {self.awscli_version()}")

    def ensure_awscli(self) -> None:
        if not self.settings.aws or self.aws is not None:
            return
        aws = AWSCLI_VENV / "bin" / "aws"
        started = time.perf_counter()
        if (
            not aws.exists()
            or subprocess.run([aws, "--version"], capture_output=True, check=False).returncode
        ):
            log(f"creating {AWSCLI_VENV} with awscli from PyPI (once)")
            try:
                subprocess.run(
                    [sys.executable, "-m", "venv", "--clear", str(AWSCLI_VENV)],
                    check=True,
                    capture_output=True,
                )
                # Keeps git, ruff and friends out of it (Python >= 3.13 writes this itself).
                (AWSCLI_VENV / ".gitignore").write_text("*\n", encoding="utf-8")
                subprocess.run(
                    [
                        str(AWSCLI_VENV / "bin" / "python"),
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "awscli",
                    ],
                    check=True,
                    capture_output=True,
                )
            except subprocess.CalledProcessError as exc:
                detail = (exc.stderr or b"").decode(errors="replace")[-800:]
                log(f"WARNING: cannot install awscli, skipping its contenders:\n{detail}")
                self.settings.aws = False
                return
            log(f"  awscli installed in {time.perf_counter() - started:.1f} s")
        config = AWSCLI_VENV / "aws-config"
        config.write_text(
            "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n", encoding="utf-8"
        )
        self.aws = aws
        self.aws_env = self.base_env() | {
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
            "AWS_DEFAULT_REGION": self.s3.region,
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
        }

    def awscli_version(self) -> str:
        if self.aws is None:
            return "not used"
        return _first_line([str(self.aws), "--version"])

    def database(self, dump_mib: float) -> tuple[str, int]:
        """A database of about ``dump_mib`` MiB of dump: (name, exact dump bytes)."""
        if dump_mib in self.databases:
            return self.databases[dump_mib]
        name = self.main_db if dump_mib == self.settings.dump_mib else f"mem_{int(dump_mib)}"
        log(f"generating database {name!r} (~{dump_mib:g} MiB of pg_dump -Fc -Z0)")
        started = time.perf_counter()
        rows = _data.create_database(self.pg, name, dump_mib)
        generated = time.perf_counter() - started
        # A first dump, to measure its size and warm the page cache; the main one is kept
        # as the local file pg_restore reads in the restore case.
        target = self.main_dump if name == self.main_db else self.work / f"{name}.dump"
        started = time.perf_counter()
        subprocess.run(
            [str(self.pg.bin_dir / "pg_dump"), "-Fc", "-Z0", "-f", str(target)],
            env=self.pg_env(name),
            check=True,
        )
        dumped = time.perf_counter() - started
        size = target.stat().st_size
        if name != self.main_db:
            target.unlink()
        else:
            self.dump_bytes = size
            self.transactions = int(self.pg.psql("SELECT count(*) FROM transactions", name))
        log(
            f"  {rows:,} transactions in {generated:.1f} s; pg_dump -Fc -Z0: "
            f"{size / MIB:.1f} MiB ({size / MB / dumped:.0f} MB/s, warm-up)"
        )
        self.databases[dump_mib] = (name, size)
        return name, size

    def start_storage(self) -> None:
        """Upload the storage objects in the background while the database is generated."""
        if self._storage_thread is None and not self.storage_ready:
            self._storage_thread = threading.Thread(target=self._upload_storage, daemon=True)
            self._storage_thread.start()

    def storage(self) -> None:
        """Wait for :meth:`start_storage` (or upload now)."""
        if self._storage_thread is not None:
            self._storage_thread.join()
            self._storage_thread = None
        if not self.storage_ready:
            self._upload_storage()
        if self._storage_error is not None:
            raise self._storage_error

    def _upload_storage(self) -> None:
        if self.storage_ready:
            return
        try:
            self._upload_objects()
        except BaseException as exc:
            self._storage_error = exc
        self.storage_ready = True

    def _upload_objects(self) -> None:
        settings = self.settings
        # A client of its own: more connections than the helper's, and no CRC32 per PUT.
        client = botocore.session.get_session().create_client(
            "s3",
            config=botocore.config.Config(
                s3={"addressing_style": "path"},
                max_pool_connections=16,
                request_checksum_calculation="when_required",
                retries={"max_attempts": 5, "mode": "standard"},
            ),
            **self.s3.client_kwargs(),
        )
        log(
            f"uploading {settings.objects:,} objects of {settings.object_size} bytes and "
            f"{len(settings.large_objects)} large ones "
            f"({', '.join(f'{s / MIB:g}' for s in settings.large_objects)} MiB)"
        )
        started = time.perf_counter()
        try:
            self.object_count, self.object_bytes = _data.upload_objects(
                client,
                STORAGE_BUCKET,
                count=settings.objects,
                size=settings.object_size,
                large=settings.large_objects,
            )
            if settings.proxy_objects < settings.objects:
                self.proxy_count, self.proxy_bytes = _data.upload_objects(
                    client,
                    PROXY_BUCKET,
                    count=settings.proxy_objects,
                    size=settings.object_size,
                    large=settings.large_objects,
                )
        finally:
            client.close()
        log(f"  objects uploaded in {time.perf_counter() - started:.1f} s")

    def buckets(self) -> None:
        client = self.s3.client()
        for bucket in (BACKUP_BUCKET, STORAGE_BUCKET, PROXY_BUCKET):
            with contextlib.suppress(Exception):
                client.create_bucket(Bucket=bucket)


# ---------------------------------------------------------------------------- cases


def case_backup(bench: Bench) -> None:
    settings = bench.settings
    db, dump_bytes = bench.database(settings.dump_mib)
    bench.storage()
    bench.wait_awscli()
    pg_env = bench.pg_env(db)
    pg_dump = bench.tool("pg_dump")

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
            lambda r, t: f"{shlex.join(t)} {pg_dump} -Fc -Z0 > /dev/null",
            pg_env,
            tags="limit baseline",
        )
    ]
    if bench.aws is not None:
        aws_env = bench.aws_env | bench.pg_env(db)
        pipelines = [
            ("pg_dump -Fc -Z0 | aws s3 cp -", "fc-z0", f"{pg_dump} -Fc -Z0"),
            ("pg_dump -Fc | aws s3 cp -", "fc", f"{pg_dump} -Fc"),
            ("pg_dump | gzip -1 | aws s3 cp -", "gzip-1", f"{pg_dump} | gzip -1"),
            ("pg_dump | gzip | aws s3 cp -", "gzip-6", f"{pg_dump} | gzip"),
        ]
        if settings.quick:
            # Not among the three shell baselines; saves time in the smoke run.
            pipelines = [p for p in pipelines if p[1] != "gzip-1"]
        for name, slug, producer in pipelines:
            contenders.append(
                Contender(
                    name,
                    lambda r, t, slug=slug, producer=producer: (  # type: ignore[misc]
                        f"{producer} | {shlex.join(t)} "
                        + bench.aws_cp("-", f"s3://{BACKUP_BUCKET}/{key(slug, r)}")
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
            lambda r, t: bench.ours(t, "backup", "--database", db, "--key", key("ours", r)),
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
            lambda r, t: bench.ours(
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
    settings = bench.settings
    db, dump_bytes = bench.database(settings.dump_mib)
    bench.buckets()
    bench.wait_awscli()
    pg_restore = bench.tool("pg_restore")
    pg_dump = bench.tool("pg_dump")
    expected = bench.transactions
    log(f"\n# case restore: {dump_bytes / MIB:.1f} MiB dump, {settings.rounds} round(s)")
    log("  preparing the archives (not timed)")
    if bench.restore_archive is not None:
        ours_key = bench.restore_archive
        run = Run(ok=True)
    else:
        ours_key = "bench/restore/ours.tar.gz"
        run = bench.meter.run(
            lambda t: bench.ours(t, "backup", "--key", ours_key),
            bench.pg_env(db),
            json_output=True,
        )
        if not run.ok:
            log(f"  WARNING: our backup for the restore case failed: {run.error}")
    aws_key = "bench/restore/monetr.Fc.dump"
    aws_ready = False
    if bench.aws is not None and not settings.quick:
        upload = subprocess.run(
            [
                "bash",
                "-o",
                "pipefail",
                "-c",
                f"{pg_dump} -Fc | " + bench.aws_cp("-", f"s3://{BACKUP_BUCKET}/{aws_key}"),
            ],
            env=bench.aws_env | bench.pg_env(db),
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

    restore_args = "--single-transaction --exit-on-error --no-password"
    contenders = [
        Contender(
            "pg_restore < local file (-Fc -Z0)",
            lambda r, t: (
                f"{shlex.join(t)} {pg_restore} {restore_args} -d {target('local', r)} "
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
                    + bench.aws_cp(f"s3://{BACKUP_BUCKET}/{aws_key}", "-")
                    + f" | {pg_restore} {restore_args} -d {target('aws', r)}"
                ),
                bench.aws_env | bench.pg_env("postgres"),
                before=create("aws"),
                after=check("aws"),
                cleanup=drop("aws"),
                tags="aws shell",
            )
        )
    if run.ok:
        contenders.append(
            Contender(
                "monetr_backup.restore (S3)",
                lambda r, t: bench.ours(
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
    if not run.ok:
        rows.append(["monetr_backup.restore (S3)", "FAILED", "backup for it failed"])
        rows[-1] += ["-"] * (len(headers) - 3)
    notes = [
        f"into a new empty database each run ({expected:,} transactions checked after each);"
        f" MB/s = {dump_bytes:,} dump bytes / wall time",
        f"every contender runs pg_restore {restore_args}; ours reads a default archive"
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


@contextlib.contextmanager
def latency_proxy(bench: Bench) -> Iterator[str]:
    target = f"127.0.0.1:{bench.s3.ports['s3']}"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "latency_proxy.py"),
            "--target",
            target,
            "--delay-ms",
            str(bench.settings.delay_ms),
            "--max-seconds",
            str(6 * 3600),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=bench.base_env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("listening "):
            raise RuntimeError(f"latency proxy did not start: {line!r}")
        yield "http://" + line.split()[1]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def case_objects(bench: Bench) -> None:
    settings = bench.settings
    bench.buckets()
    bench.storage()
    env = bench.base_env()
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
    with latency_proxy(bench) as proxy_url:
        for label, where, bucket, endpoint, counts in (
            ("direct", "direct", STORAGE_BUCKET, None, (bench.object_count, bench.object_bytes)),
            (f"+{settings.delay_ms:g} ms", "proxy", proxied_bucket, proxy_url, proxied),
        ):
            extra = ["--endpoint", endpoint] if endpoint else []
            contenders = [
                Contender(
                    f"sequential botocore GET -> tar ({label})",
                    lambda r, t, bucket=bucket, extra=extra: [  # type: ignore[misc]
                        *t,
                        bench.python,
                        str(HERE / "_baseline_objects.py"),
                        "--spec",
                        str(bench.spec),
                        "--bucket",
                        bucket,
                        *extra,
                    ],
                    env,
                    json_output=True,
                    tags=f"baseline sequential {where}",
                ),
                Contender(
                    f"ours: s3_objects -> encode_tar ({label})",
                    lambda r, t, bucket=bucket, extra=extra: bench.ours(  # type: ignore[misc]
                        t, "objects", "--bucket", bucket, "--mode", "source", *extra
                    ),
                    env,
                    json_output=True,
                    tags=f"ours ours-source {where}",
                ),
                Contender(
                    f"ours: backup(storage=S3Storage) ({label})",
                    lambda r, t, bucket=bucket, extra=extra: bench.ours(  # type: ignore[misc]
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
        " (benchmarks/latency_proxy.py)",
        "backup(storage=...) row: the full storage path of backup() (manifest hashing"
        " included), codec none, into a discarding ArchiveSink",
        "s3_objects row: the plain generator, one GET at a time (direct only; through the"
        " proxy it would repeat the sequential baseline)",
        "through the proxy the sequential baseline runs in round 1 only (latency-bound)",
    ]
    bench.tables.append(print_table("storage objects (S3 -> tar)", headers, rows, notes))


def case_memory(bench: Bench) -> None:
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
                lambda r, t, name=name: bench.ours(  # type: ignore[misc]
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


# ---------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
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
                bench.start_awscli()
            if "backup" in settings.cases or "objects" in settings.cases:
                bench.start_storage()
            runners: dict[str, Callable[[Bench], None]] = {
                "backup": case_backup,
                "restore": case_restore,
                "objects": case_objects,
                "memory": case_memory,
            }
            for case in CASES:
                if case in settings.cases:
                    case_started = time.perf_counter()
                    runners[case](bench)
                    log(
                        f"  ({case} took {time.perf_counter() - case_started:.0f} s;"
                        f" load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})"
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
