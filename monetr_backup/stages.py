"""The parts ``backup()`` and ``restore()`` are made of, for pipelines of your own.

Transforms are plain async generators; whatever owns background tasks (the pg_dump
process, the S3 upload, prefetching, the tar reader's thread) is an async context
manager. Everything that writes speaks one protocol: ``write``, then ``commit`` or
``abort``. Backup, left to right::

    open_pg_dump (DumpPart) --+
    directory_objects / open_s3_objects (Member) --+--> archive_members --> encode_tar
        --> compress [--> encrypt] --> open_s3_upload / open_file_sink / your ArchiveSink

Restore::

    file_bytes / s3_bytes [--> open_decrypted] --> open_tar_entries --> ArchiveReader
        --> dump_chunks --> open_pg_restore (a DatabaseTarget)
        --> objects     --> DirectoryTarget / S3Target (StorageTargets)
        --> finish (the manifest check) --> commit, or abort

A worked example that adds members of its own and writes to a sink of its own is in
``examples/custom_pipeline.py``::

    header = Header(created_at=now, library_version=__version__, top_folder="monetr-x",
                    database=None, dump_format=None, dump_part_size=0, storage="custom",
                    codec=Codec.GZIP)
    async with open_file_sink("x.tar.gz") as sink:
        async for chunk in compress(encode_tar(archive_members(header, None, my_members()))):
            await sink.write(chunk)
        await sink.commit()
"""

from ._format.archive_reader import ArchiveReader
from ._format.compress import compress
from ._format.decompress import detect_codec
from ._format.decrypt import open_decrypted
from ._format.documents import (
    DumpSummary,
    FileSet,
    FileSetKind,
    InstanceFileEntry,
    InstanceFileKind,
    KmsKey,
    MemberEntry,
    MonetrFacts,
    SizeDiffers,
    SkippedObject,
)
from ._format.encrypt import encrypt
from ._format.members import archive_members
from ._format.tar_read import TarEntry, open_tar_entries
from ._format.tar_write import encode_tar
from ._local.directory_source import directory_objects
from ._local.directory_target import DirectoryTarget
from ._local.file_reader import file_bytes
from ._local.file_sink import FileSink, open_file_sink
from ._local.instance_files import InstanceFilesTarget, open_instance_target, read_instance_files
from ._postgres.pg_dump import PgDump, open_pg_dump
from ._postgres.pg_restore import PgRestore, open_pg_restore
from ._progress import ProgressTracker
from ._protocols import (
    ArchiveSink,
    DatabaseTarget,
    DumpPart,
    DumpSource,
    Member,
    Outcome,
    StorageTarget,
    StoredObject,
)
from ._public import publish
from ._s3.bucket_source import open_s3_objects, s3_objects
from ._s3.bucket_target import S3Target
from ._s3.client import open_s3_client
from ._s3.download import s3_bytes
from ._s3.upload import S3Upload, open_s3_upload

# Grouped by role, not sorted: the groups are the documentation.
__all__ = [  # noqa: RUF022
    # What flows between stages
    "DumpPart",
    "Member",
    "Outcome",
    "StoredObject",
    "TarEntry",
    # The protocols of everything that writes
    "ArchiveSink",
    "DatabaseTarget",
    "StorageTarget",
    # Backup: sources
    "PgDump",
    "directory_objects",
    "open_pg_dump",
    "read_instance_files",
    "open_s3_objects",
    "s3_objects",
    # Backup: the archive
    "DumpSource",
    "DumpSummary",
    "archive_members",
    "compress",
    "encode_tar",
    "encrypt",
    # Backup: sinks
    "FileSink",
    "S3Upload",
    "open_file_sink",
    "open_s3_upload",
    # Restore: reading
    "ArchiveReader",
    "detect_codec",
    "file_bytes",
    "open_decrypted",
    "open_tar_entries",
    "s3_bytes",
    # Restore: targets
    "DirectoryTarget",
    "InstanceFilesTarget",
    "PgRestore",
    "S3Target",
    "open_instance_target",
    "open_pg_restore",
    # The archive's documents, beyond the header and manifest
    "FileSet",
    "FileSetKind",
    "InstanceFileEntry",
    "InstanceFileKind",
    "KmsKey",
    "MemberEntry",
    "MonetrFacts",
    "SizeDiffers",
    "SkippedObject",
    # Shared
    "ProgressTracker",
    "open_s3_client",
]

publish(globals(), __all__)
