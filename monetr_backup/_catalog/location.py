"""A folder of archives (a directory, or a bucket and prefix) -> its listing, entries, deletes.

The one place the catalog touches files and S3. A listing is complete or it is an error:
prune decides what to delete from it, and a partial listing would make the newest
backups look missing (restic#4612 wiped a repository that way).
"""

from __future__ import annotations

import email.utils
import fnmatch
import os
import secrets
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

import anyio
import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field

from .._config import S3Config
from .._errors import CatalogError
from .._s3.client import S3Client, client_for
from .._s3.errors import S3_ERRORS, describe_error, is_not_found, mapped
from .entry import ENTRY_SUFFIX, MAX_ENTRY_BYTES

__all__ = [
    "ARCHIVE_PATTERNS",
    "Backend",
    "FileArchives",
    "Listed",
    "S3Archives",
    "Upload",
    "is_archive_name",
    "open_backend",
    "temp_name",
]

#: What an archive's name must look like to be taken for one: the suffixes backups get
#: for each codec, and the same encrypted (``.age``).
ARCHIVE_PATTERNS = (
    "*.tar",
    "*.tar.gz",
    "*.tar.zst",
    "*.tar.age",
    "*.tar.gz.age",
    "*.tar.zst.age",
)
#: A listing longer than this is refused: listing and pruning hold it in memory.
MAX_LISTED = 100_000


