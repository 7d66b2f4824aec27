"""Backups against real servers, read back with standard tools.

Every archive made here is checked the way an operator without this library would use
it: downloaded, listed by GNU tar, extracted by Python's ``tarfile``, its dump parts
concatenated and restored with ``pg_restore``/``psql`` into a fresh database whose
``pg_dump`` must equal the source's, and its storage objects compared byte for byte.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from monetr_backup import (
    BackupOptions,
    Codec,
    DirectoryStorage,
    DumpFormat,
    FileArchive,
    Progress,
    S3Archive,
    S3Storage,
    StorageMode,
    backup,
)
from monetr_backup._catalog.entry import ENTRY_SUFFIX

from support.archives import check_archive_file
from support.corpus import UNSAFE_S3_KEYS
from support.databases import assert_same_database, restore_dump
from support.env import Env, Sources
from support.sizes import DUMP_PART_SIZE, MIN_PART
from support.targets import (
    file_mode,
    multipart_uploads,
    names_in,
    object_keys,
    read_bytes,
    write_bytes,
)

pytestmark = pytest.mark.anyio

SUFFIX = {Codec.GZIP: ".tar.gz", Codec.ZSTD: ".tar.zst", Codec.NONE: ".tar"}


class Case(NamedTuple):
    destination: str
    storage: str
    dump_format: DumpFormat
    codec: Codec


#: Every destination, storage kind, dump format and codec, each at least once (the
#: full product would take minutes).
CASES = [
    Case("s3", "directory", DumpFormat.CUSTOM, Codec.GZIP),
    Case("file", "s3", DumpFormat.PLAIN, Codec.ZSTD),
    Case("s3", "s3", DumpFormat.CUSTOM, Codec.ZSTD),
    Case("file", "directory", DumpFormat.PLAIN, Codec.NONE),
]


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"to-{c.destination}-from-{c.storage}-{c.dump_format}-{c.codec}"
)
async def test_backup_restores_with_standard_tools(
    case: Case, env: Env, sources: Sources, source_db: str
) -> None:
    client, codec, bucket = env.client, case.codec, env.bucket
    storage: DirectoryStorage | S3Storage
    if case.storage == "directory":
        storage = DirectoryStorage(path=sources.directory)
        storage_label = f"directory {sources.directory}"
        expected_skipped: list[str] = []
    else:
        storage = env.s3.storage(sources.bucket, prefix="data/")
        storage_label = f"s3://{sources.bucket}/data/"
        expected_skipped = list(UNSAFE_S3_KEYS)
    destination: S3Archive | FileArchive
    key = f"backups/monetr ☕ {codec}{SUFFIX[codec]}"
    if case.destination == "s3":
        # The smallest part size, so the 7+ MiB archive is a real multipart upload.
        destination = S3Archive(s3=env.s3.config(), bucket=bucket, key=key, part_size=MIN_PART)
    else:
        destination = FileArchive(path=env.output_dir / f"monetr{SUFFIX[codec]}")
    snapshots: list[Progress] = []

    manifest = await backup(
        destination,
        database=env.pg.config(source_db),
        storage=storage,
        options=BackupOptions(
            # The whole corpus: these files are not the database's files rows.
            storage_mode=StorageMode.ALL,
            dump_format=case.dump_format,
            dump_part_size=DUMP_PART_SIZE,
            codec=codec,
            kms_provider="plaintext",
        ),
        progress=snapshots.append,
    )

    # The archive is where it should be, complete, and nothing else was left behind but
    # its catalog entry (tests/catalog/ checks what the entry holds).
    archive = env.tmp_path / f"downloaded{SUFFIX[codec]}"
    if isinstance(destination, S3Archive):
        assert object_keys(client, bucket) == [key, key + ENTRY_SUFFIX]
        assert multipart_uploads(client, bucket) == []
        head = client.head_object(Bucket=bucket, Key=key, PartNumber=1)
        assert head["PartsCount"] >= 2
        assert head["ContentLength"] == MIN_PART
        write_bytes(archive, client.get_object(Bucket=bucket, Key=key)["Body"].read())
    else:
        assert names_in(env.output_dir) == [
            destination.path.name,
            destination.path.name + ENTRY_SUFFIX,
        ]
        assert file_mode(destination.path) == 0o600
        archive = destination.path
    extracted = check_archive_file(archive, codec, env.tmp_path / "extracted")

    # What backup() returned is what the archive says.
    assert extracted.manifest == manifest
    assert extracted.header.database == source_db
    assert extracted.header.dump_format is case.dump_format
    assert extracted.header.codec is codec
    assert extracted.header.storage == storage_label
    assert manifest.kms_provider == "plaintext"
    assert extracted.summary is not None
    assert extracted.summary.part_count > 8  # the events table alone spans many parts
    assert extracted.summary.server_version.startswith("15")

    # Every storage object, byte for byte; nothing extra; unsafe keys skipped, on record.
    assert extracted.objects == sources.corpus
    assert [skip.key for skip in manifest.skipped] == expected_skipped

    # The dump restores with the stock tools into an identical database.
    target = env.databases.create()
    restore_dump(env.pg, extracted.dump, case.dump_format, target)
    assert_same_database(env.pg, source_db, target)

    # Progress ended at the true totals.
    last = snapshots[-1]
    assert last.phase == "done"
    assert last.dump_bytes == manifest.dump_bytes == len(extracted.dump)
    assert last.objects_done == manifest.object_count == len(sources.corpus)
    assert last.object_bytes == manifest.object_bytes
    assert last.archive_bytes == len(read_bytes(archive))
    if case.destination == "s3":
        assert last.archive_bytes_stored == last.archive_bytes
    assert last.dump_bytes_estimate is not None
    assert last.dump_bytes_estimate > 0


@pytest.mark.parametrize("codec", [Codec.GZIP, Codec.ZSTD, Codec.NONE])
async def test_codecs_database_only(codec: Codec, env: Env) -> None:
    """A database-only backup (the small monetr-like seed) in each codec: the standard
    readers and a restore agree."""
    source = env.databases.create(seed=True)
    path = env.output_dir / f"db{SUFFIX[codec]}"

    manifest = await backup(
        FileArchive(path=path),
        database=env.pg.config(source),
        options=BackupOptions(codec=codec, dump_part_size=64 * 1024),
    )

    extracted = check_archive_file(path, codec, env.tmp_path / "x")
    assert extracted.header.storage is None
    assert manifest.object_count == 0
    assert extracted.objects == {}
    target = env.databases.create()
    restore_dump(env.pg, extracted.dump, DumpFormat.CUSTOM, target)
    want = env.pg.pg_dump_text(source, restrict_key="k")
    assert b"COPY public.transactions" in want
    assert env.pg.pg_dump_text(target, restrict_key="k") == want
