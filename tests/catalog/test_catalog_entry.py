"""backup() -> a catalog entry next to the archive, after the commit; what it holds, and
what happens when it cannot be written."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from pathlib import Path

import pytest

import monetr_backup as mb
from monetr_backup._catalog.digest import HashingSink
from monetr_backup._catalog.entry import (
    ENTRY_SUFFIX,
    CatalogEntry,
    build_entry,
    recipient_fingerprint,
)
from monetr_backup._hashing import BATCH_BYTES, INLINE_BYTES
from monetr_backup._local.file_sink import open_file_sink
from monetr_backup.testing import PostgresServer, TemporarySeaweedS3

from support.age import age_keygen, encrypted_sample_backup, ssh_keygen
from support.fault_proxy import Rule, fault_proxy, object_path
from support.samples import Sample
from support.targets import file_mode, multipart_uploads, names_in, object_keys

pytestmark = pytest.mark.anyio


def _options() -> mb.BackupOptions:
    return mb.BackupOptions(storage_mode=mb.StorageMode.ALL, kms_provider="plaintext")


async def test_file_backup_writes_its_entry_after_the_archive(
    pg: PostgresServer, sample: Sample, output_dir: Path
) -> None:
    """The entry sits at ``<archive>.catalog.json`` (0600), and records the archive's
    exact size and SHA-256, the manifest's totals and the versions."""
    archive = mb.FileArchive(path=output_dir / "nightly.tar.gz")
    manifest = await mb.backup(
        archive,
        database=pg.config(sample.database),
        storage=mb.DirectoryStorage(path=sample.storage),
        options=_options(),
    )
    assert names_in(output_dir) == ["nightly.tar.gz", "nightly.tar.gz" + ENTRY_SUFFIX]
    entry_path = output_dir / ("nightly.tar.gz" + ENTRY_SUFFIX)
    assert file_mode(entry_path) == 0o600
    entry = mb.CatalogEntry.model_validate_json(entry_path.read_bytes())
    stored = archive.path.read_bytes()
    assert entry.archive == "nightly.tar.gz"
    assert entry.archive_size == len(stored)
    assert entry.archive_sha256 == hashlib.sha256(stored).hexdigest()
    assert entry.created_at == manifest.created_at
    assert entry.completed_at == manifest.completed_at
    assert entry.codec is mb.Codec.GZIP
    assert not entry.encrypted
    assert entry.recipients == []
    assert entry.database == sample.database
    assert entry.server_version
    assert entry.pg_dump_version
    assert entry.library_version == mb.__version__
    assert entry.totals.member_count == manifest.member_count
    assert entry.totals.dump_bytes == manifest.dump_bytes
    assert entry.totals.object_count == manifest.object_count == len(sample.files)
    assert entry.totals.object_bytes == manifest.object_bytes
    assert entry.summary.kms_provider == "plaintext"
    assert entry.summary.skipped_count == 0
    assert manifest.file_set is not None
    assert entry.summary.file_set is not None
    assert entry.summary.file_set_mode == manifest.file_set.mode
    assert entry.summary.file_set.objects == sum(
        k.objects for k in manifest.file_set.kinds.values()
    )
    assert entry.summary.live_secrets == (manifest.live_secrets is not None)

    # inspect() answers from the entry when asked to, and reads the archive otherwise.
    assert await mb.inspect(archive, use_catalog=True) == entry
    inspected = await mb.inspect(archive)
    assert isinstance(inspected, mb.InspectResult)
    assert inspected.manifest == manifest


