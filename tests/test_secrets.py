"""The password and the S3 secret key -> never in a validation error, argv, a log or an error.

Settings first: every config model given a wrong-typed value for every field (the value
must not be quoted back), numeric secrets, DSNs. Then real backups and restores through
S3 with a password-protected PostgreSQL, ending well or failing (wrong password, wrong
secret key, a server that is not there), while :class:`~support.secrets.SecretWatch`
scans the argv of every process on the machine and every log record of every logger
at DEBUG (this library's own with their extras: phases, sizes, the error's message);
every error's text, with its causes, contexts and notes, is searched too.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio.lowlevel
import pytest
from pydantic import BaseModel, SecretStr, ValidationError

import monetr_backup as mb
from monetr_backup.testing import PostgresServer, TemporarySeaweedS3
from monetr_backup.testing._ports import pick_ports

from support.databases import Databases, database_exists, new_database_name
from support.processes import child_processes
from support.samples import PART_SIZE, RESTRICT_KEY, Sample
from support.secrets import (
    WRONG_PASSWORD,
    WRONG_S3_SECRET,
    SecretWatch,
    assert_no_secret_in_error,
    exception_texts,
    full_text,
    new_secret,
)
from support.targets import bucket_objects, multipart_uploads, new_bucket, object_keys, put_objects

# --- settings --------------------------------------------------------------------------

#: Enough for each model to validate, so each case fails on the one field it is about.
REQUIRED: dict[type[BaseModel], dict[str, Any]] = {
    mb.PostgresConfig: {},
    mb.S3Config: {},
    mb.BackupOptions: {},
    mb.RestoreOptions: {},
    mb.FileArchive: {"path": "/srv/backups/monetr.tar.gz"},
    mb.S3Archive: {"s3": {}, "bucket": "backups", "key": "monetr.tar.gz"},
    mb.DirectoryStorage: {"path": "/etc/monetr/storage"},
    mb.S3Storage: {"s3": {}, "bucket": "monetr-storage"},
}


def wrong_values(field: str) -> list[tuple[str, object]]:
    """(what would show if the value were quoted, the value): values of every shape, for
    one field, so that each field has some of the wrong type; digits no text holds."""
    marker = f"LEAK-{field}-9Qx7"
    number = 918_273_645_519 + len(field)
    return [
        (marker, [marker]),
        (marker, {"value": marker}),
        (marker, marker),
        (str(number), number),
        (str(number), -number),
        ("91827364", 91827364.25),
    ]


@pytest.mark.reliability(
    "hostile input",
    "a wrong-typed value for every field of a config model, and an unknown field",
    "ValidationError naming the field, never the value",
)
@pytest.mark.parametrize("model", list(REQUIRED), ids=lambda model: model.__name__)
def test_validation_errors_never_quote_the_input(model: type[BaseModel]) -> None:
    """Whatever is wrong with a value (a mistyped password above all), the error names
    the field and what was expected, and the value is nowhere in its text."""
    for field in model.model_fields:
        refused: list[tuple[str, object, ValidationError]] = []
        for shown, value in wrong_values(field):
            try:
                model.model_validate({**REQUIRED[model], field: value})
            except ValidationError as exc:
                refused.append((shown, value, exc))
        assert refused, f"{model.__name__}.{field}: no wrong-typed value was refused"
        for shown, value, error in refused:
            assert field in str(error)
            for text in exception_texts(error):
                assert shown not in text, f"{model.__name__}.{field}={value!r} is quoted"

    # (A variable: the traceback quotes the line that raised.)
    typo = "LEAK-typo-9Qx7"
    with pytest.raises(ValidationError, match="pasword") as info:
        model.model_validate({**REQUIRED[model], "pasword": typo})
    assert typo not in full_text(info.value)


NUMERIC_PASSWORD = 123456789012
NUMERIC_SECRET_KEY = 98765432109876


@pytest.mark.reliability(
    "hostile input",
    "a password or S3 secret key of digits given as a number (as YAML hands it over)",
    "taken as its digits; never printed by repr, str or JSON",
)
@pytest.mark.parametrize(
    "make",
    [
        lambda: mb.PostgresConfig(password=NUMERIC_PASSWORD),
        lambda: mb.PostgresConfig.model_validate_json(f'{{"password": {NUMERIC_PASSWORD}}}'),
        lambda: mb.S3Config(secret_key=NUMERIC_SECRET_KEY),
        lambda: mb.S3Config.model_validate({"secret_key": NUMERIC_SECRET_KEY}),
        lambda: mb.S3Archive.model_validate(
            {"s3": {"secret_key": NUMERIC_SECRET_KEY}, "bucket": "b", "key": "k"}
        ),
        lambda: mb.S3Storage.model_validate_json(
            f'{{"s3": {{"secret_key": {NUMERIC_SECRET_KEY}}}, "bucket": "b"}}'
        ),
    ],
    ids=["password", "password-json", "secret-key", "secret-key-dict", "archive", "storage-json"],
)
def test_numeric_secrets_are_their_digits_and_stay_hidden(make: Callable[[], BaseModel]) -> None:
    config = make()
    secret = _secret_of(config)
    assert isinstance(secret, SecretStr)
    assert secret.get_secret_value() in {str(NUMERIC_PASSWORD), str(NUMERIC_SECRET_KEY)}
    dumped = config.model_dump()
    for text in (repr(config), str(config), f"{config!r}", config.model_dump_json(), str(dumped)):
        assert str(NUMERIC_PASSWORD) not in text
        assert str(NUMERIC_SECRET_KEY) not in text
        assert "**********" in text


def _secret_of(config: BaseModel) -> object:
    if isinstance(config, mb.PostgresConfig):
        return config.password
    if isinstance(config, mb.S3Archive | mb.S3Storage):
        config = config.s3
    assert isinstance(config, mb.S3Config)
    return config.secret_key


DSN_PASSWORD = "Xy7Kq"


@pytest.mark.reliability(
    "hostile input",
    "a DSN whose password holds an unescaped '/', '?' or '#', or whose port is not a number",
    "ValueError saying what to fix, without any part of the DSN",
)
@pytest.mark.parametrize(
    "dsn",
    [
        # A base64 password often holds '/' and '+'; unescaped, '/' ends the host part.
        f"postgresql://monetr:{DSN_PASSWORD}/abc+def@db:5432/monetr",
        f"postgresql://monetr:{DSN_PASSWORD}?abc@db/monetr",
        f"postgresql://monetr:{DSN_PASSWORD}#abc@db/monetr",
        # Digits before the '/' parse as a port: the rest would become the database name.
        "postgresql://monetr:12345/Xy7Kq@db/monetr",
        f"postgresql://monetr:{DSN_PASSWORD}@db:notaport/monetr",
        f"mysql://monetr:{DSN_PASSWORD}@db/monetr",
    ],
)
def test_a_malformed_dsn_is_refused_without_quoting_it(dsn: str) -> None:
    with pytest.raises(ValueError) as info:  # noqa: PT011 (ValidationError is a ValueError)
        mb.PostgresConfig.from_dsn(dsn)
    for text in exception_texts(info.value):
        assert DSN_PASSWORD not in text
        assert "12345" not in text


def test_a_dsn_with_an_escaped_password_parses() -> None:
    """The fix the errors above ask for works: '/', '?', '#' and '@' percent-encoded."""
    config = mb.PostgresConfig.from_dsn("postgresql://monetr:12345%2FXy%3F7%23q%40@db/monetr")
    assert config.password is not None
    assert config.password.get_secret_value() == "12345/Xy?7#q@"
    assert (config.host, config.port, config.database) == ("db", 5432, "monetr")


# --- operations --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_s3() -> Iterator[TemporarySeaweedS3]:
    """An S3 server of this module's own, whose secret key was made for this run (the
    session's server has a fixed one, which any process could hold by chance)."""
    with TemporarySeaweedS3(access_key="AKIDSECRETS", secret_key=new_secret("s3")) as server:
        yield server


