"""A committed archive -> its catalog entry written next to it (``<archive>.catalog.json``).

Why after the commit and never inside it: the entry describes bytes that exist. Written
first, a failed commit would leave an entry for nothing (a lie, and a step outside the
all-or-nothing contract); tied into the commit, an entry that cannot be written would
abort an archive that is complete (a backup lost for want of its index). Written after,
a failed entry write loses nothing: the backup returns normally (past the point of no
return it must), a warning is logged and :class:`EntryWrite` says so, and
:func:`list_backups` reports an "archive without an entry", which :func:`prune` never
deletes, since it cannot prove the archive is ours and whole.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from .._format.documents import Header, Manifest
from .._local.safe_paths import fsync_folder
from .._locations import FileArchive, S3Archive
from .._protocols import ArchiveSink, DumpSource
from .._s3.client import S3Client, client_for
from .._s3.errors import describe_error
from .._s3.object_settings import put_args
from .digest import HashingSink
from .entry import ENTRY_SUFFIX, CatalogEntry, build_entry
from .location import temp_name

__all__ = ["ENTRY_TIMEOUT", "EntryWrite", "encode_entry", "record_backup", "write_entry_file"]

logger = logging.getLogger("monetr_backup.catalog")

#: Seconds the entry write may take before the backup returns without it: it runs
#: shielded, past the point of no return, and must not hang the backup's return.
ENTRY_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class EntryWrite:
    """What became of a backup's catalog entry."""

    #: Where it was (to be) written: a path or ``s3://bucket/key``.
    location: str
    #: The entry written, or ``None`` if writing it failed.
    entry: CatalogEntry | None
    #: Why it was not written.
    error: str | None = None


def encode_entry(entry: CatalogEntry) -> bytes:
    """The entry as stored: indented JSON (an operator reads it with ``cat``)."""
    return (entry.model_dump_json(indent=2) + "\n").encode()


def write_entry_file(path: Path, data: bytes) -> None:
    """Write ``data`` at ``path`` atomically: a hidden sibling, fsynced, renamed, dir fsynced."""
    temp = path.with_name(temp_name(path.name))
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


async def record_backup(
    archive: object,
    sink: ArchiveSink,
    *,
    header: Header,
    manifest: Manifest,
    dump: DumpSource | None,
    recipients: Iterable[str] = (),
    s3_client: S3Client | None = None,
) -> EntryWrite | None:
    """Write the entry of the archive ``sink`` just committed; never raise.

    ``None`` for an archive given as a sink of the caller's: there is no place known to
    put an entry. Call it only after ``sink.commit()`` returned, shielded.
    """
    if not isinstance(archive, FileArchive | S3Archive) or not isinstance(sink, HashingSink):
        return None
    name = archive.path.name if isinstance(archive, FileArchive) else archive.key.rsplit("/")[-1]
    if isinstance(archive, FileArchive):
        where = str(archive.path.with_name(archive.path.name + ENTRY_SUFFIX))
    else:
        where = f"s3://{archive.bucket}/{archive.key}{ENTRY_SUFFIX}"
    error = "timed out"
    with anyio.move_on_after(ENTRY_TIMEOUT):
        # Broad on purpose: the archive is committed, so whatever goes wrong here (a full
        # disk, S3 down, a bug) must become "no entry", never a failed backup.
        try:
            entry = build_entry(
                archive=name,
                size=sink.size,
                sha256=await sink.hexdigest(),
                header=header,
                manifest=manifest,
                dump=dump,
                recipients=recipients,
            )
            data = encode_entry(entry)
            if isinstance(archive, FileArchive):
                await anyio.to_thread.run_sync(write_entry_file, Path(where), data)
            else:
                async with client_for(archive.s3, s3_client) as client:
                    # The archive's own object settings (encryption at rest, storage class,
                    # tags, metadata) apply to its entry too.
                    await client.put_object(
                        Bucket=archive.bucket,
                        Key=archive.key + ENTRY_SUFFIX,
                        Body=data,
                        ContentType="application/json",
                        **put_args(archive),  # type: ignore[arg-type]
                    )
            return EntryWrite(where, entry)
        except Exception as exc:
            error = describe_error(exc)
    logger.warning(
        "the archive is committed but its catalog entry %s was not written (%s): "
        "list_backups reports it as an archive without an entry, and prune leaves it alone",
        where,
        error,
        extra={"entry": where},
    )
    return EntryWrite(where, None, error)
