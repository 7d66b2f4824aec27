"""Streaming backup and restore of a self-hosted monetr instance.

``await backup(...)`` streams a pg_dump and the storage objects into one tar archive
(compressed) at an S3 key or a local file, never holding the dataset in memory or on
disk. The stages it is built from are exported too, for pipelines of your own::

    open_pg_dump -> read_parts --+
    directory_objects / s3_objects --+--> archive_members -> encode_tar -> compress
        -> open_s3_upload / open_file_sink / your ArchiveSink
"""

from ._archive import DumpInput, Ledger, archive_members
from ._backup import backup
from ._compress import compress
from ._config import (
    BackupOptions,
    Codec,
    DirectoryStorage,
    DumpFormat,
    FileDestination,
    PostgresConfig,
    S3Config,
    S3Destination,
    S3Storage,
)
from ._errors import (
    ArchiveError,
    BackupError,
    DatabaseConnectionError,
    DestinationError,
    PgDumpError,
    SourceError,
    StorageSourceError,
)
from ._format import DumpSummary, Header, Manifest, MemberEntry, SkippedObject
from ._member import Member
from ._pg_dump import PgDump, open_pg_dump, read_parts
from ._progress import Progress, ProgressCallback
from ._s3 import open_s3_client
from ._sink import ArchiveSink
from ._storage_source import directory_objects, s3_objects
from ._tar_write import encode_tar
from ._upload_s3 import S3Upload, open_s3_upload
from ._version import __version__
from ._write_file import FileSink, open_file_sink

__all__ = [
    "ArchiveError",
    "ArchiveSink",
    "BackupError",
    "BackupOptions",
    "Codec",
    "DatabaseConnectionError",
    "DestinationError",
    "DirectoryStorage",
    "DumpFormat",
    "DumpInput",
    "DumpSummary",
    "FileDestination",
    "FileSink",
    "Header",
    "Ledger",
    "Manifest",
    "Member",
    "MemberEntry",
    "PgDump",
    "PgDumpError",
    "PostgresConfig",
    "Progress",
    "ProgressCallback",
    "S3Config",
    "S3Destination",
    "S3Storage",
    "S3Upload",
    "SkippedObject",
    "SourceError",
    "StorageSourceError",
    "__version__",
    "archive_members",
    "backup",
    "compress",
    "directory_objects",
    "encode_tar",
    "open_file_sink",
    "open_pg_dump",
    "open_s3_client",
    "open_s3_upload",
    "read_parts",
    "s3_objects",
]
