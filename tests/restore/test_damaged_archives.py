"""A damaged archive (a flipped byte, a cut, an extra member) -> an error, every target as it was.

For every failure the target database's ``pg_dump`` (or its absence), the storage folder
and the bucket are compared before and after.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import tarfile
from pathlib import Path

import anyio
import pytest

import monetr_backup as mb
from monetr_backup.testing import PostgresServer, TemporarySeaweedS3

from support.archives import (
    build_tar,
    decompress,
    flip_member_byte,
    last_dump_part,
    member_names,
    regular,
    truncate_file,
)
from support.databases import Databases, database_exists, new_database_name
from support.processes import child_processes
from support.samples import PART_SIZE, RESTRICT_KEY, Sample, copy_archive, restore_into_new
from support.targets import bucket_objects, new_bucket, partial_files, snapshot, tree, write_files

pytestmark = pytest.mark.anyio


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
                options=mb.BackupOptions(
                    dump_format=dump_format,
                    dump_part_size=PART_SIZE,
                    storage_mode=mb.StorageMode.ALL,
                ),
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
