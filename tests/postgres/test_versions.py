"""PostgreSQL 15, 16 and 18 -> round trips with storage, refusals, damage; older clients refused.

15 is Debian's package (the session's ``pg``), 16 and 18 come from wheels (``pg16``,
``pg18``). Each server backs up its own seeded database and folder once (a ``Sample``,
through ``pg.config()``, whose ``bin_dir`` is that server's own programs); the tests
restore those archives on the same server and compare with the server's own pg_dump.

Found on the way: pg_dump 15.14+ (Debian's is 15.18) opens a plain dump with a
``\\restrict <key>`` line that psql 16.2 (the pgserver wheel's) rejects, "invalid command
\\restrict", so under ON_ERROR_STOP it stops at line 5 before any statement ran (exit 3;
without ON_ERROR_STOP it would run the rest and only complain). pg_dump 16.2 writes no
such line (nor has ``--restrict-key``), so 16's own round trips are unaffected; psql 18.6
reads 15's and 18's. The restore names the psql and the fix in that case.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import monetr_backup as mb
from monetr_backup.testing import (
    DEFAULT_PG_BIN_DIR,
    PostgresServer,
    wheel_postgres_bin_dir,
)

from support.archives import check_archive_file, decompress, flip_member_byte, last_dump_part
from support.databases import Databases, database_exists, new_database_name, server_major
from support.processes import child_processes, recorded_calls, recording_bin_dir
from support.samples import RESTRICT_KEY, Sample, Samples, copy_archive, restore_into_new
from support.targets import UNTOUCHED_NS, names_in, quiet_folder, snapshot, tree

pytestmark = pytest.mark.anyio

#: Major version -> the fixture serving it.
SERVERS = {15: "pg", 16: "pg16", 18: "pg18"}

every_version = pytest.mark.parametrize("major", sorted(SERVERS), ids=lambda major: f"pg{major}")
#: The servers newer than Debian's PostgreSQL 15 client programs.
newer_than_15 = pytest.mark.parametrize("major", [16, 18], ids=lambda major: f"pg{major}")
each_format = pytest.mark.parametrize("dump_format", list(mb.DumpFormat))


@dataclass(frozen=True)
class OnServer:
    """A server of one major version and the sample backed up from it."""

    major: int
    pg: PostgresServer
    sample: Sample


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Samples]:
    """The sample of each server, made once for the whole file."""
    made = Samples(tmp_path_factory.mktemp("version-samples"))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def on(major: int, request: pytest.FixtureRequest, samples: Samples) -> OnServer:
    """The PostgreSQL ``major`` server, with its sample."""
    server: PostgresServer = request.getfixturevalue(SERVERS[major])
    if server_major(server) != major:
        pytest.skip(f"the session's server is not PostgreSQL {major} (MONETR_BACKUP_TEST_PG_DSN)")
    return OnServer(major, server, samples.of(server))


@pytest.fixture
def sample_15(pg: PostgresServer, samples: Samples) -> Sample:
    """The sample of the PostgreSQL 15 server (its archives' dumps by pg_dump 15)."""
    if server_major(pg) != 15:
        pytest.skip("the session's server is not PostgreSQL 15 (MONETR_BACKUP_TEST_PG_DSN)")
    return samples.of(pg)


@pytest.fixture
def dbs(on: OnServer) -> Iterator[Databases]:
    """Fresh databases on that server, dropped when the test ends."""
    made = Databases(on.pg)
    try:
        yield made
    finally:
        made.drop_all()


# --- on every version ----------------------------------------------------------------


@every_version
@each_format
async def test_round_trip_with_storage(
    on: OnServer, dbs: Databases, dump_format: mb.DumpFormat, tmp_path: Path
) -> None:
    """The server's own pg_dump wrote the archive (so 18 is dumped by pg_dump 18); restored
    into a new database and folder on the same server, the copy's pg_dump and every file
    are the source's, byte for byte."""
    archive = on.sample.archives[dump_format]
    summary = check_archive_file(archive, mb.Codec.GZIP, tmp_path / "extracted").summary
    assert summary is not None
    assert summary.pg_dump_version.startswith(f"pg_dump (PostgreSQL) {on.major}.")
    assert summary.server_version.startswith(f"{on.major}.")
    target = new_database_name(dbs)
    files = tmp_path / "files"

    result = await restore_into_new(on.pg, archive, target, files)

    assert (result.database_restored, result.database_created) == (True, True)
    assert sorted(result.objects_restored) == sorted(on.sample.files)
    assert on.pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == on.sample.dump
    assert b"CREATE TABLE public.transactions" in on.sample.dump
    assert tree(files) == on.sample.files


@every_version
@each_format
@pytest.mark.reliability(
    "hostile input",
    "restore into a database that already has tables, on PostgreSQL 15, 16 and 18",
    "TargetNotEmptyError; the database and the folder as they were",
)
async def test_a_non_empty_target_is_refused(
    on: OnServer, dbs: Databases, dump_format: mb.DumpFormat, tmp_path: Path
) -> None:
    target = dbs.create()
    on.pg.psql(
        "CREATE TABLE kept (id int PRIMARY KEY, note text); INSERT INTO kept VALUES (1, 'x')",
        target,
    )
    before = on.pg.pg_dump_text(target, restrict_key=RESTRICT_KEY)
    files = tmp_path / "files"
    files.mkdir()
    (files / "mine.txt").write_bytes(b"not from the archive")
    files_before = snapshot(files)

    with pytest.raises(mb.TargetNotEmptyError):
        await mb.restore(
            mb.FileArchive(path=on.sample.archives[dump_format]),
            database=on.pg.config(target),
            storage=mb.DirectoryStorage(path=files),
        )

    assert on.pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == before
    assert snapshot(files) == files_before


@every_version
@each_format
@pytest.mark.reliability(
    "fault",
    "one byte flipped in the last dump part, restored on PostgreSQL 15, 16 and 18",
    "ChecksumError; the (empty) target database and the folder as they were, no child left",
)
async def test_a_damaged_archive_changes_nothing(
    on: OnServer, dbs: Databases, dump_format: mb.DumpFormat, tmp_path: Path
) -> None:
    path = copy_archive(on.sample, dump_format, tmp_path)
    flip_member_byte(path, last_dump_part(path), index=100)
    target = dbs.create()
    before = on.pg.pg_dump_text(target, restrict_key=RESTRICT_KEY)
    files = tmp_path / "files"
    files.mkdir()
    children = child_processes()

    with pytest.raises(mb.ChecksumError, match="SHA-256"):
        await mb.restore(
            mb.FileArchive(path=path),
            database=on.pg.config(target),
            storage=mb.DirectoryStorage(path=files),
        )

    assert on.pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == before
    assert snapshot(files) == {}
    assert child_processes() == children


# --- client programs older than the server ------------------------------------------


@newer_than_15
@pytest.mark.reliability(
    "fault",
    "a backup with pg_dump 15 (bin_dir) from a PostgreSQL 16 or 18 server",
    "ClientVersionError naming both versions; pg_dump never ran, no file ever created",
)
async def test_an_older_pg_dump_is_refused_before_anything(on: OnServer, tmp_path: Path) -> None:
    """Refused before the archive is opened: no archive, no temporary file even for a
    moment (the folder's mtime is untouched), and pg_dump was only asked its version."""
    bin_dir = recording_bin_dir(DEFAULT_PG_BIN_DIR, tmp_path / "bin", ("pg_dump",))
    out = quiet_folder(tmp_path / "out")

    with pytest.raises(mb.ClientVersionError) as caught:
        await mb.backup(
            mb.FileArchive(path=out / "monetr.tar.gz"),
            database=on.pg.config(on.sample.database, bin_dir=bin_dir),
            storage=mb.DirectoryStorage(path=on.sample.storage),
        )

    message = str(caught.value)
    assert re.search(rf"pg_dump is version 15\.\d+ and the server {on.major}\.\d+", message)
    assert f"PostgreSQL {on.major} client programs" in message
    assert "bin_dir" in message
    assert names_in(out) == []
    assert out.stat().st_mtime_ns == UNTOUCHED_NS
    assert recorded_calls(bin_dir, "pg_dump") == ["--version"]


@newer_than_15
@each_format
@pytest.mark.reliability(
    "fault",
    "a restore with pg_restore or psql 15 (bin_dir) into a PostgreSQL 16 or 18 server",
    "ClientVersionError naming both versions; no database created, no folder, no program ran",
)
async def test_an_older_restore_client_is_refused_before_anything(
    on: OnServer, dbs: Databases, dump_format: mb.DumpFormat, tmp_path: Path
) -> None:
    program = "pg_restore" if dump_format is mb.DumpFormat.CUSTOM else "psql"
    bin_dir = recording_bin_dir(DEFAULT_PG_BIN_DIR, tmp_path / "bin", ("pg_restore", "psql"))
    target = new_database_name(dbs)
    files = tmp_path / "files"

    with pytest.raises(mb.ClientVersionError) as caught:
        await mb.restore(
            mb.FileArchive(path=on.sample.archives[dump_format]),
            database=on.pg.config(target, bin_dir=bin_dir),
            storage=mb.DirectoryStorage(path=files),
            options=mb.RestoreOptions(create_database=True),
        )

    assert re.search(
        rf"{program} is version 15\.\d+ and the server {on.major}\.\d+", str(caught.value)
    )
    assert not database_exists(on.pg, target)
    assert not files.exists()
    assert recorded_calls(bin_dir, program) == ["--version"]


@pytest.mark.parametrize("major", [18], ids=["pg18"])
async def test_the_newest_pg_dump_installed_is_chosen(
    on: OnServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without bin_dir, Debian's pg_dump 15 comes first in the search and the wheel's 18
    last on PATH: the newest is taken, so the 18 server can be dumped."""
    monkeypatch.setenv("PATH", f"{os.environ['PATH']}{os.pathsep}{wheel_postgres_bin_dir(18)}")
    archive = tmp_path / "monetr.tar.gz"

    await mb.backup(
        mb.FileArchive(path=archive), database=on.pg.config(on.sample.database, bin_dir=None)
    )

    summary = check_archive_file(archive, mb.Codec.GZIP, tmp_path / "extracted").summary
    assert summary is not None
    assert summary.pg_dump_version.startswith("pg_dump (PostgreSQL) 18.")


# --- a plain dump newer than the psql restoring it -----------------------------------


@pytest.mark.parametrize("major", [16], ids=["pg16"])
@pytest.mark.parametrize("choice", ["bin_dir", "newest on PATH"])
@pytest.mark.reliability(
    "fault",
    "a plain dump by pg_dump 15.14+ (with \\restrict lines) restored with psql 16.2 (without)",
    "PgRestoreError naming psql 16.2, \\restrict and the fix; no database created, no folder",
)
async def test_a_plain_dump_psql_cannot_read_is_a_clear_error(
    *,
    on: OnServer,
    dbs: Databases,
    choice: str,
    sample_15: Sample,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pg_dump 15.14 and later (13.22, 14.19, 16.10, 17.6, 18) open a plain dump with a
    ``\\restrict`` line, a psql meta-command older releases reject: psql 16.2 stops at it
    (ON_ERROR_STOP), before any statement ran. The error says which psql and what to do."""
    archive = sample_15.archives[mb.DumpFormat.PLAIN]
    assert b"\n\\restrict " in decompress(archive.read_bytes())
    config = on.pg.config(new_database_name(dbs))
    if choice == "newest on PATH":
        # Debian's psql 15 is found first, the wheel's 16.2 last: the newer one is taken.
        monkeypatch.setenv("PATH", f"{os.environ['PATH']}{os.pathsep}{wheel_postgres_bin_dir(16)}")
        config = on.pg.config(config.database, bin_dir=None)
    files = tmp_path / "files"

    with pytest.raises(mb.PgRestoreError) as caught:
        await mb.restore(
            mb.FileArchive(path=archive),
            database=config,
            storage=mb.DirectoryStorage(path=files),
            options=mb.RestoreOptions(create_database=True),
        )

    message = str(caught.value)
    assert "psql 16.2 does not know" in message
    assert "\\restrict" in message
    assert "16.10" in message
    assert "bin_dir" in message
    assert not database_exists(on.pg, config.database)
    assert not files.exists()
