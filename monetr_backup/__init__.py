"""Streaming backup and restore of a self-hosted monetr instance.

``await backup(archive, database=..., storage=...)`` streams a pg_dump and the storage
objects into one compressed tar archive, in a local file or an S3 object, never holding
the dataset in memory or on disk. ``await restore(archive, ...)`` puts both back, all or
nothing; ``verify`` and ``inspect`` read an archive without touching any target.

General layout, for whoever works on this package next (a byte's way from pg_dump to S3
and back)::

    __init__.py   this one-call API            stages.py  the parts, for your own pipelines
    _backup.py    sources -> members -> tar -> codec -> sink
    _restore.py   reader -> database + storage targets -> commit both, or abort both
    _verify.py    reader, to the end, no target
    _open.py      a location (FileArchive, S3Storage, ...) -> the stage that serves it
    _protocols.py Member, StoredObject, DumpSource; ArchiveSink, StorageTarget, DatabaseTarget
    _catalog/     an entry next to each archive; list_backups, retention rules, prune
    _file_set.py  the files rows of the dump's snapshot -> which objects to take, and why
    _format/      the archive: layout, documents, members, tar write/read, codecs, checks
    _postgres/    client programs, preflight, snapshot, advisory lock, pg_dump source, pg_restore
    _s3/          client, errors, object settings, upload sink, download, bucket source/target
    _local/       file sink and reader, directory source and target, instance files, safe paths
    _monetr/      a monetr deployment: its YAML files and MONETR_* variables -> MonetrInstance
    _progress.py  Progress snapshots, rate and ETA, and the operations' log records
    _reports.py   a result's skipped/missing/conflicting objects -> WARNING records
    _threads.py   a stage's blocking calls in one thread of its own (why: malloc arenas)
    _config.py  _locations.py  _errors.py  _units.py  _public.py  _hashing.py
    testing/      throwaway servers and seed data for tests, examples and benchmarks
"""

import logging

from ._backup import backup
from ._catalog import (
    BackupListing,
    CatalogEntry,
    FileArchives,
    ListedBackup,
    PruneResult,
    RetentionPolicy,
    S3Archives,
    list_backups,
    prune,
)
from ._config import (
    BackupOptions,
    Codec,
    DumpFormat,
    Overwrite,
    PostgresConfig,
    RestoreOptions,
    S3Config,
    StorageMode,
    UploadChecksum,
)
from ._errors import (
    ArchiveLocationError,
    ArchiveReadError,
    ArchiveWriteError,
    BackupError,
    CatalogError,
    ChecksumError,
    ClientNotFoundError,
    ClientVersionError,
    ConcurrentOperationError,
    ConfigError,
    CorruptArchiveError,
    DatabaseConnectionError,
    DatabaseError,
    DecryptionError,
    InstanceFileError,
    PgDumpError,
    PgRestoreError,
    StorageError,
    StorageSourceError,
    StorageTargetError,
    TargetNotEmptyError,
    UnsafeMemberError,
)
from ._format.documents import Header, Manifest
from ._locations import DirectoryStorage, FileArchive, InstanceFiles, S3Archive, S3Storage
from ._monetr import MonetrInstance
from ._progress import Phase, Progress, ProgressCallback
from ._public import publish
from ._restore import RestoreResult, restore
from ._verify import InspectResult, Problem, VerifyReport, inspect, verify
from ._version import __version__

# Grouped by role, not sorted: the groups are the documentation.
__all__ = [  # noqa: RUF022
    # The operations
    "backup",
    "inspect",
    "restore",
    "verify",
    # Where things are
    "DirectoryStorage",
    "FileArchive",
    "InstanceFiles",
    "S3Archive",
    "S3Storage",
    # Settings
    "MonetrInstance",
    "BackupOptions",
    "Codec",
    "DumpFormat",
    "Overwrite",
    "PostgresConfig",
    "RestoreOptions",
    "S3Config",
    "StorageMode",
    "UploadChecksum",
    # What comes back
    "Header",
    "InspectResult",
    "Manifest",
    "Problem",
    "RestoreResult",
    "VerifyReport",
    # The catalog: listing and pruning backups from their entries
    "list_backups",
    "prune",
    "FileArchives",
    "S3Archives",
    "RetentionPolicy",
    "BackupListing",
    "CatalogEntry",
    "ListedBackup",
    "PruneResult",
    # Progress
    "Phase",
    "Progress",
    "ProgressCallback",
    # Errors, by what failed
    "BackupError",
    "ConfigError",
    "DatabaseError",
    "ClientNotFoundError",
    "ClientVersionError",
    "ConcurrentOperationError",
    "DatabaseConnectionError",
    "PgDumpError",
    "PgRestoreError",
    "TargetNotEmptyError",
    "StorageError",
    "StorageSourceError",
    "StorageTargetError",
    "InstanceFileError",
    "ArchiveLocationError",
    "ArchiveReadError",
    "ArchiveWriteError",
    "CatalogError",
    "DecryptionError",
    "CorruptArchiveError",
    "ChecksumError",
    "UnsafeMemberError",
    # The version
    "__version__",
]

publish(globals(), __all__)

# A library adds only a NullHandler to its logger: where records go is the application's
# choice (https://docs.python.org/3/howto/logging.html#configuring-logging-for-a-library).
logging.getLogger(__name__).addHandler(logging.NullHandler())
