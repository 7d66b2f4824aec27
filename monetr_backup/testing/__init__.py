"""Throwaway real servers and sample data for tests, the demo and benchmarks.

Nothing here is used by the backup code itself. The helpers start real processes
(PostgreSQL via ``initdb``/``pg_ctl``: 15 from Debian's package, 16 and 18 from wheels
with :meth:`TemporaryPostgres.from_wheel`; SeaweedFS via ``weed mini``) in temporary
directories, remove everything again on exit, and hand out the library's own settings
for them::

    with TemporaryPostgres() as pg, TemporarySeaweedS3() as s3:
        pg.create_database("monetr")
        seed_monetr_like(pg, "monetr")
        s3.create_bucket("backups")
        s3.create_bucket("storage")
        await monetr_backup.backup(
            monetr_backup.S3Archive(s3=s3.config(), bucket="backups", key="a.tar.gz"),
            database=pg.config("monetr"),
            storage=s3.storage("storage"),
        )

Set ``MONETR_BACKUP_TEST_PG_DSN`` and use :func:`postgres_server` to run against an
existing PostgreSQL server instead of starting one.
"""

from .._public import publish
from ._postgres import (
    DEFAULT_PG_BIN_DIR,
    PG_DSN_ENV_VAR,
    PostgresServer,
    TemporaryPostgres,
    postgres_server,
)
from ._processes import CommandError
from ._seaweed import TemporarySeaweedS3
from ._seed import seed_monetr_like, seed_storage_dir
from ._wheels import WHEEL_POSTGRES, copy_wheel_postgres, wheel_postgres_bin_dir

# Grouped by what a caller looks for, so not sorted.
__all__ = [  # noqa: RUF022
    # servers
    "PostgresServer",
    "TemporaryPostgres",
    "TemporarySeaweedS3",
    "postgres_server",
    # PostgreSQL from wheels
    "copy_wheel_postgres",
    "wheel_postgres_bin_dir",
    # seed data
    "seed_monetr_like",
    "seed_storage_dir",
    # errors and constants
    "CommandError",
    "DEFAULT_PG_BIN_DIR",
    "PG_DSN_ENV_VAR",
    "WHEEL_POSTGRES",
]

publish(globals(), __all__)
