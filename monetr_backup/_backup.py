"""The backup operation: sources -> members -> tar -> codec -> the archive's sink.

private key, config files --read whole-----+
pg_dump stdout --open_pg_dump--> dump parts --+
storage objects ----------------------------+--archive_members--> encode_tar
    --> compress [--> encrypt, to age recipients]
    --> ArchiveSink (S3 multipart upload, local file, or yours)
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack, aclosing
from datetime import UTC, datetime

import anyio
import anyio.lowlevel

from . import _open
from ._catalog.digest import hashed
from ._catalog.record import record_backup
from ._config import BackupOptions, PostgresConfig, StorageMode
from ._errors import BackupError, single_errors
from ._file_set import FileSetAccount
from ._format.compress import batch_size_for, compress, default_threads
from ._format.documents import (
    Header,
    InstanceFileEntry,
    InstanceFileKind,
    Manifest,
    MonetrFacts,
    SkippedObject,
)
from ._format.encrypt import encrypt
from ._format.members import archive_members
from ._format.tar_write import encode_tar
from ._keys import recipients_from
from ._local.instance_files import read_instance_files
from ._locations import DirectoryStorage, InstanceFiles, S3Storage
from ._postgres.lock import backup_lock
from ._postgres.pg_dump import dump_client, open_pg_dump
from ._postgres.server import probe_server
from ._postgres.snapshot import Snapshot, open_snapshot
from ._progress import Phase, ProgressCallback, ProgressTracker
from ._protocols import DumpSource
from ._reports import warn_backup
from ._s3.client import S3Client
from ._version import __version__

__all__ = ["backup"]


async def backup(
    archive: _open.ArchiveOutput,
    *,
    database: PostgresConfig | None = None,
    storage: _open.StorageInput | None = None,
    instance_files: InstanceFiles | None = None,
    options: BackupOptions | None = None,
    progress: ProgressCallback | None = None,
    s3_client: S3Client | None = None,
) -> Manifest:
    """Stream a database dump and storage objects into one archive at ``archive``.

    ``archive`` is a :class:`FileArchive`, an :class:`S3Archive`, or any
    :class:`~monetr_backup.stages.ArchiveSink`. ``database`` is dumped with pg_dump;
    ``storage`` is a :class:`DirectoryStorage`, an :class:`S3Storage`, or any async
    iterable of :class:`~monetr_backup.stages.Member` objects; ``instance_files`` (say
    ``MonetrInstance.instance_files``) are read whole before anything is written, and
    their presence makes the manifest's ``live_secrets`` say so. The archive appears only
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
    if instance_files is not None and not isinstance(instance_files, InstanceFiles):
        raise TypeError(
            f"instance_files must be InstanceFiles, not {type(instance_files).__name__}"
        )
    if database is None and storage is None:
        raise ValueError("nothing to back up: give a database, a storage source, or both")
    options = options or BackupOptions()
    tracker = ProgressTracker(progress, options.progress_interval, operation="backup")
    tracker.expect(dump=database is not None and options.estimate_size, objects=storage is not None)
    with tracker.failures(), single_errors():
        manifest = await _backup(
            archive,
            database=database,
            storage=storage,
            instance_files=instance_files,
            options=options,
            tracker=tracker,
            s3_client=s3_client,
        )
    warn_backup(tracker, manifest)
    return manifest


