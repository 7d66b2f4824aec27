"""One archive location -> its catalog entry, if there is one that matches the archive."""

from __future__ import annotations

from pydantic import ValidationError

from .._errors import CatalogError
from .._locations import FileArchive, S3Archive
from .._s3.client import S3Client
from .entry import ENTRY_SUFFIX, CatalogEntry
from .location import FileArchives, S3Archives, open_backend

__all__ = ["entry_for"]


async def entry_for(
    archive: FileArchive | S3Archive, s3_client: S3Client | None
) -> CatalogEntry | None:
    """The entry next to ``archive`` if it is readable, names it, and records its size.

    ``None`` otherwise (no entry, a damaged one, one describing other bytes): the caller
    then reads the archive itself, which is the truth the entry only summarises.
    """
    if isinstance(archive, FileArchive):
        name = archive.path.name
        folder: FileArchives | S3Archives = FileArchives(path=archive.path.parent)
    else:
        prefix, _, name = archive.key.rpartition("/")
        folder = S3Archives(
            s3=archive.s3, bucket=archive.bucket, prefix=prefix + "/" if prefix else ""
        )
    async with open_backend(folder, s3_client) as backend:
        try:
            listed = await backend.stat(name)
            if listed is None or await backend.stat(name + ENTRY_SUFFIX) is None:
                return None
            entry = CatalogEntry.model_validate_json(await backend.read_entry(name + ENTRY_SUFFIX))
        except (CatalogError, ValidationError):
            return None
    if entry.archive != name or entry.archive_size != listed.size:
        return None
    return entry
