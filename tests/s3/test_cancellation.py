"""A backup to S3 and a restore from S3, cancelled after random delays and at each progress
phase -> returned with everything committed, or cancelled with nothing of it left.

Requests go through the fault proxy with 10 ms of latency each, so the windows around
CreateMultipartUpload, the parts and CompleteMultipartUpload are as wide as on a network.
The delays are fractions of the operation's duration, measured once per kind of case in
the session (the first case of each kind runs it uncancelled first).
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

import monetr_backup as mb
from monetr_backup.testing import PostgresServer, TemporarySeaweedS3

from support.databases import Databases
from support.fault_proxy import FaultProxy, Rule, fault_proxy, get_object
from support.leaks import Leaks
from support.names import unique_name
from support.s3_cases import (
    Payload,
    RestoreTargets,
    S3Samples,
    assert_nothing_at_key,
    check_s3_archive,
    restore_targets,
    storage_of,
)
from support.samples import Sample

pytestmark = pytest.mark.anyio


#: Where in the operation's measured duration the cancellations fall (fixed seed).
def _fractions(seed: int, count: int) -> list[float]:
    rng = random.Random(seed)
    return sorted(rng.uniform(0.0, 1.1) for _ in range(count))


BACKUP_FRACTIONS = _fractions(9, 12)
RESTORE_FRACTIONS = _fractions(10, 10)

CODECS = list(mb.Codec)
FORMATS = list(mb.DumpFormat)

#: Phases before the point of no return: a cancellation there must be delivered.
BEFORE_COMMIT = {
    mb.Phase.STARTING,
    mb.Phase.DUMPING_DATABASE,
    mb.Phase.COPYING_STORAGE,
    mb.Phase.RESTORING_DATABASE,
    mb.Phase.RESTORING_STORAGE,
}


def _ids(fractions: list[float]) -> list[str]:
    return [f"{i:02d}-at-{fraction:.0%}" for i, fraction in enumerate(fractions)]


def _latency() -> Rule:
    return Rule(response_delay=0.01, times=None)


@pytest.fixture(scope="session")
def measured() -> dict[str, float]:
    """Seconds an uncancelled operation of each kind took (filled by the first case)."""
    return {}


# --- backup -------------------------------------------------------------------------------


@dataclass
class BackupCase:
    s3: TemporarySeaweedS3
    pg: PostgresServer
    sample: Sample
    payload: Payload
    bucket: str
    source: str
    codec: mb.Codec
    dump_format: mb.DumpFormat

    async def run(
        self,
        proxy: FaultProxy,
        key: str,
        progress: mb.ProgressCallback | None = None,
    ) -> mb.Manifest:
        s3 = self.s3.config(endpoint_url=proxy.endpoint_url)
        return await mb.backup(
            mb.S3Archive(s3=s3, bucket=self.bucket, key=key),
            database=self.pg.config(self.sample.database),
            storage=storage_of(self.payload, self.source, s3),
            options=mb.BackupOptions(
                codec=self.codec,
                dump_format=self.dump_format,
                progress_interval=0,
                # The payload's objects are not the sample rows' files: take them all.
                storage_mode=mb.StorageMode.ALL,
            ),
            progress=progress,
        )

    def check(self, key: str, returned: bool, tmp_path: Path) -> None:
        if returned:
            check_s3_archive(
                self.s3.client(),
                self.bucket,
                key,
                files=self.payload.files,
                database=self.sample.database,
                codec=self.codec,
                dump_format=self.dump_format,
                dest=tmp_path / unique_name("extracted"),
            )
        else:
            assert_nothing_at_key(self.s3.client(), self.bucket, key)


async def _measure_backup(case: BackupCase, proxy: FaultProxy, tmp_path: Path) -> float:
    started = time.monotonic()
    await case.run(proxy, "measured.tar")
    took = time.monotonic() - started
    case.check("measured.tar", True, tmp_path)
    return took


@pytest.fixture
def backup_case(
    s3: TemporarySeaweedS3, pg: PostgresServer, sample: Sample, payload: Payload, bucket: str
) -> Callable[[str, int], BackupCase]:
    def make(source: str, index: int) -> BackupCase:
        codec, dump_format = CODECS[index % 3], FORMATS[index % 2]
        return BackupCase(s3, pg, sample, payload, bucket, source, codec, dump_format)

    return make


@pytest.mark.reliability(
    "cancellation",
    "S3 backup (directory or bucket storage; gzip, zstd, none; custom, plain) cancelled "
    "after a random delay (12 per source, seed 9, spread over 110% of its measured duration)",
    "returned with the archive correct, or cancelled with no object and no multipart upload",
)
@pytest.mark.parametrize("fraction", BACKUP_FRACTIONS, ids=_ids(BACKUP_FRACTIONS))
@pytest.mark.parametrize("source", ["directory", "bucket"])
async def test_backup_cancelled_after_a_random_delay(
    source: str,
    fraction: float,
    backup_case: Callable[[str, int], BackupCase],
    measured: dict[str, float],
    tmp_path: Path,
) -> None:
    case = backup_case(source, BACKUP_FRACTIONS.index(fraction))
    async with fault_proxy(case.s3.ports["s3"], _latency()) as proxy:
        if f"backup-{source}" not in measured:
            measured[f"backup-{source}"] = await _measure_backup(case, proxy, tmp_path)
        leaks = Leaks()
        returned = False
        with anyio.move_on_after(fraction * measured[f"backup-{source}"]):
            await case.run(proxy, "cancelled.tar")
            returned = True
        await leaks.check()
    case.check("cancelled.tar", returned, tmp_path)


BACKUP_PHASES = [
    mb.Phase.STARTING,
    mb.Phase.DUMPING_DATABASE,
    mb.Phase.COPYING_STORAGE,
    mb.Phase.COMMITTING,
    mb.Phase.DONE,
]


async def _cancel_at(
    phase: mb.Phase, run: Callable[[mb.ProgressCallback], Awaitable[object]]
) -> tuple[bool, list[mb.Phase]]:
    """Run, cancelling from the progress callback when ``phase`` begins: whether it
    returned, and the phases it reported."""
    seen: list[mb.Phase] = []
    scope = anyio.CancelScope()

    def progress(snapshot: mb.Progress) -> None:
        if not seen or seen[-1] != snapshot.phase:
            seen.append(snapshot.phase)
        if snapshot.phase == phase:
            scope.cancel()

    returned = False
    with scope:
        await run(progress)
        returned = True
    assert phase in seen
    return returned, seen


@pytest.mark.reliability(
    "cancellation",
    "S3 backup (directory or bucket storage) cancelled from its progress callback as each "
    "phase begins: starting, dumping database, copying storage, committing, done",
    "cancelled with nothing at the key before committing; from committing on, returned "
    "with the archive correct",
)
@pytest.mark.parametrize("phase", BACKUP_PHASES, ids=[phase.name for phase in BACKUP_PHASES])
@pytest.mark.parametrize("source", ["directory", "bucket"])
async def test_backup_cancelled_at_each_phase(
    source: str,
    phase: mb.Phase,
    backup_case: Callable[[str, int], BackupCase],
    tmp_path: Path,
) -> None:
    case = backup_case(source, BACKUP_PHASES.index(phase))
    async with fault_proxy(case.s3.ports["s3"], _latency()) as proxy:
        leaks = Leaks()
        returned, seen = await _cancel_at(
            phase, lambda progress: case.run(proxy, "cancelled.tar", progress)
        )
        await leaks.check()
    assert returned is (phase not in BEFORE_COMMIT), seen
    case.check("cancelled.tar", returned, tmp_path)


@pytest.mark.reliability(
    "cancellation",
    "S3 backup (directory or bucket storage; none, gzip) cancelled from its progress "
    "callback at its last update before committing (the final archive bytes)",
    "cancelled with no object and no multipart upload, or returned with the archive correct",
)
@pytest.mark.parametrize("codec", [mb.Codec.NONE, mb.Codec.GZIP])
@pytest.mark.parametrize("source", ["directory", "bucket"])
async def test_backup_cancelled_at_its_last_update_before_committing(
    source: str,
    codec: mb.Codec,
    backup_case: Callable[[str, int], BackupCase],
    tmp_path: Path,
) -> None:
    """The callback runs in the backup's own task: cancelling there reaches the stages'
    tasks (upload workers, prefetchers) at once, while the backup's task itself only
    sees the cancellation at its next checkpoint, which must come before the commit."""
    case = backup_case(source, 0)
    case.codec = codec
    async with fault_proxy(case.s3.ports["s3"]) as proxy:
        sizes: list[int] = []
        await case.run(proxy, "measured.tar", lambda p: sizes.append(p.archive_bytes))
        # Past the middle of the last chunk (codec trailer, manifest): a second run's
        # size differs from the first's by far less than that chunk.
        steps = sorted(set(sizes))
        last = (steps[-2] + steps[-1]) // 2
        leaks = Leaks()
        scope = anyio.CancelScope()
        fired: list[mb.Progress] = []

        def progress(snapshot: mb.Progress) -> None:
            if snapshot.archive_bytes > last and not fired:
                fired.append(snapshot)
                scope.cancel()

        returned = False
        with scope:
            await case.run(proxy, "cancelled.tar", progress)
            returned = True
        await leaks.check()
    assert fired
    assert fired[0].phase is mb.Phase.COPYING_STORAGE
    case.check("cancelled.tar", returned, tmp_path)


# --- restore ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Into:
    """A restore's targets: a new or existing database (``clean``: with a table of its own
    to replace), storage in a folder or a bucket."""

    create: bool
    storage: str
    clean: bool = False

    @property
    def name(self) -> str:
        database = "new-db" if self.create else "existing-db" + ("-clean" if self.clean else "")
        return f"{database}-{self.storage}"


INTO = [
    Into(create=True, storage="directory"),
    Into(create=False, storage="bucket"),
    Into(create=True, storage="bucket"),
    Into(create=False, storage="directory", clean=True),
]


@dataclass
class RestoreCase:
    s3: TemporarySeaweedS3
    pg: PostgresServer
    samples: S3Samples
    databases: Databases
    root: Path
    bucket: str
    into: Into
    codec: mb.Codec
    dump_format: mb.DumpFormat

    def targets(self) -> RestoreTargets:
        return restore_targets(
            self.pg,
            self.s3,
            self.databases,
            self.root,
            create=self.into.create,
            storage=self.into.storage,
            bucket=self.bucket,
            clean=self.into.clean,
        )

    async def run(
        self,
        proxy: FaultProxy,
        targets: RestoreTargets,
        progress: mb.ProgressCallback | None = None,
    ) -> mb.RestoreResult:
        s3 = self.s3.config(endpoint_url=proxy.endpoint_url)
        return await mb.restore(
            mb.S3Archive(
                s3=s3, bucket=self.samples.bucket, key=S3Samples.key(self.codec, self.dump_format)
            ),
            database=self.pg.config(targets.database),
            storage=targets.storage(s3),
            options=targets.options(progress_interval=0),
            progress=progress,
        )


@pytest.fixture
def restore_case(
    *,
    s3: TemporarySeaweedS3,
    pg: PostgresServer,
    s3_samples: S3Samples,
    databases: Databases,
    tmp_path: Path,
    bucket: str,
) -> Callable[[Into, int], RestoreCase]:
    def make(into: Into, index: int) -> RestoreCase:
        codec, dump_format = CODECS[index % 3], FORMATS[index % 2]
        return RestoreCase(
            s3, pg, s3_samples, databases, tmp_path, bucket, into, codec, dump_format
        )

    return make


async def _measure_restore(case: RestoreCase, proxy: FaultProxy) -> float:
    targets = case.targets()
    started = time.monotonic()
    result = await case.run(proxy, targets)
    took = time.monotonic() - started
    targets.assert_restored(result, case.samples.sample)
    return took


@pytest.mark.reliability(
    "cancellation",
    "restore from S3 (new database or existing one, with clean too; folder or bucket; "
    "gzip, zstd, none; custom, plain) cancelled after a random delay (10 per target kind, "
    "seed 10, spread over 110% of its measured duration)",
    "returned with database and files restored, or cancelled with no database created, "
    "the existing one unchanged, folder and bucket as they were",
)
@pytest.mark.parametrize("fraction", RESTORE_FRACTIONS, ids=_ids(RESTORE_FRACTIONS))
@pytest.mark.parametrize("into", INTO, ids=[into.name for into in INTO])
async def test_restore_cancelled_after_a_random_delay(
    into: Into,
    fraction: float,
    restore_case: Callable[[Into, int], RestoreCase],
    measured: dict[str, float],
) -> None:
    case = restore_case(into, RESTORE_FRACTIONS.index(fraction))
    async with fault_proxy(case.s3.ports["s3"], _latency()) as proxy:
        if into.name not in measured:
            measured[into.name] = await _measure_restore(case, proxy)
        targets = case.targets()
        leaks = Leaks()
        result: mb.RestoreResult | None = None
        with anyio.move_on_after(fraction * measured[into.name]):
            result = await case.run(proxy, targets)
        await leaks.check()
    if result is None:
        targets.assert_untouched()
    else:
        targets.assert_restored(result, case.samples.sample)


RESTORE_PHASES = [
    mb.Phase.STARTING,
    mb.Phase.RESTORING_DATABASE,
    mb.Phase.RESTORING_STORAGE,
    mb.Phase.COMMITTING,
    mb.Phase.DONE,
]


@pytest.mark.reliability(
    "cancellation",
    "restore from S3 (new or existing database, folder or bucket) cancelled from its "
    "progress callback as each phase begins: starting, restoring database, restoring "
    "storage, committing, done",
    "cancelled with both targets as they were before committing; from committing on, "
    "returned with everything restored",
)
@pytest.mark.parametrize("phase", RESTORE_PHASES, ids=[phase.name for phase in RESTORE_PHASES])
@pytest.mark.parametrize("into", INTO, ids=[into.name for into in INTO])
async def test_restore_cancelled_at_each_phase(
    into: Into,
    phase: mb.Phase,
    restore_case: Callable[[Into, int], RestoreCase],
) -> None:
    case = restore_case(into, RESTORE_PHASES.index(phase))
    targets = case.targets()
    results: list[mb.RestoreResult] = []

    async def run(progress: mb.ProgressCallback) -> None:
        results.append(await case.run(proxy, targets, progress))

    async with fault_proxy(case.s3.ports["s3"], _latency()) as proxy:
        leaks = Leaks()
        returned, seen = await _cancel_at(phase, run)
        await leaks.check()
    assert returned is (phase not in BEFORE_COMMIT), seen
    if returned:
        targets.assert_restored(results[0], case.samples.sample)
    else:
        targets.assert_untouched()


# --- cancelled while a chosen request is in flight ----------------------------------------


@dataclass(frozen=True)
class InFlight:
    """A request held 0.3 s by the proxy after the server answered it, and a cancellation
    arriving as the answer does (the server has done its part, the client knows nothing),
    or (``on_hit``) as the request reaches the proxy. ``hold_back`` names a storage
    object whose GET is held 1 s, so that the backup is not committing yet."""

    rule: Callable[[str], Rule]
    returns: bool
    hold_back: str | None = None
    on_hit: bool = False


BACKUP_IN_FLIGHT = {
    "upload-part": InFlight(
        # Its answer may come after the backup started committing: cancelled on its way.
        lambda _: Rule(method="PUT", query="partNumber"),
        False,
        hold_back="small/05.txt",
        on_hit=True,
    ),
    "complete": InFlight(lambda _: Rule(method="POST", query="uploadId"), True),
    "storage-get": InFlight(lambda bucket: Rule(method="GET", path=f"^/{bucket}/blobs/1"), False),
}


@pytest.mark.reliability(
    "cancellation",
    "S3 backup cancelled while an UploadPart, CompleteMultipartUpload or a storage "
    "object's GET is in flight (held by the proxy after the server answered)",
    "cancelled with nothing at the key; at Complete (the point of no return) returned "
    "with the archive correct",
)
@pytest.mark.parametrize("held", BACKUP_IN_FLIGHT.values(), ids=BACKUP_IN_FLIGHT.keys())
async def test_backup_cancelled_while_a_request_is_in_flight(
    held: InFlight, backup_case: Callable[[str, int], BackupCase], tmp_path: Path
) -> None:
    case = backup_case("bucket", 0)
    scope = anyio.CancelScope()
    rule = held.rule(case.payload.bucket)
    rule.response_delay = 0.3
    if held.on_hit:
        rule.on_hit = lambda _: scope.cancel()
    else:
        rule.on_answer = lambda _: scope.cancel()
    rules = [rule]
    if held.hold_back is not None:
        rules.append(get_object(case.payload.bucket, held.hold_back, response_delay=1.0))
    async with fault_proxy(case.s3.ports["s3"], *rules) as proxy:
        leaks = Leaks()
        returned = False
        with scope:
            await case.run(proxy, "cancelled.tar")
            returned = True
        await leaks.check()
    assert rule.hits == 1
    if not held.on_hit:
        assert [e.status for e in proxy.exchanges(rule)][-1:] == [200]
    assert returned is held.returns
    case.check("cancelled.tar", returned, tmp_path)


RESTORE_IN_FLIGHT = {
    "first-put": Rule(method="PUT", without="partNumber"),
    "third-put": Rule(method="PUT", without="partNumber", skip=2),
    "head": Rule(method="HEAD", skip=4),
}


@pytest.mark.reliability(
    "cancellation",
    "restore into a bucket cancelled while an object's PutObject (the first, the third) or "
    "HEAD is in flight (held by the proxy after the server stored or answered it)",
    "cancelled; no database created, the bucket as it was (the object just stored deleted)",
)
@pytest.mark.parametrize("held", RESTORE_IN_FLIGHT.keys())
async def test_restore_cancelled_while_a_request_is_in_flight(
    held: str, restore_case: Callable[[Into, int], RestoreCase]
) -> None:
    case = restore_case(Into(create=True, storage="bucket"), 0)
    targets = case.targets()
    assert targets.bucket is not None
    scope = anyio.CancelScope()
    template = RESTORE_IN_FLIGHT[held]
    rule = Rule(
        method=template.method,
        path=f"^/{targets.bucket}/",
        without=template.without,
        skip=template.skip,
        response_delay=0.3,
        on_answer=lambda _: scope.cancel(),
    )
    async with fault_proxy(case.s3.ports["s3"], rule) as proxy:
        leaks = Leaks()
        with scope:
            await case.run(proxy, targets)
        await leaks.check()
    assert scope.cancelled_caught
    assert rule.hits == 1
    # The object was stored (or, for the HEAD, found absent) before the cancellation.
    assert [e.status for e in proxy.exchanges(rule)][-1:] == [404 if held == "head" else 200]
    targets.assert_untouched()


@pytest.mark.reliability(
    "cancellation",
    "restore from S3 (new or existing database, folder or bucket) cancelled from its "
    "progress callback at its last update before committing (the last object staged)",
    "cancelled with both targets as they were, or returned with everything restored",
)
@pytest.mark.parametrize("into", INTO, ids=[into.name for into in INTO])
async def test_restore_cancelled_at_its_last_update_before_committing(
    into: Into, restore_case: Callable[[Into, int], RestoreCase]
) -> None:
    case = restore_case(into, 0)
    targets = case.targets()
    scope = anyio.CancelScope()
    fired: list[mb.Progress] = []
    total = len(case.samples.sample.files)

    def progress(snapshot: mb.Progress) -> None:
        if snapshot.objects_done == total and not fired:
            fired.append(snapshot)
            scope.cancel()

    result: mb.RestoreResult | None = None
    async with fault_proxy(case.s3.ports["s3"]) as proxy:
        leaks = Leaks()
        with scope:
            result = await case.run(proxy, targets, progress)
        await leaks.check()
    assert fired
    assert fired[0].phase is mb.Phase.RESTORING_STORAGE
    if result is None:
        targets.assert_untouched()
    else:
        targets.assert_restored(result, case.samples.sample)
