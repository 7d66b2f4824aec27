"""A backup to S3 behind the fault proxy -> the archive, whole and correct, or a typed error
and nothing at the key: no object, no multipart upload, no child process, no descriptor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
import pytest

import monetr_backup as mb
from monetr_backup.testing import PostgresServer, TemporarySeaweedS3

from support.fault_proxy import (
    Rule,
    complete_upload,
    create_upload,
    fault_proxy,
    get_object,
    refused_endpoint,
    upload_part,
)
from support.leaks import Leaks
from support.s3_cases import (
    Payload,
    assert_nothing_at_key,
    check_s3_archive,
    storage_of,
    uploads_at,
)
from support.samples import Sample

pytestmark = pytest.mark.anyio

KEY = "backups/monetr.tar"


@dataclass(frozen=True)
class Backup:
    """One backup of the sample database and the payload to ``bucket``/``KEY``."""

    s3: TemporarySeaweedS3
    pg: PostgresServer
    sample: Sample
    payload: Payload
    bucket: str
    source: str = "directory"
    codec: mb.Codec = mb.Codec.GZIP
    dump_format: mb.DumpFormat = mb.DumpFormat.CUSTOM
    with_storage: bool = True

    async def run(
        self, endpoint_url: str, *, replace: bool = False, source_endpoint: str | None = None
    ) -> mb.Manifest:
        s3 = self.s3.config(endpoint_url=endpoint_url)
        source = self.s3.config(endpoint_url=source_endpoint or endpoint_url)
        return await mb.backup(
            mb.S3Archive(s3=s3, bucket=self.bucket, key=KEY),
            database=self.pg.config(self.sample.database),
            storage=storage_of(self.payload, self.source, source) if self.with_storage else None,
            options=mb.BackupOptions(
                codec=self.codec,
                dump_format=self.dump_format,
                replace_archive=replace,
                # The payload's objects are not the sample rows' files: take them all.
                storage_mode=mb.StorageMode.ALL,
            ),
        )

    def check_archive(self, tmp_path: Path) -> None:
        check_s3_archive(
            self.s3.client(),
            self.bucket,
            KEY,
            files=self.payload.files if self.with_storage else {},
            database=self.sample.database,
            codec=self.codec,
            dump_format=self.dump_format,
            dest=tmp_path / "extracted",
        )

    def check_nothing_left(self) -> None:
        assert_nothing_at_key(self.s3.client(), self.bucket, KEY)


@pytest.fixture
def backup(
    s3: TemporarySeaweedS3, pg: PostgresServer, sample: Sample, payload: Payload, bucket: str
) -> Backup:
    return Backup(s3, pg, sample, payload, bucket)


# --- CreateMultipartUpload: issue 9, items 1 and 2 ------------------------------------------


@pytest.mark.reliability(
    "cancellation",
    "S3 backup cancelled while CreateMultipartUpload is in flight (held 0.5 s by the proxy, "
    "before or after the server created the upload)",
    "cancelled; no multipart upload, nothing at the key",
)
@pytest.mark.parametrize("held", ["request", "response"])
async def test_cancelled_while_create_is_in_flight(held: str, backup: Backup) -> None:
    """Issue 9 item 1: the cancellation arrives while CreateMultipartUpload waits at the
    proxy. Held after the server answered, the upload exists and only the library knows
    (will know) its id: it must still be aborted."""
    scope = anyio.CancelScope()
    hold = {"delay" if held == "request" else "response_delay": 0.5}
    rule = create_upload(on_hit=lambda _: scope.cancel(), **hold)
    async with fault_proxy(backup.s3.ports["s3"], rule) as proxy:
        leaks = Leaks()
        with scope:
            await backup.run(proxy.endpoint_url)
    assert scope.cancelled_caught
    await leaks.check()
    assert rule.hits == 1
    assert [e.status for e in proxy.exchanges(rule)] == [200]  # the server did create it
    backup.check_nothing_left()


@pytest.mark.reliability(
    "fault",
    "S3 backup whose CreateMultipartUpload response is lost after the server created the "
    "upload (connection dropped, or 500), so botocore creates a second one",
    "backup returns, archive correct; the first upload aborted, none left",
)
@pytest.mark.parametrize("lose", ["drop", "500"])
async def test_a_lost_create_response_leaves_no_upload(
    lose: str, backup: Backup, tmp_path: Path
) -> None:
    """Issue 9 item 2: the retried create made a second upload; the backup uses one and
    aborts the other."""
    rule = create_upload(lose=lose)
    async with fault_proxy(backup.s3.ports["s3"], rule) as proxy:
        leaks = Leaks()
        await backup.run(proxy.endpoint_url)
        await leaks.check()
    creates = [e for e in proxy.log if e.method == "POST" and "uploads" in e.query]
    assert [(e.action, e.status) for e in creates] == [(f"lose {lose}", 200), ("pass", 200)]
    backup.check_archive(tmp_path)
    assert uploads_at(backup.s3.client(), backup.bucket, KEY) == []


# --- transient faults: retried, the archive correct -------------------------------------------


@dataclass(frozen=True)
class Transient:
    """A fault that goes away, the rules that make it, and the backup that meets it."""

    rules: Callable[[Payload], list[Rule]]
    source: str = "directory"
    codec: mb.Codec = mb.Codec.GZIP
    dump_format: mb.DumpFormat = mb.DumpFormat.CUSTOM


TRANSIENT = {
    "part-500": Transient(lambda _: [upload_part(status=500)]),
    "part-2-503-twice": Transient(
        lambda _: [upload_part(status=503, skip=1, times=2)],
        codec=mb.Codec.ZSTD,
        dump_format=mb.DumpFormat.PLAIN,
    ),
    "part-reset": Transient(lambda _: [upload_part(reset=True, times=3)], codec=mb.Codec.NONE),
    "part-stored-answer-lost": Transient(
        lambda _: [upload_part(lose="500")], source="bucket", dump_format=mb.DumpFormat.PLAIN
    ),
    "part-answer-cut": Transient(lambda _: [upload_part(skip=1, cut_after=0)], codec=mb.Codec.ZSTD),
    "create-503": Transient(lambda _: [create_upload(status=503, times=2)]),
    "complete-500": Transient(lambda _: [complete_upload(status=500)], codec=mb.Codec.ZSTD),
    "complete-reset": Transient(
        lambda _: [complete_upload(reset=True)], source="bucket", codec=mb.Codec.NONE
    ),
    "head-503": Transient(lambda _: [Rule(method="HEAD", status=503, times=2)]),
    "storage-get-500": Transient(
        lambda p: [get_object(p.bucket, "blobs/1.bin", status=500)],
        source="bucket",
        codec=mb.Codec.ZSTD,
    ),
    "storage-get-reset": Transient(
        lambda p: [get_object(p.bucket, "small/03.txt", reset=True, times=2)],
        source="bucket",
        dump_format=mb.DumpFormat.PLAIN,
    ),
    "storage-list-503": Transient(
        lambda p: [Rule(method="GET", path=f"^/{p.bucket}$", query="list-type", status=503)],
        source="bucket",
        codec=mb.Codec.NONE,
    ),
}


@pytest.mark.reliability(
    "fault",
    "S3 backup meeting a transient 500/503, a reset connection or a lost or cut answer on "
    "a part, CreateMultipartUpload, Complete, HEAD, a storage object's GET or the listing",
    "retried; backup returns, archive correct, no upload left",
)
@pytest.mark.parametrize("case", TRANSIENT.values(), ids=TRANSIENT.keys())
async def test_transient_faults_are_retried(
    case: Transient, backup: Backup, tmp_path: Path
) -> None:
    run = replace(backup, source=case.source, codec=case.codec, dump_format=case.dump_format)
    rules = case.rules(run.payload)
    async with fault_proxy(run.s3.ports["s3"], *rules) as proxy:
        leaks = Leaks()
        await run.run(proxy.endpoint_url)
        await leaks.check()
    assert all(rule.exhausted for rule in rules), [(r.action, r.hits) for r in rules]
    run.check_archive(tmp_path)


# --- persistent faults: a typed error, nothing left -------------------------------------------


@dataclass(frozen=True)
class Persistent:
    rules: Callable[[Payload], list[Rule]]
    error: type[mb.BackupError]
    match: str
    source: str = "directory"


PERSISTENT = {
    "part-500": Persistent(
        # Whichever part runs out of retries first is named: with both in flight, and
        # each signed in a worker thread, that need not be part 1.
        lambda _: [upload_part(status=500, times=None)],
        mb.ArchiveWriteError,
        r"uploading part \d+ of",
    ),
    "complete-503": Persistent(
        lambda _: [complete_upload(status=503, times=None)], mb.ArchiveWriteError, "completing"
    ),
    "create-always-lost": Persistent(
        lambda _: [create_upload(lose="500", times=None)], mb.ArchiveWriteError, "starting"
    ),
    "head-500": Persistent(
        lambda _: [Rule(method="HEAD", status=500, times=None)], mb.ArchiveWriteError, "check"
    ),
    "storage-get-503": Persistent(
        lambda p: [get_object(p.bucket, "blobs/2.bin", status=503, times=None)],
        mb.StorageSourceError,
        r"blobs/2\.bin",
        source="bucket",
    ),
    "storage-get-cut": Persistent(
        lambda p: [get_object(p.bucket, "blobs/0.bin", cut_after=100_000)],
        mb.StorageSourceError,
        r"blobs/0\.bin",
        source="bucket",
    ),
}


@pytest.mark.reliability(
    "fault",
    "S3 backup meeting a persistent 5xx (parts, Complete, HEAD, a storage object), every "
    "CreateMultipartUpload answer lost, or a storage object's GET cut mid-body",
    "ArchiveWriteError / StorageSourceError; no object, no multipart upload left",
)
@pytest.mark.parametrize("case", PERSISTENT.values(), ids=PERSISTENT.keys())
@pytest.mark.usefixtures("quick_retries")
async def test_persistent_faults_fail_typed_and_leave_nothing(
    case: Persistent, backup: Backup
) -> None:
    run = replace(backup, source=case.source)
    rules = case.rules(run.payload)
    async with fault_proxy(run.s3.ports["s3"], *rules) as proxy:
        leaks = Leaks()
        with pytest.raises(case.error, match=case.match):
            await run.run(proxy.endpoint_url)
        await leaks.check()
    assert all(rule.hits for rule in rules)
    if case.match == "starting":
        # botocore's max_attempts=5 are retries: six creates reached the server, and each
        # made an upload; all of them aborted.
        assert [e.status for e in proxy.exchanges(rules[0])] == [200] * 6
    run.check_nothing_left()


@pytest.mark.reliability(
    "fault",
    "S3 backup whose archive endpoint, or whose storage bucket's endpoint, refuses connections",
    "ArchiveWriteError / StorageSourceError; nothing at the key",
)
@pytest.mark.parametrize("refused", ["archive", "storage"])
@pytest.mark.usefixtures("quick_retries")
async def test_connection_refused_fails_typed(refused: str, backup: Backup) -> None:
    run = replace(backup, source="bucket")
    with refused_endpoint() as url:
        leaks = Leaks()
        if refused == "archive":
            with pytest.raises(mb.ArchiveWriteError, match="Could not connect"):
                await run.run(url, source_endpoint=run.s3.endpoint_url)
        else:
            with pytest.raises(mb.StorageSourceError, match="Could not connect"):
                await run.run(run.s3.endpoint_url, source_endpoint=url)
        await leaks.check()
    run.check_nothing_left()


# --- the answer to the commit lost ------------------------------------------------------------


@pytest.mark.reliability(
    "fault",
    "S3 backup whose CompleteMultipartUpload (or single PutObject) answer is lost after the "
    "server made the archive visible; botocore's retry meets If-None-Match",
    "backup returns (the object at the key is its own archive: same ETag and size), "
    "archive correct, no upload left",
)
@pytest.mark.parametrize("lose", ["drop", "500"])
@pytest.mark.parametrize("multipart", [True, False], ids=["complete", "put-object"])
@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "replace"])
async def test_a_lost_commit_answer_still_returns(
    *, lose: str, multipart: bool, overwrite: bool, backup: Backup, tmp_path: Path
) -> None:
    """Past the point of no return the archive is visible and correct: raising would tell
    the caller "failed" about an archive that is there (and that, not knowing, they might
    never delete). Without storage the archive is one small PutObject."""
    run = replace(backup, with_storage=multipart)
    rule = Rule(
        method="POST" if multipart else "PUT",
        path=f"^/{run.bucket}/",
        query="uploadId" if multipart else None,
        without=None if multipart else "partNumber",
        lose=lose,  # type: ignore[arg-type]
    )
    if overwrite:
        run.s3.client().put_object(Bucket=run.bucket, Key=KEY, Body=b"an older archive")
    async with fault_proxy(run.s3.ports["s3"], rule) as proxy:
        leaks = Leaks()
        await run.run(proxy.endpoint_url, replace=overwrite)
        await leaks.check()
    assert [e.status for e in proxy.exchanges(rule)][:1] == [200]
    assert rule.hits == 1
    run.check_archive(tmp_path)
