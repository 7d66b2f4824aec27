"""StageThread: every call of a stage in one thread of its own, awaited, never left running."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from monetr_backup._threads import StageThread

pytestmark = pytest.mark.anyio


def stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("test-stage")]


async def test_every_call_runs_in_the_same_thread_off_the_loop() -> None:
    """One thread for the stage's whole life (the point: one malloc arena), not the loop's."""
    worker = StageThread("test-stage")

    def where() -> tuple[int, str]:
        return threading.get_ident(), threading.current_thread().name

    try:
        seen = set()
        for _ in range(20):
            # Other threaded work meanwhile, as in a backup: pool threads come and go.
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.to_thread.run_sync, time.sleep, 0.005)
                seen.add(await worker.run(where))
    finally:
        worker.close()
    assert len(seen) == 1
    ((ident, name),) = seen
    assert ident != threading.get_ident()
    assert name.startswith("test-stage")  # the stage's own, not one of anyio's pool
    assert stage_threads() == []


async def test_a_call_s_exception_reaches_the_caller() -> None:
    worker = StageThread("test-stage")

    def fail(text: str) -> None:
        raise ValueError(text)

    try:
        with pytest.raises(ValueError, match="from the thread"):
            await worker.run(fail, "from the thread")
        assert await worker.run(sum, [1, 2, 3]) == 6
    finally:
        worker.close()


@pytest.mark.reliability(
    "cancellation",
    "a stage cancelled while its thread runs a blocking call",
    "the cancellation waits for the call to end; no thread runs on after close",
)
async def test_a_cancellation_waits_for_the_running_call() -> None:
    """As with anyio.to_thread: the caller does not go on while its call still runs, so
    the stage's buffers are never used after the stage ended."""
    worker = StageThread("test-stage")
    finished: list[float] = []

    def slow() -> None:
        time.sleep(0.3)
        finished.append(time.monotonic())

    try:
        with anyio.move_on_after(0.05) as scope:
            await worker.run(slow)
            # As after anyio.to_thread.run_sync: the cancellation is taken at the next
            # checkpoint.
            await anyio.sleep(5)
        ended = time.monotonic()
        assert scope.cancelled_caught
        assert finished, "the cancellation did not wait for the call"
        assert finished[0] <= ended
    finally:
        worker.close()
    assert stage_threads() == []
