"""Sources -> the ordered member sequence of archive format v2.

``archive_members`` is the one place that knows the layout: header first, the instance
files, dump parts, the dump summary, storage objects, manifest last. The :class:`Ledger`
hashes every member on its way to the tar encoder, so the manifest describes exactly what
was written.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

from pydantic import BaseModel

from .._hashing import OffloadedSha256
from .._progress import Phase, ProgressTracker
from .._protocols import DumpSource, Member
from .._version import __version__
from .documents import DumpSummary, Header, Manifest, MemberEntry, SkippedObject
from .layout import (
    DUMP_SUMMARY_NAME,
    HEADER_NAME,
    MANIFEST_NAME,
    MAX_INSTANCE_FILE_SIZE,
    dump_part_name,
    storage_member_name,
)

__all__ = ["SKIPPED_LISTED", "archive_members", "parts_digest"]

#: How many skipped objects the manifest names; ``skipped_count`` has them all.
SKIPPED_LISTED = 1000


def parts_digest(part_digests: Sequence[str]) -> str:
    """The dump summary's ``parts_sha256``: SHA-256 of the hex digests, one per line."""
    return hashlib.sha256("".join(f"{digest}\n" for digest in part_digests).encode()).hexdigest()


def _json(document: BaseModel) -> bytes:
    return document.model_dump_json(indent=2).encode() + b"\n"


class Ledger:
    """Records name, size and SHA-256 of each member, prefixing names with the top folder."""

    def __init__(self, top: str, mtime: float) -> None:
        self.top = top
        self.mtime = mtime
        self.entries: list[MemberEntry] = []

    def full_name(self, name: str) -> str:
        """``name`` under the archive's top folder."""
        return f"{self.top}/{name}"

    def hashed(self, name: str, chunks: Sequence[bytes | bytearray], sha256: str) -> Member:
        """A member whose content (in memory) and digest are already known."""
        member = Member.from_chunks(self.full_name(name), chunks, mtime=self.mtime)
        self.entries.append(MemberEntry(name=member.name, size=member.size, sha256=sha256))
        return member

    def document(self, name: str, document: BaseModel) -> Member:
        """A JSON document member."""
        data = _json(document)
        return self.hashed(name, [data], hashlib.sha256(data).hexdigest())

    def streamed(self, name: str, member: Member) -> Member:
        """``member`` renamed, with a digest taken as the tar encoder reads it."""
        full = self.full_name(name)

        async def chunks() -> AsyncIterator[bytes | bytearray]:
            digest = OffloadedSha256()
            async for chunk in member.chunks:
                await digest.update(chunk)
                yield chunk
            sha256 = await digest.hexdigest()
            self.entries.append(MemberEntry(name=full, size=member.size, sha256=sha256))

        return Member(full, member.size, chunks(), mtime=member.mtime)


async def archive_members(
    header: Header,
    dump: DumpSource | None,
    objects: AsyncIterable[Member] | None,
    skipped: list[SkippedObject] | None = None,
    *,
    kms_provider: str | None = None,
    progress: ProgressTracker | None = None,
    on_manifest: Callable[[Manifest], None] | None = None,
    annotate: Callable[[Manifest], Manifest] | None = None,
    instance_files: Sequence[bytes] = (),
) -> AsyncIterator[Member]:
    """Yield the members of a format v2 archive in order; the manifest goes to ``on_manifest``.

    Members go under ``header.top_folder``. ``instance_files`` holds the content of each
    file ``header.instance_files`` announces, in its order. ``skipped`` lists the storage objects a
    source passed over; it is read when the manifest is written, after the last object,
    and ``annotate`` may then add what only the caller knows (a monetr database's file
    set, its schema version and KMS keys) before the manifest is written.
    """
    if dump is not None and (
        dump.part_size != header.dump_part_size or dump.dump_format != header.dump_format
    ):
        # Readers check every part against the header: such an archive would be refused.
        raise ValueError(
            f"the header says {header.dump_format} parts of {header.dump_part_size} bytes; "
            f"the dump has {dump.dump_format} parts of {dump.part_size} bytes"
        )
    if len(instance_files) != len(header.instance_files):
        raise ValueError(
            f"the header announces {len(header.instance_files)} instance files; "
            f"{len(instance_files)} were given"
        )
    if any(len(data) > MAX_INSTANCE_FILE_SIZE for data in instance_files):
        # Readers refuse a bigger one: such an archive would not restore.
        raise ValueError(f"an instance file is over {MAX_INSTANCE_FILE_SIZE} bytes")
    progress = progress or ProgressTracker(None)
    ledger = Ledger(header.top_folder, header.created_at.timestamp())
    yield ledger.document(HEADER_NAME, header)
    for entry, data in zip(header.instance_files, instance_files, strict=True):
        yield ledger.hashed(entry.name, [data], hashlib.sha256(data).hexdigest())

    dump_bytes = 0
    if dump is not None:
        progress.phase(Phase.DUMPING_DATABASE)
        count = 0
        digests: list[str] = []
        async for part in dump.parts:
            count += 1
            member = ledger.hashed(dump_part_name(count), part.blocks, part.sha256)
            digests.append(part.sha256)
            yield member
            dump_bytes += member.size
            progress.add(dump_bytes=member.size)
        await dump.wait()
        summary = DumpSummary(
            total_bytes=dump_bytes,
            part_count=count,
            part_size=dump.part_size,
            parts_sha256=parts_digest(digests),
            dump_format=dump.dump_format,
            pg_dump_version=dump.version,
            server_version=dump.server_version,
        )
        yield ledger.document(DUMP_SUMMARY_NAME, summary)

    object_count = object_bytes = 0
    if objects is not None:
        progress.phase(Phase.COPYING_STORAGE)
        async for member in objects:
            yield ledger.streamed(storage_member_name(member.name), member)
            object_count += 1
            object_bytes += member.size
            progress.add(objects_done=1, object_bytes=member.size)

    entries = list(ledger.entries)
    manifest = Manifest(
        top_folder=ledger.top,
        created_at=header.created_at,
        completed_at=datetime.now(UTC),
        library_version=__version__,
        members=entries,
        member_count=len(entries),
        total_bytes=sum(entry.size for entry in entries),
        dump_bytes=dump_bytes,
        object_count=object_count,
        object_bytes=object_bytes,
        # Bounded, so a manifest's size stays within what its members explain (readers
        # refuse one that is not: a manifest bomb); the count says how many there were.
        skipped=list(skipped or ())[:SKIPPED_LISTED],
        skipped_count=len(skipped or ()),
        kms_provider=kms_provider,
    )
    if annotate is not None:
        manifest = annotate(manifest)
    yield ledger.document(MANIFEST_NAME, manifest)
    if on_manifest is not None:
        on_manifest(manifest)