async def test_s3_backup_writes_its_entry_next_to_the_object(
    s3: TemporarySeaweedS3, pg: PostgresServer, sample: Sample, bucket: str
) -> None:
    key = "nightly/monetr.tar.zst"
    archive = mb.S3Archive(s3=s3.config(), bucket=bucket, key=key)
    options = _options().model_copy(update={"codec": mb.Codec.ZSTD})
    manifest = await mb.backup(
        archive,
        database=pg.config(sample.database),
        storage=mb.DirectoryStorage(path=sample.storage),
        options=options,
    )
    client = s3.client()
    assert object_keys(client, bucket) == [key, key + ENTRY_SUFFIX]
    stored = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    entry = mb.CatalogEntry.model_validate_json(
        client.get_object(Bucket=bucket, Key=key + ENTRY_SUFFIX)["Body"].read()
    )
    assert entry.archive == "monetr.tar.zst"
    assert entry.archive_size == len(stored)
    assert entry.archive_sha256 == hashlib.sha256(stored).hexdigest()
    assert entry.codec is mb.Codec.ZSTD
    assert entry.totals.object_count == manifest.object_count

    listing = await mb.list_backups(mb.S3Archives(s3=s3.config(), bucket=bucket, prefix="nightly/"))
    assert [(b.name, b.entry) for b in listing.backups] == [("monetr.tar.zst", entry)]
    assert listing.backups[0].size_matches
    assert await mb.inspect(archive, use_catalog=True) == entry


async def test_an_entry_that_does_not_match_is_not_used_by_inspect(
    pg: PostgresServer, sample: Sample, output_dir: Path
) -> None:
    """An entry recording another size than the archive has is not believed: inspect reads
    the archive itself."""
    archive = mb.FileArchive(path=output_dir / "nightly.tar.gz")
    await mb.backup(archive, database=pg.config(sample.database), options=_options())
    entry_path = output_dir / ("nightly.tar.gz" + ENTRY_SUFFIX)
    document = json.loads(entry_path.read_text())
    document["archive_size"] += 1
    entry_path.write_text(json.dumps(document))
    assert isinstance(await mb.inspect(archive, use_catalog=True), mb.InspectResult)
    entry_path.unlink()
    assert isinstance(await mb.inspect(archive, use_catalog=True), mb.InspectResult)


@pytest.mark.reliability(
    "fault",
    "the catalog entry cannot be written after the archive committed (a folder in the "
    "entry file's place; S3: every PUT of the entry answered 500)",
    "backup returns its manifest, the archive is complete, a warning is logged; "
    "list_backups reports an archive without an entry",
)
@pytest.mark.usefixtures("quick_retries")
async def test_a_failed_entry_write_keeps_the_archive_and_is_reported(
    *,
    s3: TemporarySeaweedS3,
    pg: PostgresServer,
    sample: Sample,
    output_dir: Path,
    bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="monetr_backup")
    # A local file: the entry's name is taken by a folder, so its rename fails.
    path = output_dir / "nightly.tar.gz"
    (output_dir / ("nightly.tar.gz" + ENTRY_SUFFIX)).mkdir()
    manifest = await mb.backup(
        mb.FileArchive(path=path), database=pg.config(sample.database), options=_options()
    )
    assert (await mb.verify(mb.FileArchive(path=path))).manifest == manifest
    listing = await mb.list_backups(mb.FileArchives(path=output_dir))
    assert listing.backups == []
    assert listing.archives_without_entry == ["nightly.tar.gz"]
    assert not [name for name in names_in(output_dir) if name.endswith(".partial")]

    # S3: the server fails every PUT of the entry.
    key = "monetr.tar.gz"
    rule = Rule(method="PUT", path=object_path(bucket, key + ENTRY_SUFFIX), status=500, times=None)
    async with fault_proxy(s3.ports["s3"], rule) as proxy:
        archive = mb.S3Archive(
            s3=s3.config(endpoint_url=proxy.endpoint_url), bucket=bucket, key=key
        )
        manifest = await mb.backup(archive, database=pg.config(sample.database), options=_options())
    assert rule.hits >= 1
    client = s3.client()
    assert object_keys(client, bucket) == [key]
    assert multipart_uploads(client, bucket) == []
    assert (await mb.verify(mb.S3Archive(s3=s3.config(), bucket=bucket, key=key))).ok
    listing = await mb.list_backups(mb.S3Archives(s3=s3.config(), bucket=bucket))
    assert listing.archives_without_entry == [key]

    warnings = [r for r in caplog.records if "catalog entry" in r.getMessage()]
    assert len(warnings) == 2
    assert all(r.levelno == logging.WARNING for r in warnings)


