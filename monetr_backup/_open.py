"""Locations and settings -> the stages that serve them: the one place that knows both.

Each opener is an async context manager entered on the operation's exit stack, so
whatever a stage holds (a client, a file, background tasks) ends with the operation.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, aclosing, asynccontextmanager

import anyio
import anyio.to_thread

from ._config import Overwrite
from ._format.archive_reader import ArchiveReader
from ._format.decrypt import open_decrypted
from ._format.documents import SkippedObject
from ._format.tar_read import open_tar_entries
from ._keys import Identity
from ._local.directory_source import directory_objects
from ._local.directory_target import DirectoryTarget
from ._local.file_reader import file_bytes
from ._local.file_sink import open_file_sink
from ._locations import DirectoryStorage, FileArchive, S3Archive, S3Storage, check_type
from ._progress import ProgressTracker
from ._protocols import ArchiveSink, Member, StorageTarget
from ._s3.bucket_source import open_s3_objects
from ._s3.bucket_target import S3Target
from ._s3.client import S3Client, client_for
from ._s3.download import s3_bytes
from ._s3.object_settings import put_args
from ._s3.upload import open_s3_upload

__all__ = [
    "ArchiveInput",
    "ArchiveOutput",
    "StorageInput",
    "StorageOutput",
    "archive_reader",
    "archive_sink",
    "check_archive",
    "check_storage",
    "storage_label",
    "storage_source",
    "storage_target",
]

#: What ``backup()`` writes to, and ``restore()``/``verify()``/``inspect()`` read from.
ArchiveOutput = FileArchive | S3Archive | ArchiveSink
ArchiveInput = FileArchive | S3Archive | AsyncIterable[bytes]
#: Storage a backup reads, and storage a restore writes.
StorageInput = DirectoryStorage | S3Storage | AsyncIterable[Member]
StorageOutput = DirectoryStorage | S3Storage | StorageTarget

_LOCATIONS = (FileArchive, S3Archive)
_STORAGES = (DirectoryStorage, S3Storage)


def check_archive(value: object, *, writing: bool) -> None:
    """Refuse an ``archive`` argument of the wrong type before anything starts."""
    if writing:
        check_type("archive", value, (*_LOCATIONS, ArchiveSink), also="")
    elif not hasattr(value, "__aiter__"):
        check_type("archive", value, _LOCATIONS, also="an async iterable of bytes")


def check_storage(value: object, *, writing: bool) -> None:
    """Refuse a ``storage`` argument of the wrong type before anything starts."""
    if writing:
        check_type("storage", value, (*_STORAGES, StorageTarget))
    elif not hasattr(value, "__aiter__"):
        check_type("storage", value, _STORAGES, also="an async iterable of Member")


@asynccontextmanager
async def archive_sink(
    archive: ArchiveOutput,
    *,
    replace: bool,
    tracker: ProgressTracker,
    s3_client: S3Client | None,
) -> AsyncIterator[ArchiveSink]:
    """The sink that writes ``archive``; nothing is visible there before its commit."""
    async with AsyncExitStack() as stack:
        if isinstance(archive, FileArchive):
            yield await stack.enter_async_context(open_file_sink(archive.path, overwrite=replace))
        elif isinstance(archive, S3Archive):
            client = await stack.enter_async_context(client_for(archive.s3, s3_client))
            yield await stack.enter_async_context(
                open_s3_upload(
                    client,
                    archive.bucket,
                    archive.key,
                    part_size=archive.part_size,
                    max_parts=archive.max_parts,
                    concurrency=archive.concurrency,
                    queue_depth=archive.queue_depth,
                    overwrite=replace,
                    checksum=archive.checksum,
                    on_stored=lambda size: tracker.add(archive_bytes_stored=size),
                    object_args=put_args(archive),
                )
            )
        else:
            yield archive


class _Counted:
    """An archive's bytes, each chunk counted into the tracker as it is read.

    A class, not a generator: an async generator left suspended by a reader that stopped
    early would be finalized by the garbage collector, outside the event loop's order.
    """

    def __init__(self, chunks: AsyncIterable[bytes], tracker: ProgressTracker) -> None:
        self._chunks = aiter(chunks)
        self._tracker = tracker

    def __aiter__(self) -> _Counted:
        return self

    async def __anext__(self) -> bytes:
        chunk = await anext(self._chunks)
        self._tracker.add(archive_bytes=len(chunk))
        return chunk


@asynccontextmanager
async def archive_bytes(
    archive: ArchiveInput, s3_client: S3Client | None, tracker: ProgressTracker | None = None
) -> AsyncIterator[AsyncIterable[bytes]]:
    """The bytes of ``archive``, as a stream (counted into ``tracker``, with the total)."""
    if tracker is None:
        async with _archive_bytes(archive, s3_client, None) as chunks:
            yield chunks
        return

    def on_size(size: int) -> None:
        tracker.update(archive_bytes_total=size)

    async with _archive_bytes(archive, s3_client, on_size) as chunks:
        yield _Counted(chunks, tracker)


@asynccontextmanager
async def _archive_bytes(
    archive: ArchiveInput, s3_client: S3Client | None, on_size: Callable[[int], None] | None
) -> AsyncIterator[AsyncIterable[bytes]]:
    # aclosing: a reader that stops early (a refused archive, an error downstream) leaves
    # the generator suspended inside its open file or response; only aclose() ends it
    # while the event loop that owns them still runs.
    if isinstance(archive, FileArchive):
        if on_size is not None:
            with contextlib.suppress(OSError):  # the reader says what is wrong with it
                on_size((await anyio.to_thread.run_sync(archive.path.stat)).st_size)
        async with aclosing(file_bytes(archive.path)) as chunks:
            yield chunks
    elif isinstance(archive, S3Archive):
        async with (
            client_for(archive.s3, s3_client) as client,
            aclosing(
                s3_bytes(
                    client,
                    archive.bucket,
                    archive.key,
                    max_resumes=archive.max_resumes,
                    on_size=on_size,
                )
            ) as chunks,
        ):
            yield chunks
    else:
        yield archive


@asynccontextmanager
async def archive_reader(
    archive: ArchiveInput,
    s3_client: S3Client | None,
    *,
    strict: bool = True,
    tracker: ProgressTracker | None = None,
    identities: Sequence[Identity] = (),
) -> AsyncIterator[ArchiveReader]:
    """A checking reader of ``archive``: bytes [-> decrypted] -> decompressed tar entries
    -> contents. An encrypted archive's identity is checked on entering, before any read."""
    async with (
        archive_bytes(archive, s3_client, tracker) as chunks,
        open_decrypted(chunks, identities) as plain,
        open_tar_entries(plain) as entries,
    ):
        yield ArchiveReader(entries, strict=strict)


