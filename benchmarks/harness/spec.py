"""The servers' config objects -> a spec file (mode 0600) -> the same objects in our processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import monetr_backup as mb

if TYPE_CHECKING:
    from monetr_backup.testing import PostgresServer, TemporarySeaweedS3

__all__ = ["postgres_config", "s3_config", "write_spec"]


def _revealed(config: mb.PostgresConfig | mb.S3Config, secret: str) -> dict[str, Any]:
    """``config`` as JSON values, with its secret in clear (the spec file is 0600)."""
    values = config.model_dump(mode="json")
    hidden = getattr(config, secret)
    values[secret] = hidden.get_secret_value() if hidden is not None else None
    return values


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
                "pg": _revealed(pg.config(database), "password"),
                # Plain JSON values: the baseline loop reads them without the library.
                "s3": _revealed(s3.config(), "secret_key"),
                "bucket": bucket,
            }
        )
    )


def postgres_config(spec: dict[str, Any], database: str | None = None) -> mb.PostgresConfig:
    """The spec's server, with ``database`` instead of the spec's if given."""
    config = mb.PostgresConfig.model_validate(spec["pg"])
    return config.model_copy(update={"database": database}) if database else config


def s3_config(spec: dict[str, Any], endpoint: str | None = None) -> mb.S3Config:
    """The spec's S3 server, reached through ``endpoint`` (the latency proxy) if given."""
    config = mb.S3Config.model_validate(spec["s3"])
    return config.model_copy(update={"endpoint_url": endpoint}) if endpoint else config
