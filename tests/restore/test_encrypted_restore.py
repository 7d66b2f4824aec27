"""An encrypted archive (ours, or one the stock ``age`` CLI made) -> a restore with its
identity; without it, with a wrong one or damaged, every target exactly as it was."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from pydantic import SecretStr

import monetr_backup as mb
from monetr_backup.testing import PostgresServer

from support.age import AgeKey, age_encrypt, age_keygen, age_threads, encrypted_sample_backup
from support.databases import Databases, database_exists, new_database_name
from support.processes import child_processes
from support.samples import RESTRICT_KEY, Sample
from support.secrets import assert_no_secret_in_error
from support.targets import snapshot, tree

pytestmark = pytest.mark.anyio


async def restore_new(
    pg: PostgresServer, path: Path, database: str, files: Path, key: AgeKey
) -> mb.RestoreResult:
    return await mb.restore(
        mb.FileArchive(path=path),
        database=pg.config(database),
        storage=mb.DirectoryStorage(path=files),
        options=mb.RestoreOptions(create_database=True, identities=(key.identity,)),
    )


async def test_encrypted_backup_restores(
    sample: Sample, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    """Ours, encrypted: the restored database's pg_dump is the source's, every file is
    back byte for byte."""
    key = age_keygen(tmp_path / "key.txt")
    path = tmp_path / "a.tar.gz.age"
    manifest = await encrypted_sample_backup(pg, sample, path, [key.recipient])
    target = new_database_name(databases)
    result = await restore_new(pg, path, target, tmp_path / "files", key)
    assert result.manifest == manifest
    assert result.database_restored
    assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == sample.dump
    assert tree(tmp_path / "files") == sample.files
    assert age_threads() == []


async def test_archive_encrypted_by_the_age_cli_restores(
    sample: Sample, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    """A plain archive of ours that an operator encrypted with ``age -r`` afterwards is
    told by its first line and restored like any other."""
    key = age_keygen(tmp_path / "key.txt")
    path = tmp_path / "sample.tar.gz.age"
    age_encrypt(sample.archives[mb.DumpFormat.PLAIN], [key.recipient], path)
    target = new_database_name(databases)
    result = await restore_new(pg, path, target, tmp_path / "files", key)
    assert result.manifest == sample.manifests[mb.DumpFormat.PLAIN]
    assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == sample.dump
    assert tree(tmp_path / "files") == sample.files


@pytest.mark.reliability(
    "hostile input",
    "restore of an encrypted archive with no identity, another recipient's, or a flipped "
    "byte mid-stream; into a new database, a seeded one (clean=True) and a folder",
    "DecryptionError (CorruptArchiveError when damaged); new database not created, seeded "
    "one unchanged, folder as it was, no child process, no key in the error",
)
@pytest.mark.parametrize("case", ["no identity", "wrong identity", "flipped byte"])
async def test_refused_restore_touches_no_target(
    case: str, sample: Sample, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    key = age_keygen(tmp_path / "key.txt")
    other = age_keygen(tmp_path / "other.txt")
    path = tmp_path / "a.tar.gz.age"
    await encrypted_sample_backup(pg, sample, path, [key.recipient])
    identities: tuple[SecretStr, ...] = ()
    expected: type[mb.BackupError] = mb.DecryptionError
    if case == "wrong identity":
        identities = (other.identity,)
    elif case == "flipped byte":
        identities = (key.identity,)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x04
        path.write_bytes(bytes(data))
        expected = mb.CorruptArchiveError
    seeded = databases.create(seed=True)
    seeded_before = pg.pg_dump_text(seeded, restrict_key=RESTRICT_KEY)
    files = tmp_path / "files"
    files.mkdir()
    (files / "kept.txt").write_bytes(b"was here")
    folder_before = snapshot(files)
    children = child_processes()
    for target, create in [(new_database_name(databases), True), (seeded, False)]:
        with pytest.raises(expected) as caught:
            await mb.restore(
                mb.FileArchive(path=path),
                database=pg.config(target),
                storage=mb.DirectoryStorage(path=files),
                options=mb.RestoreOptions(
                    create_database=create, clean=True, identities=identities
                ),
            )
        assert_no_secret_in_error(caught.value, [other.secret.splitlines()[-1], key.secret])
        if create:
            assert not database_exists(pg, target)
        assert pg.pg_dump_text(seeded, restrict_key=RESTRICT_KEY) == seeded_before
        assert snapshot(files) == folder_before
        assert child_processes() == children
    if expected is mb.DecryptionError:
        # Refused before any target is opened: a database that does not exist (and is not
        # to be created) would otherwise fail the restore with DatabaseConnectionError.
        with pytest.raises(mb.DecryptionError):
            await mb.restore(
                mb.FileArchive(path=path),
                database=pg.config(new_database_name(databases)),
                options=mb.RestoreOptions(identities=identities),
            )
    assert age_threads() == []


@pytest.mark.reliability(
    "cancellation",
    "restore of an encrypted archive cancelled while the dump flows",
    "cancelled; created database dropped, no file, no child process, age thread ended",
)
async def test_cancelled_encrypted_restore_leaves_nothing(
    sample: Sample, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    key = age_keygen(tmp_path / "key.txt")
    path = tmp_path / "a.tar.gz.age"
    await encrypted_sample_backup(pg, sample, path, [key.recipient])
    target = new_database_name(databases)
    children = child_processes()
    with anyio.CancelScope() as scope:

        def on_progress(progress: mb.Progress) -> None:
            if progress.dump_bytes > 0:
                scope.cancel()

        await mb.restore(
            mb.FileArchive(path=path),
            database=pg.config(target),
            storage=mb.DirectoryStorage(path=tmp_path / "files"),
            options=mb.RestoreOptions(
                create_database=True, identities=(key.identity,), progress_interval=0
            ),
            progress=on_progress,
        )
    assert scope.cancelled_caught
    assert not database_exists(pg, target)
    assert tree(tmp_path / "files") == {}
    assert child_processes() == children
    assert age_threads() == []


def test_identities_are_never_printed(tmp_path: Path) -> None:
    """RestoreOptions hold identities as SecretStr: repr, str and the JSON dump show
    asterisks, never the key."""
    key = age_keygen(tmp_path / "key.txt")
    secret_line = key.secret.splitlines()[-1]
    options = mb.RestoreOptions(identities=(key.secret,))
    for text in (repr(options), str(options), options.model_dump_json()):
        assert secret_line not in text
        assert secret_line[16:40] not in text
    assert options.identities[0].get_secret_value() == key.secret