@dataclass
class World:
    """The servers, a good archive in S3, a bucket of storage files, and fresh names."""

    pg: PostgresServer
    s3: TemporarySeaweedS3
    sample: Sample
    databases: Databases
    #: A bucket holding the sample's storage files.
    storage_bucket: str
    #: The sample's custom-format archive, in S3.
    archive: mb.S3Archive
    #: An empty bucket for what a backup or restore writes.
    out_bucket: str
    #: A TCP port nothing listens on.
    closed_port: int

    @property
    def secrets(self) -> list[str]:
        """Every secret this module knows: none may show anywhere."""
        return [self.pg.password, self.s3.secret_key, WRONG_PASSWORD, WRONG_S3_SECRET]

    def new_database(self, **changes: object) -> mb.PostgresConfig:
        """Settings for a database a restore is to create (dropped after the test)."""
        return self.pg.config(new_database_name(self.databases), **changes)

    def s3_config(self, **changes: object) -> mb.S3Config:
        return self.s3.config(**changes)

    def wrong_s3(self) -> mb.S3Config:
        return self.s3.config(secret_key=WRONG_S3_SECRET)

    def unreachable_s3(self) -> mb.S3Config:
        return self.s3.config(endpoint_url=f"http://127.0.0.1:{self.closed_port}")

    def out_archive(self, s3: mb.S3Config | None = None) -> mb.S3Archive:
        return mb.S3Archive(s3=s3 or self.s3_config(), bucket=self.out_bucket, key="out.tar.gz")

    def storage(self, s3: mb.S3Config | None = None) -> mb.S3Storage:
        return mb.S3Storage(s3=s3 or self.s3_config(), bucket=self.storage_bucket)

    def out_storage(self, s3: mb.S3Config | None = None) -> mb.S3Storage:
        return mb.S3Storage(s3=s3 or self.s3_config(), bucket=self.out_bucket)


