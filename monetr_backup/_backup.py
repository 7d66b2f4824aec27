"""The backup operation: wire sources, tar encoder, compressor and destination together.

pg_dump stdout --open_pg_dump--> dump parts --+
storage objects ----------------------------+--archive_members--> encode_tar
    --> compress --> ArchiveSink (S3 multipart upload, local file, or yours)
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from contextlib import AsyncExitStack, aclosing
from datetime import UTC, datetime

import anyio

from ._config import (
    BackupOptions,
    DirectoryStorage,
    FileDestination,
    PostgresConfig,
    S3Destination,
    S3Storage,
)
from ._errors import BackupError, single_errors
from ._format.compress import compress
from ._format.documents import Header, Manifest, SkippedObject
from ._format.members import DumpInput, Ledger, archive_members
from ._format.tar_write import encode_tar
from ._local.directory_source import directory_objects
from ._local.file_sink import open_file_sink
from ._postgres.pg_dump import open_pg_dump
from ._postgres.server import probe_server
from ._progress import ProgressCallback, ProgressTracker
from ._protocols import ArchiveSink, Member
from ._s3.bucket_source import open_s3_objects
from ._s3.client import S3Client, client_for
from ._s3.upload import open_s3_upload
from ._version import __version__

__all__ = ["backup"]

StorageInput = DirectoryStorage | S3Storage | AsyncIterable[Member]
DestinationInput = FileDestination | S3Destination | ArchiveSink


async def _open_sink(
    stack: AsyncExitStack,
    destination: DestinationInput,
    tracker: ProgressTracker,
    s3_client: S3Client | None,
) -> ArchiveSink:
    if isinstance(destination, FileDestination):
        return await stack.enter_async_context(
            open_file_sink(destination.path, overwrite=destination.overwrite)
        )
    if isinstance(destination, S3Destination):
        client = await stack.enter_async_context(client_for(destination.s3, s3_client))
        return await stack.enter_async_context(
            open_s3_upload(
                client,
                destination.bucket,
                destination.key,
                part_size=destination.part_size,
                max_parts=destination.max_parts,
                concurrency=destination.concurrency,
                queue_depth=destination.queue_depth,
                overwrite=destination.overwrite,
                checksum=destination.checksum,
                on_stored=lambda size: tracker.add(archive_bytes_stored=size),
            )
        )
    return destination


async def _open_storage(
    stack: AsyncExitStack,
    storage: StorageInput | None,
    skipped: list[SkippedObject],
    s3_client: S3Client | None,
) -> tuple[AsyncIterable[Member] | None, str | None]:
    if storage is None:
        return None, None
    if isinstance(storage, DirectoryStorage):
        # Closed with the backup, not when garbage-collected: a failed backup must not
        # leave the storage file it was reading open.
        files = await stack.enter_async_context(aclosing(directory_objects(storage.path, skipped)))
        return files, f"directory {storage.path}"
    if isinstance(storage, S3Storage):
        client = await stack.enter_async_context(client_for(storage.s3, s3_client))
        objects = await stack.enter_async_context(
            open_s3_objects(
                client,
                storage.bucket,
                storage.prefix,
                skipped,
                prefetch_objects=storage.prefetch_objects,
                prefetch_bytes=storage.prefetch_bytes,
            )
        )
        return objects, f"s3://{storage.bucket}/{storage.prefix}"
    return storage, "custom source"


async def backup(
    destination: DestinationInput,
    *,
    database: PostgresConfig | None = None,
    storage: StorageInput | None = None,
    options: BackupOptions | None = None,
    progress: ProgressCallback | None = None,
    s3_client: S3Client | None = None,
) -> Manifest:
    """Stream a database dump and storage objects into one archive at ``destination``.

    ``database`` is dumped with pg_dump; ``storage`` is a directory, a bucket, or any
    async iterable of :class:`Member` objects. The archive appears at ``destination``
    only when everything succeeded; on any error or cancellation nothing is left there
    (no file, no object, no incomplete multipart upload) and pg_dump is killed.

    ``s3_client`` replaces the clients this function would open from the S3 settings.
    ``progress`` is called with a :class:`Progress` snapshot whenever a counter moves.
    Returns the archive's manifest.
    """
    if database is None and storage is None:
        raise ValueError("nothing to back up: give a database, a storage source, or both")
    options = options or BackupOptions()
    with single_errors():
        return await _backup(
            destination,
            database=database,
            storage=storage,
            options=options,
            progress=progress,
            s3_client=s3_client,
        )


async def _backup(
    destination: DestinationInput,
    *,
    database: PostgresConfig | None,
    storage: StorageInput | None,
    options: BackupOptions,
    progress: ProgressCallback | None,
    s3_client: S3Client | None,
) -> Manifest:
    tracker = ProgressTracker(progress)
    created = datetime.now(UTC)
    top = f"monetr-backup-{created:%Y%m%dT%H%M%SZ}"
    skipped: list[SkippedObject] = []
    manifests: list[Manifest] = []

    server = await probe_server(database) if database is not None else None
    if server is not None and options.estimate_size:
        tracker.update(dump_bytes_estimate=server.database_size)

    async with AsyncExitStack() as stack:
        sink = await _open_sink(stack, destination, tracker, s3_client)
        objects, storage_label = await _open_storage(stack, storage, skipped, s3_client)
        dump: DumpInput | None = None
        if database is not None and server is not None:
            # One part waits while the previous one is compressed and uploaded,
            # so pg_dump keeps writing.
            process = await stack.enter_async_context(
                open_pg_dump(database, options.dump_format, part_size=options.dump_part_size)
            )
            dump = DumpInput(
                parts=process.parts,
                finished=process.wait,
                sha256=lambda: process.sha256,
                dump_format=options.dump_format,
                part_size=options.dump_part_size,
                pg_dump_version=process.version,
                server_version=server.server_version,
            )
        header = Header(
            created_at=created,
            library_version=__version__,
            top_folder=top,
            database=database.database if database is not None else None,
            dump_format=options.dump_format if database is not None else None,
            dump_part_size=options.dump_part_size,
            storage=storage_label,
            codec=options.codec,
        )
        members = archive_members(
            Ledger(top, created.timestamp()),
            header,
            dump,
            objects,
            skipped,
            kms_provider=options.kms_provider,
            progress=tracker,
            on_manifest=manifests.append,
        )
        try:
            async for chunk in compress(encode_tar(members), options.codec, options.level):
                await sink.write(chunk)
                tracker.add(archive_bytes=len(chunk))
            if not manifests:
                # Only reachable if a stage swallowed an error: never commit such an archive.
                raise BackupError("the archive ended before its manifest was written")
            tracker.update(phase="committing")
            # Shielded: a cancellation arriving mid-commit must not leave the caller told
            # "cancelled" while the archive became visible anyway.
            with anyio.CancelScope(shield=True):
                await sink.commit()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await sink.abort()
            raise
    tracker.update(phase="done")
    return manifests[0]
