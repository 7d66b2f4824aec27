"""Backups that fail or are cancelled leave nothing behind, and never leak a secret.

"Nothing behind" means: no object at the key (nor anywhere in the bucket), no
unfinished multipart upload, no archive file and no temporary file next to it, and no
pg_dump process (the autouse fixture in conftest checks the last one after every test).
Failures are injected for real: pg_dump is SIGKILLed or its server backend terminated,
the database refuses a password, the destination already exists.
"""

from __future__ import annotations

import signal
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

from monetr_backup import (
    ArchiveWriteError,
    BackupError,
    BackupOptions,
    Codec,
    DatabaseConnectionError,
    DirectoryStorage,
    FileArchive,
    Manifest,
    PgDumpError,
    Phase,
    PostgresConfig,
    Progress,
    S3Archive,
    S3Config,
    S3Storage,
    StorageMode,
    StorageSourceError,
    backup,
)
from monetr_backup._catalog.entry import ENTRY_SUFFIX

from support.env import Env, Sources
from support.processes import kill_pg_dump, pg_dump_children, process_cmdline
from support.secrets import WRONG_PASSWORD, full_text
from support.sizes import DUMP_PART_SIZE, MIB, MIN_PART
from support.targets import (
    assert_nothing_at,
    multipart_uploads,
    names_in,
    object_keys,
    read_bytes,
    write_bytes,
)

pytestmark = pytest.mark.anyio

KEY = "backups/monetr.tar"
#: No compression: archive bytes track dump bytes, so thresholds below are predictable.
#: (The ~11 MB dump of ``source_db`` is still being written when 5 MiB have gone by:
#: at most a few 256 KiB parts and a 1 MiB pipe lie between pg_dump and the archive.)
# Every snapshot: the tests inject their faults from the progress callback.
OPTIONS = BackupOptions(
    codec=Codec.NONE,
    dump_part_size=DUMP_PART_SIZE,
    progress_interval=0,
    # The whole corpus: these files are not the database's files rows.
    storage_mode=StorageMode.ALL,
)


class Target:
    """One destination of a test, S3 or a local file, and the checks that go with it."""

    def __init__(self, kind: str, env: Env) -> None:
        self.kind = kind
        self.env = env
        self.client = env.client
        self.bucket = env.bucket
        self.output_dir = env.output_dir
        self.path = env.output_dir / "monetr.tar"

    def destination(self, **changes: Any) -> S3Archive | FileArchive:
        if self.kind == "s3":
            # The smallest part size, so a multipart upload is under way early on.
            return S3Archive(
                s3=self.env.s3.config(), bucket=self.bucket, key=KEY, part_size=MIN_PART, **changes
            )
        return FileArchive(path=self.path, **changes)

    @property
    def started_threshold(self) -> int:
        """Archive bytes after which the destination holds something to clean up: a
        multipart upload with a part cut, or a temporary file with data."""
        return MIN_PART + 1 if self.kind == "s3" else MIB

    def in_progress(self) -> list[str]:
        """What the destination holds right now: unfinished uploads, or files."""
        if self.kind == "s3":
            return [upload["Key"] for upload in multipart_uploads(self.client, self.bucket)]
        return names_in(self.output_dir)

    def existing(self) -> bytes:
        if self.kind == "s3":
            data: bytes = self.client.get_object(Bucket=self.bucket, Key=KEY)["Body"].read()
            return data
        return read_bytes(self.path)

    def put(self, data: bytes) -> None:
        if self.kind == "s3":
            self.client.put_object(Bucket=self.bucket, Key=KEY, Body=data)
        else:
            write_bytes(self.path, data)

    def assert_only(self, data: bytes, *, entry: bool = False) -> None:
        """The destination holds ``data`` at the target, and nothing else at all but,
        with ``entry`` (``data`` is a committed backup's), the catalog entry next to it."""
        assert self.existing() == data
        if self.kind == "s3":
            assert multipart_uploads(self.client, self.bucket) == []
            assert object_keys(self.client, self.bucket) == [KEY] + [KEY + ENTRY_SUFFIX] * entry
        else:
            expected = [self.path.name] + [self.path.name + ENTRY_SUFFIX] * entry
            assert names_in(self.output_dir) == expected

    def assert_empty(self) -> None:
        if self.kind == "s3":
            assert_nothing_at(self.client, self.bucket, KEY)
        else:
            assert names_in(self.output_dir) == []


