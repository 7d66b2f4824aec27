"""The restore operation: an archive back into its database and storage, all or nothing.

archive bytes (S3 GET, resumable / local file) --> open_tar_entries (decompress + tar)
    --> ArchiveReader (names, order, sizes, SHA-256)
    --> instance files --> InstanceFilesTarget.write (staged beside their paths)
    --> dump chunks --> DatabaseTarget.write (pg_restore / psql, uncommitted)
    --> objects     --> StorageTarget.write  (staged, invisible)
    --> ArchiveReader.finish (the manifest check) --> commit both, or abort both
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import anyio.lowlevel
from pydantic import BaseModel, ConfigDict

from . import _open
from ._config import DumpFormat, PostgresConfig, RestoreOptions
from ._errors import BackupError, PgRestoreError, single_errors
from ._file_set import object_key
from ._format.archive_reader import ArchiveReader
from ._format.documents import Header, Manifest
from ._keys import identities_from
from ._local.instance_files import InstanceFilesTarget, open_instance_target
from ._locations import InstanceFiles
from ._postgres.lock import restore_lock
from ._postgres.pg_restore import PgRestore, open_pg_restore
from ._postgres.snapshot import live_files
from ._progress import Phase, ProgressCallback, ProgressTracker
from ._protocols import DatabaseTarget, StorageTarget
from ._reports import warn_restore
from ._s3.client import S3Client

__all__ = ["RestoreResult", "restore"]


class RestoreResult(BaseModel):
    """What a restore did."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    header: Header
    manifest: Manifest
    dry_run: bool
    #: Whether the dump was applied (and committed) to the target database.
    database_restored: bool
    #: Whether the target database was created by this restore.
    database_created: bool
    dump_bytes: int
    #: Keys written to the storage target.
    objects_restored: list[str]
    #: Keys left alone because they existed and the policy was ``skip``.
    objects_skipped: list[str]
    #: Keys that existed under the policy ``never``: reported, not overwritten.
    conflicts: list[str]
    #: Keys of the restored database's live ``files`` rows that have no object at the
    #: storage target: what monetr will fail to find. ``None``: not checked (no database
    #: or storage restored, a dry run, or not a monetr database).
    missing_files: list[str] | None = None
    #: The instance files written (the private key, the config files), at their paths.
    instance_files_restored: list[Path] = []


async def restore(
    archive: _open.ArchiveInput,
    *,
    database: PostgresConfig | None = None,
    storage: _open.StorageOutput | None = None,
    instance_files: InstanceFiles | None = None,
    options: RestoreOptions | None = None,
    progress: ProgressCallback | None = None,
    s3_client: S3Client | None = None,
) -> RestoreResult:
    """Restore ``archive`` into ``database`` and/or ``storage``; leave out either to skip it.

    ``instance_files`` names where the archive's private key and config files go (each
    written with mode 0600); the archive must hold what it names, and a file already
    there is refused unless ``replace_instance_files`` is set, both before any target is
    touched.

    Every member is checked on the way (the dump against its summary, everything against
    the manifest), and nothing commits until the whole archive has checked out: the dump
    goes in one transaction, storage objects are staged where they cannot be seen. Any
    failure or cancellation before that leaves both targets as they were (a database that
    ``create_database`` made is dropped again). A target database that already has tables
    is refused unless ``clean`` is set. ``dry_run`` reads and checks everything, and the
    targets, but writes nothing.
    """
    _open.check_archive(archive, writing=False)
    if storage is not None:
        _open.check_storage(storage, writing=True)
    if database is not None and not isinstance(database, PostgresConfig):
        raise TypeError(f"database must be PostgresConfig, not {type(database).__name__}")
    if instance_files is not None and not isinstance(instance_files, InstanceFiles):
        raise TypeError(
            f"instance_files must be InstanceFiles, not {type(instance_files).__name__}"
        )
    options = options or RestoreOptions()
    tracker = ProgressTracker(progress, options.progress_interval, operation="restore")
    with tracker.failures(), single_errors():
        result = await _restore(
            archive,
            database=database,
            storage=storage,
            instance_files=instance_files,
            options=options,
            tracker=tracker,
            s3_client=s3_client,
        )
    warn_restore(tracker, result)
    return result