def storage_label(storage: StorageInput) -> str:
    """How the header names where storage objects came from."""
    if isinstance(storage, DirectoryStorage):
        return f"directory {storage.path}"
    if isinstance(storage, S3Storage):
        return f"s3://{storage.bucket}/{storage.prefix}"
    return "custom source"


@asynccontextmanager
async def storage_source(
    storage: StorageInput,
    skipped: list[SkippedObject],
    s3_client: S3Client | None,
    keys: list[tuple[str, int]] | None = None,
) -> AsyncIterator[AsyncIterable[Member]]:
    """Every object in ``storage`` as a member; what cannot be read goes to ``skipped``.

    Given ``keys`` (with expected sizes), exactly those objects, instead of all.
    """
    if isinstance(storage, DirectoryStorage):
        names = [key for key, _size in keys] if keys is not None else None
        # Closed with the backup, not when garbage-collected: a failed backup must not
        # leave the storage file it was reading open.
        async with aclosing(directory_objects(storage.path, skipped, names)) as files:
            yield files
    elif isinstance(storage, S3Storage):
        async with (
            client_for(storage.s3, s3_client) as client,
            open_s3_objects(
                client,
                storage.bucket,
                storage.prefix,
                skipped,
                prefetch_objects=storage.prefetch_objects,
                prefetch_bytes=storage.prefetch_bytes,
                keys=keys,
            ) as objects,
        ):
            yield objects
    else:
        yield storage


@asynccontextmanager
async def storage_target(
    storage: StorageOutput, overwrite: Overwrite, *, dry_run: bool, s3_client: S3Client | None
) -> AsyncIterator[StorageTarget]:
    """The target that restores objects into ``storage``; nothing is visible before commit."""
    if isinstance(storage, DirectoryStorage):
        yield DirectoryTarget(storage.path, overwrite, dry_run=dry_run, owner=storage.owner)
    elif isinstance(storage, S3Storage):
        async with client_for(storage.s3, s3_client) as client:
            yield S3Target(
                client,
                storage.bucket,
                storage.prefix,
                overwrite,
                storage.upload_checksum,
                dry_run=dry_run,
            )
    else:
        yield storage
