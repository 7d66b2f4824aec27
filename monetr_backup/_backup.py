"""The backup operation: sources -> members -> tar -> codec -> the archive's sink.

pg_dump stdout --open_pg_dump--> dump parts --+
storage objects ----------------------------+--archive_members--> encode_tar
    --> compress --> ArchiveSink (S3 multipart upload, local file, or yours)
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime

import anyio
import anyio.lowlevel

from . import _open
from ._config import BackupOptions, PostgresConfig
from ._errors import BackupError, single_errors
from ._format.compress import compress
from ._format.documents import Header, Manifest, SkippedObject
from ._format.members import archive_members
from ._format.tar_write import encode_tar
from ._postgres.pg_dump import open_pg_dump
from ._postgres.server import probe_server
from ._progress import Phase, ProgressCallback, ProgressTracker
from ._protocols import DumpSource
from ._s3.client import S3Client
from ._version import __version__

__all__ = ["backup"]


async def backup(
    archive: _open.ArchiveOutput,
    *,
    database: PostgresConfig | None = None,
    storage: _open.StorageInput | None = None,
    options: BackupOptions | None = None,
    progress: ProgressCallback | None = None,
    s3_client: S3Client | None = None,
) -> Manifest:
    """Stream a database dump and storage objects into one archive at ``archive``.

    ``archive`` is a :class:`FileArchive`, an :class:`S3Archive`, or any
    :class:`~monetr_backup.stages.ArchiveSink`. ``database`` is dumped with pg_dump;
    ``storage`` is a :class:`DirectoryStorage`, an :class:`S3Storage`, or any async
    iterable of :class:`~monetr_backup.stages.Member` objects. The archive appears only
    when everything succeeded; on any error or cancellation nothing is left there (no
    file, no object, no incomplete multipart upload) and pg_dump is killed.

    ``s3_client`` replaces the clients this function would open from the S3 settings.
    ``progress`` is called with a :class:`Progress` snapshot on every phase change and
    at most every ``options.progress_interval`` seconds in between. Returns the
    archive's manifest.
    """
    _open.check_archive(archive, writing=True)
    if storage is not None:
        _open.check_storage(storage, writing=False)
    if database is not None and not isinstance(database, PostgresConfig):
        raise TypeError(f"database must be PostgresConfig, not {type(database).__name__}")
    if database is None and storage is None:
        raise ValueError("nothing to back up: give a database, a storage source, or both")
    options = options or BackupOptions()
    with single_errors():
        return await _backup(
            archive,
            database=database,
            storage=storage,
            options=options,
            progress=progress,
            s3_client=s3_client,
        )


async def _backup(
    archive: _open.ArchiveOutput,
    *,
    database: PostgresConfig | None,
    storage: _open.StorageInput | None,
    options: BackupOptions,
    progress: ProgressCallback | None,
    s3_client: S3Client | None,
) -> Manifest:
    tracker = ProgressTracker(progress, options.progress_interval)
    tracker.phase(Phase.STARTING)
    created = datetime.now(UTC)
    skipped: list[SkippedObject] = []
    manifests: list[Manifest] = []

    server = await probe_server(database) if database is not None else None
    if server is not None and options.estimate_size:
        tracker.update(dump_bytes_estimate=server.database_size)

    # Unshielded until the point of no return, then shielded to the end.
    with anyio.CancelScope() as done:
        async with AsyncExitStack() as stack:
            sink = await stack.enter_async_context(
                _open.archive_sink(
                    archive, replace=options.replace_archive, tracker=tracker, s3_client=s3_client
                )
            )
            objects = None
            if storage is not None:
                objects = await stack.enter_async_context(
                    _open.storage_source(storage, skipped, s3_client)
                )
            dump: DumpSource | None = None
            if database is not None and server is not None:
                # One part waits while the previous one is compressed and uploaded,
                # so pg_dump keeps writing.
                dump = await stack.enter_async_context(
                    open_pg_dump(
                        database,
                        options.dump_format,
                        part_size=options.dump_part_size,
                        server=server,
                    )
                )
            header = Header(
                created_at=created,
                library_version=__version__,
                top_folder=f"monetr-backup-{created:%Y%m%dT%H%M%SZ}",
                database=database.database if database is not None else None,
                dump_format=options.dump_format if database is not None else None,
                dump_part_size=options.dump_part_size,
                storage=_open.storage_label(storage) if storage is not None else None,
                codec=options.codec,
            )
            members = archive_members(
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
                # A cancellation already requested must be taken here, before the point of
                # no return: it has reached the stages' own tasks (the upload's workers,
                # the prefetchers) but maybe not this one yet (requested from the progress
                # callback, say, which runs in this task). Shielded with it pending, the
                # commit would find the workers gone, and a task group swallow the
                # cancellation: backup() would return with no archive written.
                await anyio.lowlevel.checkpoint_if_cancelled()
                # The point of no return. From here on, closing the stages included, all is
                # shielded: a cancellation arriving now must not leave the caller told
                # "cancelled" while the archive became visible anyway. Shielded before the
                # phase is reported, for the same reason as the checkpoint above.
                done.shield = True
                tracker.phase(Phase.COMMITTING)
                await sink.commit()
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await sink.abort()
                raise
    tracker.phase(Phase.DONE)
    return manifests[0]
