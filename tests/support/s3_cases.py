"""The S3 fault and cancellation cases' data -> what a returned operation must have made, and
what a failed one must have left alone."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

import monetr_backup as mb
from monetr_backup.testing import PostgresServer, TemporarySeaweedS3

from .archives import Extracted, decompress, extract
from .databases import Databases
from .names import unique_name
from .samples import RESTRICT_KEY, Sample
from .sizes import MIB
from .targets import (
    bucket_objects,
    multipart_uploads,
    new_bucket,
    partial_files,
    put_objects,
    snapshot,
    write_files,
)


@dataclass(frozen=True)
class Payload:
    """Storage big enough for a multipart archive (~6.3 MB, incompressible, so two 5 MiB
    parts whatever the codec), in a folder and in a bucket."""

    files: dict[str, bytes]
    directory: Path
    bucket: str


def make_payload(s3: TemporarySeaweedS3, root: Path) -> Payload:
    """Write the payload's files (seeded, so every run backs up the same bytes)."""
    rng = random.Random(9)
    files = {f"blobs/{i}.bin": rng.randbytes(2 * MIB + 1000 * i) for i in range(3)}
    files |= {f"small/{i:02d}.txt": f"small file {i}\n".encode() * (i + 1) for i in range(12)}
    files["small/empty"] = b""
    write_files(root, files)
    bucket = new_bucket(s3, "payload")
    put_objects(s3, bucket, files)
    return Payload(files, root, bucket)


def storage_of(
    payload: Payload, source: str, s3: mb.S3Config
) -> mb.DirectoryStorage | mb.S3Storage:
    """The payload as a ``"directory"`` or ``"bucket"`` storage source (the bucket read
    through the S3 settings ``s3``)."""
    if source == "directory":
        return mb.DirectoryStorage(path=payload.directory)
    return mb.S3Storage(s3=s3, bucket=payload.bucket)


def object_at(client: Any, bucket: str, key: str) -> bytes | None:
    """The object at ``key``, or ``None``."""
    try:
        body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None
    return body


def uploads_at(client: Any, bucket: str, key: str) -> list[str]:
    """Ids of the unfinished multipart uploads at ``key``."""
    return [u["UploadId"] for u in multipart_uploads(client, bucket) if u["Key"] == key]


def check_s3_archive(
    client: Any,
    bucket: str,
    key: str,
    *,
    files: dict[str, bytes],
    database: str | None,
    codec: mb.Codec,
    dump_format: mb.DumpFormat,
    dest: Path,
) -> Extracted:
    """The archive at ``key`` checks out (layout, digests, with the stock decompressors),
    holds ``files`` exactly and a dump of ``database``; no upload is left at the key."""
    data = object_at(client, bucket, key)
    assert data is not None, f"no archive at {key}"
    extracted = extract(decompress(data, codec), dest)
    assert extracted.header.codec is codec
    assert extracted.objects == files
    if database is not None:
        assert extracted.header.database == database
        assert extracted.header.dump_format is dump_format
        assert extracted.summary is not None
        assert extracted.summary.total_bytes > 0
    assert uploads_at(client, bucket, key) == []
    return extracted


def assert_nothing_at_key(client: Any, bucket: str, key: str) -> None:
    """No object and no unfinished multipart upload at ``key``."""
    assert object_at(client, bucket, key) is None, f"an object was left at {key}"
    assert uploads_at(client, bucket, key) == [], f"a multipart upload was left at {key}"


# --- archives to restore from ----------------------------------------------------------


@dataclass(frozen=True)
class S3Samples:
    """The sample database and folder backed up to S3 once per codec and dump format."""

    bucket: str
    sample: Sample

    @staticmethod
    def key(codec: mb.Codec, dump_format: mb.DumpFormat) -> str:
        return f"sample-{dump_format}.tar.{codec}"


def make_s3_samples(s3: TemporarySeaweedS3, pg: PostgresServer, sample: Sample) -> S3Samples:
    bucket = new_bucket(s3, "samples")
    for codec in mb.Codec:
        for dump_format in mb.DumpFormat:
            anyio.run(
                functools.partial(
                    mb.backup,
                    mb.S3Archive(
                        s3=s3.config(), bucket=bucket, key=S3Samples.key(codec, dump_format)
                    ),
                    database=pg.config(sample.database),
                    storage=mb.DirectoryStorage(path=sample.storage),
                    options=mb.BackupOptions(
                        codec=codec, dump_format=dump_format, storage_mode=mb.StorageMode.ALL
                    ),
                )
            )
    return S3Samples(bucket, sample)


# --- restore targets, before and after -------------------------------------------------


