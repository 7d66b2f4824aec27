"""The files beside the database (monetr's private key, its config files) -> archive -> back.

A backup reads them whole before anything is written; a restore stages each beside the
path the caller names and renames it into place only once the whole archive checked out.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

import anyio
import pytest

import monetr_backup as mb
from monetr_backup.testing import PostgresServer

from support.archives import check_archive_file, flip_member_byte, gnu_tar_list
from support.databases import Databases, database_exists, new_database_name
from support.samples import Sample
from support.targets import snapshot

pytestmark = pytest.mark.anyio


def pem_key() -> bytes:
    """Bytes shaped like monetr's ed25519 key file (the library never parses them)."""
    body = base64.encodebytes(secrets.token_bytes(48)).decode()
    return f"-----BEGIN PRIVATE KEY-----\n{body}-----END PRIVATE KEY-----\n".encode()


class Host:
    """A monetr host's /etc/monetr: a key, two config files, a storage folder."""

    def __init__(self, root: Path, pg: PostgresServer, sample: Sample) -> None:
        self.etc = root / "etc-monetr"
        self.etc.mkdir()
        self.key = self.etc / "ed25519.key"
        self.key.write_bytes(pem_key())
        self.key.chmod(0o600)
        self.config = self.etc / "config.yaml"
        self.config.write_text(
            f"postgreSql:\n  address: {pg.host}\n  port: {pg.port}\n  username: {pg.user}\n"
            f"  database: {sample.database}\n"
            f"security:\n  privateKey: {self.key}\n"
            "keyManagement:\n  provider: aws\n",
            encoding="utf-8",
        )
        self.override = self.etc / "override.yaml"
        self.override.write_text("server:\n  externalUrl: https://monetr.example\n", "utf-8")

    def instance(self, pg: PostgresServer) -> mb.MonetrInstance:
        """The instance monetr runs with ``-c config.yaml -c override.yaml``."""
        return mb.MonetrInstance.from_config(
            [self.config, self.override], env={"MONETR_PG_PASSWORD": pg.password}
        )


@pytest.fixture
def host(tmp_path: Path, pg: PostgresServer, sample: Sample) -> Host:
    """A monetr host's files pointing at the session's PostgreSQL."""
    return Host(tmp_path, pg, sample)


def hidden_leftovers(folder: Path) -> list[str]:
    """Staged files a restore could have left behind."""
    return sorted(path.name for path in folder.iterdir() if ".monetr-restore." in path.name)


