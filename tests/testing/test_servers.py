"""Quick checks of the throwaway servers in monetr_backup.testing."""

from __future__ import annotations

import glob
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import botocore.config
import botocore.exceptions
import botocore.session
import pydantic
import pytest

import monetr_backup as mb
import monetr_backup.testing
from monetr_backup.testing import (
    PG_DSN_ENV_VAR,
    CommandError,
    PostgresServer,
    TemporaryPostgres,
    TemporarySeaweedS3,
    postgres_server,
    seed_monetr_like,
    seed_storage_dir,
)

from support.databases import Databases
from support.names import unique_name
from support.targets import bucket_objects, put_objects


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == b"Z" or time.monotonic() > deadline:
            return state == b"Z"
        time.sleep(0.02)


def _psql_tcp(pg: PostgresServer, password: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **pg.env(), "PGPASSWORD": password}
    return subprocess.run(
        [str(pg.bin_dir / "psql"), "-X", "-tA", "-c", "select current_user"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_temporary_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    with TemporaryPostgres() as pg:
        assert pg.pid is not None
        assert pg.base_dir is not None
        pid, base_dir = pg.pid, pg.base_dir
        assert pg.psql("select 1") == "1\n"

        # TCP needs the password; the unix socket the helpers use is trusted.
        assert _psql_tcp(pg, pg.password).stdout == "postgres\n"
        wrong = _psql_tcp(pg, "wrong")
        assert wrong.returncode != 0
        assert "password authentication failed" in wrong.stderr
        assert pg.dsn("x") == f"postgresql://postgres:{pg.password}@127.0.0.1:{pg.port}/x"

        with pytest.raises(CommandError, match="division by zero"):
            pg.psql("select 1/0")

        pg.create_database("seeded")
        seed_monetr_like(pg, "seeded")
        counts = pg.psql(
            "select (select count(*) from transactions), (select count(*) from files),"
            " (select count(*) from secrets), (select count(*) from spending)",
            "seeded",
        )
        assert counts == "1000|20|3|30\n"
        dump = pg.pg_dump_text("seeded", restrict_key="k")
        assert "Café ☕".encode() in dump
        assert b"CREATE TYPE public.user_role AS ENUM" in dump

        # The same server reached the way MONETR_BACKUP_TEST_PG_DSN would: over TCP.
        monkeypatch.setenv(PG_DSN_ENV_VAR, pg.dsn("seeded"))
        with postgres_server() as external:
            assert type(external) is PostgresServer
            assert external.socket_dir is None
            assert external.database == "seeded"
            assert external.psql("select count(*) from accounts") == "3\n"
            assert external.pg_dump_text("seeded", restrict_key="k") == dump
            external.create_database("scratch")
            external.drop_database("scratch")
        pg.drop_database("seeded")
        assert pg.psql("select count(*) from pg_database where datname = 'seeded'") == "0\n"

    assert _gone(pid)
    assert not base_dir.exists()
    assert pg.pid is None


def test_temporary_postgres_start_failure_shows_log() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = TemporaryPostgres(port=port)
        with pytest.raises(RuntimeError, match="could not bind"), server:
            pass
    assert server.base_dir is None


def test_from_dsn_parses_quoted_parts() -> None:
    server = PostgresServer.from_dsn("postgresql://u%40x:p%2Fw%3A%40@db.example:6543/my%20db")
    assert (server.host, server.port, server.user, server.password) == (
        "db.example",
        6543,
        "u@x",
        "p/w:@",
    )
    assert server.database == "my db"
    assert server.dsn() == "postgresql://u%40x:p%2Fw%3A%40@db.example:6543/my%20db"
    assert server.env()["PGPASSWORD"] == "p/w:@"


def test_temporary_seaweed_s3() -> None:
    with TemporarySeaweedS3() as s3:
        assert s3.pid is not None
        assert s3.base_dir is not None
        pid, base_dir, ports = s3.pid, s3.base_dir, dict(s3.ports)
        s3.create_bucket("test-bucket")
        client = s3.client()
        client.put_object(Bucket="test-bucket", Key="a/b", Body=b"hello \x00 world")
        body = client.get_object(Bucket="test-bucket", Key="a/b")["Body"].read()
        assert body == b"hello \x00 world"

        bad: Any = botocore.session.get_session().create_client(
            "s3",
            config=botocore.config.Config(s3={"addressing_style": "path"}),
            **{**s3.client_kwargs(), "aws_secret_access_key": "wrong"},
        )
        with pytest.raises(botocore.exceptions.ClientError, match="SignatureDoesNotMatch"):
            bad.list_objects_v2(Bucket="test-bucket")
        bad.close()

    assert _gone(pid)
    assert not base_dir.exists()
    for port in ports.values():
        assert not glob.glob(f"/tmp/seaweedfs-*-grpc-{port + 10000}.sock")


def test_seed_storage_dir(tmp_path: Path) -> None:
    root = tmp_path / "storage"
    files = seed_storage_dir(root, count=20)
    assert len(files) == 20
    assert (
        files[
            "data/transactions/uploads/61/01000000000000000000000001/66/01000000000000000000000001"
        ]
        == b""
    )
    for key, content in files.items():
        parts = key.split("/")
        assert parts[0] == "data"
        assert parts[1:3] in (["transactions", "uploads"], ["transactions", "imports"])
        assert parts[3] == "61"
        assert parts[5] == "66"
        path = root / key
        assert path.read_bytes() == content
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        parent = path.parent
        while parent != root:
            assert stat.S_IMODE(parent.stat().st_mode) == 0o700
            parent = parent.parent


# --- the library's settings for the servers --------------------------------------------


def test_postgres_config_has_the_servers_settings(pg: PostgresServer) -> None:
    config = pg.config("monetr")
    assert (config.host, config.port, config.user, config.database) == (
        pg.host,
        pg.port,
        pg.user,
        "monetr",
    )
    password = config.password.get_secret_value() if config.password else None
    assert password == (pg.password or None)
    assert config.sslmode == pg.sslmode
    assert config.bin_dir is not None
    assert (config.bin_dir / "pg_dump").exists()

    changed = pg.config("other", password="wrong", connect_timeout=1)
    assert changed.password is not None
    assert changed.password.get_secret_value() == "wrong"
    assert (changed.database, changed.connect_timeout, changed.port) == ("other", 1, pg.port)
    with pytest.raises(pydantic.ValidationError, match="databse"):
        pg.config("monetr", databse="typo")


def test_postgres_config_without_a_password_or_a_running_server() -> None:
    server = PostgresServer.from_dsn("postgresql://reader@db.example:6543/x?sslmode=require")
    config = server.config("monetr")
    assert config.password is None
    assert (config.host, config.port, config.user, config.sslmode) == (
        "db.example",
        6543,
        "reader",
        "require",
    )
    with pytest.raises(RuntimeError, match="not running"):
        TemporaryPostgres().config("monetr")


def test_s3_config_and_storage_have_the_servers_settings(s3: TemporarySeaweedS3) -> None:
    config = s3.config()
    assert (config.endpoint_url, config.region, config.access_key) == (
        s3.endpoint_url,
        s3.region,
        s3.access_key,
    )
    assert config.secret_key is not None
    assert config.secret_key.get_secret_value() == s3.secret_key
    assert config.force_path_style is True
    assert s3.config(endpoint_url="http://127.0.0.1:1").endpoint_url == "http://127.0.0.1:1"

    storage = s3.storage("files", prefix="data/", prefetch_objects=4)
    assert (storage.s3, storage.bucket, storage.prefix) == (config, "files", "data/")
    assert storage.prefetch_objects == 4
    assert s3.storage("files").prefix == ""
    with pytest.raises(RuntimeError, match="not running"):
        TemporarySeaweedS3().config()


@pytest.mark.anyio
async def test_backup_verify_restore_with_the_servers_settings(
    pg: PostgresServer, s3: TemporarySeaweedS3, databases: Databases, tmp_path: Path
) -> None:
    """What .config() and .storage() return works as every kind of location the library
    takes: database source and target, storage source and target, archive in a bucket."""
    source_db, target_db = databases.create(seed=True), databases.create()
    files = seed_storage_dir(tmp_path / "storage", count=5)
    storage_bucket, archive_bucket, target_bucket = (
        unique_name(kind) for kind in ("storage", "archive", "target")
    )
    for name in (storage_bucket, archive_bucket, target_bucket):
        s3.create_bucket(name)
    # Outside the prefix, so it must stay out of the archive.
    put_objects(s3, storage_bucket, {**files, "other/skipped": b"x"})

    manifest = await mb.backup(
        mb.S3Archive(s3=s3.config(), bucket=archive_bucket, key="a.tar.gz"),
        database=pg.config(source_db),
        storage=s3.storage(storage_bucket, prefix="data/"),
        # Every object under the prefix, not only those the seeded rows reference.
        options=mb.BackupOptions(storage_mode=mb.StorageMode.ALL),
    )
    assert manifest.object_count == len(files)

    archive = mb.S3Archive(s3=s3.config(), bucket=archive_bucket, key="a.tar.gz")
    report = await mb.verify(archive)
    assert report.ok, report.problems

    await mb.restore(
        archive, database=pg.config(target_db), storage=s3.storage(target_bucket, prefix="copy/")
    )
    assert pg.pg_dump_text(target_db, restrict_key="k") == pg.pg_dump_text(
        source_db, restrict_key="k"
    )
    assert bucket_objects(s3, target_bucket) == {f"copy/{key}": data for key, data in files.items()}


# --- the package -----------------------------------------------------------------------


def test_exports_show_the_public_module() -> None:
    for name in monetr_backup.testing.__all__:
        value = getattr(monetr_backup.testing, name)
        if isinstance(value, type) or callable(value):
            assert value.__module__ == "monetr_backup.testing", name
    assert repr(TemporaryPostgres) == "<class 'monetr_backup.testing.TemporaryPostgres'>"


def test_the_library_does_not_import_testing() -> None:
    code = "import sys, monetr_backup; print('monetr_backup.testing' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout == "False\n"
