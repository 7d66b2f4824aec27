"""This process -> its children (pg_dump among them), their argv, its open files; run commands."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


def child_processes() -> dict[int, str]:
    """This process's children, zombies included (pid -> command name), read from /proc."""
    children: dict[int, str] = {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue  # gone meanwhile
        name = raw[raw.index(b"(") + 1 : raw.rindex(b")")].decode(errors="replace")
        # After the name: state, then the parent's pid.
        ppid = raw[raw.rindex(b")") + 2 :].split()[1]
        if int(ppid) == me:
            children[int(entry)] = name
    return children


def pg_dump_children() -> list[int]:
    """Process ids of this process's pg_dump children, zombies included."""
    return [pid for pid, name in child_processes().items() if name == "pg_dump"]


def kill_pg_dump() -> int:
    """SIGKILL this process's one running pg_dump child; return its pid."""
    children = pg_dump_children()
    assert len(children) == 1, children
    os.kill(children[0], signal.SIGKILL)
    return children[0]


def process_cmdline(pid: int) -> bytes:
    """The NUL-separated argv of process ``pid``, as any local user can read it."""
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run a command, asserting it succeeds."""
    proc = subprocess.run(args, capture_output=True, check=False)
    assert proc.returncode == 0, (args, proc.stderr.decode(errors="replace"))
    return proc


def open_files_under(folder: Path) -> list[str]:
    """Files under ``folder`` this process holds open."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
        if target.startswith(f"{folder}/"):
            held.append(target)
    return held
