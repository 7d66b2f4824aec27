"""An encrypted backup -> what an operator does by hand (age -d, then GNU tar), and what
verify and inspect make of it with the identity, without it, and with a wrong one."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pyrage
import pytest
from pydantic import SecretStr, ValidationError

import monetr_backup as mb
from monetr_backup.testing import PostgresServer

from support.age import (
    age_decrypt,
    age_decrypt_fails,
    age_keygen,
    age_threads,
    encrypted_sample_backup,
    ssh_keygen,
)
from support.archives import check_archive_file
from support.databases import Databases, database_exists, new_database_name
from support.samples import Sample
from support.secrets import assert_no_secret_in_error

pytestmark = pytest.mark.anyio


async def test_encrypted_backup_opens_with_age_then_tar(
    sample: Sample, pg: PostgresServer, tmp_path: Path
) -> None:
    """The file is an age stream (no tar or gzip in clear); ``age -d -i key`` gives the
    gzip archive, which GNU tar lists member by member and tarfile extracts: the dump and
    every storage file byte for byte. verify and inspect with the identity agree."""
    key = age_keygen(tmp_path / "key.txt")
    path = tmp_path / "monetr.tar.gz.age"
    manifest = await encrypted_sample_backup(pg, sample, path, [key.recipient])
    data = path.read_bytes()
    assert data.startswith(b"age-encryption.org/v1\n-> X25519 ")
    assert b"header.json" not in data
    assert b"\x1f\x8b" not in data[:200]

    plain = tmp_path / "monetr.tar.gz"
    age_decrypt(path, key.path, plain)
    extracted = check_archive_file(plain, mb.Codec.GZIP, tmp_path / "x")  # GNU tar + tarfile
    assert extracted.manifest == manifest
    assert extracted.objects == sample.files
    # The dump is whole (extract checked it against its summary): pg_restore reads it.
    assert len(extracted.dump) == manifest.dump_bytes
    assert extracted.dump.startswith(b"PGDMP")

    report = await mb.verify(mb.FileArchive(path=path), identities=[key.identity])
    assert report.ok, report.problems
    assert report.manifest == manifest
    info = await mb.inspect(mb.FileArchive(path=path), identities=[key.secret])
    assert info.manifest == manifest
    assert info.header == extracted.header
    assert age_threads() == []


async def test_two_recipients_and_an_ssh_key(
    sample: Sample, pg: PostgresServer, tmp_path: Path
) -> None:
    """Encrypted to an age key and an ed25519 SSH key: either identity opens it alone,
    ours and the CLI's (``age -d -i ~/.ssh/id_ed25519``)."""
    age_key = age_keygen(tmp_path / "key.txt")
    ssh_key = ssh_keygen(tmp_path / "id_ed25519")
    path = tmp_path / "two.tar.gz.age"
    manifest = await encrypted_sample_backup(
        pg, sample, path, [age_key.recipient, ssh_key.recipient]
    )
    for key in (age_key, ssh_key):
        report = await mb.verify(mb.FileArchive(path=path), identities=[key.identity])
        assert report.ok, report.problems
        assert report.manifest == manifest
        out = tmp_path / f"{key.path.name}.tar.gz"
        age_decrypt(path, key.path, out)
        assert check_archive_file(out, mb.Codec.GZIP, tmp_path / f"x-{key.path.name}").manifest == (
            manifest
        )


@pytest.mark.reliability(
    "hostile input",
    "verify and inspect of an encrypted archive with no identity, or another recipient's",
    "DecryptionError naming the cause; no key in its text; age -d refuses it too",
)
async def test_verify_and_inspect_refuse_without_the_identity(
    sample: Sample, pg: PostgresServer, tmp_path: Path
) -> None:
    key = age_keygen(tmp_path / "key.txt")
    other = age_keygen(tmp_path / "other.txt")
    path = tmp_path / "a.tar.gz.age"
    await encrypted_sample_backup(pg, sample, path, [key.recipient], codec=mb.Codec.ZSTD)
    archive = mb.FileArchive(path=path)
    with pytest.raises(mb.DecryptionError, match="is encrypted"):
        await mb.verify(archive)
    with pytest.raises(mb.DecryptionError, match="none of the 1 identities") as caught:
        await mb.inspect(archive, identities=[other.identity])
    assert_no_secret_in_error(caught.value, [other.secret.splitlines()[-1], key.secret])
    assert "no identity matched" in age_decrypt_fails(path, other.path)
    # A zstd archive inside: the codec is still told after decryption.
    info = await mb.inspect(archive, identities=[other.identity, key.identity])
    assert info.header.codec is mb.Codec.ZSTD
    assert age_threads() == []