@pytest.fixture(params=["s3", "file"])
def target(request: pytest.FixtureRequest, env: Env) -> Target:
    return Target(request.param, env)


# --- pg_dump failures ----------------------------------------------------------------


@pytest.mark.usefixtures("password_auth")
async def test_bad_password_fails_preflight(
    target: Target, env: Env, source_db: str, sources: Sources
) -> None:
    with pytest.raises(DatabaseConnectionError) as info:
        await backup(
            target.destination(),
            database=env.pg.config(source_db, password=WRONG_PASSWORD),
            storage=DirectoryStorage(path=sources.directory),
            options=OPTIONS,
        )
    assert "password authentication failed" in str(info.value)
    text = full_text(info.value)
    assert WRONG_PASSWORD not in text
    assert env.pg.password not in text
    target.assert_empty()


@pytest.mark.reliability(
    "fault",
    "pg_dump killed, or its server backend terminated, while the archive is written",
    "PgDumpError with pg_dump's stderr; no archive, upload or temporary file left",
)
@pytest.mark.parametrize("how", ["sigkill", "terminate-backend"])
async def test_pg_dump_dying_midstream(
    how: str, target: Target, env: Env, source_db: str, sources: Sources
) -> None:
    """pg_dump dies while the archive is being written (a multipart upload or a temporary
    file under way): PgDumpError, and the destination is cleaned up. (Both storage kinds:
    a bucket source adds a client whose closing must not swallow the error.)"""
    seen: dict[str, Any] = {}
    storage: DirectoryStorage | S3Storage = DirectoryStorage(path=sources.directory)
    if how == "terminate-backend":
        storage = env.s3.storage(sources.bucket)

    def on_progress(progress: Progress) -> None:
        if "in_progress" in seen or progress.archive_bytes < target.started_threshold:
            return
        assert progress.phase == "dumping database"
        seen["in_progress"] = target.in_progress()
        if how == "sigkill":
            kill_pg_dump()
        else:
            seen["terminated"] = env.pg.psql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                f" WHERE datname = '{source_db}' AND application_name = 'pg_dump'"
            )

    with pytest.raises(PgDumpError) as info:
        await backup(
            target.destination(),
            database=env.pg.config(source_db),
            storage=storage,
            options=OPTIONS,
            progress=on_progress,
        )

    # The failure happened with cleanup work pending at the destination...
    if target.kind == "s3":
        assert seen["in_progress"] == [KEY]
    else:
        assert len(seen["in_progress"]) == 1
        assert seen["in_progress"][0].endswith(".partial")
    # ... and was reported as what it was.
    error = info.value
    if how == "sigkill":
        assert error.returncode == -signal.SIGKILL
        assert "pg_dump was killed" in str(error)
    else:
        assert seen["terminated"].strip() == "1"
        assert error.returncode == 1
        # libpq reports the server's FATAL if it arrived before the socket closed, or
        # just the closed connection if not: either way it is pg_dump's own stderr.
        assert (
            "terminating connection due to administrator command" in error.stderr_tail
            or "server closed the connection unexpectedly" in error.stderr_tail
        )
    assert env.pg.password not in full_text(error)
    target.assert_empty()


# --- cancellation --------------------------------------------------------------------


@pytest.mark.reliability(
    "cancellation",
    "backup cancelled while pg_dump streams, or while objects are fetched ahead",
    "cancelled; pg_dump killed, no archive, upload or temporary file left",
)
@pytest.mark.parametrize("phase", ["dumping database", "copying storage"])
async def test_cancel_from_progress_callback(
    phase: str, target: Target, env: Env, source_db: str, sources: Sources
) -> None:
    """Cancelled while pg_dump streams, or while storage objects are being fetched ahead
    from a bucket: the cancellation propagates, the destination is cleaned up."""
    seen: dict[str, Any] = {}

    with anyio.CancelScope() as scope:

        def on_progress(progress: Progress) -> None:
            if scope.cancel_called or progress.archive_bytes < target.started_threshold:
                return
            if progress.phase != phase:
                return
            if phase == "copying storage" and progress.objects_done < 50:
                return
            seen["in_progress"] = target.in_progress()
            seen["pg_dump"] = pg_dump_children()
            scope.cancel()

        await backup(
            target.destination(),
            database=env.pg.config(source_db),
            storage=env.s3.storage(sources.bucket, prefetch_objects=16),
            options=OPTIONS,
            progress=on_progress,
        )
    assert scope.cancelled_caught
    assert len(seen["in_progress"]) == 1
    if phase == "dumping database":
        assert len(seen["pg_dump"]) == 1
    else:
        assert seen["pg_dump"] == []  # pg_dump had finished
    assert pg_dump_children() == []
    target.assert_empty()


