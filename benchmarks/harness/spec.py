"""The servers -> a spec file (mode 0600) -> the PostgresConfig and S3Config our processes use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

import monetr_backup as mb

if TYPE_CHECKING:
    from monetr_backup.testing import PostgresServer, TemporarySeaweedS3

__all__ = ["postgres_config", "s3_config", "write_spec"]


def write_spec(
    path: Path, pg: PostgresServer, s3: TemporarySeaweedS3, *, database: str, bucket: str
) -> None:
    """Write where and how to reach both servers, and the archive bucket, to ``path``.

    The file holds the passwords, so it is created readable by its owner only; the
    contender processes get its path, never a secret in their argv.
    """
    path.touch(mode=0o600)
    path.write_text(
        json.dumps(
            {
                "pg": {
                    "host": pg.host,
                    "port": pg.port,
                    "user": pg.user,
                    "password": pg.password,
                    "database": database,
                },
                "s3": {
                    "endpoint": s3.endpoint_url,
                    "access_key": s3.access_key,
                    "secret_key": s3.secret_key,
                    "region": s3.region,
                },
                "bucket": bucket,
            }
        )
    )


def postgres_config(spec: dict[str, Any], database: str | None = None) -> mb.PostgresConfig:
    """The spec's server, with ``database`` instead of the spec's if given."""
    pg = spec["pg"]
    return mb.PostgresConfig(
        host=pg["host"],
        port=pg["port"],
        user=pg["user"],
        password=SecretStr(pg["password"]),
        database=database or pg["database"],
    )


def s3_config(spec: dict[str, Any], endpoint: str | None = None) -> mb.S3Config:
    """The spec's S3 server, reached through ``endpoint`` (the latency proxy) if given."""
    s3 = spec["s3"]
    return mb.S3Config(
        endpoint_url=endpoint or s3["endpoint"],
        region=s3["region"],
        access_key=s3["access_key"],
        secret_key=SecretStr(s3["secret_key"]),
    )
