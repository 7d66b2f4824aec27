"""The verify and inspect operations: an archive read to its end and checked, no target touched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, overload

from pydantic import BaseModel, ConfigDict, SecretStr

from . import _open
from ._catalog.entry import CatalogEntry
from ._catalog.lookup import entry_for
from ._errors import CorruptArchiveError, single_errors
from ._format.archive_reader import ArchiveReader
from ._format.documents import Header, Manifest
from ._keys import identities_from
from ._locations import FileArchive, S3Archive
from ._progress import Phase, ProgressTracker
from ._s3.client import S3Client

__all__ = ["InspectResult", "Problem", "VerifyReport", "inspect", "verify"]

#: A report names at most this many problems; a damaged archive can have one per member.
MAX_PROBLEMS = 100


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Problem(_Result):
    """One thing wrong with an archive, and the member where it was found."""

    member: str | None
    message: str
    #: The error class that names the kind of damage (``ChecksumError``, ...).
    kind: str


class VerifyReport(_Result):
    """The outcome of :func:`verify`."""

    ok: bool
    header: Header | None
    manifest: Manifest | None
    members_checked: int
    #: The first ``MAX_PROBLEMS`` (100) problems found, in archive order.
    problems: list[Problem]
    #: How many problems were found in all (more than listed if the list was cut).
    problem_count: int


class InspectResult(_Result):
    """An archive's header and manifest."""

    header: Header
    manifest: Manifest


async def _read_through(reader: ArchiveReader, tracker: ProgressTracker | None = None) -> Manifest:
    """Read every member in order, the checks running as they go; the manifest at the end."""
    tracker = tracker or ProgressTracker(None)
    header = await reader.read_header()
    if header.dump_format is not None:
        tracker.phase(Phase.CHECKING_DUMP)
        async for chunk in reader.dump_chunks():
            tracker.add(dump_bytes=len(chunk))
    tracker.phase(Phase.CHECKING_STORAGE)
    async for item in reader.objects():
        tracker.add(objects_done=1, object_bytes=item.size)
    return await reader.finish()


def _problem(error: CorruptArchiveError) -> Problem:
    return Problem(member=error.member, message=error.reason, kind=type(error).__name__)


async def verify(
    archive: _open.ArchiveInput,
    *,
    s3_client: S3Client | None = None,
    identities: Sequence[SecretStr | str] = (),
) -> VerifyReport:
    """Read the whole archive and check every member; touch no target.

    Damage found in the archive is reported, not raised: each problem names the member
    where it was found. Failing to read the archive at all (it does not exist, the
    connection fails for good) raises :class:`ArchiveReadError`; an encrypted archive
    that none of ``identities`` opens raises :class:`DecryptionError`.
    """
    _open.check_archive(archive, writing=False)
    keys = identities_from(identities)
    tracker = ProgressTracker(None, operation="verify")
    tracker.phase(Phase.STARTING)
    reader: ArchiveReader | None = None
    found: list[CorruptArchiveError] = []
    with tracker.failures():
        try:
            with single_errors():
                async with _open.archive_reader(
                    archive, s3_client, strict=False, tracker=tracker, identities=keys
                ) as reader:
                    try:
                        await _read_through(reader, tracker)
                    except CorruptArchiveError as exc:
                        found.append(exc)
        except CorruptArchiveError as exc:
            # Raised by the decryption under the reader (a chunk of an encrypted archive
            # failed authentication): damage like any other, reported.
            found.append(exc)
        if reader is not None:
            found[:0] = reader.problems
        not_kept = reader.problems_not_kept if reader is not None else 0
        tracker.phase(Phase.DONE)
        problems = [
            (error.member or "(archive)", f"{type(error).__name__}: {error.reason}")
            for error in found
        ]
        tracker.warn_keys("problem", problems, len(found) + not_kept)
        return VerifyReport(
            ok=not found,
            header=reader.header if reader is not None else None,
            manifest=reader.manifest if reader is not None else None,
            members_checked=len(reader.seen) if reader is not None else 0,
            problems=[_problem(error) for error in found[:MAX_PROBLEMS]],
            problem_count=len(found) + not_kept,
        )


@overload
async def inspect(
    archive: _open.ArchiveInput,
    *,
    s3_client: S3Client | None = None,
    identities: Sequence[SecretStr | str] = (),
    use_catalog: Literal[False] = False,
) -> InspectResult: ...
@overload
async def inspect(
    archive: _open.ArchiveInput,
    *,
    s3_client: S3Client | None = None,
    identities: Sequence[SecretStr | str] = (),
    use_catalog: bool,
) -> InspectResult | CatalogEntry: ...
async def inspect(
    archive: _open.ArchiveInput,
    *,
    s3_client: S3Client | None = None,
    identities: Sequence[SecretStr | str] = (),
    use_catalog: bool = False,
) -> InspectResult | CatalogEntry:
    """Return an archive's header and manifest (reads the archive to its end).

    ``identities`` open an encrypted archive, as for :func:`verify`. With
    ``use_catalog``, the archive's :class:`CatalogEntry` instead, when one is next to it,
    readable, and records the archive's present size: one small read instead of the
    whole archive. Without such an entry the archive is read as without the flag.
    """
    _open.check_archive(archive, writing=False)
    keys = identities_from(identities)
    if use_catalog and isinstance(archive, FileArchive | S3Archive):
        with single_errors():
            entry = await entry_for(archive, s3_client)
        if entry is not None:
            return entry
    with single_errors():
        async with _open.archive_reader(
            archive, s3_client, strict=False, identities=keys
        ) as reader:
            manifest = await _read_through(reader)
            assert reader.header is not None
            return InspectResult(header=reader.header, manifest=manifest)
