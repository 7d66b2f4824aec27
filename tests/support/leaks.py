"""This process before and after an operation -> the child processes and descriptors it left."""

from __future__ import annotations

import os
import time

import anyio

from .processes import child_processes

#: How long closed connections may take to be released: aiohttp and asyncio close
#: transports on a later turn of the event loop.
SETTLE_TIMEOUT = 3.0


def open_fds() -> dict[int, str]:
    """This process's open descriptors: number -> what it refers to (``socket:[inode]``,
    a path, ``pipe:[inode]`` ...)."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc/self/fd"):
        try:
            found[int(entry)] = os.readlink(f"/proc/self/fd/{entry}")
        except OSError:
            continue  # the listing's own descriptor, closed meanwhile
    return found


class Leaks:
    """Child processes and descriptors now, to compare with after an operation.

    Take it once the test's servers, clients and proxy are up, and call :meth:`check`
    before using any client that may open a connection of its own.
    """

    def __init__(self) -> None:
        self.children = child_processes()
        self.fds = open_fds()

    def new_fds(self) -> dict[int, str]:
        """Descriptors open now that were not open (to the same thing) before."""
        return {fd: what for fd, what in open_fds().items() if self.fds.get(fd) != what}

    async def check(self) -> None:
        """Assert no new child process and no new descriptor, once closing has settled."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        # /proc has no event to wait for: poll it.
        while time.monotonic() < deadline:
            if child_processes() == self.children and not self.new_fds():
                break
            await anyio.sleep(0.02)
        assert child_processes() == self.children, "child processes left behind"
        assert self.new_fds() == {}, "file descriptors left open"