@pytest.fixture(scope="module")
def archive_bucket(private_s3: TemporarySeaweedS3, sample: Sample) -> tuple[str, str]:
    """The sample's archive, and its storage files, each in a bucket of the private server."""
    bucket = new_bucket(private_s3, "archives")
    archive = sample.archives[mb.DumpFormat.CUSTOM]
    put_objects(private_s3, bucket, {"sample.tar.gz": archive.read_bytes()})
    storage = new_bucket(private_s3, "storage")
    put_objects(private_s3, storage, sample.files)
    return bucket, storage


@pytest.fixture
def world(
    pg: PostgresServer,
    private_s3: TemporarySeaweedS3,
    sample: Sample,
    databases: Databases,
    archive_bucket: tuple[str, str],
) -> World:
    archives, storage = archive_bucket
    return World(
        pg=pg,
        s3=private_s3,
        sample=sample,
        databases=databases,
        storage_bucket=storage,
        archive=mb.S3Archive(s3=private_s3.config(), bucket=archives, key="sample.tar.gz"),
        out_bucket=new_bucket(private_s3, "out"),
        closed_port=pick_ports(1)[0],
    )


def open_descriptors() -> int:
    """How many file descriptors this process holds."""
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.anyio
@pytest.mark.usefixtures("password_auth")
@pytest.mark.parametrize("dump_format", list(mb.DumpFormat))
async def test_backup_and_restore_through_s3_show_no_secret(
    world: World, dump_format: mb.DumpFormat
) -> None:
    """A backup (pg_dump, the bucket as storage, the archive to S3) and a restore of it
    (into a new database, through pg_restore or psql, and a new bucket): neither the
    password nor the secret key is in any process's argv at any scan, nor in any log
    record, and both operations did their whole work."""
    with SecretWatch(world.secrets) as watch:
        manifest = await mb.backup(
            world.out_archive(),
            database=world.pg.config(world.sample.database),
            storage=world.storage(),
            options=mb.BackupOptions(
                dump_format=dump_format,
                dump_part_size=PART_SIZE,
                progress_interval=0,
                # The sample's whole folder, as the checks below compare.
                storage_mode=mb.StorageMode.ALL,
            ),
            progress=lambda _: watch.scan(),
        )
    watch.assert_clean()
    assert "pg_dump" in watch.programs
    assert any(name.startswith("botocore") for name in watch.loggers), watch.loggers
    assert manifest.object_count == len(world.sample.files)
    # This library's own records were among them, its phase records at INFO.
    assert ("monetr_backup", "INFO") in watch.levels

    target = new_database_name(world.databases)
    restored = new_bucket(world.s3, "restored")
    with SecretWatch(world.secrets) as watch:
        result = await mb.restore(
            world.out_archive(),
            database=world.pg.config(target),
            storage=mb.S3Storage(s3=world.s3_config(), bucket=restored),
            options=mb.RestoreOptions(create_database=True, progress_interval=0),
            progress=lambda _: watch.scan(),
        )
    watch.assert_clean()
    program = "pg_restore" if dump_format is mb.DumpFormat.CUSTOM else "psql"
    assert program in watch.programs
    assert any(name.startswith("botocore") for name in watch.loggers), watch.loggers
    assert ("monetr_backup", "INFO") in watch.levels
    assert result.database_restored
    assert world.pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == world.sample.dump
    assert bucket_objects(world.s3, restored) == world.sample.files