def test_an_encrypted_archives_entry_holds_counts_only(sample: Sample) -> None:
    """Told the archive is encrypted (recipients given), the entry keeps counts, sizes and
    times, and nothing read from the data: no object key, database name, schema, server
    version or KMS provider."""
    manifest = sample.manifests[mb.DumpFormat.CUSTOM]
    header = mb.Header(
        created_at=manifest.created_at,
        library_version=mb.__version__,
        top_folder=manifest.top_folder,
        database=sample.database,
        dump_format=mb.DumpFormat.CUSTOM,
        dump_part_size=1 << 20,
        storage=f"directory {sample.storage}",
        codec=mb.Codec.GZIP,
    )
    manifest = manifest.model_copy(
        update={"kms_provider": "aws", "skipped": [], "skipped_count": 3}
    )
    recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
    plain, entry = (
        build_entry(
            archive="x.tar.gz.age",
            size=10,
            sha256="0" * 64,
            header=header,
            manifest=manifest,
            dump=None,
            recipients=recipients,
        )
        for recipients in ([], [recipient])
    )
    text = entry.model_dump_json()
    assert entry.encrypted
    assert entry.recipients == [recipient_fingerprint(recipient)]
    assert recipient not in text
    for key in sample.files:
        assert key not in text
    for member in manifest.members:
        assert member.name not in text
        assert member.sha256 not in text
    assert sample.database not in text
    assert str(sample.storage) not in text
    assert entry.database is None
    assert entry.server_version is None
    assert entry.summary.schema_version is None
    assert entry.summary.kms_provider is None
    assert entry.summary.file_set_kinds is None
    # ... and keeps the counts that the unencrypted entry has.
    assert entry.totals == plain.totals
    assert entry.summary.file_set == plain.summary.file_set
    assert entry.summary.skipped_count == 3
    assert plain.summary.kms_provider == "aws"
    assert plain.database == sample.database


def test_ssh_recipients_fingerprint_as_ssh_keygen_does(tmp_path: Path) -> None:
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = (tmp_path / "id.pub").read_text().strip()
    printed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(tmp_path / "id.pub")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[1]
    assert recipient_fingerprint(public) == printed
    assert recipient_fingerprint("age1abc") != recipient_fingerprint("age1abd")


async def test_the_hashing_sink_hashes_exactly_what_the_file_holds(tmp_path: Path) -> None:
    """Chunks on both sides of the thread's batch size and of what the end hashes inline,
    empty ones included, in order."""
    sizes = [0, 1, INLINE_BYTES, BATCH_BYTES - 1, BATCH_BYTES, 3 * BATCH_BYTES + 7, 5]
    chunks = [bytes([n % 251]) * size for n, size in enumerate(sizes)]
    path = tmp_path / "a.tar"
    async with open_file_sink(path) as file_sink:
        sink = HashingSink(file_sink)
        for chunk in chunks:
            await sink.write(chunk)
        await sink.commit()
    stored = path.read_bytes()
    assert sink.size == len(stored) == sum(sizes)
    assert await sink.hexdigest() == hashlib.sha256(stored).hexdigest()


async def test_an_encrypted_backups_entry_names_its_recipients_and_nothing_inside(
    pg: PostgresServer, sample: Sample, tmp_path: Path
) -> None:
    """A real encrypted backup (age and SSH recipients): its entry says encrypted, lists
    the recipients' fingerprints (OpenSSH's for the SSH key), and its text holds none of
    the archive's object keys, nor the database's name or the recipients themselves."""
    age_key = age_keygen(tmp_path / "age.key")
    ssh_key = ssh_keygen(tmp_path / "id_ed25519")
    path = tmp_path / "encrypted.tar.gz.age"
    manifest = await encrypted_sample_backup(
        pg, sample, path, [age_key.recipient, ssh_key.recipient]
    )
    text = (tmp_path / ("encrypted.tar.gz.age" + ENTRY_SUFFIX)).read_text()
    entry = CatalogEntry.model_validate_json(text)
    assert entry.encrypted
    assert entry.recipients == [
        recipient_fingerprint(age_key.recipient),
        recipient_fingerprint(ssh_key.recipient),
    ]
    data = path.read_bytes()
    assert (entry.archive_size, entry.archive_sha256) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    assert entry.totals.object_count == manifest.object_count > 0
    keys = [m.name.split("/storage/", 1)[1] for m in manifest.members if "/storage/" in m.name]
    for secret in [*keys, sample.database, age_key.recipient, ssh_key.recipient.split()[1]]:
        assert secret not in text
