"""Edge cases found in review: odd files in a storage folder, archives with data after
their end, a stream too big for its part limit, options a dump format cannot honour."""

from __future__ import annotations

import gzip
import os
from contextlib import aclosing
from pathlib import Path

import anyio
import pytest

import monetr_backup as mb
from monetr_backup import stages
from monetr_backup._postgres.programs import client_env
from monetr_backup.testing import TemporarySeaweedS3

from support.env import Env
from support.sizes import MIN_PART
from support.targets import multipart_uploads, object_keys, tree

pytestmark = pytest.mark.anyio


async def test_odd_files_in_a_storage_folder_are_skipped_and_recorded(tmp_path: Path) -> None:
    """A symlink, a FIFO and a file whose name is not UTF-8 are not archived; the manifest
    names each with the reason, and the regular files round-trip."""
    root = tmp_path / "storage"
    (root / "data").mkdir(parents=True)
    (root / "data" / "ok.csv").write_bytes(b"a,b\n")
    (root / "data" / "link").symlink_to(root / "data" / "ok.csv")
    os.mkfifo(root / "data" / "pipe")
    (root / "data").joinpath(os.fsdecode(b"bad-\xff-name")).write_bytes(b"x")
    archive = tmp_path / "a.tar.gz"

    manifest = await mb.backup(mb.FileArchive(path=archive), storage=mb.DirectoryStorage(path=root))

    reasons = {item.key: item.reason for item in manifest.skipped}
    assert reasons["data/link"] == "symlink (not followed)"
    assert reasons["data/pipe"] == "not a regular file"
    assert reasons["data/bad-\ufffd-name"] == "file name is not valid UTF-8"
    assert manifest.object_count == 1
    restored = tmp_path / "restored"
    await mb.restore(mb.FileArchive(path=archive), storage=mb.DirectoryStorage(path=restored))
    assert tree(restored) == {"data/ok.csv": b"a,b\n"}


async def test_data_after_the_end_of_the_archive_is_damage(tmp_path: Path) -> None:
    """A second gzip member appended after the archive is reported, not ignored."""
    root = tmp_path / "storage"
    root.mkdir()
    (root / "f").write_bytes(b"content")
    archive = tmp_path / "a.tar.gz"
    await mb.backup(mb.FileArchive(path=archive), storage=mb.DirectoryStorage(path=root))
    assert (await mb.verify(mb.FileArchive(path=archive))).ok

    appended = tmp_path / "appended.tar.gz"
    appended.write_bytes(archive.read_bytes() + gzip.compress(b"more tar data" * 100))
    report = await mb.verify(mb.FileArchive(path=appended))
    assert not report.ok
    assert "data after the end of the archive" in report.problems[0].message
    with pytest.raises(mb.CorruptArchiveError, match="after the end"):
        await mb.restore(
            mb.FileArchive(path=appended), storage=mb.DirectoryStorage(path=tmp_path / "t")
        )
    assert tree(tmp_path / "t") == {}


async def test_restore_of_a_long_unicode_file_name(tmp_path: Path) -> None:
    """A 240-byte UTF-8 file name (near the 255-byte limit) restores: temporary names
    do not grow with the final name."""
    name = "明" * 80  # 240 bytes
    root = tmp_path / "storage"
    (root / "data").mkdir(parents=True)
    (root / "data" / name).write_bytes(b"long")
    archive = tmp_path / "a.tar.gz"
    await mb.backup(mb.FileArchive(path=archive), storage=mb.DirectoryStorage(path=root))
    restored = tmp_path / "restored"
    await mb.restore(mb.FileArchive(path=archive), storage=mb.DirectoryStorage(path=restored))
    assert tree(restored) == {f"data/{name}": b"long"}


async def test_stream_too_big_for_max_parts_fails_cleanly(
    s3: TemporarySeaweedS3, s3_config: mb.S3Config, bucket: str
) -> None:
    """At the last allowed part, data beyond one part is refused with a typed error (not
    buffered without bound), and the multipart upload is aborted."""

    async def upload_three_parts() -> None:
        async with (
            stages.open_s3_client(s3_config) as client,
            stages.open_s3_upload(client, bucket, "big", part_size=MIN_PART, max_parts=1) as upload,
        ):
            for _ in range(3):
                await upload.write(os.urandom(MIN_PART))
            await upload.commit()

    with pytest.raises(mb.ArchiveWriteError, match="max_parts"):
        await upload_three_parts()
    assert object_keys(s3.client(), bucket) == []
    assert multipart_uploads(s3.client(), bucket) == []


