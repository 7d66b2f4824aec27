"""Restore against a real PostgreSQL and a real S3 server (SeaweedFS), no mocks.

Every test compares the targets before and after: the restored database's ``pg_dump``
against the source's, storage objects byte for byte, and for every failure the target
database's ``pg_dump`` (or its absence), the storage folder and the bucket unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import monetr_backup as mb
from monetr_backup import stages
from monetr_backup.testing import PostgresServer, TemporarySeaweedS3

from support.archives import (
    TOP,
    build_tar,
    decompress,
    flip_member_byte,
    header_json,
    member_names,
    regular,
    special,
    truncate_file,
)
from support.databases import Databases, database_exists
from support.processes import child_processes
from support.proxy import cutting_proxy
from support.samples import PART_SIZE, RESTRICT_KEY, Sample, copy_archive, make_sample
from support.targets import (
    bucket_objects,
    modes,
    partial_files,
    put_objects,
    snapshot,
    tree,
    write_files,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def sample(pg: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
    with make_sample(pg, tmp_path_factory.mktemp("restore-sample")) as made:
        yield made


async def restore_into_new(
    pg: PostgresServer, path: Path, database: str, files: Path | None = None
) -> mb.RestoreResult:
    """Restore the archive file at ``path`` into the new ``database`` (and ``files``)."""
    return await mb.restore(
        mb.FileArchive(path=path),
        database=pg.config(database),
        storage=mb.DirectoryStorage(path=files) if files is not None else None,
        options=mb.RestoreOptions(create_database=True),
    )


def new_database_name(databases: Databases) -> str:
    """A name for a database the restore is to create (dropped after the test either way)."""
    name = f"t_new_{uuid.uuid4().hex[:12]}"
    databases.created.append(name)
    return name


def new_bucket(s3: TemporarySeaweedS3) -> str:
    name = f"restore-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(name)
    return name


def assert_private_tree(root: Path) -> None:
    """Folders 0700 and files 0600, like monetr writes them; no temporary files left."""
    for relative, mode in modes(root).items():
        wanted = 0o700 if (root / relative).is_dir() else 0o600
        assert mode == wanted, f"{relative}: mode {mode:o}"
    assert partial_files(root) == []


# --- 1. round trips ------------------------------------------------------------------

ROUND_TRIPS = [
    pytest.param(location, dump_format, kind, codec, id=f"{location}-{dump_format}-{kind}-{codec}")
    for location, dump_format, kind, codec in [
        ("s3", mb.DumpFormat.CUSTOM, "directory", mb.Codec.GZIP),
        ("s3", mb.DumpFormat.PLAIN, "s3", mb.Codec.ZSTD),
        ("s3", mb.DumpFormat.CUSTOM, "s3", mb.Codec.NONE),
        ("s3", mb.DumpFormat.PLAIN, "directory", mb.Codec.GZIP),
        ("file", mb.DumpFormat.CUSTOM, "directory", mb.Codec.ZSTD),
        ("file", mb.DumpFormat.PLAIN, "directory", mb.Codec.NONE),
        ("file", mb.DumpFormat.CUSTOM, "s3", mb.Codec.GZIP),
        ("file", mb.DumpFormat.PLAIN, "s3", mb.Codec.GZIP),
    ]
]


@pytest.mark.parametrize(("location", "dump_format", "kind", "codec"), ROUND_TRIPS)
async def test_round_trip(
    *,
    location: str,
    dump_format: mb.DumpFormat,
    kind: str,
    codec: mb.Codec,
    sample: Sample,
    pg: PostgresServer,
    s3: TemporarySeaweedS3,
    databases: Databases,
    tmp_path: Path,
) -> None:
    """Backup then restore gives a database whose pg_dump equals the source's and
    byte-identical storage objects, for every archive location, dump format, storage
    kind (and codec)."""
    s3_config = s3.config()
    storage_source: mb.DirectoryStorage | mb.S3Storage
    storage_target: mb.DirectoryStorage | mb.S3Storage
    if kind == "directory":
        storage_source = mb.DirectoryStorage(path=sample.storage)
        storage_target = mb.DirectoryStorage(path=tmp_path / "restored")
    else:
        source_bucket, target_bucket = new_bucket(s3), new_bucket(s3)
        put_objects(s3, source_bucket, sample.files)
        storage_source = s3.storage(source_bucket)
        storage_target = s3.storage(target_bucket)
    destination: mb.FileArchive | mb.S3Archive
    archive: mb.FileArchive | mb.S3Archive
    if location == "file":
        destination = mb.FileArchive(path=tmp_path / "backup.tar")
        archive = mb.FileArchive(path=tmp_path / "backup.tar")
    else:
        archive_bucket = new_bucket(s3)
        destination = mb.S3Archive(s3=s3_config, bucket=archive_bucket, key="b/backup.tar")
        archive = mb.S3Archive(s3=s3_config, bucket=archive_bucket, key="b/backup.tar")

    manifest = await mb.backup(
        destination,
        database=pg.config(sample.database),
        storage=storage_source,
        options=mb.BackupOptions(dump_format=dump_format, dump_part_size=PART_SIZE, codec=codec),
    )
    assert sum("/dump/part-" in entry.name for entry in manifest.members) >= 4

    target_db = new_database_name(databases)
    result = await mb.restore(
        archive,
        database=pg.config(target_db),
        storage=storage_target,
        options=mb.RestoreOptions(create_database=True),
    )

    assert result.manifest == manifest
    assert result.header.dump_format is dump_format
    assert result.header.codec is codec
    assert (result.database_restored, result.database_created, result.dry_run) == (
        True,
        True,
        False,
    )
    assert result.dump_bytes == manifest.dump_bytes > 0
    assert sorted(result.objects_restored) == sorted(sample.files)
    assert result.objects_skipped == result.conflicts == []
    assert pg.pg_dump_text(target_db, restrict_key=RESTRICT_KEY) == sample.dump
    if isinstance(storage_target, mb.DirectoryStorage):
        assert tree(storage_target.path) == sample.files
        assert_private_tree(storage_target.path)
    else:
        assert bucket_objects(s3, storage_target.bucket) == sample.files


async def test_restore_storage_only_and_database_only(
    sample: Sample, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    """Leaving out ``database=`` or ``storage=`` restores one side only, and still reads
    and checks the whole archive."""
    archive = mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM])
    target_db = new_database_name(databases)
    result = await mb.restore(
        archive,
        storage=mb.DirectoryStorage(path=tmp_path / "files"),
        options=mb.RestoreOptions(create_database=True),
    )
    assert not result.database_restored
    assert not database_exists(pg, target_db)
    assert tree(tmp_path / "files") == sample.files

    result = await mb.restore(
        archive,
        database=pg.config(target_db),
        options=mb.RestoreOptions(create_database=True),
    )
    assert result.database_restored
    assert result.objects_restored == []
    assert pg.pg_dump_text(target_db, restrict_key=RESTRICT_KEY) == sample.dump


# --- 2. a target that is not empty ----------------------------------------------------

#: Changes a copy of the sample database: rows gone and changed, a table dropped.
#: (Only objects the dump has: ``pg_restore --clean`` drops just those; see below.)
DRIFT_SQL = """
DELETE FROM transactions WHERE amount < 0;
UPDATE logins SET first_name = 'Changed', email = 'changed-' || email;
DROP TABLE files;
"""


@pytest.mark.parametrize("dump_format", list(mb.DumpFormat))
async def test_target_with_tables_is_refused_unless_clean(
    dump_format: mb.DumpFormat, sample: Sample, pg: PostgresServer, databases: Databases
) -> None:
    """A database that has tables is refused (TargetNotEmptyError) and left as it was;
    with ``clean=True`` its objects are replaced and it then equals the source."""
    target = databases.create(template=sample.database)
    pg.psql(DRIFT_SQL, target)
    before = pg.pg_dump_text(target, restrict_key=RESTRICT_KEY)
    assert before != sample.dump
    archive = mb.FileArchive(path=sample.archives[dump_format])

    with pytest.raises(mb.TargetNotEmptyError, match="already has"):
        await mb.restore(archive, database=pg.config(target))
    assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == before

    result = await mb.restore(
        archive, database=pg.config(target), options=mb.RestoreOptions(clean=True)
    )
    assert result.database_restored
    assert not result.database_created
    assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == sample.dump


async def test_clean_plain_restore_drops_objects_the_dump_does_not_have(
    sample: Sample, pg: PostgresServer, databases: Databases
) -> None:
    """For plain dumps ``clean`` drops the user schemas first (same transaction), so a
    table and a schema the source never had are gone afterwards too."""
    target = databases.create()
    pg.psql(
        "CREATE SCHEMA stale; CREATE TABLE stale.t (id int); CREATE TABLE extra (x int);", target
    )
    await mb.restore(
        mb.FileArchive(path=sample.archives[mb.DumpFormat.PLAIN]),
        database=pg.config(target),
        options=mb.RestoreOptions(clean=True),
    )
    assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == sample.dump


async def test_failing_clean_restore_rolls_back(
    sample: Sample, pg: PostgresServer, databases: Databases
) -> None:
    """``pg_restore --clean`` cannot drop a table that an object outside the dump depends
    on: the restore fails with PgRestoreError (pg_restore's message) and, being one
    transaction, leaves the database exactly as it was."""
    target = databases.create(template=sample.database)
    pg.psql(DRIFT_SQL + "CREATE VIEW drift_view AS SELECT count(*) FROM transactions;", target)
    before = pg.pg_dump_text(target, restrict_key=RESTRICT_KEY)
    with pytest.raises(mb.PgRestoreError, match="drift_view depends on table"):
        await mb.restore(
            mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM]),
            database=pg.config(target),
            options=mb.RestoreOptions(clean=True),
        )
    assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == before


# --- 3. damaged archives leave every target as it was ---------------------------------


def last_dump_part(path: Path) -> str:
    return [name for name in member_names(path) if "/dump/part-" in name][-1]


@pytest.mark.parametrize("create_database", [False, True], ids=["existing-db", "create-db"])
@pytest.mark.parametrize("dump_format", list(mb.DumpFormat))
async def test_flipped_byte_in_last_dump_part(
    *,
    dump_format: mb.DumpFormat,
    create_database: bool,
    sample: Sample,
    pg: PostgresServer,
    databases: Databases,
    tmp_path: Path,
) -> None:
    """One byte flipped in the last dump part, gzip CRC rebuilt: only the dump's SHA-256
    notices. The restore raises ChecksumError and the database is as before (an empty
    one still empty; one the restore created is gone); no storage file appears."""
    path = copy_archive(sample, dump_format, tmp_path)
    flip_member_byte(path, last_dump_part(path), index=100)
    if create_database:
        target = new_database_name(databases)
    else:
        target = databases.create()
        before = pg.pg_dump_text(target, restrict_key=RESTRICT_KEY)
    children = child_processes()

    with pytest.raises(mb.ChecksumError, match="SHA-256") as caught:
        await mb.restore(
            mb.FileArchive(path=path),
            database=pg.config(target),
            storage=mb.DirectoryStorage(path=tmp_path / "files"),
            options=mb.RestoreOptions(create_database=create_database),
        )

    assert caught.value.member is not None
    assert caught.value.member.endswith("/dump/summary.json")
    if create_database:
        assert not database_exists(pg, target)
    else:
        assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == before
    assert tree(tmp_path / "files") == {}
    assert child_processes() == children


@pytest.fixture(scope="module")
def big_dump_archives(
    sample: Sample, pg: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[mb.DumpFormat, Path]:
    """Archives of the sample with 4 MB of incompressible storage after the dump, so a
    cut lands well behind the dump section (and the reader's read-ahead)."""
    root = tmp_path_factory.mktemp("big-dump-archives")
    shutil.copytree(sample.storage, root / "storage")
    write_files(root / "storage", {f"zz-big/{i}.bin": os.urandom(1024 * 1024) for i in range(4)})
    archives: dict[mb.DumpFormat, Path] = {}
    for dump_format in mb.DumpFormat:
        archives[dump_format] = root / f"{dump_format}.tar.gz"
        anyio.run(
            functools.partial(
                mb.backup,
                mb.FileArchive(path=archives[dump_format]),
                database=pg.config(sample.database),
                storage=mb.DirectoryStorage(path=root / "storage"),
                options=mb.BackupOptions(dump_format=dump_format, dump_part_size=PART_SIZE),
            )
        )
    return archives


@pytest.mark.parametrize(
    ("dump_format", "fraction", "targets"),
    [
        (mb.DumpFormat.CUSTOM, 0.6, "new-db+directory"),
        (mb.DumpFormat.CUSTOM, 0.99, "existing-db+s3"),
        (mb.DumpFormat.PLAIN, 0.6, "existing-db+s3"),
        (mb.DumpFormat.PLAIN, 0.99, "new-db+directory"),
    ],
)
async def test_truncated_archive(
    *,
    dump_format: mb.DumpFormat,
    fraction: float,
    targets: str,
    big_dump_archives: dict[mb.DumpFormat, Path],
    pg: PostgresServer,
    s3: TemporarySeaweedS3,
    databases: Databases,
    tmp_path: Path,
) -> None:
    """An archive cut short raises CorruptArchiveError and changes nothing: the database is not
    created, an existing one is unchanged (the cut lies after the dump, so this needs the
    commit to wait for the manifest), and no storage object appears in a folder or bucket."""
    path = tmp_path / "cut.tar.gz"
    shutil.copyfile(big_dump_archives[dump_format], path)
    truncate_file(path, fraction)
    storage: mb.DirectoryStorage | mb.S3Storage
    if targets == "new-db+directory":
        target = new_database_name(databases)
        storage = mb.DirectoryStorage(path=tmp_path / "files")
    else:
        target = databases.create()
        before = pg.pg_dump_text(target, restrict_key=RESTRICT_KEY)
        storage = s3.storage(new_bucket(s3))

    with pytest.raises(mb.CorruptArchiveError, match="truncated") as caught:
        await mb.restore(
            mb.FileArchive(path=path),
            database=pg.config(target),
            storage=storage,
            options=mb.RestoreOptions(create_database=targets == "new-db+directory"),
        )

    # The damage was found in the storage section, after the whole dump had been fed.
    assert caught.value.member is not None
    assert "/storage/zz-big/" in caught.value.member
    if isinstance(storage, mb.DirectoryStorage):
        assert not database_exists(pg, target)
        assert tree(storage.path) == {}
    else:
        assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == before
        assert bucket_objects(s3, storage.bucket) == {}


async def test_changed_storage_object_is_caught_by_the_manifest(
    sample: Sample, pg: PostgresServer, s3: TemporarySeaweedS3, databases: Databases, tmp_path: Path
) -> None:
    """A storage object's bytes changed (gzip CRC rebuilt): the manifest check fails after
    the object was already read. Nothing is committed or published, and the S3 objects
    the restore had put are deleted again."""
    path = copy_archive(sample, mb.DumpFormat.CUSTOM, tmp_path)
    key = max(sample.files, key=lambda k: len(sample.files[k]))
    damaged = next(name for name in member_names(path) if name.endswith("/storage/" + key))
    flip_member_byte(path, damaged, index=7)

    target = new_database_name(databases)
    with pytest.raises(mb.ChecksumError, match="manifest") as caught:
        await restore_into_new(pg, path, target, tmp_path / "files")
    assert caught.value.member == damaged
    # The member is named once, in front, not again inside the message.
    assert str(caught.value).count(damaged) == 1
    assert (
        str(caught.value)
        == f"{damaged}: does not match the manifest: SHA-256 differs from the manifest"
    )
    assert not database_exists(pg, target)
    assert tree(tmp_path / "files") == {}
    assert partial_files(tmp_path / "files") == []

    bucket = new_bucket(s3)
    with pytest.raises(mb.ChecksumError):
        await mb.restore(
            mb.FileArchive(path=path),
            storage=s3.storage(bucket),
        )
    assert bucket_objects(s3, bucket) == {}


@pytest.mark.parametrize("existing", [True, False], ids=["existing-dir", "new-dir"])
async def test_failed_restore_leaves_the_directory_exactly_as_it_was(
    existing: bool, sample: Sample, tmp_path: Path
) -> None:
    """A storage member damaged (valid gzip around it): the restore fails at the manifest
    check, and the directory is as before, folders included: none of the objects' folders
    was created, no staging folder is left, and a directory the restore made is gone."""
    path = copy_archive(sample, mb.DumpFormat.CUSTOM, tmp_path)
    key = max(sample.files, key=lambda k: len(sample.files[k]))
    damaged = next(name for name in member_names(path) if name.endswith("/storage/" + key))
    flip_member_byte(path, damaged, index=7)
    root = tmp_path / "files"
    if existing:
        (root / "data" / "kept").mkdir(parents=True, mode=0o755)
        (root / "data" / "kept" / "note.txt").write_bytes(b"was here")
        (root / "empty").mkdir(mode=0o700)
    before = snapshot(root)

    with pytest.raises(mb.ChecksumError):
        await mb.restore(mb.FileArchive(path=path), storage=mb.DirectoryStorage(path=root))

    assert snapshot(root) == before
    assert root.exists() == existing


def summary_json(parts: list[bytes], *, sha256: str | None = None) -> bytes:
    summary = stages.DumpSummary(
        total_bytes=sum(map(len, parts)),
        part_count=len(parts),
        part_size=PART_SIZE,
        sha256=sha256 or hashlib.sha256(b"".join(parts)).hexdigest(),
        dump_format=mb.DumpFormat.PLAIN,
        pg_dump_version="pg_dump (PostgreSQL) 15.18",
        server_version="15.18",
    )
    return summary.model_dump_json(indent=2).encode() + b"\n"


SQL = b"CREATE TABLE planted (id int);\n"
FULL_PART = (SQL + b"-- padding\n" * (PART_SIZE // 11))[: PART_SIZE - 1] + b"\n"
assert len(FULL_PART) == PART_SIZE
PLAIN_HEADER = regular(f"{TOP}/header.json", header_json(TOP, dump_format=mb.DumpFormat.PLAIN))
MALFORMED_DUMPS = {
    "part-out-of-order": ([regular(f"{TOP}/dump/part-000002", SQL)], "out of order"),
    "short-part-not-last": (
        [regular(f"{TOP}/dump/part-000001", SQL), regular(f"{TOP}/dump/part-000002", SQL)],
        "except the last",
    ),
    "oversized-part": (
        [regular(f"{TOP}/dump/part-000001", FULL_PART + b"\n")],
        "except the last",
    ),
    "no-summary": (
        [regular(f"{TOP}/dump/part-000001", SQL), regular(f"{TOP}/storage/x", b"x")],
        "expected a dump part",
    ),
    "summary-sha256-differs": (
        [
            regular(f"{TOP}/dump/part-000001", FULL_PART),
            regular(f"{TOP}/dump/part-000002", SQL),
            regular(f"{TOP}/dump/summary.json", summary_json([FULL_PART, SQL], sha256="0" * 64)),
        ],
        "SHA-256 of the dump stream",
    ),
    "summary-counts-differ": (
        [
            regular(f"{TOP}/dump/part-000001", SQL),
            regular(f"{TOP}/dump/summary.json", summary_json([SQL, SQL])),
        ],
        "the summary says 2 parts",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED_DUMPS))
async def test_malformed_dump_section(
    case: str, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    """Dump parts out of order, of the wrong size, without (or with a disagreeing) summary:
    CorruptArchiveError (ChecksumError for the summary), and the SQL the parts hold (psql has
    already run the first of two parts) is rolled back: the database is as before."""
    members, message = MALFORMED_DUMPS[case]
    archive = tmp_path / "malformed.tar"
    archive.write_bytes(build_tar([PLAIN_HEADER, *members]))
    target = databases.create()
    before = pg.pg_dump_text(target, restrict_key=RESTRICT_KEY)
    with pytest.raises(mb.CorruptArchiveError, match=message):
        await mb.restore(mb.FileArchive(path=archive), database=pg.config(target))
    assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == before
    assert b"planted" not in before


async def test_member_after_the_manifest(
    sample: Sample, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    """A member appended after the manifest of a good archive: CorruptArchiveError naming it,
    found at the very end, and still nothing committed."""
    original = decompress(sample.archives[mb.DumpFormat.CUSTOM].read_bytes())
    top = sample.manifests[mb.DumpFormat.CUSTOM].top_folder
    with tarfile.open(fileobj=io.BytesIO(original), mode="r:") as tar:
        members = [
            (info, tar.extractfile(info).read())  # type: ignore[union-attr]
            for info in tar.getmembers()
        ]
    extra = regular(f"{top}/storage/late", b"after the manifest")
    archive = tmp_path / "extra.tar"
    archive.write_bytes(build_tar([*members, extra]))
    target = new_database_name(databases)
    with pytest.raises(mb.CorruptArchiveError, match="after the manifest") as caught:
        await restore_into_new(pg, archive, target, tmp_path / "files")
    assert caught.value.member == extra[0].name
    assert not database_exists(pg, target)
    assert tree(tmp_path / "files") == {}


async def test_target_checks(
    sample: Sample, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    """A missing database without ``create_database`` is a DatabaseConnectionError; a
    database target for an archive without a dump is a PgRestoreError. Neither is created."""
    missing = new_database_name(databases)
    with pytest.raises(mb.DatabaseConnectionError, match="does not exist"):
        await mb.restore(
            mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM]),
            database=pg.config(missing),
        )
    archive = tmp_path / "storage-only.tar"
    archive.write_bytes(build_tar([regular(f"{TOP}/header.json", header_json(TOP))]))
    with pytest.raises(mb.PgRestoreError, match="no database dump"):
        await restore_into_new(pg, archive, missing)
    assert not database_exists(pg, missing)


# --- 4. hostile and foreign archives --------------------------------------------------

HOSTILE = {
    "dot-dot": regular("../x", b"escape"),
    "dot-dot-inside": regular(f"{TOP}/storage/../../x", b"escape"),
    "absolute": regular("/etc/x", b"escape"),
    "empty-component": regular(f"{TOP}/storage/a//x", b"escape"),
    "symlink": special(f"{TOP}/storage/link", tarfile.SYMTYPE, "/etc/passwd"),
    "hardlink": special(f"{TOP}/storage/hard", tarfile.LNKTYPE, f"{TOP}/header.json"),
    "directory": special(f"{TOP}/storage/folder", tarfile.DIRTYPE),
    "fifo": special(f"{TOP}/storage/fifo", tarfile.FIFOTYPE),
    "outside-top": regular("monetr-backup-20990101T000000Z/storage/x", b"elsewhere"),
}


@pytest.mark.parametrize("hostile", list(HOSTILE), ids=list(HOSTILE))
async def test_hostile_member_in_storage_section(
    hostile: str, s3: TemporarySeaweedS3, tmp_path: Path
) -> None:
    """A hostile member after a valid header and a valid object is refused with
    UnsafeMemberError, and nothing is left in the target folder (or, for a few kinds, in
    the bucket the valid object had already been put into)."""
    archive = tmp_path / "hostile.tar"
    archive.write_bytes(
        build_tar(
            [
                regular(f"{TOP}/header.json", header_json(TOP)),
                regular(f"{TOP}/storage/ok.txt", b"fine"),
                HOSTILE[hostile],
                regular(f"{TOP}/storage/after.txt", b"never reached"),
            ]
        )
    )
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(mb.UnsafeMemberError) as caught:
        await mb.restore(mb.FileArchive(path=archive), storage=mb.DirectoryStorage(path=target))
    assert caught.value.member == HOSTILE[hostile][0].name
    assert list(target.iterdir()) == []

    if hostile not in {"dot-dot", "symlink", "outside-top"}:
        return  # each S3 client costs ~1 s to start: a few kinds are enough here
    bucket = new_bucket(s3)
    with pytest.raises(mb.UnsafeMemberError):
        await mb.restore(mb.FileArchive(path=archive), storage=s3.storage(bucket))
    assert bucket_objects(s3, bucket) == {}


@pytest.mark.parametrize("hostile", ["dot-dot", "symlink", "hardlink", "outside-top"])
async def test_hostile_member_in_dump_section(
    hostile: str, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    """A hostile member where the dump parts should be: refused before pg_restore gets a
    byte, and the database the restore created is dropped again."""
    archive = tmp_path / "hostile.tar"
    archive.write_bytes(
        build_tar(
            [
                regular(f"{TOP}/header.json", header_json(TOP, dump_format=mb.DumpFormat.PLAIN)),
                HOSTILE[hostile],
            ]
        )
    )
    target = new_database_name(databases)
    with pytest.raises(mb.UnsafeMemberError):
        await restore_into_new(pg, archive, target)
    assert not database_exists(pg, target)


FOREIGN = {
    "tar-without-header": build_tar([regular("notes/readme.txt", b"hello")]),
    "header-not-first": build_tar(
        [regular(f"{TOP}/storage/x", b"x"), regular(f"{TOP}/header.json", header_json(TOP))]
    ),
    "random-bytes": os.urandom(64 * 1024),
    "random-gzip-magic": b"\x1f\x8b" + os.urandom(4096),
    "random-zstd-magic": b"\x28\xb5\x2f\xfd" + os.urandom(4096),
    "empty-file": b"",
    "header-only": build_tar([regular(f"{TOP}/header.json", header_json(TOP))]),
    "bad-header-json": build_tar([regular(f"{TOP}/header.json", b'{"format_version": 1}')]),
    "future-format": build_tar(
        [
            regular(
                f"{TOP}/header.json",
                header_json(TOP).replace(b'"format_version": 1', b'"format_version": 2'),
            )
        ]
    ),
}


@pytest.mark.parametrize("foreign", list(FOREIGN), ids=list(FOREIGN))
async def test_foreign_archive(foreign: str, tmp_path: Path) -> None:
    """Anything that is not a complete archive of ours raises CorruptArchiveError and writes
    nothing."""
    archive = tmp_path / "foreign.bin"
    archive.write_bytes(FOREIGN[foreign])
    target = tmp_path / "target"
    with pytest.raises(mb.CorruptArchiveError):
        await mb.restore(mb.FileArchive(path=archive), storage=mb.DirectoryStorage(path=target))
    assert not target.exists() or list(target.iterdir()) == []


async def test_missing_archive(s3: TemporarySeaweedS3, tmp_path: Path) -> None:
    """No file, no object: ArchiveReadError naming where it looked."""
    with pytest.raises(mb.ArchiveReadError, match="no archive"):
        await mb.restore(mb.FileArchive(path=tmp_path / "nope.tar.gz"))
    bucket = new_bucket(s3)
    with pytest.raises(mb.ArchiveReadError, match="no archive"):
        await mb.restore(mb.S3Archive(s3=s3.config(), bucket=bucket, key="nope.tar.gz"))


# --- 5. overwrite policies ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["directory", "s3"])
@pytest.mark.parametrize("policy", list(mb.Overwrite))
async def test_overwrite_policy(
    policy: mb.Overwrite, kind: str, sample: Sample, s3: TemporarySeaweedS3, tmp_path: Path
) -> None:
    """Keys already at the target: ``never`` lists them as conflicts and leaves them,
    ``skip`` lists them as skipped and leaves them, ``always`` replaces them. The other
    keys are restored either way."""
    keys = sorted(sample.files)
    existing = {key: b"already here: " + key.encode() for key in keys[::3]}
    fresh = sorted(set(keys) - set(existing))
    archive = mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM])
    storage: mb.DirectoryStorage | mb.S3Storage
    if kind == "directory":
        root = tmp_path / "target"
        write_files(root, existing, mode=0o644)
        storage = mb.DirectoryStorage(path=root)
    else:
        bucket = new_bucket(s3)
        put_objects(s3, bucket, existing)
        storage = s3.storage(bucket)

    result = await mb.restore(archive, storage=storage, options=mb.RestoreOptions(overwrite=policy))

    if policy is mb.Overwrite.ALWAYS:
        assert sorted(result.objects_restored) == keys
        assert result.conflicts == result.objects_skipped == []
        expected = sample.files
    else:
        assert sorted(result.objects_restored) == fresh
        listed = result.conflicts if policy is mb.Overwrite.NEVER else result.objects_skipped
        other = result.objects_skipped if policy is mb.Overwrite.NEVER else result.conflicts
        assert sorted(listed) == sorted(existing)
        assert other == []
        expected = {**sample.files, **existing}
    if isinstance(storage, mb.DirectoryStorage):
        assert tree(storage.path) == expected
        file_modes = {key: mode for key, mode in modes(storage.path).items() if key in sample.files}
        untouched = set(existing) if policy is not mb.Overwrite.ALWAYS else set()
        assert file_modes == {key: 0o644 if key in untouched else 0o600 for key in keys}
        folders = [p for p in storage.path.rglob("*") if p.is_dir()]
        assert folders
        assert {oct(p.stat().st_mode & 0o777) for p in folders} == {"0o700"}
        assert partial_files(storage.path) == []
    else:
        assert bucket_objects(s3, storage.bucket) == expected


@pytest.mark.parametrize("kind", ["directory", "s3"])
async def test_failed_restore_with_always_keeps_what_was_there(
    kind: str, sample: Sample, s3: TemporarySeaweedS3, tmp_path: Path
) -> None:
    """``always`` and a restore that then fails the manifest check: the objects that were
    at the target before are all still there with their old content, and nothing the
    restore wrote (new keys, staging copies) is left."""
    path = copy_archive(sample, mb.DumpFormat.CUSTOM, tmp_path)
    keys = sorted(sample.files)
    existing = {key: b"already here: " + key.encode() for key in keys[::2]}
    damaged_key = max(sample.files, key=lambda k: len(sample.files[k]))
    damaged = next(name for name in member_names(path) if name.endswith("/storage/" + damaged_key))
    flip_member_byte(path, damaged, index=3)
    storage: mb.DirectoryStorage | mb.S3Storage
    if kind == "directory":
        root = tmp_path / "target"
        write_files(root, existing, mode=0o644)
        storage = mb.DirectoryStorage(path=root)
    else:
        bucket = new_bucket(s3)
        put_objects(s3, bucket, existing)
        storage = s3.storage(bucket)

    with pytest.raises(mb.ChecksumError):
        await mb.restore(
            mb.FileArchive(path=path),
            storage=storage,
            options=mb.RestoreOptions(overwrite=mb.Overwrite.ALWAYS),
        )

    if isinstance(storage, mb.DirectoryStorage):
        assert tree(storage.path) == existing
        assert partial_files(storage.path) == []
    else:
        assert bucket_objects(s3, storage.bucket) == existing


@pytest.mark.parametrize("policy", list(mb.Overwrite))
async def test_directory_target_follows_no_symlink(
    policy: mb.Overwrite, sample: Sample, tmp_path: Path
) -> None:
    """A folder of the target that is a symlink is not followed: the restore fails with
    UnsafeMemberError and nothing is written through the link."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "target"
    root.mkdir()
    (root / "data").symlink_to(outside, target_is_directory=True)
    with pytest.raises(mb.UnsafeMemberError, match="not a folder"):
        await mb.restore(
            mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM]),
            storage=mb.DirectoryStorage(path=root),
            options=mb.RestoreOptions(overwrite=policy),
        )
    assert list(outside.iterdir()) == []
    assert partial_files(root) == []


# --- 6. a download cut off mid-body ---------------------------------------------------


@pytest.fixture(scope="module")
def big_archive(
    s3: TemporarySeaweedS3, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, bytes]]:
    """A ~3 MB storage-only archive of incompressible files in its own bucket."""
    root = tmp_path_factory.mktemp("big-archive")
    files = {f"blobs/{i:02d}.bin": os.urandom(1024 * 1024 + 17 * i) for i in range(3)}
    write_files(root, files)
    bucket = new_bucket(s3)
    anyio.run(
        functools.partial(
            mb.backup,
            mb.S3Archive(s3=s3.config(), bucket=bucket, key="big.tar.gz"),
            storage=mb.DirectoryStorage(path=root),
            options=mb.BackupOptions(codec=mb.Codec.GZIP),
        )
    )
    return bucket, files


CUT_AFTER = 200 * 1024


async def test_download_resumes_after_a_cut_connection(
    big_archive: tuple[str, dict[str, bytes]], s3: TemporarySeaweedS3, tmp_path: Path
) -> None:
    """The proxy cuts the first GET after 200 KiB of its response; the reader resumes
    with a ranged If-Match GET from the byte it got to, and the restore is complete."""
    bucket, files = big_archive
    async with cutting_proxy(s3.ports["s3"], CUT_AFTER) as proxy:
        result = await mb.restore(
            mb.S3Archive(
                s3=s3.config(endpoint_url=proxy.endpoint_url), bucket=bucket, key="big.tar.gz"
            ),
            storage=mb.DirectoryStorage(path=tmp_path / "files"),
        )
    assert proxy.cuts == 1
    gets = [head for head in proxy.requests if head.startswith(b"GET ")]
    assert len(gets) == 2
    ranged = proxy.ranged_gets()
    assert ranged == [gets[1]]
    resumed_at = int(ranged[0].lower().split(b"range: bytes=")[1].split(b"-")[0])
    assert 0 < resumed_at < CUT_AFTER
    assert b"\r\nif-match: " in ranged[0].lower()
    assert sorted(result.objects_restored) == sorted(files)
    assert tree(tmp_path / "files") == files


async def test_download_of_an_object_replaced_meanwhile_fails(
    big_archive: tuple[str, dict[str, bytes]], s3: TemporarySeaweedS3, tmp_path: Path
) -> None:
    """The object is replaced between the cut and the resumed GET: the If-Match request
    is refused, so bytes of two versions are never spliced (SourceError, nothing restored)."""
    bucket, _ = big_archive
    key = "replaced.tar.gz"
    client = s3.client()
    client.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": "big.tar.gz"})

    def replace() -> None:
        client.put_object(Bucket=bucket, Key=key, Body=b"another version")

    async with cutting_proxy(s3.ports["s3"], CUT_AFTER, on_cut=replace) as proxy:
        with pytest.raises(mb.ArchiveReadError, match="changed while it was downloaded"):
            await mb.restore(
                mb.S3Archive(s3=s3.config(endpoint_url=proxy.endpoint_url), bucket=bucket, key=key),
                storage=mb.DirectoryStorage(path=tmp_path / "files"),
            )
    assert proxy.cuts == 1
    assert len(proxy.ranged_gets()) == 1
    assert tree(tmp_path / "files") == {}


async def test_download_cut_without_resumes_fails(
    big_archive: tuple[str, dict[str, bytes]], s3: TemporarySeaweedS3, tmp_path: Path
) -> None:
    """With ``max_resumes=0`` the cut is an error (SourceError) and nothing is restored."""
    bucket, _ = big_archive
    async with cutting_proxy(s3.ports["s3"], CUT_AFTER) as proxy:
        with pytest.raises(mb.ArchiveReadError, match=r"big\.tar\.gz"):
            await mb.restore(
                mb.S3Archive(
                    s3=s3.config(endpoint_url=proxy.endpoint_url),
                    bucket=bucket,
                    key="big.tar.gz",
                    max_resumes=0,
                ),
                storage=mb.DirectoryStorage(path=tmp_path / "files"),
            )
    assert proxy.cuts == 1
    assert proxy.ranged_gets() == []
    assert tree(tmp_path / "files") == {}


# --- 8. dry run -----------------------------------------------------------------------


async def test_dry_run_writes_nothing_but_reports_conflicts(
    sample: Sample, pg: PostgresServer, s3: TemporarySeaweedS3, databases: Databases, tmp_path: Path
) -> None:
    """``dry_run`` reads and checks everything and the targets (conflicts are reported)
    but creates no database, no file and no object."""
    archive = mb.FileArchive(path=sample.archives[mb.DumpFormat.PLAIN])
    keys = sorted(sample.files)
    existing = {keys[0]: b"mine", keys[-1]: b"also mine"}
    root = tmp_path / "target"
    write_files(root, existing)
    target_db = new_database_name(databases)

    result = await mb.restore(
        archive,
        database=pg.config(target_db),
        storage=mb.DirectoryStorage(path=root),
        options=mb.RestoreOptions(dry_run=True, create_database=True),
    )
    assert result.dry_run
    assert not result.database_restored
    assert not result.database_created
    assert result.dump_bytes == 0
    assert sorted(result.conflicts) == sorted(existing)
    assert result.objects_restored == []
    assert not database_exists(pg, target_db)
    assert tree(root) == existing

    bucket = new_bucket(s3)
    put_objects(s3, bucket, existing)
    result = await mb.restore(
        archive,
        storage=s3.storage(bucket),
        options=mb.RestoreOptions(dry_run=True, overwrite=mb.Overwrite.SKIP),
    )
    assert sorted(result.objects_skipped) == sorted(existing)
    assert result.conflicts == result.objects_restored == []
    assert bucket_objects(s3, bucket) == existing

    # Dry runs check the database target too: one with tables is still refused.
    busy = databases.create(template=sample.database)
    with pytest.raises(mb.TargetNotEmptyError):
        await mb.restore(archive, database=pg.config(busy), options=mb.RestoreOptions(dry_run=True))


# --- 9. cancellation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dump_format", "phase"),
    [
        (mb.DumpFormat.CUSTOM, "restoring database"),
        (mb.DumpFormat.PLAIN, "restoring database"),
        (mb.DumpFormat.CUSTOM, "restoring storage"),
    ],
)
async def test_cancelled_restore_leaves_nothing(
    *,
    dump_format: mb.DumpFormat,
    phase: str,
    sample: Sample,
    pg: PostgresServer,
    databases: Databases,
    tmp_path: Path,
) -> None:
    """Cancelled midway (once dump bytes flow, or once a few storage files are staged and
    pg_restore waits for the dump's last chunk): the database the restore created is
    dropped, an existing one is unchanged, no pg_restore/psql child is left, and no file
    (temporary or not) is in the storage folder."""
    archive = mb.FileArchive(path=sample.archives[dump_format])
    children = child_processes()
    existing = databases.create()
    before = pg.pg_dump_text(existing, restrict_key=RESTRICT_KEY)

    def midway(progress: mb.Progress) -> bool:
        if phase == "restoring database":
            return progress.dump_bytes > PART_SIZE
        return progress.phase == phase and progress.objects_done >= 3

    for target, create in [(new_database_name(databases), True), (existing, False)]:
        seen: list[mb.Progress] = []
        with anyio.CancelScope() as scope:

            def on_progress(
                progress: mb.Progress,
                scope: anyio.CancelScope = scope,
                seen: list[mb.Progress] = seen,
            ) -> None:
                seen.append(progress)
                if midway(progress):
                    scope.cancel()

            await mb.restore(
                archive,
                database=pg.config(target),
                storage=mb.DirectoryStorage(path=tmp_path / "files"),
                options=mb.RestoreOptions(create_database=create, progress_interval=0),
                progress=on_progress,
            )
        assert scope.cancelled_caught
        assert seen[-1].phase == phase
        if phase == "restoring database":
            assert PART_SIZE < seen[-1].dump_bytes < sample.manifests[dump_format].dump_bytes
        else:
            assert seen[-1].dump_bytes == sample.manifests[dump_format].dump_bytes
            assert 3 <= seen[-1].objects_done < len(sample.files)
        if create:
            assert not database_exists(pg, target)
        else:
            assert pg.pg_dump_text(existing, restrict_key=RESTRICT_KEY) == before
        assert child_processes() == children
        assert tree(tmp_path / "files") == {}