@pytest.mark.reliability(
    "cancellation",
    "backup cancelled by the caller's own timeout (another task) while data flows",
    "cancelled; pg_dump killed, nothing left at the destination",
)
async def test_cancel_from_outside_while_data_flows(
    target: Target, env: Env, source_db: str, sources: Sources
) -> None:
    """The caller's own timeout fires while the backup streams (another task cancels)."""
    flowing = anyio.Event()
    finished = False
    seen: dict[str, Any] = {}

    def on_progress(progress: Progress) -> None:
        if not flowing.is_set() and progress.archive_bytes >= target.started_threshold:
            seen["pg_dump"] = pg_dump_children()
            flowing.set()

    async def run() -> None:
        nonlocal finished
        await backup(
            target.destination(),
            database=env.pg.config(source_db),
            storage=DirectoryStorage(path=sources.directory),
            options=OPTIONS,
            progress=on_progress,
        )
        finished = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await flowing.wait()
        with anyio.move_on_after(0.02):
            await anyio.sleep_forever()
        tg.cancel_scope.cancel()

    assert not finished
    assert len(seen["pg_dump"]) == 1
    assert pg_dump_children() == []
    target.assert_empty()


# --- existing targets -----------------------------------------------------------------


async def test_existing_target_is_refused(target: Target, env: Env, source_db: str) -> None:
    """An archive already at the key or path is an error, found before pg_dump starts,
    and the old archive is left exactly as it was."""
    target.put(b"last week's backup")
    etag = (
        target.client.head_object(Bucket=env.bucket, Key=KEY)["ETag"]
        if target.kind == "s3"
        else None
    )

    with pytest.raises(ArchiveWriteError, match="already exists"):
        await backup(target.destination(), database=env.pg.config(source_db), options=OPTIONS)

    target.assert_only(b"last week's backup")
    if etag is not None:
        assert target.client.head_object(Bucket=env.bucket, Key=KEY)["ETag"] == etag


@pytest.mark.reliability(
    "fault",
    "another writer creates the archive's key or file while the backup runs",
    "ArchiveWriteError; the other writer's archive is kept, ours is not left",
)
@pytest.mark.parametrize("size", ["small", "multipart"])
async def test_target_appearing_during_backup_is_not_replaced(
    size: str, target: Target, env: Env, source_db: str, sources: Sources
) -> None:
    """Someone writes the target while the backup runs: the final step (a conditional
    PutObject for a one-part archive, else a conditional CompleteMultipartUpload; a
    hard link for a file) refuses to replace it, and the backup's data is cleaned up."""
    small = size == "small"
    threshold = 1 if small else target.started_threshold
    written: list[bool] = []

    def on_progress(progress: Progress) -> None:
        if progress.archive_bytes >= threshold and not written:
            target.put(b"written meanwhile")
            written.append(True)

    with pytest.raises(ArchiveWriteError, match=r"appeared while the backup ran|already exists"):
        await backup(
            target.destination(),
            # ~0.6 MB of storage objects (less than one part), or the ~11 MB dump.
            database=None if small else env.pg.config(source_db),
            storage=DirectoryStorage(path=sources.directory / "data" / "transactions")
            if small
            else None,
            options=OPTIONS,
            progress=on_progress,
        )

    assert written
    target.assert_only(b"written meanwhile")


async def test_overwrite_replaces_an_existing_archive(target: Target, sources: Sources) -> None:
    target.put(b"old")

    manifest = await backup(
        target.destination(),
        storage=DirectoryStorage(path=sources.directory / "data" / "special"),
        options=OPTIONS.model_copy(update={"replace_archive": True}),
    )

    data = target.existing()
    target.assert_only(data, entry=True)
    assert data[257:262] == b"ustar"
    assert manifest.object_count == 2
    assert manifest.top_folder.encode() in data


