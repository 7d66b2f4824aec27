"""Storage objects -> archive members: an S3 listing.

Each object's size comes from the GET response's Content-Length, never from a listing
that may be stale. An object that disappears between listing and reading is skipped and
recorded, not an error: monetr deletes processed uploads on its own schedule.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from .._errors import StorageSourceError, single_errors
from .._format.documents import SkippedObject
from .._format.layout import unsafe_path_reason
from .._protocols import Member
from .._units import MIB
from .client import S3Client
from .errors import S3_ERRORS, describe_error, is_not_found

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import GetObjectOutputTypeDef

__all__ = ["open_s3_objects", "s3_objects"]

READ_SIZE = MIB


async def _listed_keys(
    client: S3Client,
    bucket: str,
    prefix: str,
    skipped: list[SkippedObject],
    keys: Iterable[tuple[str, int]] | None = None,
) -> AsyncIterator[tuple[str, int]]:
    """Every safe key under ``prefix`` with its listed size; or ``keys``, as given."""
    if keys is not None:
        for key, size in keys:
            unsafe = unsafe_path_reason(key)
            if unsafe is not None:
                skipped.append(SkippedObject(key=key, reason=f"unsafe key: {unsafe}"))
            else:
                yield key, size
        return
    paginator = client.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for listed in page.get("Contents", []):
            key = listed["Key"]
            unsafe = unsafe_path_reason(key)
            if unsafe is not None:
                # A reader must refuse such a member name, so it never enters an archive.
                skipped.append(SkippedObject(key=key, reason=f"unsafe key: {unsafe}"))
                continue
            yield key, listed.get("Size", 0)


async def _get(client: S3Client, bucket: str, key: str) -> GetObjectOutputTypeDef | None:
    """GET ``key``; ``None`` if it was deleted since it was listed."""
    try:
        return await client.get_object(Bucket=bucket, Key=key)
    except S3_ERRORS as exc:
        if is_not_found(exc):
            return None
        raise StorageSourceError(
            f"reading storage object {key!r} failed: {describe_error(exc)}"
        ) from exc


def _member(key: str, response: GetObjectOutputTypeDef, chunks: AsyncIterator[bytes]) -> Member:
    modified = response.get("LastModified")
    mtime = modified.timestamp() if modified is not None else 0.0
    return Member(key, response["ContentLength"], chunks, mtime=mtime)


async def s3_objects(
    client: S3Client, bucket: str, prefix: str, skipped: list[SkippedObject]
) -> AsyncIterator[Member]:
    """Yield every object under ``prefix`` in ``bucket``, one GET at a time.

    The simplest source; :func:`open_s3_objects` overlaps the GETs of small objects.
    """
    try:
        async for key, _size in _listed_keys(client, bucket, prefix, skipped):
            response = await _get(client, bucket, key)
            if response is None:
                skipped.append(SkippedObject(key=key, reason="deleted before it was read"))
                continue
            yield _member(key, response, _read_body(response["Body"], key))
    except S3_ERRORS as exc:
        raise StorageSourceError(
            f"listing storage bucket {bucket!r} failed: {describe_error(exc)}"
        ) from exc


class _ByteBudget:
    """Bytes held by fetched-ahead objects; acquired in listing order, so never deadlocks."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._changed = anyio.Condition()

    async def acquire(self, size: int) -> None:
        async with self._changed:
            # An object larger than the whole budget still goes through, alone.
            while self._used and self._used + size > self._limit:
                await self._changed.wait()
            self._used += size

    async def release(self, size: int) -> None:
        async with self._changed:
            self._used -= size
            self._changed.notify_all()


@dataclass(slots=True)
class _Slot:
    key: str
    size: int
    small: bool
    done: anyio.Event = field(default_factory=anyio.Event)
    response: GetObjectOutputTypeDef | None = None
    data: bytes = b""
    error: Exception | None = None


@asynccontextmanager
async def open_s3_objects(
    client: S3Client,
    bucket: str,
    prefix: str,
    skipped: list[SkippedObject],
    *,
    prefetch_objects: int = 32,
    prefetch_bytes: int = 16 * MIB,
    keys: Iterable[tuple[str, int]] | None = None,
) -> AsyncIterator[AsyncIterator[Member]]:
    """Every object under ``prefix`` in ``bucket``, in listing order, fetched ahead.

    monetr's files are small and S3 latency dominates their cost, so up to
    ``prefetch_objects`` small objects are downloaded concurrently, holding at most
    ``prefetch_bytes`` between them. Objects larger than ``prefetch_bytes /
    prefetch_objects`` are not buffered: they stream in order when their turn comes.
    Given ``keys`` (with expected sizes), those objects are fetched instead of a listing,
    in that order; one that does not exist is recorded in ``skipped``.
    """
    small_limit = max(1, prefetch_bytes // prefetch_objects)
    budget = _ByteBudget(prefetch_bytes)
    slots_send, slots_receive = anyio.create_memory_object_stream[_Slot](prefetch_objects)

    async def fetch(slot: _Slot) -> None:
        try:
            slot.response = await _get(client, bucket, slot.key)
            if slot.response is not None:
                slot.data = b"".join([c async for c in _read_body(slot.response["Body"], slot.key)])
        except Exception as exc:  # handed to the consumer, in order
            slot.error = exc
        finally:
            slot.done.set()

    async def lister(tg: TaskGroup) -> None:
        async with slots_send:
            try:
                async for key, size in _listed_keys(client, bucket, prefix, skipped, keys):
                    slot = _Slot(key, size, small=size <= small_limit)
                    if slot.small:
                        await budget.acquire(size)
                        tg.start_soon(fetch, slot)
                    else:
                        slot.done.set()
                    await slots_send.send(slot)
            except S3_ERRORS as exc:
                error = StorageSourceError(
                    f"listing storage bucket {bucket!r} failed: {describe_error(exc)}"
                )
                error.__cause__ = exc
                failed = _Slot("", 0, small=False, error=error)
                failed.done.set()  # nothing to fetch: the consumer must not wait for it
                await slots_send.send(failed)

    async def members() -> AsyncIterator[Member]:
        async for slot in slots_receive:
            await slot.done.wait()
            if slot.error is not None:
                raise slot.error
            if slot.small:
                await budget.release(slot.size)
                response = slot.response
                chunks = _each([slot.data])
            else:
                response = await _get(client, bucket, slot.key)
                chunks = _read_body(response["Body"], slot.key) if response else _each([])
            if response is None:
                skipped.append(SkippedObject(key=slot.key, reason="deleted before it was read"))
                continue
            yield _member(slot.key, response, chunks)

    with single_errors():
        async with anyio.create_task_group() as tg:
            tg.start_soon(lister, tg)
            try:
                with slots_receive:
                    yield members()
            finally:
                tg.cancel_scope.cancel()


async def _each(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        if chunk:
            yield chunk


async def _read_body(body: object, key: str) -> AsyncIterator[bytes]:
    try:
        async with body as stream:  # type: ignore[attr-defined]
            while chunk := await stream.read(READ_SIZE):
                yield chunk
    except S3_ERRORS as exc:
        raise StorageSourceError(
            f"reading storage object {key!r} failed: {describe_error(exc)}"
        ) from exc
