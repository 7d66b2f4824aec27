"""The servers and a test's fresh databases, bucket and folders -> the bundles most tests take."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monetr_backup.testing import PostgresServer, TemporarySeaweedS3

from .databases import Databases


@dataclass
class Env:
    """What most backup tests need: the servers (``env.pg.config(database)`` and
    ``env.s3.config()`` reach them), fresh databases, a fresh bucket and an empty output
    directory."""

    pg: PostgresServer
    s3: TemporarySeaweedS3
    databases: Databases
    bucket: str
    output_dir: Path
    tmp_path: Path

    @property
    def client(self) -> Any:
        """A synchronous botocore S3 client, for checking what the backup left."""
        return self.s3.client()


@dataclass
class Sources:
    """The storage corpus, and a directory and a bucket that both hold it."""

    corpus: dict[str, bytes]
    directory: Path
    bucket: str