@pytest.mark.reliability(
    "hostile input",
    "verify of an encrypted archive with one byte flipped in the middle, or cut short",
    "reported, not raised: ok=False with a CorruptArchiveError problem",
)
@pytest.mark.parametrize("damage", ["flip", "cut"])
async def test_verify_reports_a_damaged_encrypted_archive(
    damage: str, sample: Sample, pg: PostgresServer, tmp_path: Path
) -> None:
    key = age_keygen(tmp_path / "key.txt")
    path = tmp_path / "a.tar.gz.age"
    await encrypted_sample_backup(pg, sample, path, [key.recipient])
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x10
    else:
        del data[len(data) - 100 :]
    path.write_bytes(bytes(data))
    report = await mb.verify(mb.FileArchive(path=path), identities=[key.identity])
    assert not report.ok
    assert report.problem_count >= 1
    assert {problem.kind for problem in report.problems} <= {"CorruptArchiveError"}
    assert report.manifest is None
    assert age_threads() == []


@pytest.mark.reliability(
    "cancellation",
    "an encrypted backup cancelled while the archive is being written",
    "cancelled; no archive and no temporary file, the age thread ended",
)
async def test_cancelled_encrypted_backup_leaves_nothing(
    sample: Sample, pg: PostgresServer, tmp_path: Path
) -> None:
    key = age_keygen(tmp_path / "key.txt")
    out = tmp_path / "out"
    out.mkdir()

    def on_progress(progress: mb.Progress) -> None:
        if progress.archive_bytes > 0:
            scope.cancel()

    with anyio.CancelScope() as scope:
        await mb.backup(
            mb.FileArchive(path=out / "a.tar.gz.age"),
            database=pg.config(sample.database),
            storage=mb.DirectoryStorage(path=sample.storage),
            options=mb.BackupOptions(recipients=(key.recipient,), progress_interval=0),
            progress=on_progress,
        )
    assert scope.cancelled_caught
    assert list(out.iterdir()) == []
    assert age_threads() == []


def test_options_refuse_a_bad_recipient() -> None:
    """A recipient that is not a public key fails when the options are made (a public
    key may be quoted: it is no secret)."""
    good = str(pyrage.x25519.Identity.generate().to_public())
    with pytest.raises(ValidationError, match=r"recipients\[1\]"):
        mb.BackupOptions(recipients=(good, "AGE-SECRET-KEY-1QQQ"))


@pytest.mark.reliability(
    "hostile input",
    "an identity that is not a key (a typo in an age secret key), to restore and verify",
    "ValueError naming it by index, before any target is touched; the key in no error text",
)
async def test_a_bad_identity_is_refused_without_quoting_it(
    sample: Sample, pg: PostgresServer, databases: Databases
) -> None:
    """Not refused when the options are made: a pydantic error would keep the refused
    value in ``errors()`` and ``json()``, which loggers serialise. The restore refuses it
    first thing instead, before its target database is even created."""
    secret = "AGE-SECRET-KEY-1" + "Q" * 58
    archive = mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM])
    target = new_database_name(databases)
    for given in (SecretStr(secret), secret):
        options = mb.RestoreOptions(identities=(given,), create_database=True)
        assert secret not in repr(options) + str(options) + options.model_dump_json()
        with pytest.raises(ValueError, match=r"identities\[0\]") as raised:
            await mb.restore(archive, database=pg.config(target), options=options)
        assert not isinstance(raised.value, ValidationError)
        assert_no_secret_in_error(raised.value, [secret, "Q" * 20])
        assert not database_exists(pg, target)
        with pytest.raises(ValueError, match=r"identities\[0\]") as raised:
            await mb.verify(archive, identities=(given,))
        assert_no_secret_in_error(raised.value, [secret, "Q" * 20])


async def test_instance_files_are_not_in_clear(sample: Sample, tmp_path: Path) -> None:
    """monetr's session-signing key goes into the archive (format v2): encrypted, not a
    byte of it is in the file, and ``age -d`` gives it back inside the tar."""
    key = age_keygen(tmp_path / "key.txt")
    private_key = tmp_path / "monetr-private.pem"
    marker = b"-----BEGIN PRIVATE KEY-----\nmonetr-signing-key-" + os.urandom(16).hex().encode()
    private_key.write_bytes(marker + b"\n-----END PRIVATE KEY-----\n")
    path = tmp_path / "a.tar.gz.age"
    await mb.backup(
        mb.FileArchive(path=path),
        storage=mb.DirectoryStorage(path=sample.storage),
        instance_files=mb.InstanceFiles(private_key=private_key),
        options=mb.BackupOptions(recipients=(key.recipient,), codec=mb.Codec.NONE),
    )
    assert marker not in path.read_bytes()
    age_decrypt(path, key.path, tmp_path / "a.tar")
    assert marker in (tmp_path / "a.tar").read_bytes()
