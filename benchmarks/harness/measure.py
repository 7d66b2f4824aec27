"""A command -> one Run: wall time, client CPU, server CPU, peak RSS and its JSON line."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Meter", "Run", "clean_env"]

TIME_BIN = Path("/usr/bin/time")
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


def clean_env() -> dict[str, str]:
    """This process's environment without PG*, AWS_*, PYTHON* and VIRTUAL_ENV settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PG", "AWS_", "PYTHON", "VIRTUAL_ENV"))
    }
    # No .pyc writes: /proc/<pid>/io write_bytes must show only the work itself.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@dataclass
class Run:
    """One run of one contender; ``info`` is the JSON line it printed, plus checks' figures."""

    ok: bool
    wall: float = 0.0
    cpu: float = 0.0
    #: The servers' CPU together: the sum of :attr:`server_cpus`.
    server_cpu: float = 0.0
    rss_mib: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    #: Each server's CPU during the run, by the name the Meter was given it under.
    server_cpus: dict[str, float] = field(default_factory=dict)


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

    def __init__(self, work: Path, server_pids: dict[str, int | None]) -> None:
        self.work = work
        #: Server name (``postgres``, ``seaweedfs``) -> the pid whose CPU counts as its.
        self.server_pids = server_pids
        self._n = 0

    def server_cpus(self) -> dict[str, float]:
        """CPU seconds each server (and its reaped children) has used so far."""
        return {name: _proc_cpu(pid) for name, pid in self.server_pids.items()}

    def server_cpu(self) -> float:
        """CPU seconds the servers (and their reaped children) have used so far."""
        return sum(self.server_cpus().values())

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
        """Run ``command`` (argv, or a bash pipeline) built around the RSS-recording prefix."""
        prefix, rss_path = self.timer()
        built = command(prefix)
        argv = ["bash", "-o", "pipefail", "-c", built] if isinstance(built, str) else built
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        servers_before = self.server_cpus()
        started = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, check=False)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # Let the postmaster reap the backend that served this run.
        time.sleep(0.1)
        servers_after = self.server_cpus()
        server_cpus = {name: servers_after[name] - servers_before[name] for name in servers_after}
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
        return Run(True, wall, cpu, sum(server_cpus.values()), rss, info, server_cpus=server_cpus)