async def _restore(
    archive: _open.ArchiveInput,
    *,
    database: PostgresConfig | None,
    storage: _open.StorageOutput | None,
    instance_files: InstanceFiles | None,
    options: RestoreOptions,
    tracker: ProgressTracker,
    s3_client: S3Client | None,
) -> RestoreResult:
    tracker.phase(Phase.STARTING)
    # Unshielded until the point of no return, then shielded to the end.
    with anyio.CancelScope() as done:
        async with AsyncExitStack() as stack:
            # An encrypted archive's identity is checked here, before any target is opened.
            reader = await stack.enter_async_context(
                _open.archive_reader(
                    archive,
                    s3_client,
                    tracker=tracker,
                    identities=identities_from(options.identities),
                )
            )
            header = await reader.read_header()
            if database is not None and not options.dry_run:
                # One backup or restore of a database at a time; taken before any target
                # is opened, checked or created, held until the restore has closed.
                await stack.enter_async_context(restore_lock(database))
            keys: InstanceFilesTarget | None = None
            if instance_files is not None:
                # First: it only looks at paths, and may refuse before a target is touched.
                keys = await open_instance_target(
                    instance_files,
                    header,
                    replace=options.replace_instance_files,
                    dry_run=options.dry_run,
                )
            db: PgRestore | None = None
            if database is not None:
                dump_format = _restorable(header, options)
                db = await stack.enter_async_context(
                    open_pg_restore(
                        database,
                        dump_format,
                        create_database=options.create_database,
                        clean=options.clean,
                        no_owner=options.no_owner,
                        role=options.role,
                        dry_run=options.dry_run,
                    )
                )
            files: StorageTarget | None = None
            if storage is not None:
                files = await stack.enter_async_context(
                    _open.storage_target(
                        storage, options.overwrite, dry_run=options.dry_run, s3_client=s3_client
                    )
                )
            try:
                manifest = await _write_all(
                    reader, header, db=db, files=files, keys=keys, tracker=tracker
                )
                # A cancellation already requested (from a progress callback, which runs in
                # this task) may have reached the stages' own tasks but not this one: it
                # must be taken here, before the shield, as in _backup().
                await anyio.lowlevel.checkpoint_if_cancelled()
            except BaseException:
                with anyio.CancelScope(shield=True):
                    if keys is not None:
                        await keys.abort()
                    if files is not None:
                        await files.abort()
                    if db is not None:
                        await db.abort()
                raise
            # The whole archive has checked out: the point of no return. From here on, closing
            # the stages included, all is shielded, so a cancellation cannot leave the
            # database committed and the files half published, or the caller told
            # "cancelled" about a restore that happened. Shielded before the phase is
            # reported: a callback that cancels would otherwise reach the stages' own tasks
            # (pg_restore's stderr reader), whose task group would then cancel the commit
            # and swallow that cancellation, so the restore "returned" having committed
            # nothing.
            done.shield = True
            tracker.phase(Phase.COMMITTING)
            try:
                if db is not None:
                    await db.commit()
            except BaseException:
                if keys is not None:
                    await keys.abort()
                if files is not None:
                    await files.abort()
                raise
            missing_files = None
            if files is not None:
                try:
                    await files.commit()
                except BaseException as exc:
                    # Too late to undo the database; what is left staged goes, and the
                    # error says what did commit.
                    await files.abort()
                    if keys is not None:
                        await keys.abort()
                    if database is not None and not options.dry_run:
                        exc.add_note(
                            f"the database {database.database!r} was restored and committed "
                            "before the storage target failed"
                        )
                    raise
                if database is not None and not options.dry_run:
                    missing_files = await _missing_files(database, files)
            if keys is not None:
                # Last: renames in folders already checked, the least likely to fail.
                try:
                    await keys.commit()
                except BaseException as exc:
                    await keys.abort()
                    if (database is not None or files is not None) and not options.dry_run:
                        exc.add_note(
                            "the database and storage asked for were restored and committed "
                            "before the instance files failed"
                        )
                    raise
    tracker.phase(Phase.DONE)
    outcome = files.outcome if files is not None else None
    return RestoreResult(
        header=header,
        manifest=manifest,
        dry_run=options.dry_run,
        database_restored=db is not None and not options.dry_run,
        database_created=db is not None and db.created,
        dump_bytes=db.applied if db is not None else 0,
        objects_restored=outcome.written if outcome else [],
        objects_skipped=outcome.skipped if outcome else [],
        conflicts=outcome.conflicts if outcome else [],
        missing_files=missing_files,
        instance_files_restored=keys.restored if keys is not None else [],
    )


def _restorable(header: Header, options: RestoreOptions) -> DumpFormat:
    """The dump format to restore, refusing what cannot be done before touching anything."""
    if header.dump_format is None:
        raise PgRestoreError("the archive holds no database dump (restore with database=None)")
    if options.no_owner and header.dump_format is DumpFormat.PLAIN:
        raise PgRestoreError(
            "no_owner needs a custom-format dump; this archive holds a plain SQL dump, "
            "whose ALTER ... OWNER statements always run"
        )
    return header.dump_format


async def _write_all(
    reader: ArchiveReader,
    header: Header,
    *,
    db: DatabaseTarget | None,
    files: StorageTarget | None,
    keys: InstanceFilesTarget | None,
    tracker: ProgressTracker,
) -> Manifest:
    """Every member into its target, uncommitted; returns the manifest once all checked out."""
    async for entry, item in reader.instance_files():
        if keys is not None:
            await keys.write(entry, item)
    if header.dump_format is not None:
        tracker.phase(Phase.RESTORING_DATABASE if db is not None else Phase.CHECKING_DUMP)
        async for chunk in reader.dump_chunks():
            if db is not None:
                await db.write(chunk)
            tracker.add(dump_bytes=len(chunk))
    tracker.phase(Phase.RESTORING_STORAGE if files is not None else Phase.CHECKING_STORAGE)
    async for item in reader.objects():
        if files is not None:
            await files.write(item)
        tracker.add(objects_done=1, object_bytes=item.size)
    return await reader.finish()


async def _missing_files(database: PostgresConfig, files: StorageTarget) -> list[str] | None:
    """The restored instance check: every live files row should have its object."""
    has = getattr(files, "has", None)  # our own targets; a custom one may not say
    if has is None:
        return None
    try:
        rows = await live_files(database)
        if rows is None:
            return None
        return [key for key in map(object_key, rows) if not await has(key)]
    except BackupError:
        # Past the point of no return: the restore happened; only the check could not.
        return None
