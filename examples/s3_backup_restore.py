"""Back up to S3 and restore from S3, the way an ops script would.

Runs against a throwaway PostgreSQL and a local SeaweedFS S3 server so it works anywhere;
point the configs at your own servers to use it for real:

    python examples/s3_backup_restore.py
"""

from __future__ import annotations

from datetime import UTC, datetime

import anyio

import monetr_backup as mb
from monetr_backup.testing import TemporaryPostgres, TemporarySeaweedS3, seed_monetr_like


async def run(pg: TemporaryPostgres, s3: TemporarySeaweedS3) -> None:
    # Against your own servers: mb.S3Config(endpoint_url=..., access_key=..., secret_key=...)
    # and mb.PostgresConfig.from_dsn("postgresql://user:password@host:5432/monetr").
    s3_config = s3.config()
    # monetr's S3 storage provider keeps uploads at the bucket root.
    s3.client().put_object(
        Bucket="monetr-storage",
        Key="data/transactions/uploads/61/01HX/66/01HY",
        Body=b"Date,Description,Amount\n2024-03-01,Caf\xc3\xa9,-3.50\n",
    )
    source = pg.config("monetr")
    key = f"monetr/{datetime.now(UTC):%Y-%m-%dT%H%M%SZ}.tar.gz"

    manifest = await mb.backup(
        mb.S3Archive(s3=s3_config, bucket="backups", key=key),
        database=source,
        storage=s3.storage("monetr-storage"),
        # This example's one object is not a file the seeded rows name: take the whole
        # bucket (monetr's default, REFERENCED, takes what the dump's files rows name).
        options=mb.BackupOptions(kms_provider="plaintext", storage_mode=mb.StorageMode.ALL),
    )
    print(f"backed up {manifest.dump_bytes:,} dump bytes, {manifest.object_count} objects")

    archive = mb.S3Archive(s3=s3_config, bucket="backups", key=key)
    info = await mb.inspect(archive)
    print(f"archive {info.header.top_folder}: {info.manifest.member_count} members")

    result = await mb.restore(
        archive,
        database=source.model_copy(update={"database": "monetr_copy"}),
        storage=s3.storage("monetr-storage-copy"),
        options=mb.RestoreOptions(create_database=True),
    )
    print(
        f"restored: database={result.database_restored}, "
        f"objects={result.objects_restored}, conflicts={result.conflicts}"
    )


def main() -> None:
    """Start the servers, seed them, run the example."""
    with TemporaryPostgres() as pg, TemporarySeaweedS3() as s3:
        pg.create_database("monetr")
        seed_monetr_like(pg, "monetr")
        for bucket in ("monetr-storage", "monetr-storage-copy", "backups"):
            s3.create_bucket(bucket)
        anyio.run(run, pg, s3)


if __name__ == "__main__":
    main()