class _Location(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class FileArchives(_Location):
    """A directory of :class:`FileArchive` backups, for :func:`list_backups` and :func:`prune`.

    Only the directory's own files count (not its subfolders'). A file is an archive if
    its name matches one of ``patterns`` (and is not hidden: a backup in progress writes
    to a hidden temporary file); anything else is left alone.
    """

    kind: Literal["file"] = "file"
    path: Path
    patterns: tuple[str, ...] = Field(ARCHIVE_PATTERNS, min_length=1)


class S3Archives(_Location):
    """The :class:`S3Archive` backups under ``prefix`` in ``bucket``.

    Only keys right under the prefix count (``prefix`` + a name without ``/``). A key is
    an archive if that name matches one of ``patterns``; anything else is left alone.
    """

    kind: Literal["s3"] = "s3"
    s3: S3Config
    bucket: str
    prefix: str = ""
    patterns: tuple[str, ...] = Field(ARCHIVE_PATTERNS, min_length=1)


def is_archive_name(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``name`` is taken for an archive's (never a hidden file, never an entry)."""
    if not name or name.startswith(".") or "/" in name or name.endswith(ENTRY_SUFFIX):
        return False
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


@dataclass(frozen=True, slots=True)
class Listed:
    """One name in the folder, its size, and (S3) its ETag."""

    name: str
    size: int
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class Upload:
    """An unfinished multipart upload under the prefix."""

    key: str
    upload_id: str
    initiated: datetime


class Backend(Protocol):
    """What the catalog needs from where the archives are."""

    def describe(self, name: str = "") -> str:
        """``/path/name`` or ``s3://bucket/prefix/name``, for messages."""

    async def list_all(self) -> list[Listed]:
        """Every file directly in the folder: complete, or CatalogError."""

    async def read_entry(self, name: str) -> bytes:
        """The bytes of an entry (at most MAX_ENTRY_BYTES): CatalogError if not readable."""

    async def stat(self, name: str) -> Listed | None:
        """The size (and tag) of one name now, ``None`` if it is gone."""

    async def delete(self, name: str) -> None:
        """Delete one name; CatalogError if that failed."""

    async def uploads(self) -> tuple[list[Upload], datetime]:
        """Unfinished multipart uploads under the prefix, and the server's time now."""

    async def abort_upload(self, upload: Upload) -> None:
        """Abort one upload."""


class FileBackend:
    """A directory's archives."""

    def __init__(self, location: FileArchives) -> None:
        self.root = location.path

    def describe(self, name: str = "") -> str:
        return str(self.root / name) if name else str(self.root)

    def _list(self) -> list[Listed]:
        found: list[Listed] = []
        try:
            with os.scandir(self.root) as entries:
                for item in entries:
                    if len(found) >= MAX_LISTED:
                        raise CatalogError(
                            f"{self.root} holds more than {MAX_LISTED} files: not listed"
                        )
                    info = item.stat(follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode):
                        found.append(Listed(item.name, info.st_size))
        except OSError as exc:
            raise CatalogError(f"listing {self.root} failed: {exc}") from exc
        return found

    async def list_all(self) -> list[Listed]:
        return await anyio.to_thread.run_sync(self._list)

    def _read(self, name: str) -> bytes:
        path = self.root / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as file:
                data = file.read(MAX_ENTRY_BYTES + 1)
        except OSError as exc:
            raise CatalogError(f"reading {path} failed: {exc}") from exc
        if len(data) > MAX_ENTRY_BYTES:
            raise CatalogError(f"{path} is larger than an entry can be ({MAX_ENTRY_BYTES} bytes)")
        return data

    async def read_entry(self, name: str) -> bytes:
        return await anyio.to_thread.run_sync(self._read, name)

    def _stat(self, name: str) -> Listed | None:
        try:
            info = os.lstat(self.root / name)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CatalogError(f"checking {self.root / name} failed: {exc}") from exc
        return Listed(name, info.st_size) if stat.S_ISREG(info.st_mode) else None

    async def stat(self, name: str) -> Listed | None:
        return await anyio.to_thread.run_sync(self._stat, name)

    def _delete(self, name: str) -> None:
        try:
            os.unlink(self.root / name)
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise CatalogError(f"deleting {self.root / name} failed: {exc}") from exc

    async def delete(self, name: str) -> None:
        await anyio.to_thread.run_sync(self._delete, name)

    async def uploads(self) -> tuple[list[Upload], datetime]:
        raise AssertionError("a directory has no multipart uploads")

    async def abort_upload(self, upload: Upload) -> None:
        raise AssertionError("a directory has no multipart uploads")


class S3Backend:
    """The archives under a bucket's prefix."""

    def __init__(self, location: S3Archives, client: S3Client) -> None:
        self.bucket = location.bucket
        self.prefix = location.prefix
        self.client = client

    def describe(self, name: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{name}"

    async def list_all(self) -> list[Listed]:
        found: list[Listed] = []
        token: str | None = None
        while True:
            with mapped(CatalogError, f"listing {self.describe()}"):
                page = await (
                    self.client.list_objects_v2(
                        Bucket=self.bucket,
                        Prefix=self.prefix,
                        Delimiter="/",
                        ContinuationToken=token,
                    )
                    if token is not None
                    else self.client.list_objects_v2(
                        Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"
                    )
                )
            for item in page.get("Contents", []):
                key = item.get("Key", "")
                if not key.startswith(self.prefix) or "Size" not in item:
                    raise CatalogError(f"listing {self.describe()}: the server sent {key!r}")
                found.append(Listed(key[len(self.prefix) :], item["Size"], item.get("ETag")))
            if len(found) > MAX_LISTED:
                raise CatalogError(f"{self.describe()} holds more than {MAX_LISTED} objects")
            if not page.get("IsTruncated"):
                return found
            token = page.get("NextContinuationToken")
            if not token:
                # A truncated page without a way on: the rest would be silently missing.
                raise CatalogError(f"listing {self.describe()} is incomplete (no continuation)")

    async def read_entry(self, name: str) -> bytes:
        key = self.prefix + name
        with mapped(CatalogError, f"reading {self.describe(name)}"):
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                if response.get("ContentLength", 0) > MAX_ENTRY_BYTES:
                    raise CatalogError(
                        f"{self.describe(name)} is larger than an entry can be "
                        f"({MAX_ENTRY_BYTES} bytes)"
                    )
                data: bytes = await body.read()
        return data

    async def stat(self, name: str) -> Listed | None:
        try:
            head = await self.client.head_object(Bucket=self.bucket, Key=self.prefix + name)
        except S3_ERRORS as exc:
            if is_not_found(exc):
                return None
            raise CatalogError(
                f"checking {self.describe(name)} failed: {describe_error(exc)}"
            ) from exc
        return Listed(name, head["ContentLength"], head.get("ETag"))

    async def delete(self, name: str) -> None:
        with mapped(CatalogError, f"deleting {self.describe(name)}"):
            await self.client.delete_object(Bucket=self.bucket, Key=self.prefix + name)

    async def uploads(self) -> tuple[list[Upload], datetime]:
        found: list[Upload] = []
        key_marker: str | None = None
        id_marker: str | None = None
        now: datetime | None = None
        while True:
            with mapped(CatalogError, f"listing the unfinished uploads under {self.describe()}"):
                if key_marker is None:
                    page = await self.client.list_multipart_uploads(
                        Bucket=self.bucket, Prefix=self.prefix
                    )
                else:
                    page = await self.client.list_multipart_uploads(
                        Bucket=self.bucket,
                        Prefix=self.prefix,
                        KeyMarker=key_marker,
                        UploadIdMarker=id_marker or "",
                    )
            if now is None:
                # The server's clock judges the uploads' ages, as it set their Initiated
                # times: the client's may be minutes off.
                date = page.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
                if date is None:
                    raise CatalogError(f"{self.describe()}: the upload listing has no Date")
                now = email.utils.parsedate_to_datetime(date)
            for item in page.get("Uploads", []):
                if "Key" in item and "UploadId" in item and "Initiated" in item:
                    found.append(Upload(item["Key"], item["UploadId"], item["Initiated"]))
            if not page.get("IsTruncated"):
                return found, now
            key_marker = page.get("NextKeyMarker")
            id_marker = page.get("NextUploadIdMarker")
            if not key_marker:
                raise CatalogError(f"listing the uploads under {self.describe()} is incomplete")

    async def abort_upload(self, upload: Upload) -> None:
        with mapped(CatalogError, f"aborting the upload {upload.upload_id} to {upload.key}"):
            await self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=upload.key, UploadId=upload.upload_id
            )


@asynccontextmanager
async def open_backend(
    location: FileArchives | S3Archives, s3_client: S3Client | None
) -> AsyncIterator[Backend]:
    """The backend serving ``location`` (an S3 client opened for it, unless given one)."""
    if isinstance(location, FileArchives):
        yield FileBackend(location)
    else:
        async with client_for(location.s3, s3_client) as client:
            yield S3Backend(location, client)


def temp_name(name: str) -> str:
    """A hidden sibling name to write ``name`` to before renaming it into place."""
    return f".{name}.{secrets.token_hex(6)}.partial"
