"""A folder of archives -> its backups newest first, from their entries alone, and what is amiss."""

from __future__ import annotations

import anyio
from pydantic import BaseModel, ConfigDict, ValidationError

from .._errors import CatalogError, single_errors
from .._locations import check_type
from .._s3.client import S3Client
from .entry import ENTRY_SUFFIX, CatalogEntry
from .location import Backend, FileArchives, Listed, S3Archives, is_archive_name, open_backend

__all__ = ["BackupListing", "ListedBackup", "UnreadableEntry", "list_backups", "read_listing"]

#: Entries read at once from S3 (each is one small GET).
READ_CONCURRENCY = 16


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ListedBackup(_Result):
    """A backup: an archive and its entry."""

    #: The archive's name in the folder (file name, or key without the prefix).
    name: str
    #: The archive's size at the location now.
    size: int
    entry: CatalogEntry
    #: S3: the archive's ETag as listed (prune checks it again before deleting).
    etag: str | None = None

    @property
    def size_matches(self) -> bool:
        """The archive is as long as its entry says: whole, and the one the entry describes."""
        return self.size == self.entry.archive_size


class UnreadableEntry(_Result):
    """An entry that could not be read, or is not one of ours."""

    name: str
    reason: str


class BackupListing(_Result):
    """What :func:`list_backups` found at a location."""

    #: Every archive with a readable entry, newest first (by the entry's ``created_at``).
    backups: list[ListedBackup]
    #: Archives with no entry (an entry write failed, or made before the catalog):
    #: never pruned.
    archives_without_entry: list[str]
    #: Entries whose archive is gone (deleted by hand, or a prune stopped halfway).
    entries_without_archive: list[str]
    #: Entries that could not be read or parsed, or name another archive: prune refuses
    #: to run while there is one.
    unreadable_entries: list[UnreadableEntry]
    #: Files that are neither archives nor entries: never touched.
    other_files: list[str]

    @property
    def size_mismatches(self) -> list[ListedBackup]:
        """Backups whose archive's size is not the one recorded: never pruned."""
        return [backup for backup in self.backups if not backup.size_matches]


def _parse(name: str, archive: str, data: bytes) -> CatalogEntry | str:
    try:
        entry = CatalogEntry.model_validate_json(data)
    except ValidationError as exc:
        return (
            f"not a catalog entry ({exc.error_count()} problems, first: {exc.errors()[0]['msg']})"
        )
    if entry.archive != archive:
        return f"it describes {entry.archive!r}, not {archive!r}"
    return entry


async def read_listing(backend: Backend, patterns: tuple[str, ...]) -> BackupListing:
    """List ``backend`` (complete, or CatalogError) and read every entry in it."""
    listed = await backend.list_all()
    by_name: dict[str, Listed] = {item.name: item for item in listed}
    archives = {name for name in by_name if is_archive_name(name, patterns)}
    entry_names = sorted(name for name in by_name if name.endswith(ENTRY_SUFFIX))
    others = sorted(
        name for name in by_name if name not in archives and not name.endswith(ENTRY_SUFFIX)
    )
    found: dict[str, CatalogEntry] = {}
    unreadable: list[UnreadableEntry] = []
    without_archive: list[str] = []
    limiter = anyio.CapacityLimiter(READ_CONCURRENCY)

    async def read(entry_name: str) -> None:
        archive = entry_name[: -len(ENTRY_SUFFIX)]
        async with limiter:
            try:
                data = await backend.read_entry(entry_name)
            except CatalogError as exc:
                unreadable.append(UnreadableEntry(name=entry_name, reason=str(exc)))
                return
        parsed = _parse(entry_name, archive, data)
        if isinstance(parsed, str):
            unreadable.append(UnreadableEntry(name=entry_name, reason=parsed))
        elif archive in archives:
            found[archive] = parsed
        else:
            without_archive.append(entry_name)

    with single_errors():
        async with anyio.create_task_group() as tg:
            for entry_name in entry_names:
                tg.start_soon(read, entry_name)
    backups = [
        ListedBackup(name=name, size=by_name[name].size, entry=entry, etag=by_name[name].tag)
        for name, entry in found.items()
    ]
    backups.sort(key=lambda backup: (backup.entry.created_at, backup.name), reverse=True)
    return BackupListing(
        backups=backups,
        archives_without_entry=sorted(archives - found.keys() - _unread_archives(unreadable)),
        entries_without_archive=sorted(without_archive),
        unreadable_entries=sorted(unreadable, key=lambda item: item.name),
        other_files=others,
    )


def _unread_archives(unreadable: list[UnreadableEntry]) -> set[str]:
    return {item.name[: -len(ENTRY_SUFFIX)] for item in unreadable}


def check_location(location: object) -> None:
    """Refuse a location of the wrong type before anything starts."""
    check_type("location", location, (FileArchives, S3Archives))


async def list_backups(
    location: FileArchives | S3Archives, *, s3_client: S3Client | None = None
) -> BackupListing:
    """The backups at ``location``, newest first, from their catalog entries alone.

    No archive is read: one listing, and one small read per entry. Besides the backups,
    the listing names archives without an entry, entries without an archive, entries
    that cannot be read, and other files. A listing that fails or comes back incomplete
    raises :class:`CatalogError`.
    """
    check_location(location)
    with single_errors():
        async with open_backend(location, s3_client) as backend:
            return await read_listing(backend, location.patterns)
