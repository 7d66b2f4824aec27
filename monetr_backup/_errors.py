"""The exception hierarchy: one base class, one subclass per place things go wrong.

Foreign exceptions (botocore, asyncpg, OS errors) are mapped at the boundary with
``raise ... from exc`` so callers only ever need to catch :class:`BackupError`.
No message ever contains a password or secret key.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio

__all__ = [
    "ArchiveLocationError",
    "ArchiveReadError",
    "ArchiveWriteError",
    "BackupError",
    "CatalogError",
    "ChecksumError",
    "ClientNotFoundError",
    "ClientVersionError",
    "ConcurrentOperationError",
    "ConfigError",
    "CorruptArchiveError",
    "DatabaseConnectionError",
    "DatabaseError",
    "DecryptionError",
    "InstanceFileError",
    "PgDumpError",
    "PgRestoreError",
    "StorageError",
    "StorageSourceError",
    "StorageTargetError",
    "TargetNotEmptyError",
    "UnsafeMemberError",
]


class BackupError(Exception):
    """Base class of every error this library raises on purpose."""


# -- the settings ------------------------------------------------------------------------


class ConfigError(BackupError):
    """monetr's configuration could not be read: a file is missing or not YAML, or a value
    has the wrong type.

    ``key`` is the setting in monetr's spelling (``postgreSql.port``), when one is at
    fault; ``source`` is the file or ``MONETR_*`` variable it came from. A password or
    secret key is never quoted.
    """

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.source = source


# -- the database ------------------------------------------------------------------------


class DatabaseError(BackupError):
    """Something about the PostgreSQL side failed: the server, a client program, the target."""


class DatabaseConnectionError(DatabaseError):
    """The database could not be reached, refused our credentials, or does not exist."""


class ClientNotFoundError(DatabaseError):
    """A PostgreSQL client program (``pg_dump``, ``pg_restore``, ``psql``) was not found."""


class ClientVersionError(DatabaseError):
    """The client program found is older than the server; the message names both."""


class PgDumpError(DatabaseError):
    """``pg_dump`` exited with an error or was killed.

    ``stderr_tail`` holds the last bytes it wrote to stderr, decoded, so the cause
    (bad credentials, a lost connection, a version mismatch) is in the error itself.
    """

    def __init__(self, message: str, *, returncode: int | None, stderr_tail: str) -> None:
        detail = f"{message} (exit status {returncode})"
        if stderr_tail:
            detail += f"; pg_dump stderr:\n{stderr_tail}"
        super().__init__(detail)
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class PgRestoreError(DatabaseError):
    """Applying the dump failed (``pg_restore``/``psql``), or cannot be done as asked.

    The single transaction rolled back: the database is as it was. ``stderr_tail`` holds
    the program's last stderr output, when a program ran.
    """

    def __init__(self, message: str, *, stderr_tail: str = "") -> None:
        super().__init__(f"{message}; stderr:\n{stderr_tail}" if stderr_tail else message)
        self.stderr_tail = stderr_tail


class TargetNotEmptyError(DatabaseError):
    """The target database already has tables and ``clean`` was not asked for."""


class ConcurrentOperationError(DatabaseError):
    """Another backup or restore of the same database is running (it holds our advisory
    lock); this one stopped before writing anything. Try again once it has finished.

    ``holder_pid`` is the PostgreSQL backend pid of the session holding the lock, when
    the server let us see it.
    """

    def __init__(self, message: str, *, holder_pid: int | None = None) -> None:
        super().__init__(message)
        self.holder_pid = holder_pid


# -- the storage files -------------------------------------------------------------------


class StorageError(BackupError):
    """Reading the storage files to back up, or writing restored ones, failed."""


class StorageSourceError(StorageError):
    """Listing or reading a storage object failed (other than it vanishing)."""


class StorageTargetError(StorageError):
    """Writing a restored object to the storage target failed; none of it was left there."""


# -- the files beside the database ------------------------------------------------------


class InstanceFileError(BackupError):
    """An instance file (monetr's private key, a config file) could not be read for a
    backup or written back by a restore, or the archive does not hold the one asked for.

    ``path`` is the file at fault. A restore that raises it has left nothing at any of
    the paths it was given.
    """

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


# -- where the archive lives -------------------------------------------------------------


class ArchiveLocationError(BackupError):
    """Moving the archive's bytes to or from its file or S3 object failed."""


class ArchiveWriteError(ArchiveLocationError):
    """Writing the archive failed; nothing was left at its location."""


class ArchiveReadError(ArchiveLocationError):
    """Reading the archive failed: it does not exist, cannot be read, or changed meanwhile."""


class CatalogError(ArchiveLocationError):
    """Listing the backups at a location failed or was incomplete, an entry could not be
    read, or (prune) a delete failed.

    :func:`prune` raises it before deleting anything when the listing is incomplete or
    any entry cannot be read; a delete that fails stops it there, and the error's notes
    name what was deleted before.
    """


# -- the keys of an encrypted archive ---------------------------------------------------


class DecryptionError(BackupError):
    """The archive is encrypted (age) and no identity given opens it: none was given, or
    none matches its recipients. Raised before any target is touched; never quotes a key.
    """


# -- what the archive holds --------------------------------------------------------------


class CorruptArchiveError(BackupError):
    """An archive is malformed, truncated, or not one of ours.

    ``member`` names the member being read when the problem was found, if any.
    """

    def __init__(self, message: str, *, member: str | None = None) -> None:
        super().__init__(f"{member}: {message}" if member else message)
        self.member = member
        #: The message without the member's name in front.
        self.reason = message


class ChecksumError(CorruptArchiveError):
    """A member's size or SHA-256 differs from what the dump summary or manifest says."""


class UnsafeMemberError(CorruptArchiveError):
    """A member is not a regular file, or its name could escape the restore target."""


@contextmanager
def single_errors() -> Iterator[None]:
    """Re-raise a task group's ``ExceptionGroup`` as the one error that caused it.

    Stages run in task groups, but callers should be able to write
    ``except PgDumpError``. When a group holds one real error (the others being the
    cancellations it triggered), that error is raised as itself, with its own cause.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        errors = [
            leaf for leaf in _leaves(group) if not isinstance(leaf, anyio.get_cancelled_exc_class())
        ]
        ours = [leaf for leaf in errors if isinstance(leaf, BackupError)]
        chosen = ours[0] if ours else errors[0] if len(errors) == 1 else None
        if chosen is None:
            raise
        # A note added on the way out (a database that could not be dropped) was added to
        # whatever passed by then, often the group: it belongs to the error raised.
        for note in _notes(group):
            if note not in getattr(chosen, "__notes__", ()):
                chosen.add_note(note)
        raise chosen from chosen.__cause__


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _notes(group: BaseExceptionGroup[BaseException]) -> Iterator[str]:
    yield from getattr(group, "__notes__", ())
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _notes(exc)
