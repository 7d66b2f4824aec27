"""Tar members -> checked archive contents (the reverse of ``members``).

:class:`ArchiveReader` walks a format v2 (or v1) archive in order and refuses anything
that does not fit: a member that is not a regular file, a name that could escape the top
folder, instance files other than the header announced, dump parts missing, duplicated
or out of order, a size or SHA-256 that differs from the dump summary or the manifest.
Callers read it in steps, matching the archive's layout: :meth:`~ArchiveReader.read_header`,
:meth:`~ArchiveReader.instance_files`, :meth:`~ArchiveReader.dump_chunks`,
:meth:`~ArchiveReader.objects`, :meth:`~ArchiveReader.finish` (a step left out is read
and checked all the same).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from .._errors import ChecksumError, CorruptArchiveError, UnsafeMemberError
from .._hashing import OffloadedSha256
from .._protocols import StoredObject
from .documents import (
    DumpSummary,
    Header,
    InstanceFileEntry,
    InstanceFileKind,
    Manifest,
    MemberEntry,
)
from .layout import (
    DUMP_SUMMARY_NAME,
    HEADER_NAME,
    MANIFEST_NAME,
    MAX_INSTANCE_FILE_SIZE,
    PRIVATE_KEY_NAME,
    READABLE_VERSIONS,
    STORAGE_DIR,
    config_file_name,
    dump_part_name,
    parse_dump_part_name,
    unsafe_path_reason,
)
from .members import parts_digest
from .tar_read import TarEntry

__all__ = ["ArchiveReader"]

#: How many problems with the manifest are kept (and reported); the rest are counted.
KEPT_PROBLEMS = 1000
#: The header and the dump summary are a few hundred bytes; anything bigger is not ours.
MAX_DOCUMENT_SIZE = 1024 * 1024
#: The manifest lists every member read before it, and the objects that were skipped.
#: Its size is bounded by what those can explain, so a manifest made huge (a bomb of
#: fake entries) is refused before it is parsed rather than costing memory per entry.
MANIFEST_BASE_SIZE = 4 * 1024 * 1024
MANIFEST_SIZE_PER_MEMBER = 512

D = TypeVar("D", bound=BaseModel)


def check_name(name: str) -> None:
    """Refuse names that are absolute, climb with ``..``, or hide empty components."""
    reason = unsafe_path_reason(name)
    if reason is not None:
        raise UnsafeMemberError(f"unsafe member name: {reason}", member=name)


def check_instance_entries(header: Header) -> None:
    """The header's instance files must be named as the format names them, in its order.

    A private key (at most one) comes first, then ``config-1``, ``config-2``, ...: so a
    member name that could land anywhere else is refused before anything is read.
    """
    if header.instance_files and header.format_version < 2:
        raise CorruptArchiveError(
            "a format v1 header announces instance files",
            member=f"{header.top_folder}/{HEADER_NAME}",
        )
    configs = 0
    for index, entry in enumerate(header.instance_files):
        if entry.kind is InstanceFileKind.PRIVATE_KEY:
            expected = PRIVATE_KEY_NAME if index == 0 else None
        else:
            configs += 1
            expected = config_file_name(configs)
        if entry.name != expected:
            raise CorruptArchiveError(
                f"the header announces an instance file named {entry.name!r} for a "
                f"{entry.kind.value}, not {expected!r}",
                member=f"{header.top_folder}/{HEADER_NAME}",
            )


class ArchiveReader:
    """Reads and checks a format v2 or v1 archive from a stream of tar entries.

    With ``strict`` off, checksum problems are collected in :attr:`problems` instead of
    raised, so one pass can name every damaged member (that is what ``verify`` wants).
    """

    def __init__(self, entries: AsyncIterator[TarEntry], *, strict: bool = True) -> None:
        self.entries = entries
        self.strict = strict
        self.header: Header | None = None
        self.summary: DumpSummary | None = None
        self.manifest: Manifest | None = None
        #: Every member read so far, with the digest computed while reading it.
        self.seen: list[MemberEntry] = []
        #: With ``strict`` off, the checksum problems found so far, in archive order.
        self.problems: list[ChecksumError] = []
        #: Problems found beyond the first ``KEPT_PROBLEMS`` (1000), counted only.
        self.problems_not_kept = 0
        self._top = ""
        self._pending: TarEntry | None = None
        self._current: TarEntry | None = None
        self._instance_read = False

    async def _next(self) -> TarEntry | None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        # The tar reader reads whatever the consumer left of the previous member (a
        # conflict, a skip, a dry run): the one place unread data is drained. Only then
        # is its digest known, for the manifest check.
        entry: TarEntry | None = await anext(self.entries, None)
        if self._current is not None:
            self._record(self._current)
        self._current = entry
        if entry is None:
            return None
        check_name(entry.name)
        if not entry.info.isreg():
            raise UnsafeMemberError(
                "not a regular file (links and devices are refused)", member=entry.name
            )
        if self._top and not entry.name.startswith(self._top + "/"):
            raise UnsafeMemberError(
                f"member outside the top folder {self._top!r}", member=entry.name
            )
        return entry

    def _problem(self, error: ChecksumError) -> None:
        if self.strict:
            raise error
        self.problems.append(error)

    def _relative(self, entry: TarEntry) -> str:
        return entry.name[len(self._top) + 1 :]

    def _record(self, entry: TarEntry) -> None:
        assert entry.sha256 is not None
        self.seen.append(MemberEntry(name=entry.name, size=entry.size, sha256=entry.sha256))

    async def _document(self, entry: TarEntry, model: type[D], limit: int = MAX_DOCUMENT_SIZE) -> D:
        if entry.size > limit:
            raise CorruptArchiveError(
                f"document member is implausibly large ({entry.size} bytes, at most {limit})",
                member=entry.name,
            )
        data = b"".join([chunk async for chunk in entry.chunks])
        try:
            return model.model_validate_json(data)
        except ValidationError as exc:
            raise CorruptArchiveError(
                f"malformed {model.__name__}: {exc}", member=entry.name
            ) from exc

    async def read_header(self) -> Header:
        """Read the first member, which must be the header of a format v2 or v1 archive."""
        entry = await self._next()
        if entry is None:
            raise CorruptArchiveError("empty archive: no members")
        top, _, rest = entry.name.partition("/")
        if rest != HEADER_NAME:
            raise CorruptArchiveError(
                f"not a monetr_backup archive: first member is not {HEADER_NAME}",
                member=entry.name,
            )
        self._top = top
        header = await self._document(entry, Header)
        if header.format_version not in READABLE_VERSIONS:
            raise CorruptArchiveError(
                f"unsupported archive format version {header.format_version} (this library "
                f"reads {', '.join(map(str, sorted(READABLE_VERSIONS)))})",
                member=entry.name,
            )
        check_instance_entries(header)
        self.header = header
        return header

    async def instance_files(self) -> AsyncIterator[tuple[InstanceFileEntry, StoredObject]]:
        """Yield each instance file the header announces, in its order (none before v2).

        Their digests are checked with everything else, by :meth:`finish`: nothing read
        here may be published before it returns.
        """
        assert self.header is not None, "read_header() first"
        if self._instance_read:
            return
        self._instance_read = True
        for announced in self.header.instance_files:
            entry = await self._next()
            if entry is None:
                raise CorruptArchiveError("archive ends inside the instance files: truncated")
            if self._relative(entry) != announced.name:
                raise CorruptArchiveError(
                    f"expected {announced.name}, which the header announces", member=entry.name
                )
            if entry.size > MAX_INSTANCE_FILE_SIZE:
                raise CorruptArchiveError(
                    f"instance file is implausibly large ({entry.size} bytes, at most "
                    f"{MAX_INSTANCE_FILE_SIZE})",
                    member=entry.name,
                )
            yield announced, StoredObject(announced.name, entry.size, entry.chunks)

    async def _skip_instance_files(self) -> None:
        async for _, item in self.instance_files():
            async for _chunk in item.chunks:
                pass

    async def dump_chunks(self) -> AsyncIterator[bytes]:
        """Yield the dump parts in order as one stream, ending only once it is verified.

        The generator returns after the dump summary has been read and the whole stream's
        size and SHA-256 matched it; on a mismatch it raises :class:`ChecksumError`, so a
        consumer that holds back the last chunk until the end never delivers a bad dump.
        """
        assert self.header is not None, "read_header() first"
        await self._skip_instance_files()
        # v1 summaries hold the whole stream's digest; v2 ones a digest of the parts'.
        whole = OffloadedSha256() if self.header.format_version == 1 else None
        digests: list[str] = []
        total = count = 0
        part_size = self.header.dump_part_size
        short_part: str | None = None
        while True:
            entry = await self._next()
            if entry is None:
                raise CorruptArchiveError("archive ends inside the dump: truncated")
            name = self._relative(entry)
            if name == DUMP_SUMMARY_NAME:
                summary = await self._document(entry, DumpSummary)
                break
            number = parse_dump_part_name(name)
            if number is None:
                raise CorruptArchiveError(
                    "expected a dump part or the dump summary", member=entry.name
                )
            if number != count + 1:
                raise CorruptArchiveError(
                    f"dump part out of order: expected {dump_part_name(count + 1)}",
                    member=entry.name,
                )
            if short_part is not None or entry.size > part_size or entry.size == 0:
                raise CorruptArchiveError(
                    f"dump part has {entry.size} bytes; parts have {part_size} bytes "
                    "except the last",
                    member=short_part or entry.name,
                )
            if entry.size < part_size:
                short_part = entry.name
            async for chunk in entry.chunks:
                if whole is not None:
                    await whole.update(chunk)
                yield chunk
            assert entry.sha256 is not None  # set once its content has been read
            digests.append(entry.sha256)
            count += 1
            total += entry.size
        summary_name = f"{self._top}/{DUMP_SUMMARY_NAME}"
        if summary.part_size != part_size:
            self._problem(
                ChecksumError(
                    f"the summary says parts of {summary.part_size} bytes, the header {part_size}",
                    member=summary_name,
                )
            )
        if summary.part_count != count or summary.total_bytes != total:
            self._problem(
                ChecksumError(
                    f"dump has {count} parts and {total} bytes; the summary says "
                    f"{summary.part_count} parts and {summary.total_bytes} bytes",
                    member=summary_name,
                )
            )
        if whole is not None and summary.sha256 != await whole.hexdigest():
            self._problem(
                ChecksumError(
                    "SHA-256 of the dump stream does not match the dump summary",
                    member=summary_name,
                )
            )
        if whole is None and summary.parts_sha256 != parts_digest(digests):
            self._problem(
                ChecksumError(
                    "the digest of the dump parts' SHA-256 does not match the dump summary",
                    member=summary_name,
                )
            )
        self.summary = summary

    async def objects(self) -> AsyncIterator[StoredObject]:
        """Yield each storage object; stops at the manifest (read it with :meth:`finish`)."""
        await self._skip_instance_files()
        prefix = f"{STORAGE_DIR}/"
        while True:
            entry = await self._next()
            if entry is None:
                raise CorruptArchiveError("archive ends before its manifest: truncated")
            name = self._relative(entry)
            if name == MANIFEST_NAME:
                self._pending = entry
                return
            if not name.startswith(prefix) or name == prefix:
                raise CorruptArchiveError("unexpected member", member=entry.name)
            yield StoredObject(name[len(prefix) :], entry.size, entry.chunks)

    async def finish(self) -> Manifest:
        """Read the manifest and check every member against it; nothing may follow it."""
        await self._skip_instance_files()
        entry = await self._next()
        if entry is None or self._relative(entry) != MANIFEST_NAME:
            raise CorruptArchiveError("archive ends before its manifest: truncated")
        members = list(self.seen)
        limit = MANIFEST_BASE_SIZE + sum(
            len(member.name) + MANIFEST_SIZE_PER_MEMBER for member in members
        )
        manifest = await self._document(entry, Manifest, limit)
        trailing = await self._next()
        if trailing is not None:
            raise CorruptArchiveError("member after the manifest", member=trailing.name)
        self.manifest = manifest
        found = itertools.chain(
            _compare(members, manifest.members),
            _check_totals(manifest, members, self._top, self.header),
        )
        # A manifest of fake entries has one mismatch per entry: keep the first ones.
        mismatches = list(itertools.islice(found, KEPT_PROBLEMS))
        self.problems_not_kept += sum(1 for _ in found)
        if mismatches and self.strict:
            raise _mismatch_error(mismatches, self.problems_not_kept)
        self.problems.extend(ChecksumError(text, member=name) for name, text in mismatches)
        return manifest


#: How many problems an error message names; the rest are counted.
_MESSAGE_PROBLEMS = 5


def _mismatch_error(mismatches: list[tuple[str, str]], not_kept: int = 0) -> ChecksumError:
    """One error for every difference from the manifest, naming the first few."""
    (first, text), rest = mismatches[0], mismatches[1:]
    message = f"does not match the manifest: {text}"
    if rest:
        named = "; ".join(f"{name}: {problem}" for name, problem in rest[:_MESSAGE_PROBLEMS])
        more = len(rest) + not_kept - _MESSAGE_PROBLEMS
        message += f" (and {len(rest) + not_kept} more: {named}" + (
            f"; {more} not shown)" if more > 0 else ")"
        )
    return ChecksumError(message, member=first)


def _check_totals(
    manifest: Manifest, members: list[MemberEntry], top: str, header: Header | None
) -> list[tuple[str, str]]:
    """The manifest's own counts and names must agree with the members it lists."""
    name = f"{top}/{MANIFEST_NAME}"
    problems: list[tuple[str, str]] = []
    if manifest.top_folder != top or (header is not None and header.top_folder != top):
        problems.append((name, f"top folder is {top!r}, the header or manifest says otherwise"))
    if header is not None and manifest.format_version != header.format_version:
        problems.append((name, "format_version differs from the header's"))
    if manifest.member_count != len(manifest.members):
        problems.append((name, "member_count does not match the members listed"))
    if manifest.total_bytes != sum(entry.size for entry in manifest.members):
        problems.append((name, "total_bytes does not match the members listed"))
    storage = [e for e in members if e.name.startswith(f"{top}/{STORAGE_DIR}/")]
    if manifest.object_count != len(storage) or manifest.object_bytes != sum(
        e.size for e in storage
    ):
        problems.append((name, "object_count/object_bytes do not match the storage members"))
    return problems


def _compare(seen: list[MemberEntry], listed: list[MemberEntry]) -> Iterator[tuple[str, str]]:
    """(member, problem) for every difference between what was read and the manifest."""
    expected = {entry.name: entry for entry in listed}
    found = False
    for entry in seen:
        want = expected.pop(entry.name, None)
        if want is None:
            found = True
            yield entry.name, "not in the manifest"
        elif want.size != entry.size:
            found = True
            yield entry.name, f"{entry.size} bytes, the manifest says {want.size}"
        elif want.sha256 != entry.sha256:
            found = True
            yield entry.name, "SHA-256 differs from the manifest"
    for name in expected:
        found = True
        yield name, "listed in the manifest but missing"
    if not found and [e.name for e in seen] != [e.name for e in listed]:
        yield seen[0].name, "members are not in manifest order"
