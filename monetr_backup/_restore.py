"""The restore, verify and inspect operations: an archive back into its targets.

S3 GET (resumable) / local file --> open_tar_entries (decompress + tarfile, thread)
    --> ArchiveReader (names, order, sizes, SHA-256)
    --> dump_chunks --> pg_restore / psql (one transaction, last chunk held back)
    --> objects --> DirectoryTarget / S3Target
    --> finish (manifest check) --> last dump chunk released (commit) --> publish staged files
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AsyncExitStack, aclosing, asynccontextmanager

import anyio
from pydantic import BaseModel, ConfigDict

from ._config import (
    DirectoryStorage,
    DumpFormat,
    FileArchive,
    PostgresConfig,
    RestoreOptions,
    S3Archive,
    S3Storage,
)
from ._errors import ArchiveError, RestoreError, single_errors
from ._format.archive_reader import ArchiveReader
from ._format.documents import Header, Manifest
from ._format.tar_read import open_tar_entries
from ._local.directory_target import DirectoryTarget
from ._local.file_reader import file_bytes
from ._postgres.pg_restore import run_restore
from ._postgres.server import drop_database, prepare_target
from ._progress import ProgressCallback, ProgressTracker
from ._protocols import Outcome
from ._s3.bucket_target import S3Target
from ._s3.client import S3Client, client_for
from ._s3.download import s3_bytes

__all__ = [
    "InspectResult",
    "Problem",
    "RestoreResult",
    "VerifyReport",
    "inspect",
    "restore",
    "verify",
]

ArchiveSource = FileArchive | S3Archive | AsyncIterable[bytes]


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RestoreResult(_Result):
    """What a restore did."""

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


class Problem(_Result):
    """One thing wrong with an archive, and the member where it was found."""

    member: str | None
    message: str
    kind: str


class VerifyReport(_Result):
    """The outcome of :func:`verify`."""

    ok: bool
    header: Header | None
    manifest: Manifest | None
    members_checked: int
    problems: list[Problem]


class InspectResult(_Result):
    """An archive's header and manifest."""

    header: Header
    manifest: Manifest


@asynccontextmanager
async def _archive_bytes(
    source: ArchiveSource, s3_client: S3Client | None
) -> AsyncIterator[AsyncIterable[bytes]]:
    # aclosing: a reader that stops early (a refused archive, an error downstream) leaves
    # the generator suspended inside its open file or response; only aclose() ends it
    # while the event loop that owns them still runs.
    if isinstance(source, FileArchive):
        async with aclosing(file_bytes(source.path)) as chunks:
            yield chunks
    elif isinstance(source, S3Archive):
        async with (
            client_for(source.s3, s3_client) as client,
            aclosing(
                s3_bytes(client, source.bucket, source.key, max_resumes=source.max_resumes)
            ) as chunks,
        ):
            yield chunks
    else:
        yield source


@asynccontextmanager
async def _open_reader(
    source: ArchiveSource, s3_client: S3Client | None, *, strict: bool = True
) -> AsyncIterator[ArchiveReader]:
    async with (
        _archive_bytes(source, s3_client) as chunks,
        open_tar_entries(chunks) as entries,
    ):
        yield ArchiveReader(entries, strict=strict)


@asynccontextmanager
async def _storage_target(
    storage: DirectoryStorage | S3Storage, options: RestoreOptions, s3_client: S3Client | None
) -> AsyncIterator[DirectoryTarget | S3Target]:
    if isinstance(storage, DirectoryStorage):
        yield DirectoryTarget(storage.path, options.overwrite)
    else:
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(client_for(storage.s3, s3_client))
            yield S3Target(
                client, storage.bucket, storage.prefix, options.overwrite, storage.upload_checksum
            )


async def restore(
    source: ArchiveSource,
    *,
    database: PostgresConfig | None = None,
    storage: DirectoryStorage | S3Storage | None = None,
    options: RestoreOptions | None = None,
    progress: ProgressCallback | None = None,
    s3_client: S3Client | None = None,
) -> RestoreResult:
    """Restore an archive into ``database`` and/or ``storage``.

    The dump is applied in one transaction that commits only after the whole archive has
    been read and checked (the dump against its summary, every member against the
    manifest); any failure leaves the database as it was (and drops it again if
    ``create_database`` made it). A target database that already has tables is refused
    unless ``clean`` is set. Directory targets receive files only after the manifest has
    been checked and the dump committed; S3 objects written by a restore that then fails
    are deleted again. ``dry_run`` reads and checks everything, and the targets, but
    writes nothing.
    """
    options = options or RestoreOptions()
    with single_errors():
        return await _restore(
            source,
            database=database,
            storage=storage,
            options=options,
            progress=progress,
            s3_client=s3_client,
        )