async def test_no_owner_with_a_plain_dump_is_refused_up_front(
    env: Env, source_db: str, tmp_path: Path
) -> None:
    """psql cannot skip ownership: asking for it is an error before any database is made."""
    archive = tmp_path / "plain.tar.gz"
    await mb.backup(
        mb.FileArchive(path=archive),
        database=env.pg.config(source_db),
        options=mb.BackupOptions(dump_format=mb.DumpFormat.PLAIN),
    )
    target = env.databases.create()
    env.pg.drop_database(target)
    with pytest.raises(mb.PgRestoreError, match="no_owner"):
        await mb.restore(
            mb.FileArchive(path=archive),
            database=env.pg.config(target),
            options=mb.RestoreOptions(no_owner=True, create_database=True),
        )
    exists = env.pg.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{target}'")
    assert exists.strip() == "0"
    # Refused after reading the header: the archive must be closed now, not when the
    # abandoned reader is garbage-collected.
    assert open_files_under(tmp_path) == []


def open_files_under(folder: Path) -> list[str]:
    """Files under ``folder`` this process holds open."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
        if target.startswith(f"{folder}/"):
            held.append(target)
    return held


class FailingSink:
    """An ArchiveSink whose ``fail_at``-th write fails, as an upload would."""

    def __init__(self, fail_at: int) -> None:
        self.writes = 0
        self.fail_at = fail_at

    async def write(self, data: bytes) -> None:
        self.writes += 1
        if self.writes == self.fail_at:
            raise mb.ArchiveWriteError("the destination went away")

    async def commit(self) -> None:
        raise AssertionError("never reached")

    async def abort(self) -> None:
        pass


@pytest.mark.parametrize("fail_at", range(1, 9))
async def test_a_failed_backup_leaves_no_storage_file_open(tmp_path: Path, fail_at: int) -> None:
    """The sink fails at every point of the first storage members (their tar header,
    content, padding): whatever the source had opened is closed when backup() returns,
    including a file whose member was handed over but never read."""
    root = tmp_path / "storage"
    root.mkdir()
    for i in range(3):
        (root / f"f{i}.csv").write_bytes(b"x" * 1000)
    sink = FailingSink(fail_at)

    with pytest.raises(mb.ArchiveWriteError, match="went away"):
        # Uncompressed, so each tar piece reaches the sink as its own write.
        await mb.backup(
            sink,
            storage=mb.DirectoryStorage(path=root),
            options=mb.BackupOptions(codec=mb.Codec.NONE),
        )

    assert open_files_under(root) == []


def test_postgres_config_from_dsn() -> None:
    """A DSN fills every field, unquoting user and password; the password stays secret."""
    config = mb.PostgresConfig.from_dsn(
        "postgresql://mon%40tr:p%40ss@db.local:6543/monetr?sslmode=require", connect_timeout=3
    )
    assert (config.host, config.port, config.user, config.database, config.sslmode) == (
        "db.local",
        6543,
        "mon@tr",
        "monetr",
        "require",
    )
    assert config.password is not None
    assert config.password.get_secret_value() == "p@ss"
    assert "p@ss" not in repr(config)
    assert config.connect_timeout == 3
    with pytest.raises(ValueError, match="postgresql://"):
        mb.PostgresConfig.from_dsn("mysql://x@y/z")


def test_tls_settings_reach_the_client_programs() -> None:
    """monetr's CA, certificate and key paths go to pg_dump/pg_restore/psql as libpq's
    PGSSL* variables; the password travels in PGPASSWORD only."""
    config = mb.PostgresConfig.from_dsn(
        "postgresql://u:pw-7c1e9b@h/d?sslmode=verify-full&sslrootcert=/ca.pem"
        "&sslcert=/c.pem&sslkey=/k.pem"
    )
    env = client_env(config)
    assert {key: value for key, value in env.items() if key.startswith("PGSSL")} == {
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": "/ca.pem",
        "PGSSLCERT": "/c.pem",
        "PGSSLKEY": "/k.pem",
    }
    assert env["PGPASSWORD"] == "pw-7c1e9b"
    # A password no other variable could hold by chance (the environment may say "secret").
    assert [key for key, value in env.items() if "pw-7c1e9b" in value] == ["PGPASSWORD"]


async def test_sslmode_require_against_a_server_without_tls(env: Env) -> None:
    """sslmode reaches the preflight connection too: require fails against a plain server."""
    config = env.pg.config("postgres", sslmode="require")
    with pytest.raises(mb.DatabaseConnectionError, match="SSL"):
        await mb.backup(mb.FileArchive(path=env.output_dir / "x.tar.gz"), database=config)
    assert list(env.output_dir.iterdir()) == []


async def test_an_archive_reader_closed_while_cancelled_closes_its_file(tmp_path: Path) -> None:
    """A refused restore closes its reader inside a cancelled task group: the file must
    still be closed when aclose() returns (it once was only closed later, in a thread)."""
    path = tmp_path / "archive.bin"
    path.write_bytes(b"x" * (3 * 1024 * 1024))
    with anyio.CancelScope() as scope:
        async with aclosing(stages.file_bytes(path)) as chunks:
            await anext(chunks)
            scope.cancel()
    assert open_files_under(tmp_path) == []