# --- secrets --------------------------------------------------------------------------


def test_configs_never_show_secrets() -> None:
    secret = "s3cr3t-Pa55word"
    configs = [
        PostgresConfig(password=SecretStr(secret)),
        S3Config(access_key="AKID", secret_key=SecretStr(secret)),
        S3Archive(s3=S3Config(secret_key=SecretStr(secret)), bucket="b", key="k"),
        S3Storage(s3=S3Config(secret_key=SecretStr(secret)), bucket="b"),
    ]
    for config in configs:
        for text in (repr(config), str(config), f"{config}", config.model_dump_json()):
            assert secret not in text
            assert "**********" in text


async def test_s3_errors_never_show_the_secret_key(env: Env, sources: Sources) -> None:
    secret = "wrong-s3-secret-Kd93"
    wrong = env.s3.config(secret_key=secret)

    with pytest.raises(ArchiveWriteError) as destination_error:
        await backup(
            S3Archive(s3=wrong, bucket=env.bucket, key=KEY),
            storage=DirectoryStorage(path=sources.directory / "data" / "special"),
        )
    with pytest.raises(StorageSourceError) as source_error:
        await backup(
            S3Archive(s3=env.s3.config(), bucket=env.bucket, key=KEY),
            storage=S3Storage(s3=wrong, bucket=sources.bucket),
        )

    # (A HEAD response has no body, so the refusal there is a bare 403.)
    assert "403" in str(destination_error.value)
    assert "SignatureDoesNotMatch" in str(source_error.value)
    for error in (destination_error.value, source_error.value):
        assert isinstance(error, BackupError)
        assert secret not in full_text(error)
        assert env.s3.secret_key not in full_text(error)
    assert_nothing_at(env.client, env.bucket, KEY)


async def test_password_only_in_pg_dump_environment(env: Env, source_db: str) -> None:
    """While a backup runs, pg_dump's argv (readable by any local user) has no password."""
    cmdlines: list[bytes] = []

    def on_progress(progress: Progress) -> None:
        if not cmdlines and progress.dump_bytes:
            cmdlines.extend(process_cmdline(pid) for pid in pg_dump_children())

    await backup(
        FileArchive(path=env.output_dir / "x.tar"),
        database=env.pg.config(source_db),
        options=OPTIONS,
        progress=on_progress,
    )
    assert len(cmdlines) == 1
    assert b"pg_dump" in cmdlines[0]
    assert env.pg.password.encode() not in cmdlines[0]


# --- cancelled at every phase: before the commit nothing, after it the result -----------


@pytest.mark.reliability(
    "cancellation",
    "backup cancelled at each progress phase (S3 object and local file)",
    "before committing: cancelled, nothing left; from committing on: the manifest, archive there",
)
@pytest.mark.parametrize(
    "phase",
    [Phase.STARTING, Phase.DUMPING_DATABASE, Phase.COPYING_STORAGE, Phase.COMMITTING, Phase.DONE],
)
async def test_cancel_at_each_phase(
    phase: Phase, target: Target, env: Env, source_db: str, sources: Sources
) -> None:
    """Cancelled as the backup enters ``phase``. Up to the point of no return the
    cancellation wins and nothing is left; from COMMITTING on the commit and everything
    after it run shielded, so the backup returns its manifest and the archive is there
    (issue 9: it used to raise "cancelled" with the archive visible)."""
    children = pg_dump_children()
    result: list[Manifest] = []
    with anyio.CancelScope() as scope:

        def on_progress(progress: Progress) -> None:
            if progress.phase is phase:
                scope.cancel()

        result.append(
            await backup(
                target.destination(),
                database=env.pg.config(source_db),
                storage=DirectoryStorage(path=sources.directory),
                options=OPTIONS,
                progress=on_progress,
            )
        )
    committed = phase in {Phase.COMMITTING, Phase.DONE}
    assert scope.cancelled_caught is not committed
    if committed:
        assert len(result) == 1
        target.assert_only(target.existing(), entry=True)
        assert target.existing()[257:262] == b"ustar"
    else:
        assert result == []
        target.assert_empty()
    assert pg_dump_children() == children
