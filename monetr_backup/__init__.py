"""Streaming backup and restore of a self-hosted monetr instance.

``await backup(...)`` streams a pg_dump and the storage objects into one tar archive
(compressed) at an S3 key or a local file, never holding the dataset in memory or on
disk. The stages it is built from are exported too, for pipelines of your own::

    open_pg_dump (parts) ----------+
    directory_objects / open_s3_objects --+--> archive_members -> encode_tar -> compress
        -> open_s3_upload / open_file_sink / your ArchiveSink

``await restore(...)`` runs the same flow backwards, checking every member on the way;
``verify(...)`` and ``inspect(...)`` read an archive without touching any target::

    file_bytes / s3_bytes -> open_tar_entries -> ArchiveReader
        -> run_restore (pg_restore / psql) + DirectoryTarget / S3Target
"""

from ._backup import backup
from ._config import (
    BackupOptions,
    Codec,
    DirectoryStorage,
    DumpFormat,
    FileArchive,
    FileDestination,
    Overwrite,
    PostgresConfig,
    RestoreOptions,
    S3Archive,
    S3Config,
    S3Destination,
    S3Storage,
    UploadChecksum,
)
from ._errors import (
    ArchiveError,
    BackupError,
    ChecksumError,
    DatabaseConnectionError,
    DestinationError,
    PgDumpError,
    RestoreError,
    SourceError,
    StorageSourceError,
    TargetNotEmptyError,
    UnsafeMemberError,
)
from ._format.archive_reader import ArchiveReader, StoredObject
from ._format.compress import compress
from ._format.decompress import detect_codec
from ._format.documents import DumpSummary, Header, Manifest, MemberEntry, SkippedObject
from ._format.members import DumpInput, Ledger, archive_members
from ._format.tar_read import TarEntry, open_tar_entries
from ._format.tar_write import encode_tar
from ._local.directory_source import directory_objects
from ._local.directory_target import DirectoryTarget
from ._local.file_reader import file_bytes
from ._local.file_sink import FileSink, open_file_sink
from ._postgres.pg_dump import DumpPart, PgDump, open_pg_dump
from ._postgres.pg_restore import run_restore
from ._progress import Progress, ProgressCallback
from ._protocols import ArchiveSink, Member
from ._restore import InspectResult, Problem, RestoreResult, VerifyReport, inspect, restore, verify
from ._s3.bucket_source import open_s3_objects, s3_objects
from ._s3.bucket_target import S3Target
from ._s3.client import open_s3_client
from ._s3.download import s3_bytes
from ._s3.upload import S3Upload, open_s3_upload
from ._version import __version__

__all__ = [
    "ArchiveError",
    "ArchiveReader",
    "ArchiveSink",
    "BackupError",
    "BackupOptions",
    "ChecksumError",
    "Codec",
    "DatabaseConnectionError",
    "DestinationError",
    "DirectoryStorage",
    "DirectoryTarget",
    "DumpFormat",
    "DumpInput",
    "DumpPart",
    "DumpSummary",
    "FileArchive",
    "FileDestination",
    "FileSink",
    "Header",
    "InspectResult",
    "Ledger",
    "Manifest",
    "Member",
    "MemberEntry",
    "Overwrite",
    "PgDump",
    "PgDumpError",
    "PostgresConfig",
    "Problem",
    "Progress",
    "ProgressCallback",
    "RestoreError",
    "RestoreOptions",
    "RestoreResult",
    "S3Archive",
    "S3Config",
    "S3Destination",
    "S3Storage",
    "S3Target",
    "S3Upload",
    "SkippedObject",
    "SourceError",
    "StorageSourceError",
    "StoredObject",
    "TarEntry",
    "TargetNotEmptyError",
    "UnsafeMemberError",
    "UploadChecksum",
    "VerifyReport",
    "__version__",
    "archive_members",
    "backup",
    "compress",
    "detect_codec",
    "directory_objects",
    "encode_tar",
    "file_bytes",
    "inspect",
    "open_file_sink",
    "open_pg_dump",
    "open_s3_client",
    "open_s3_objects",
    "open_s3_upload",
    "open_tar_entries",
    "restore",
    "run_restore",
    "s3_bytes",
    "s3_objects",
    "verify",
]