@dataclass(frozen=True)
class Failing:
    """An operation that must fail, and the error it must fail with."""

    id: str
    error: type[mb.BackupError]
    run: Callable[[World], Awaitable[object]]
    #: Over ~10 s.
    slow: bool = False

    def param(self) -> Any:
        return pytest.param(self, id=self.id, marks=[pytest.mark.slow] if self.slow else [])


def _backup(world: World, **changes: Any) -> Awaitable[object]:
    arguments: dict[str, Any] = {
        "database": world.pg.config(world.sample.database),
        "storage": world.storage(),
        "options": mb.BackupOptions(progress_interval=0),
        "archive": world.out_archive(),
        **changes,
    }
    return mb.backup(arguments.pop("archive"), **arguments)


def _restore(world: World, **changes: Any) -> Awaitable[object]:
    arguments: dict[str, Any] = {
        "database": world.new_database(),
        "storage": world.out_storage(),
        "options": mb.RestoreOptions(create_database=True, progress_interval=0),
        "archive": world.archive,
        **changes,
    }
    return mb.restore(arguments.pop("archive"), **arguments)


FAILING = [
    Failing(
        "backup-wrong-password",
        mb.DatabaseConnectionError,
        lambda w: _backup(w, database=w.pg.config(w.sample.database, password=WRONG_PASSWORD)),
    ),
    Failing(
        "restore-wrong-password",
        mb.DatabaseConnectionError,
        lambda w: _restore(w, database=w.new_database(password=WRONG_PASSWORD)),
    ),
    Failing(
        "backup-database-unreachable",
        mb.DatabaseConnectionError,
        lambda w: _backup(w, database=w.pg.config(w.sample.database, port=w.closed_port)),
    ),
    Failing(
        "restore-database-unreachable",
        mb.DatabaseConnectionError,
        lambda w: _restore(w, database=w.new_database(port=w.closed_port)),
    ),
    Failing(
        "backup-archive-wrong-secret",
        mb.ArchiveWriteError,
        lambda w: _backup(w, archive=w.out_archive(w.wrong_s3())),
    ),
    Failing(
        "backup-storage-wrong-secret",
        mb.StorageSourceError,
        lambda w: _backup(w, storage=w.storage(w.wrong_s3())),
    ),
    Failing(
        "restore-archive-wrong-secret",
        mb.ArchiveReadError,
        lambda w: _restore(w, archive=w.archive.model_copy(update={"s3": w.wrong_s3()})),
    ),
    Failing(
        "restore-storage-wrong-secret",
        mb.StorageTargetError,
        lambda w: _restore(w, storage=w.out_storage(w.wrong_s3())),
    ),
    # botocore tries a refused connection 5 times, backing off: ~15 s.
    Failing(
        "backup-s3-unreachable",
        mb.ArchiveWriteError,
        lambda w: _backup(w, archive=w.out_archive(w.unreachable_s3())),
        slow=True,
    ),
    # (With the default max_resumes=5, each resume tries 5 times again: ~95 s.)
    Failing(
        "restore-s3-unreachable",
        mb.ArchiveReadError,
        lambda w: _restore(
            w, archive=w.archive.model_copy(update={"s3": w.unreachable_s3(), "max_resumes": 0})
        ),
        slow=True,
    ),
]


@pytest.mark.anyio
@pytest.mark.usefixtures("password_auth")
@pytest.mark.reliability(
    "fault",
    "a backup or restore refused by the database or S3 (wrong password or secret key), or "
    "unable to reach either, while argv and logs are scanned for the secrets",
    "the typed error; no secret in any argv, log record, error text, cause or note",
)
@pytest.mark.parametrize("case", [case.param() for case in FAILING])
async def test_failing_operations_show_no_secret(world: World, case: Failing) -> None:
    children = child_processes()
    descriptors = open_descriptors()
    with SecretWatch(world.secrets) as watch, pytest.raises(case.error) as info:
        await case.run(world)
    # A transport closed as the error was raised lets go of its socket in the event
    # loop's next round (asyncpg closes the connection a server refused that way).
    await anyio.lowlevel.checkpoint()
    assert open_descriptors() <= descriptors
    watch.assert_clean()
    # The failure's ERROR record (its extras hold the error's message) was checked too.
    assert ("monetr_backup", "ERROR") in watch.levels
    assert_no_secret_in_error(info.value, world.secrets)
    assert child_processes() == children
    assert object_keys(world.s3.client(), world.out_bucket) == []
    assert multipart_uploads(world.s3.client(), world.out_bucket) == []
    for name in world.databases.created:
        assert not database_exists(world.pg, name)
