"""Child processes of the servers: clean environments, errors with stderr, liveness, start/stop."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

#: How often a server start is retried when another process took its port meanwhile.
START_ATTEMPTS = 3


class CommandError(subprocess.CalledProcessError):
    """A helper's subprocess failed; unlike the base class, ``str()`` shows its stderr."""

    def __str__(self) -> str:
        detail = self.stderr
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return f"{super().__str__()}\n{(detail or '').strip()}"


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` without PG* variables, plus ``extra``."""
    # Stray PG* variables from the caller's shell (PGDATABASE, PGSERVICE, PGSSLMODE, ...)
    # would silently redirect or break the helpers' connections.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if extra:
        env.update(extra)
    return env


def tail(path: Path, limit: int = 4000) -> str:
    """The last ``limit`` bytes of a log file as text, or why it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return data[-limit:].decode("utf-8", "replace")


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (exited, awaiting its parent) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # The state letter follows the parenthesised command name.
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:
        pass  # no /proc: fall back to signal 0, which cannot tell zombies apart
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, but belongs to another user
    return True


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to exit; return whether it did."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


class Started:
    """``with server:`` starts it and always stops it, even if the body raises."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