@dataclass
class RestoreTargets:
    """A restore's database and storage target, as they were before it ran.

    The database is new (the restore is to create it) or existing: empty, or (``clean``)
    holding a table the dump does not have, for the restore to replace; the storage is a
    folder or a prefix in a bucket, each holding one unrelated file already.
    """

    pg: PostgresServer
    s3: TemporarySeaweedS3
    database: str
    create: bool
    clean: bool
    folder: Path | None
    bucket: str | None
    prefix: str
    dump_before: bytes | None
    folder_before: dict[str, tuple[str, int, bytes]]
    bucket_before: dict[str, bytes]

    def storage(self, s3: mb.S3Config) -> mb.DirectoryStorage | mb.S3Storage:
        """The storage target, the bucket reached through the S3 settings ``s3``."""
        if self.folder is not None:
            return mb.DirectoryStorage(path=self.folder)
        assert self.bucket is not None
        return mb.S3Storage(s3=s3, bucket=self.bucket, prefix=self.prefix)

    def options(self, **more: object) -> mb.RestoreOptions:
        fields = {"create_database": self.create, "clean": self.clean, **more}
        return mb.RestoreOptions.model_validate(fields)

    def assert_untouched(self) -> None:
        """Nothing of the restore is visible: no database it created, the existing one
        as it was, the folder or bucket as they were, no temporary file."""
        if self.create:
            literal = "'" + self.database.replace("'", "''") + "'"
            count = self.pg.psql(f"SELECT count(*) FROM pg_database WHERE datname = {literal}")
            assert count == "0\n", f"the database {self.database} was left behind"
        else:
            dump = self.pg.pg_dump_text(self.database, restrict_key=RESTRICT_KEY)
            assert dump == self.dump_before, "the existing database changed"
        if self.folder is not None:
            assert snapshot(self.folder) == self.folder_before, "the folder changed"
            assert partial_files(self.folder) == []
        if self.bucket is not None:
            assert bucket_objects(self.s3, self.bucket) == self.bucket_before, "the bucket changed"
            assert multipart_uploads(self.s3.client(), self.bucket) == []

    def assert_restored(self, result: mb.RestoreResult, sample: Sample) -> None:
        """Everything of the archive is there: the database as the sample's, every file."""
        assert result.database_restored
        assert result.database_created is self.create
        dump = self.pg.pg_dump_text(self.database, restrict_key=RESTRICT_KEY)
        assert dump == sample.dump
        assert sorted(result.objects_restored) == sorted(sample.files)
        if self.folder is not None:
            before, after = _files(self.folder_before), _files(snapshot(self.folder))
            assert after == {**before, **sample.files}
            assert partial_files(self.folder) == []
        if self.bucket is not None:
            expected = {self.prefix + key: content for key, content in sample.files.items()}
            assert bucket_objects(self.s3, self.bucket) == {**self.bucket_before, **expected}
            assert multipart_uploads(self.s3.client(), self.bucket) == []


def _files(found: dict[str, tuple[str, int, bytes]]) -> dict[str, bytes]:
    """The files of a :func:`snapshot`: path -> content."""
    return {path: content for path, (kind, _, content) in found.items() if kind == "file"}


#: A table the existing target database holds before a restore (the dump has no such table).
_EXISTING_TABLE = (
    "CREATE TABLE kept_before_restore (id int); INSERT INTO kept_before_restore VALUES (1)"
)


def restore_targets(
    pg: PostgresServer,
    s3: TemporarySeaweedS3,
    databases: Databases,
    root: Path,
    *,
    create: bool,
    storage: str,
    bucket: str,
    clean: bool = False,
) -> RestoreTargets:
    """Fresh targets: a new or an existing database (with a table of its own if
    ``clean``), a ``"directory"`` or ``"bucket"`` storage target (a fresh prefix in
    ``bucket``)."""
    if create:
        name = unique_name("t_new").replace("-", "_")
        databases.created.append(name)  # dropped after the test either way
        dump_before = None
    else:
        name = databases.create()
        if clean:
            pg.psql(_EXISTING_TABLE, name)
        dump_before = pg.pg_dump_text(name, restrict_key=RESTRICT_KEY)
    folder = None
    prefix = ""
    bucket_before: dict[str, bytes] = {}
    if storage == "directory":
        folder = root / unique_name("files")
        write_files(folder, {"already/here.txt": b"not from the archive\n"})
    else:
        prefix = unique_name("run") + "/"
        put_objects(s3, bucket, {prefix + "already/here.txt": b"not from the archive\n"})
        bucket_before = bucket_objects(s3, bucket)
    return RestoreTargets(
        pg=pg,
        s3=s3,
        database=name,
        create=create,
        clean=clean,
        folder=folder,
        bucket=bucket if storage == "bucket" else None,
        prefix=prefix,
        dump_before=dump_before,
        folder_before=snapshot(folder) if folder is not None else {},
        bucket_before=bucket_before,
    )
