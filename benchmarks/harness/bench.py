"""Settings and the two servers -> Bench: the databases, buckets and tools every case uses."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from pathlib import Path

import botocore.config
import botocore.session
from contenders.aws_shell import AwsCli
from contenders.ours import Ours

from monetr_backup.testing import TemporaryPostgres, TemporarySeaweedS3

from . import data
from .log import log
from .measure import Meter, clean_env
from .settings import MB, MIB, Settings
from .spec import write_spec

__all__ = ["BACKUP_BUCKET", "PROXY_BUCKET", "STORAGE_BUCKET", "Bench"]

BACKUP_BUCKET = "backups"
STORAGE_BUCKET = "storage"
PROXY_BUCKET = "storage-proxy"


class Bench:
    """Servers, data and the pieces every case needs."""

    def __init__(
        self, settings: Settings, pg: TemporaryPostgres, s3: TemporarySeaweedS3, work: Path
    ) -> None:
        self.settings = settings
        self.pg = pg
        self.s3 = s3
        self.work = work
        self.meter = Meter(work, {"postgres": pg.pid, "seaweedfs": s3.pid})
        self.aws = AwsCli(settings, s3)
        self.databases: dict[float, tuple[str, int]] = {}  # target MiB -> (name, dump bytes)
        self.main_db = "monetr"
        self.main_dump = work / "monetr.Fc-Z0.dump"
        self.dump_bytes = 0
        self.transactions = 0
        self.storage_ready = False
        #: Key of a default database-only archive left by the backup case for the restore case.
        self.restore_archive: str | None = None
        self._storage_thread: threading.Thread | None = None
        self._storage_error: BaseException | None = None
        self.object_count = 0
        self.object_bytes = 0
        self.proxy_count = 0
        self.proxy_bytes = 0
        self.spec = work / "spec.json"
        write_spec(self.spec, pg, s3, database=self.main_db, bucket=BACKUP_BUCKET)
        self.ours = Ours(settings, self.spec)
        self.tables: list[str] = []

    def pg_env(self, database: str) -> dict[str, str]:
        """The environment of a client of ``database``: libpq's variables, no others."""
        return clean_env() | self.pg.env(database) | {"PGCONNECT_TIMEOUT": "10"}

    # -- S3 helpers

    def object_size(self, bucket: str, key: str) -> int:
        """The size of an object."""
        return int(self.s3.client().head_object(Bucket=bucket, Key=key)["ContentLength"])

    def delete(self, bucket: str, key: str) -> None:
        """Delete an object if it is there."""
        with contextlib.suppress(Exception):
            self.s3.client().delete_object(Bucket=bucket, Key=key)

    def buckets(self) -> None:
        """Create the three buckets unless they exist."""
        client = self.s3.client()
        for bucket in (BACKUP_BUCKET, STORAGE_BUCKET, PROXY_BUCKET):
            with contextlib.suppress(Exception):
                client.create_bucket(Bucket=bucket)

    # -- data

    def check_restored(self, database: str, transactions: int) -> None:
        """Drop ``database``, a restore's target, after checking its transaction count."""
        try:
            count = int(self.pg.psql("SELECT count(*) FROM transactions", database))
        finally:
            self.pg.drop_database(database)
        if count != transactions:
            raise RuntimeError(f"{database} has {count} transactions, expected {transactions}")

    def database(self, dump_mib: float) -> tuple[str, int]:
        """A database of about ``dump_mib`` MiB of dump: (name, exact dump bytes)."""
        if dump_mib in self.databases:
            return self.databases[dump_mib]
        name = self.main_db if dump_mib == self.settings.dump_mib else f"mem_{int(dump_mib)}"
        log(f"generating database {name!r} (~{dump_mib:g} MiB of pg_dump -Fc -Z0)")
        started = time.perf_counter()
        rows = data.create_database(self.pg, name, dump_mib)
        generated = time.perf_counter() - started
        # A first dump, to measure its size and warm the page cache; the main one is kept
        # as the local file pg_restore reads in the restore case.
        target = self.main_dump if name == self.main_db else self.work / f"{name}.dump"
        started = time.perf_counter()
        subprocess.run(
            [str(self.pg.bin_dir / "pg_dump"), "-Fc", "-Z0", "-f", str(target)],
            env=self.pg_env(name),
            check=True,
        )
        dumped = time.perf_counter() - started
        size = target.stat().st_size
        if name != self.main_db:
            target.unlink()
        else:
            self.dump_bytes = size
            self.transactions = int(self.pg.psql("SELECT count(*) FROM transactions", name))
        log(
            f"  {rows:,} transactions in {generated:.1f} s; pg_dump -Fc -Z0: "
            f"{size / MIB:.1f} MiB ({size / MB / dumped:.0f} MB/s, warm-up)"
        )
        self.databases[dump_mib] = (name, size)
        return name, size

    def start_storage(self) -> None:
        """Upload the storage objects in the background while the database is generated."""
        if self._storage_thread is None and not self.storage_ready:
            self._storage_thread = threading.Thread(target=self._upload_storage, daemon=True)
            self._storage_thread.start()

    def storage(self) -> None:
        """Wait for :meth:`start_storage` (or upload now)."""
        if self._storage_thread is not None:
            self._storage_thread.join()
            self._storage_thread = None
        if not self.storage_ready:
            self._upload_storage()
        if self._storage_error is not None:
            raise self._storage_error

    def _upload_storage(self) -> None:
        if self.storage_ready:
            return
        try:
            self._upload_objects()
        except BaseException as exc:
            self._storage_error = exc
        self.storage_ready = True

    def _upload_objects(self) -> None:
        settings = self.settings
        # A client of its own: more connections than the helper's, and no CRC32 per PUT.
        client = botocore.session.get_session().create_client(
            "s3",
            config=botocore.config.Config(
                s3={"addressing_style": "path"},
                max_pool_connections=16,
                request_checksum_calculation="when_required",
                retries={"max_attempts": 5, "mode": "standard"},
            ),
            **self.s3.client_kwargs(),
        )
        log(
            f"uploading {settings.objects:,} objects of {settings.object_size} bytes and "
            f"{len(settings.large_objects)} large ones "
            f"({', '.join(f'{s / MIB:g}' for s in settings.large_objects)} MiB)"
        )
        started = time.perf_counter()
        try:
            self.object_count, self.object_bytes = data.upload_objects(
                client,
                STORAGE_BUCKET,
                count=settings.objects,
                size=settings.object_size,
                large=settings.large_objects,
            )
            if settings.proxy_objects < settings.objects:
                self.proxy_count, self.proxy_bytes = data.upload_objects(
                    client,
                    PROXY_BUCKET,
                    count=settings.proxy_objects,
                    size=settings.object_size,
                    large=settings.large_objects,
                )
        finally:
            client.close()
        log(f"  objects uploaded in {time.perf_counter() - started:.1f} s")