async def _backup(
    archive: _open.ArchiveOutput,
    *,
    database: PostgresConfig | None,
    storage: _open.StorageInput | None,
    instance_files: InstanceFiles | None,
    options: BackupOptions,
    tracker: ProgressTracker,
    s3_client: S3Client | None,
) -> Manifest:
    tracker.phase(Phase.STARTING)
    created = datetime.now(UTC)
    skipped: list[SkippedObject] = []
    manifests: list[Manifest] = []

    server = None
    if database is not None:
        server = await probe_server(database)
        # A pg_dump older than the server is refused before the archive is even opened.
        await dump_client(database, server)
    if server is not None and options.estimate_size:
        tracker.update(dump_bytes_estimate=server.database_size)
    # Read before the archive is opened: a key that is missing fails with nothing written.
    instance_entries: list[InstanceFileEntry] = []
    instance_contents: list[bytes] = []
    if instance_files is not None:
        instance_entries, instance_contents = await read_instance_files(instance_files)

    # Unshielded until the point of no return, then shielded to the end.
    with anyio.CancelScope() as done:
        async with AsyncExitStack() as stack:
            if database is not None:
                # One backup or restore of a database at a time: an overlapping run stops
                # here, before the archive is opened. Held until everything has closed.
                await stack.enter_async_context(backup_lock(database))
            sink = await stack.enter_async_context(
                _open.archive_sink(
                    archive, replace=options.replace_archive, tracker=tracker, s3_client=s3_client
                )
            )
            sink = hashed(archive, sink)  # the catalog entry records the SHA-256 stored
            # pg_dump and our queries share one snapshot: the files rows in it decide
            # which storage objects belong with the dump.
            snapshot = account = facts = None
            if database is not None:
                snapshot = await stack.enter_async_context(open_snapshot(database))
                facts = await snapshot.monetr_facts()
            if database is not None and snapshot is not None and storage is not None:
                account = await _file_set_account(snapshot, database, storage, options)
            objects = None
            if storage is not None:
                keys = None
                if account is not None and account.mode is StorageMode.REFERENCED:
                    keys = account.keys()
                    # The rows' sizes: the storage totals known before any object is read.
                    tracker.update(
                        objects_total=len(keys), object_bytes_total=sum(s for _, s in keys)
                    )
                objects = await stack.enter_async_context(
                    _open.storage_source(storage, skipped, s3_client, keys)
                )
                if account is not None:
                    objects = account.observe(objects)
            dump: DumpSource | None = None
            if database is not None and server is not None:
                # One part waits while the previous one is compressed and uploaded,
                # so pg_dump keeps writing.
                snapshot_args = [f"--snapshot={snapshot.snapshot_id}"] if snapshot else []
                dump = await stack.enter_async_context(
                    open_pg_dump(
                        database,
                        options.dump_format,
                        part_size=options.dump_part_size,
                        server=server,
                        extra_args=snapshot_args,
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
                instance_files=instance_entries,
            )
            members = archive_members(
                header,
                dump,
                objects,
                skipped,
                kms_provider=options.kms_provider,
                progress=tracker,
                on_manifest=manifests.append,
                instance_files=instance_contents,
                annotate=lambda manifest: manifest.model_copy(
                    update={
                        "file_set": account.summary() if account is not None else None,
                        "monetr": facts,
                        "live_secrets": live_secrets(options.kms_provider, facts, instance_entries),
                    }
                ),
            )
            chunks = compress(
                encode_tar(members),
                options.codec,
                options.level,
                batch_size=batch_size_for(options.dump_part_size),
                threads=options.compress_threads or default_threads(),
            )
            if options.recipients:
                # compress -> encrypt -> sink: the header and manifest are inside the age
                # stream. Closed with the stack, so its thread ends with the backup.
                chunks = await stack.enter_async_context(
                    aclosing(encrypt(chunks, recipients_from(options.recipients)))
                )
            try:
                async for chunk in chunks:
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
            # Committed: the catalog entry, which never raises (see _catalog/record.py).
            await record_backup(
                archive,
                sink,
                header=header,
                manifest=manifests[0],
                dump=dump,
                recipients=options.recipients,
                s3_client=s3_client,
            )
    tracker.phase(Phase.DONE)
    return manifests[0]


async def _file_set_account(
    snapshot: Snapshot,
    database: PostgresConfig,
    storage: _open.StorageInput,
    options: BackupOptions,
) -> FileSetAccount | None:
    """How the storage objects are chosen and accounted for against the dump's rows."""
    rows = await snapshot.live_files()
    mode = options.storage_mode
    if mode is StorageMode.REFERENCED and rows is None:
        raise ValueError(
            f"storage_mode='referenced' needs monetr's files table; database "
            f"{database.database!r} has none (use storage_mode='all')"
        )
    located = isinstance(storage, DirectoryStorage | S3Storage)
    if mode is StorageMode.REFERENCED and not located:
        raise ValueError("storage_mode='referenced' needs a DirectoryStorage or S3Storage")
    if rows is None or (mode is None and not located):
        return None
    prefix = storage.prefix if isinstance(storage, S3Storage) else ""
    return FileSetAccount(mode or StorageMode.REFERENCED, rows, prefix)


def live_secrets(
    kms_provider: str | None,
    facts: MonetrFacts | None,
    instance_files: Sequence[InstanceFileEntry] = (),
) -> str | None:
    """The manifest's warning when the archive holds secrets usable as they are."""
    held: list[str] = []
    if kms_provider == "plaintext" and facts is not None and facts.kms_keys:
        count = sum(key.secrets for key in facts.kms_keys)
        held.append(
            f"with the plaintext KMS provider the {count} rows of the secrets table are "
            "Plaid and Lunch Flow tokens in clear"
        )
    kinds = {entry.kind for entry in instance_files}
    if InstanceFileKind.PRIVATE_KEY in kinds:
        held.append("it holds the instance's private key, with which anyone can sign sessions")
    if InstanceFileKind.CONFIG in kinds:
        held.append("it holds monetr's config files, which may hold its passwords and keys")
    if not held:
        return None
    return (
        f"This archive holds live secrets: {'; '.join(held)}. Keep it as you would keep "
        "those accounts and keys."
    )