async def test_private_key_round_trip_from_monetrs_config(
    host: Host, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    """MonetrInstance.instance_files -> backup: the key and both config files are members
    (GNU tar lists them, tarfile reads them byte for byte), the header says where they came
    from and the manifest that the archive holds live secrets. A restore onto a new host's
    folder writes each, mode 0600, byte for byte."""
    instance = host.instance(pg)
    assert instance.instance_files == mb.InstanceFiles(
        private_key=host.key, config_files=(host.config, host.override)
    )
    path = tmp_path / "monetr.tar.gz"
    manifest = await mb.backup(
        mb.FileArchive(path=path),
        database=instance.database,
        instance_files=instance.instance_files,
        options=mb.BackupOptions(kms_provider=instance.kms_provider),
    )
    assert manifest.live_secrets is not None
    assert "private key" in manifest.live_secrets
    assert "config files" in manifest.live_secrets

    extracted = check_archive_file(path, mb.Codec.GZIP, tmp_path / "extracted")
    assert extracted.instance == {
        "instance/private-key": host.key.read_bytes(),
        "instance/config-1": host.config.read_bytes(),
        "instance/config-2": host.override.read_bytes(),
    }
    listed = [name.split("/", 1)[1] for name, _ in gnu_tar_list(path, mb.Codec.GZIP)]
    assert listed[:4] == [
        "header.json",
        "instance/private-key",
        "instance/config-1",
        "instance/config-2",
    ]
    info = await mb.inspect(mb.FileArchive(path=path))
    assert [(entry.kind, entry.source) for entry in info.header.instance_files] == [
        (mb.stages.InstanceFileKind.PRIVATE_KEY, str(host.key)),
        (mb.stages.InstanceFileKind.CONFIG, str(host.config)),
        (mb.stages.InstanceFileKind.CONFIG, str(host.override)),
    ]

    new_host = tmp_path / "new-host"
    new_host.mkdir()
    wanted = mb.InstanceFiles(
        private_key=new_host / "ed25519.key",
        config_files=(new_host / "config.yaml", new_host / "override.yaml"),
    )
    target = new_database_name(databases)
    result = await mb.restore(
        mb.FileArchive(path=path),
        database=pg.config(target),
        instance_files=wanted,
        options=mb.RestoreOptions(create_database=True),
    )
    assert result.database_restored
    assert result.instance_files_restored == [
        new_host / "ed25519.key",
        new_host / "config.yaml",
        new_host / "override.yaml",
    ]
    for restored, original in zip(
        result.instance_files_restored, [host.key, host.config, host.override], strict=True
    ):
        assert restored.read_bytes() == original.read_bytes()
        assert stat.S_IMODE(restored.stat().st_mode) == 0o600
    assert hidden_leftovers(new_host) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
@pytest.mark.parametrize("given", [None, (1234, 4321)], ids=["folder-owner", "given-owner"])
async def test_restored_key_is_owned_as_monetr_runs(
    given: tuple[int, int] | None, host: Host, pg: PostgresServer, tmp_path: Path
) -> None:
    """Run as root, the key goes to monetr's folder (owned by 1000:1000, as its container
    runs) owned by that user, or by the owner given, and the folder keeps its owner."""
    path = tmp_path / "key.tar"
    await mb.backup(
        mb.FileArchive(path=path),
        storage=mb.DirectoryStorage(path=host.etc),
        instance_files=mb.InstanceFiles(private_key=host.key),
        options=mb.BackupOptions(codec=mb.Codec.NONE),
    )
    folder = tmp_path / "etc"
    folder.mkdir(mode=0o700)
    os.chown(folder, 1000, 1000)
    result = await mb.restore(
        mb.FileArchive(path=path),
        instance_files=mb.InstanceFiles(private_key=folder / "ed25519.key", owner=given),
    )
    info = os.stat(result.instance_files_restored[0])
    assert (info.st_uid, info.st_gid) == (given or (1000, 1000))
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert (os.stat(folder).st_uid, os.stat(folder).st_gid) == (1000, 1000)


@pytest.mark.reliability(
    "fault",
    "the private key to back up is missing or unreadable",
    "InstanceFileError before anything is written; no archive",
)
@pytest.mark.parametrize("problem", ["missing", "folder", "too-big"])
async def test_a_key_that_cannot_be_read_fails_before_anything_is_written(
    problem: str, host: Host, tmp_path: Path
) -> None:
    """A key that is not there, a folder where it should be, or a file far too big to be a
    key: InstanceFileError naming the path, and no archive (nor a temporary one)."""
    key = tmp_path / "ed25519.key"
    if problem == "folder":
        key.mkdir()
    elif problem == "too-big":
        key.write_bytes(b"k" * (1024 * 1024 + 1))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(mb.InstanceFileError) as caught:
        await mb.backup(
            mb.FileArchive(path=out / "backup.tar.gz"),
            storage=mb.DirectoryStorage(path=host.etc),
            instance_files=mb.InstanceFiles(private_key=key),
        )
    assert caught.value.path == key
    assert str(key) in str(caught.value)
    assert list(out.iterdir()) == []


@pytest.fixture
async def key_archive(host: Host, sample: Sample, pg: PostgresServer, tmp_path: Path) -> Path:
    """The sample database and its files with the host's key and one config file."""
    path = tmp_path / "with-key.tar"
    await mb.backup(
        mb.FileArchive(path=path),
        database=pg.config(sample.database),
        storage=mb.DirectoryStorage(path=sample.storage),
        instance_files=mb.InstanceFiles(private_key=host.key, config_files=(host.config,)),
        options=mb.BackupOptions(codec=mb.Codec.NONE, storage_mode=mb.StorageMode.ALL),
    )
    return path


@pytest.mark.reliability(
    "hostile input",
    "a restore asks for instance files the archive does not hold, or onto files in the way",
    "InstanceFileError before any target is touched",
)
@pytest.mark.parametrize(
    "case", ["no-key-in-archive", "config-count", "file-in-the-way", "no-folder", "a-folder"]
)
async def test_instance_files_that_cannot_be_restored_are_refused_first(
    *,
    case: str,
    key_archive: Path,
    host: Host,
    pg: PostgresServer,
    databases: Databases,
    tmp_path: Path,
) -> None:
    """Each refusal comes before any target is touched: the database a restore would create
    does not exist, the storage folder is as it was, the file in the way unchanged."""
    archive = key_archive
    folder = tmp_path / "new-host"
    folder.mkdir()
    wanted = mb.InstanceFiles(private_key=folder / "ed25519.key")
    if case == "no-key-in-archive":
        archive = tmp_path / "no-key.tar"
        await mb.backup(
            mb.FileArchive(path=archive),
            storage=mb.DirectoryStorage(path=host.etc),
            instance_files=mb.InstanceFiles(config_files=(host.config,)),
            options=mb.BackupOptions(codec=mb.Codec.NONE),
        )
    elif case == "config-count":
        wanted = mb.InstanceFiles(config_files=(folder / "a.yaml", folder / "b.yaml"))
    elif case == "file-in-the-way":
        (folder / "ed25519.key").write_bytes(b"the key monetr runs with now")
    elif case == "no-folder":
        wanted = mb.InstanceFiles(private_key=folder / "missing" / "ed25519.key")
    else:
        (folder / "ed25519.key").mkdir()
    storage = tmp_path / "storage"
    storage.mkdir()
    (storage / "kept").write_bytes(b"kept")
    before = snapshot(folder), snapshot(storage)
    target = new_database_name(databases)
    with pytest.raises(mb.InstanceFileError):
        await mb.restore(
            mb.FileArchive(path=archive),
            database=pg.config(target),
            storage=mb.DirectoryStorage(path=storage),
            instance_files=wanted,
            options=mb.RestoreOptions(create_database=True),
        )
    assert (snapshot(folder), snapshot(storage)) == before
    assert not database_exists(pg, target)


async def test_a_file_in_the_way_is_replaced_when_asked(
    key_archive: Path, host: Host, tmp_path: Path
) -> None:
    """replace_instance_files replaces the file at the path, keeping mode 0600; a dry run
    checks the archive's files and writes none."""
    folder = tmp_path / "etc"
    folder.mkdir()
    key = folder / "ed25519.key"
    key.write_bytes(b"an old key")
    wanted = mb.InstanceFiles(private_key=key)
    dry = await mb.restore(
        mb.FileArchive(path=key_archive),
        instance_files=wanted,
        options=mb.RestoreOptions(dry_run=True, replace_instance_files=True),
    )
    assert dry.instance_files_restored == []
    assert key.read_bytes() == b"an old key"
    await mb.restore(
        mb.FileArchive(path=key_archive),
        instance_files=wanted,
        options=mb.RestoreOptions(replace_instance_files=True),
    )
    assert key.read_bytes() == host.key.read_bytes()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert hidden_leftovers(folder) == []


@pytest.mark.reliability(
    "hostile input",
    "a byte flipped in the private key's member, or in a storage object after it",
    "ChecksumError; no key at its path, nothing staged left",
)
@pytest.mark.parametrize("member", ["instance/private-key", "storage"])
async def test_damage_anywhere_leaves_no_key_behind(
    member: str, key_archive: Path, sample: Sample, tmp_path: Path
) -> None:
    """The key is staged as soon as it is read, before the damage further on is found: the
    restore raises and neither the key nor its staged sibling remains."""
    name = member if member != "storage" else f"storage/{sorted(sample.files)[-1]}"
    top = (await mb.inspect(mb.FileArchive(path=key_archive))).header.top_folder
    flip_member_byte(key_archive, f"{top}/{name}")
    folder = tmp_path / "etc"
    folder.mkdir()
    with pytest.raises(mb.ChecksumError):
        await mb.restore(
            mb.FileArchive(path=key_archive),
            storage=mb.DirectoryStorage(path=tmp_path / "files"),
            instance_files=mb.InstanceFiles(private_key=folder / "ed25519.key"),
        )
    assert list(folder.iterdir()) == []
    assert not (tmp_path / "files").exists()


@pytest.mark.reliability(
    "cancellation",
    "a restore with the private key cancelled in each phase after the key was staged",
    "cancelled; no key at its path, nothing staged left",
)
@pytest.mark.parametrize("phase", [mb.Phase.RESTORING_DATABASE, mb.Phase.RESTORING_STORAGE])
async def test_cancelled_restore_leaves_no_key_behind(
    phase: mb.Phase,
    key_archive: Path,
    pg: PostgresServer,
    databases: Databases,
    tmp_path: Path,
) -> None:
    """Cancelled from the progress callback as the phase starts (the key is staged by then):
    no key, no staged file, no database, no storage folder."""
    folder = tmp_path / "etc"
    folder.mkdir()
    target = new_database_name(databases)
    with anyio.CancelScope() as scope:

        def progress(snapshot: mb.Progress) -> None:
            if snapshot.phase is phase:
                assert hidden_leftovers(folder), "the key should be staged by now"
                scope.cancel()

        await mb.restore(
            mb.FileArchive(path=key_archive),
            database=pg.config(target),
            storage=mb.DirectoryStorage(path=tmp_path / "files"),
            instance_files=mb.InstanceFiles(private_key=folder / "ed25519.key"),
            options=mb.RestoreOptions(create_database=True),
            progress=progress,
        )
    assert scope.cancelled_caught
    assert list(folder.iterdir()) == []
    assert not database_exists(pg, target)
    assert not (tmp_path / "files").exists()
