"""A stage's blocking calls -> one thread of the stage's own, awaited from the event loop."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, TypeVarTuple

import anyio
import anyio.from_thread
import anyio.lowlevel

__all__ = ["StageThread"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class StageThread:
    """One thread for all of one stage's blocking calls (a pipe's reads, a compressor's
    batches), for as long as the stage runs.

    anyio's worker pool runs each call in whichever of its threads is idle. glibc gives
    every thread that allocates a malloc arena of its own, and keeps the megabytes freed
    in it: a stage whose buffers came from three or four pool threads left ~10 MiB in
    each, ~15 MiB of a backup's peak RSS in all (benchmarks/RESULTS.md, issue 12). In one
    thread they stay in one arena, and are reused there.
    """

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)

    async def run(self, func: Callable[[*Ts], T], *args: *Ts) -> T:
        """``func(*args)`` in the stage's thread; its result or its exception.

        Like ``anyio.to_thread.run_sync``, a cancellation waits for the call to end: the
        stage's thread never runs on behind the stage.
        """
        token = anyio.lowlevel.current_token()
        done = anyio.Event()

        def call() -> T:
            try:
                return func(*args)
            finally:
                # Straight back to the event loop: no pool thread waits on the future.
                anyio.from_thread.run_sync(done.set, token=token)

        future = self._executor.submit(call)
        with anyio.CancelScope(shield=True):
            await done.wait()
        return future.result()

    def close(self) -> None:
        """End the thread; no call is running then (each :meth:`run` waits for its own)."""
        self._executor.shutdown(wait=True)
