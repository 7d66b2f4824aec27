"""Run an async iterable ahead of its consumer, in a background task, a bounded distance."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio

__all__ = ["prefetched"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Raised:
    error: Exception


class _Item(Generic[T]):
    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value


@asynccontextmanager
async def prefetched(source: AsyncIterable[T], depth: int = 1) -> AsyncIterator[AsyncIterator[T]]:
    """Iterate ``source`` in a background task, at most ``depth`` items ahead.

    An exception from ``source`` is re-raised where the consumer reads the next item, so
    it surfaces in the consumer's own task with its own type rather than wrapped in an
    ``ExceptionGroup`` by the task group.
    """
    send, receive = anyio.create_memory_object_stream[_Item[T] | _Raised](depth)

    async def pump() -> None:
        async with send:
            try:
                async for item in source:
                    await send.send(_Item(item))
            except Exception as exc:  # handed over, not swallowed: see consume()
                await send.send(_Raised(exc))

    async def consume() -> AsyncIterator[T]:
        async with receive:
            async for entry in receive:
                if isinstance(entry, _Raised):
                    raise entry.error
                yield entry.value

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump)
        try:
            yield consume()
        finally:
            # Whatever the consumer did not take is not needed any more.
            tg.cancel_scope.cancel()