async def _restore(
    source: ArchiveSource,
    *,
    database: PostgresConfig | None,
    storage: DirectoryStorage | S3Storage | None,
    options: RestoreOptions,
    progress: ProgressCallback | None,
    s3_client: S3Client | None,
) -> RestoreResult:
    tracker = ProgressTracker(progress)
    restore_db = options.database and database is not None
    created = False
    applied = 0
    target: DirectoryTarget | S3Target | None = None
    manifest: Manifest | None = None

    async with _open_reader(source, s3_client) as reader:

        async def rest_of_archive() -> None:
            # Storage objects, then the manifest check. With a database to restore this runs
            # while pg_restore/psql waits for the dump's last chunk: nothing commits before
            # the whole archive has been read and checked.
            nonlocal manifest
            manifest = await _read_objects(reader, target, options, tracker)

        header = await reader.read_header()
        if restore_db and header.dump_format is None:
            raise RestoreError("the archive holds no database dump")
        if restore_db and options.no_owner and header.dump_format is DumpFormat.PLAIN:
            raise RestoreError(
                "no_owner needs a custom-format dump; this archive holds a plain SQL dump, "
                "whose ALTER ... OWNER statements always run"
            )
        if restore_db:
            assert database is not None
            created = await prepare_target(
                database,
                create=options.create_database,
                clean=options.clean,
                dry_run=options.dry_run,
            )
        try:
            async with AsyncExitStack() as stack:
                if storage is not None and options.storage:
                    target = await stack.enter_async_context(
                        _storage_target(storage, options, s3_client)
                    )
                try:
                    if header.dump_format is not None:
                        tracker.update(
                            phase="restoring database" if restore_db else "checking dump"
                        )
                        dump = _counted(reader.dump_chunks(), tracker)
                        if restore_db and not options.dry_run:
                            assert database is not None
                            applied = await run_restore(
                                database,
                                database.database,
                                header.dump_format,
                                dump,
                                clean=options.clean,
                                no_owner=options.no_owner,
                                role=options.role,
                                before_commit=rest_of_archive,
                            )
                        else:
                            async for _ in dump:
                                pass
                    if manifest is None:
                        await rest_of_archive()
                    if target is not None:
                        await target.publish()
                except BaseException:
                    if target is not None:
                        await target.discard()
                    raise
        except BaseException:
            if created:
                with anyio.CancelScope(shield=True):
                    await drop_database(database)  # type: ignore[arg-type]
            raise
    assert manifest is not None
    outcome = target.outcome if target is not None else Outcome()
    tracker.update(phase="done")
    return RestoreResult(
        header=header,
        manifest=manifest,
        dry_run=options.dry_run,
        database_restored=restore_db and not options.dry_run,
        database_created=created,
        dump_bytes=applied,
        objects_restored=outcome.written,
        objects_skipped=outcome.skipped,
        conflicts=outcome.conflicts,
    )


async def _counted(chunks: AsyncIterator[bytes], tracker: ProgressTracker) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        tracker.add(dump_bytes=len(chunk))
        yield chunk


async def _read_objects(
    reader: ArchiveReader,
    target: DirectoryTarget | S3Target | None,
    options: RestoreOptions,
    tracker: ProgressTracker,
) -> Manifest:
    """Read (and, given a target, write) every storage object, then check the manifest.

    Targets only stage what needs staging here; the caller publishes or discards it.
    """
    if target is None:
        tracker.update(phase="checking storage objects")
        async for item in reader.objects():
            async for _ in item.chunks:
                pass
        return await reader.finish()
    tracker.update(phase="restoring storage")
    async for item in reader.objects():
        if await target.prepare(item.key) and not options.dry_run:
            await target.write(item.key, item.chunks)
        tracker.add(objects_done=1, object_bytes=item.size)
    return await reader.finish()


async def verify(source: ArchiveSource, *, s3_client: S3Client | None = None) -> VerifyReport:
    """Read the whole archive and check every member; touch no target.

    Returns a report rather than raising for damage found in the archive, naming the
    member where each problem was found.
    """
    with single_errors():
        async with _open_reader(source, s3_client, strict=False) as reader:
            problems: list[Problem] = []
            try:
                await reader.read_header()
                if reader.header is not None and reader.header.dump_format is not None:
                    async for _ in reader.dump_chunks():
                        pass
                async for item in reader.objects():
                    async for _ in item.chunks:
                        pass
                await reader.finish()
            except ArchiveError as exc:
                problems.append(
                    Problem(member=exc.member, message=str(exc), kind=type(exc).__name__)
                )
            problems[:0] = [
                Problem(member=p.member, message=str(p), kind=type(p).__name__)
                for p in reader.problems
            ]
            return VerifyReport(
                ok=not problems,
                header=reader.header,
                manifest=reader.manifest,
                members_checked=len(reader.seen),
                problems=problems,
            )


async def inspect(source: ArchiveSource, *, s3_client: S3Client | None = None) -> InspectResult:
    """Return an archive's header and manifest (reads the archive to its end)."""
    with single_errors():
        async with _open_reader(source, s3_client, strict=False) as reader:
            header = await reader.read_header()
            if header.dump_format is not None:
                async for _ in reader.dump_chunks():
                    pass
            async for item in reader.objects():
                async for _ in item.chunks:
                    pass
            manifest = await reader.finish()
            return InspectResult(header=header, manifest=manifest)
