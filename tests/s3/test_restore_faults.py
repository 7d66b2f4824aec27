"""A restore from S3 (into a folder or a bucket) behind the fault proxy -> the database and
every file restored, or a typed error and both targets as they were."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import monetr_backup as mb
from monetr_backup.testing import PostgresServer, TemporarySeaweedS3

from support.databases import Databases
from support.fault_proxy import Rule, fault_proxy, get_object, put_object, refused_endpoint
from support.leaks import Leaks
from support.s3_cases import RestoreTargets, S3Samples, restore_targets

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Where:
    """The buckets a rule may pick requests in: the archive's and the storage target's."""

    archive_bucket: str
    archive_key: str
    target_bucket: str | None


@dataclass(frozen=True)
class Case:
    rules: Callable[[Where], list[Rule]]
    codec: mb.Codec = mb.Codec.GZIP
    dump_format: mb.DumpFormat = mb.DumpFormat.CUSTOM
    create: bool = True
    storage: str = "directory"
    error: type[mb.BackupError] | None = None
    match: str = ""


async def run_restore(
    s3: TemporarySeaweedS3,
    pg: PostgresServer,
    samples: S3Samples,
    case: Case,
    targets: RestoreTargets,
    *,
    archive_endpoint: str,
    storage_endpoint: str,
) -> mb.RestoreResult:
    archive = mb.S3Archive(
        s3=s3.config(endpoint_url=archive_endpoint),
        bucket=samples.bucket,
        key=S3Samples.key(case.codec, case.dump_format),
    )
    return await mb.restore(
        archive,
        database=pg.config(targets.database),
        storage=targets.storage(s3.config(endpoint_url=storage_endpoint)),
        options=targets.options(),
    )


def _archive_get(**action: object) -> Callable[[Where], list[Rule]]:
    return lambda w: [get_object(w.archive_bucket, w.archive_key, **action)]


def _target_put(**action: object) -> Callable[[Where], list[Rule]]:
    return lambda w: [put_object(w.target_bucket or "?", None, **action)]


TRANSIENT = {
    "archive-get-500": Case(_archive_get(status=500)),
    "archive-get-reset": Case(
        _archive_get(reset=True, times=3),
        codec=mb.Codec.ZSTD,
        dump_format=mb.DumpFormat.PLAIN,
        create=False,
    ),
    "archive-cut-then-resume-503": Case(
        lambda w: [
            get_object(w.archive_bucket, w.archive_key, cut_after=20_000),
            get_object(w.archive_bucket, w.archive_key, status=503),
        ],
        codec=mb.Codec.NONE,
        storage="bucket",
    ),
    "archive-cut-three-times": Case(
        lambda w: [
            get_object(w.archive_bucket, w.archive_key, cut_after=size)
            for size in (5_000, 30_000, 1)
        ],
        dump_format=mb.DumpFormat.PLAIN,
        create=False,
        storage="bucket",
    ),
    "target-put-500": Case(_target_put(status=500, skip=3), storage="bucket"),
    "target-put-reset": Case(
        _target_put(reset=True, times=3), codec=mb.Codec.ZSTD, storage="bucket", create=False
    ),
    "target-put-answer-lost": Case(
        _target_put(lose="500", skip=2), dump_format=mb.DumpFormat.PLAIN, storage="bucket"
    ),
    "target-head-503": Case(
        lambda w: [Rule(method="HEAD", path=f"^/{w.target_bucket}/", status=503, times=2)],
        codec=mb.Codec.NONE,
        storage="bucket",
        create=False,
    ),
}


@pytest.fixture
def targets_for(
    pg: PostgresServer, s3: TemporarySeaweedS3, databases: Databases, tmp_path: Path, bucket: str
) -> Callable[[Case], RestoreTargets]:
    def make(case: Case) -> RestoreTargets:
        return restore_targets(
            pg, s3, databases, tmp_path, create=case.create, storage=case.storage, bucket=bucket
        )

    return make


def _where(samples: S3Samples, case: Case, targets: RestoreTargets) -> Where:
    return Where(samples.bucket, S3Samples.key(case.codec, case.dump_format), targets.bucket)


@pytest.mark.reliability(
    "fault",
    "restore from S3 meeting a transient 500/503, resets, or the archive's download cut "
    "(up to three times, a resumed GET failing too); into a bucket, a PUT failing, reset or "
    "its answer lost, a HEAD failing",
    "retried or resumed; restore returns, database and every file as in the archive",
)
@pytest.mark.parametrize("case", TRANSIENT.values(), ids=TRANSIENT.keys())
async def test_transient_faults_are_retried(
    case: Case,
    s3: TemporarySeaweedS3,
    pg: PostgresServer,
    s3_samples: S3Samples,
    targets_for: Callable[[Case], RestoreTargets],
) -> None:
    targets = targets_for(case)
    rules = case.rules(_where(s3_samples, case, targets))
    async with fault_proxy(s3.ports["s3"], *rules) as proxy:
        leaks = Leaks()
        url = proxy.endpoint_url
        result = await run_restore(
            s3, pg, s3_samples, case, targets, archive_endpoint=url, storage_endpoint=url
        )
        await leaks.check()
    assert all(rule.exhausted for rule in rules), [(r.action, r.hits) for r in rules]
    targets.assert_restored(result, s3_samples.sample)


PERSISTENT = {
    "archive-get-500": Case(
        _archive_get(status=500, times=None), error=mb.ArchiveReadError, match="downloading"
    ),
    "archive-cut-every-time": Case(
        _archive_get(cut_after=20_000, times=None),
        codec=mb.Codec.NONE,
        dump_format=mb.DumpFormat.PLAIN,
        create=False,
        storage="bucket",
        error=mb.ArchiveReadError,
        match="downloading",
    ),
    "target-put-503-from-the-fifth": Case(
        _target_put(status=503, skip=4, times=None),
        codec=mb.Codec.ZSTD,
        storage="bucket",
        error=mb.StorageTargetError,
        match="restoring object",
    ),
    "target-put-503-existing-db": Case(
        _target_put(status=503, skip=6, times=None),
        dump_format=mb.DumpFormat.PLAIN,
        storage="bucket",
        create=False,
        error=mb.StorageTargetError,
        match="restoring object",
    ),
}


@pytest.mark.reliability(
    "fault",
    "restore from S3 meeting a persistent 500 on the archive's GET, a download cut every "
    "time it resumes, or (into a bucket) PUTs failing from the fifth or seventh object on",
    "ArchiveReadError / StorageTargetError; no database created, the existing one "
    "unchanged, folder and bucket as they were",
)
@pytest.mark.parametrize("case", PERSISTENT.values(), ids=PERSISTENT.keys())
@pytest.mark.usefixtures("quick_retries")
async def test_persistent_faults_fail_typed_and_leave_nothing(
    case: Case,
    s3: TemporarySeaweedS3,
    pg: PostgresServer,
    s3_samples: S3Samples,
    targets_for: Callable[[Case], RestoreTargets],
) -> None:
    assert case.error is not None
    targets = targets_for(case)
    rules = case.rules(_where(s3_samples, case, targets))
    async with fault_proxy(s3.ports["s3"], *rules) as proxy:
        leaks = Leaks()
        url = proxy.endpoint_url
        with pytest.raises(case.error, match=case.match):
            await run_restore(
                s3, pg, s3_samples, case, targets, archive_endpoint=url, storage_endpoint=url
            )
        await leaks.check()
    assert all(rule.hits for rule in rules)
    targets.assert_untouched()


@pytest.mark.reliability(
    "fault",
    "restore whose archive endpoint, or whose storage bucket's endpoint, refuses connections",
    "ArchiveReadError / StorageTargetError; no database created, folder and bucket as they were",
)
@pytest.mark.parametrize("refused", ["archive", "storage"])
@pytest.mark.usefixtures("quick_retries")
async def test_connection_refused_fails_typed(
    refused: str,
    s3: TemporarySeaweedS3,
    pg: PostgresServer,
    s3_samples: S3Samples,
    targets_for: Callable[[Case], RestoreTargets],
) -> None:
    case = Case(lambda _: [], storage="bucket", create=refused == "storage")
    targets = targets_for(case)
    with refused_endpoint() as url:
        leaks = Leaks()
        error = mb.ArchiveReadError if refused == "archive" else mb.StorageTargetError
        with pytest.raises(error, match="Could not connect"):
            await run_restore(
                s3,
                pg,
                s3_samples,
                case,
                targets,
                archive_endpoint=url if refused == "archive" else s3.endpoint_url,
                storage_endpoint=url if refused == "storage" else s3.endpoint_url,
            )
        await leaks.check()
    targets.assert_untouched()
