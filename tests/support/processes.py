"""This process -> its children (pg_dump among them), their argv, open files; run, log commands."""

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


def recording_bin_dir(real: Path, folder: Path, names: tuple[str, ...]) -> Path:
    """A ``bin_dir`` whose ``names`` run the real programs in ``real``, each call logged.

    Every call appends its arguments (one line, space separated) to ``folder/<name>.calls``:
    :func:`recorded_calls` shows whether a program was only asked its ``--version`` or
    really started against a server.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        log = folder / f"{name}.calls"
        log.touch()
        wrapper = folder / name
        wrapper.write_text(
            f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{real / name}" "$@"\n'
        )
        wrapper.chmod(0o755)
    return folder


def recorded_calls(folder: Path, name: str) -> list[str]:
    """The argument lines logged by :func:`recording_bin_dir`'s ``name``, in order."""
    return (folder / f"{name}.calls").read_text().splitlines()
