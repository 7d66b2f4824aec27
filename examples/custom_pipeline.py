"""Compose a backup of one's own: extra members, a sink of one's own, stages by hand.

Part 1 keeps the one-call API and swaps two of its ends. ``monetr_backup.backup()`` gets
a source of its own as ``storage=`` (the configuration and KMS key files a monetr host
keeps beside its database, plus members made on the fly), and writes through a sink of
its own (a local file renamed into place on commit and deleted on abort, wrapped in one
that takes a SHA-256 of every byte). ``verify()`` and ``restore()`` then check the
result, and a source that fails halfway shows the sink leaves nothing behind.

Part 2 builds an archive from ``monetr_backup.stages`` by hand::

    open_pg_dump + the same members --> archive_members --> encode_tar --> compress
        --> open_file_sink
    file_bytes --> open_tar_entries --> ArchiveReader   (and verify(), restore())

Everything runs against a throwaway PostgreSQL, so it works anywhere; any check that
fails ends the script with a non-zero exit status:

    python examples/custom_pipeline.py     # needs PostgreSQL 15 binaries
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.to_thread

import monetr_backup as mb
from monetr_backup import stages
from monetr_backup.testing import TemporaryPostgres, seed_monetr_like

MIB = 1024 * 1024
#: The member made on the fly spans several chunks and ends off any round number, so a
#: short or overlong last chunk would show.
GENERATED_SIZE = 3 * MIB + 12_345
#: Small dump parts for part 2, so the sample database's dump spans several of them.
PART_SIZE = 64 * 1024
#: A fixed ``\restrict`` key: pg_dump otherwise writes a random one into every dump.
RESTRICT_KEY = "example"


def check(condition: bool, message: str) -> None:
    """End the example with a non-zero exit status unless ``condition`` holds."""
    if not condition:
        raise SystemExit(f"check failed: {message}")


def differing(got: dict[str, str], want: dict[str, str]) -> list[str]:
    """The keys whose digests differ between ``got`` and ``want``, or that only one has."""
    return sorted(key for key in got.keys() | want.keys() if got.get(key) != want.get(key))


def sha256_file(path: Path) -> str:
    """The SHA-256 of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


# --- a source of one's own -------------------------------------------------------------


def write_host_files(directory: Path) -> None:
    """What a monetr host keeps outside the database and storage: its config, a KMS key."""
    directory.mkdir(mode=0o700)
    (directory / "monetr.yaml").write_text(
        "server:\n  externalUrl: https://monetr.example.com\n"
        "storage:\n  provider: filesystem\n  filesystem:\n    basePath: /var/lib/monetr\n"
        "kms:\n  provider: plaintext\n",
        encoding="utf-8",
    )
    key = directory / "kms.key"
    key.write_bytes(secrets.token_bytes(32))
    key.chmod(0o600)


def generated_blocks(size: int, seed: int) -> Iterator[bytes]:
    """``size`` reproducible pseudo-random bytes, one MiB at a time."""
    rng = random.Random(seed)
    remaining = size
    while remaining:
        block = rng.randbytes(min(MIB, remaining))
        remaining -= len(block)
        yield block


async def generated_chunks(size: int, seed: int) -> AsyncIterator[bytes]:
    """:func:`generated_blocks` as the async stream a member carries."""
    for block in generated_blocks(size, seed):
        yield block


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    """The file at ``path``, opened only once the tar encoder starts reading it."""
    async with await anyio.open_file(path, "rb") as file:
        while chunk := await file.read(MIB):
            yield chunk


class HostFiles:
    """Extra members for the archive, and what each should hold once restored.

    Keys become ``storage/<key>`` in the archive, so a restore into a directory puts
    them back under the same relative paths.
    """

    def __init__(self, directory: Path, seed: int = 8) -> None:
        self.directory = directory
        self.seed = seed
        # Made once, so the bytes archived are the bytes later compared.
        self.instance = json.dumps(
            {"instance": "monetr.example.com", "exported_at": datetime.now(UTC).isoformat()},
            indent=2,
        ).encode()

    async def members(self) -> AsyncIterator[stages.Member]:
        """Two files from disk, a document and a generated stream, in that order."""
        for path in sorted(self.directory.iterdir()):
            # The size goes into the tar header before the first byte is read; if the
            # file changes in between, the encoder refuses the member rather than write
            # a wrong archive.
            info = await anyio.Path(path).stat()
            yield stages.Member(
                f"host/{path.name}", info.st_size, file_chunks(path), mtime=info.st_mtime
            )
        yield stages.Member.from_bytes("host/instance.json", self.instance)
        yield stages.Member(
            "host/generated.bin", GENERATED_SIZE, generated_chunks(GENERATED_SIZE, self.seed)
        )

    def expected(self) -> dict[str, str]:
        """Key -> SHA-256 of what :meth:`members` yields."""
        digests = {f"host/{p.name}": sha256_file(p) for p in sorted(self.directory.iterdir())}
        digests["host/instance.json"] = hashlib.sha256(self.instance).hexdigest()
        generated = hashlib.sha256()
        for block in generated_blocks(GENERATED_SIZE, self.seed):
            generated.update(block)
        digests["host/generated.bin"] = generated.hexdigest()
        return digests


async def breaking_members() -> AsyncIterator[stages.Member]:
    """A source that fails halfway through a member, after megabytes of archive went out."""

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in generated_chunks(2 * MIB, seed=1):
            yield chunk
        # What a source of one's own raises for an object it cannot read to the end.
        raise mb.StorageSourceError("host/broken.bin: the disk went away")

    yield stages.Member("host/generated.bin", GENERATED_SIZE, generated_chunks(GENERATED_SIZE, 2))
    yield stages.Member("host/broken.bin", 4 * MIB, chunks())


# --- sinks of one's own ----------------------------------------------------------------


def _link_into_place(temp: Path, path: Path) -> None:
    # link() + unlink() is a rename that refuses to replace: an archive already at
    # ``path`` is never clobbered. The directory fsync makes the new name durable.
    os.link(temp, path)
    os.unlink(temp)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RenamedFileSink:
    """An :class:`~monetr_backup.stages.ArchiveSink` writing a local file, all or nothing.

    Bytes go to a hidden temporary file beside ``path`` (mode 0600: an archive holds
    password hashes); :meth:`commit` fsyncs it and renames it into place, :meth:`abort`
    deletes it, so ``path`` either holds a complete archive or does not exist.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._temp: Path | None = None
        self._file: anyio.AsyncFile[bytes] | None = None
        self._finished = False

    async def write(self, data: bytes) -> None:
        """Append ``data``, creating the temporary file on the first call."""
        if self._file is None:
            # Beside ``path``, so the rename never crosses a filesystem.
            fd, name = await anyio.to_thread.run_sync(
                lambda: tempfile.mkstemp(
                    dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".partial"
                )
            )
            self._temp = Path(name)
            self._file = anyio.wrap_file(os.fdopen(fd, "wb"))
        await self._file.write(data)

    async def commit(self) -> None:
        """Flush, fsync and rename the temporary file to ``path``."""
        if self._file is None or self._temp is None:
            raise mb.ArchiveWriteError("commit before any byte was written")
        await self._file.flush()
        await anyio.to_thread.run_sync(os.fsync, self._file.wrapped.fileno())
        await self._file.aclose()
        await anyio.to_thread.run_sync(_link_into_place, self._temp, self.path)
        self._finished = True

    async def abort(self) -> None:
        """Close and delete the temporary file; nothing after a commit, or a second time."""
        if self._finished:
            return
        self._finished = True
        if self._file is not None:
            await self._file.aclose()
        temp = self._temp
        if temp is not None:
            await anyio.to_thread.run_sync(lambda: temp.unlink(missing_ok=True))


class HashedDump:
    """Wraps any :class:`~monetr_backup.stages.DumpSource`, hashing the whole dump as it passes.

    A dump source composed by wrapping, as sinks are: here to compare the dump read back
    with the one written, byte for byte.
    """

    def __init__(self, inner: stages.DumpSource) -> None:
        self.inner = inner
        self.dump_format = inner.dump_format
        self.part_size = inner.part_size
        self.version = inner.version
        self.server_version = inner.server_version
        self._digest = hashlib.sha256()

    @property
    def parts(self) -> AsyncIterator[stages.DumpPart]:
        """The inner source's parts, unchanged."""
        return self._parts()

    async def _parts(self) -> AsyncIterator[stages.DumpPart]:
        async for part in self.inner.parts:
            for block in part.blocks:
                self._digest.update(block)
            yield part

    async def wait(self) -> None:
        """Whatever the inner source says of how it ended."""
        await self.inner.wait()

    @property
    def sha256(self) -> str:
        """SHA-256 of the dump passed so far."""
        return self._digest.hexdigest()


class Sha256Sink:
    """Wraps any :class:`~monetr_backup.stages.ArchiveSink`, keeping the SHA-256 of its bytes.

    The digest is what one records elsewhere (a catalogue, a ``.sha256`` file) to check
    the stored archive later without trusting the storage.
    """

    def __init__(self, inner: stages.ArchiveSink) -> None:
        self.inner = inner
        self.size = 0
        #: Set once the inner sink has committed.
        self.sha256: str | None = None
        self._digest = hashlib.sha256()

    async def write(self, data: bytes) -> None:
        """Hash ``data`` and pass it on."""
        # On the event loop: SHA-256 holds it for about 0.6 ms per 1 MiB chunk, little
        # next to the compression that produced the chunk in a worker thread.
        self._digest.update(data)
        self.size += len(data)
        await self.inner.write(data)

    async def commit(self) -> None:
        """Commit the inner sink, then publish the digest."""
        await self.inner.commit()
        self.sha256 = self._digest.hexdigest()

    async def abort(self) -> None:
        """Abort the inner sink."""
        await self.inner.abort()


# --- part 1: backup() with a source and a sink of one's own ------------------------------


async def one_call(config: mb.PostgresConfig, host: HostFiles, work: Path) -> None:
    """Back up the database and the host files through our sink, verify, restore the files."""
    path = work / "one-call.tar.gz"
    sink = Sha256Sink(RenamedFileSink(path))
    manifest = await mb.backup(sink, database=config, storage=host.members())
    print(
        f"part 1: backup() wrote {sink.size:,} bytes to {path.name} through our sinks, "
        f"{manifest.object_count} extra members"
    )
    check(sink.sha256 == sha256_file(path), "the sink's SHA-256 is not that of the file")
    expected = host.expected()
    listed = {
        entry.name.split("/storage/", 1)[1]: entry.sha256
        for entry in manifest.members
        if "/storage/" in entry.name
    }
    check(listed == expected, f"the manifest differs for {differing(listed, expected)}")

    report = await mb.verify(mb.FileArchive(path=path))
    check(report.ok, f"verify found problems: {report.problems}")
    print(f"  verify: ok, {report.members_checked} members checked")

    # Leaving out ``database`` restores only the storage objects (the dump is still
    # read and checked against its summary and the manifest).
    restored = work / "restored-host"
    result = await mb.restore(mb.FileArchive(path=path), storage=mb.DirectoryStorage(path=restored))
    got = {str(p.relative_to(restored)): sha256_file(p) for p in restored.rglob("*") if p.is_file()}
    check(got == expected, f"restored files differ: {differing(got, expected)}")
    print(f"  restore: {len(result.objects_restored)} objects back, byte for byte")

    # All or nothing: a source that breaks after some archive bytes went to the sink.
    broken_dir = work / "broken"
    broken_dir.mkdir()
    broken = Sha256Sink(RenamedFileSink(broken_dir / "broken.tar.gz"))
    try:
        await mb.backup(broken, storage=breaking_members())
    except mb.StorageSourceError as exc:
        print(f"  a failing source: {type(exc).__name__}: {exc}")
    else:
        raise SystemExit("check failed: a backup from a failing source succeeded")
    check(broken.size > 0, "the failing backup never wrote: the abort went untested")
    left = sorted(p.name for p in broken_dir.iterdir())
    check(not left, f"an aborted backup left {left} behind")
    print(f"  abort: {broken.size:,} bytes had been written, nothing is left")


# --- part 2: the stages by hand ----------------------------------------------------------


async def write_with_stages(config: mb.PostgresConfig, host: HostFiles, path: Path) -> str:
    """pg_dump and the host files -> a zstd archive at ``path``; returns the dump's SHA-256."""
    created = datetime.now(UTC)
    dump_format = mb.DumpFormat.CUSTOM
    codec = mb.Codec.ZSTD
    # The header is the archive's own description: its part size is what a reader
    # holds the dump parts to, and its codec is what compress() must be given.
    header = mb.Header(
        created_at=created,
        library_version=mb.__version__,
        top_folder=f"monetr-backup-{created:%Y%m%dT%H%M%SZ}",
        database=config.database,
        dump_format=dump_format,
        dump_part_size=PART_SIZE,
        storage="host files",
        codec=codec,
    )
    manifests: list[mb.Manifest] = []
    # Entered in this order, left in reverse: on any error the file sink deletes its
    # temporary file first, then pg_dump is killed.
    async with (
        stages.open_pg_dump(config, dump_format, part_size=PART_SIZE) as pg_dump,
        stages.open_file_sink(path) as file_sink,
    ):
        # A running pg_dump is a DumpSource as it is: archive_members checks it against
        # the header (part size, format) before writing anything.
        dump = HashedDump(pg_dump)
        members = stages.archive_members(header, dump, host.members(), on_manifest=manifests.append)
        sink = Sha256Sink(file_sink)
        async for chunk in stages.compress(stages.encode_tar(members), codec):
            await sink.write(chunk)
        # The manifest comes last; without it the archive is incomplete and must not
        # appear (leaving the block uncommitted makes open_file_sink delete it).
        check(len(manifests) == 1, "the archive ended without its manifest")
        await sink.commit()
    check(sink.sha256 == sha256_file(path), "the sink's SHA-256 is not that of the file")
    print(f"part 2: the stages wrote {sink.size:,} bytes to {path.name}")
    return dump.sha256


async def read_with_stages(path: Path, host: HostFiles, dump_sha256: str) -> None:
    """List the archive with the reading stages, checking the dump and every object."""
    # aclosing: a reader that stops early must still close the file it is reading.
    async with (
        aclosing(stages.file_bytes(path)) as chunks,
        stages.open_tar_entries(chunks) as entries,
    ):
        reader = stages.ArchiveReader(entries)
        header = await reader.read_header()
        check(header.codec is mb.Codec.ZSTD, f"header says codec {header.codec}")
        dump = hashlib.sha256()
        # Ends only once the whole dump matched its summary (the reader is strict).
        async for chunk in reader.dump_chunks():
            dump.update(chunk)
        check(dump.hexdigest() == dump_sha256, "the dump read back is not the one written")
        objects: dict[str, str] = {}
        async for item in reader.objects():
            digest = hashlib.sha256()
            async for chunk in item.chunks:
                digest.update(chunk)
            objects[item.key] = digest.hexdigest()
        expected = host.expected()
        check(objects == expected, f"objects read back differ: {differing(objects, expected)}")
        manifest = await reader.finish()
    # ``seen`` is every member read, the manifest included; the manifest lists the others.
    check(len(reader.seen) == manifest.member_count + 1, "the manifest misses members")
    print(f"  ArchiveReader: {header.top_folder}/ holds {len(reader.seen)} members:")
    for entry in reader.seen:
        print(f"    {entry.name.removeprefix(header.top_folder + '/'):<28} {entry.size:>10,}")


async def by_stages(pg: TemporaryPostgres, host: HostFiles, work: Path) -> None:
    """Write with the stages, read back with the stages, then verify() and restore()."""
    config = pg.config("monetr")
    path = work / "by-stages.tar.zst"
    dump_sha256 = await write_with_stages(config, host, path)
    await read_with_stages(path, host, dump_sha256)

    report = await mb.verify(mb.FileArchive(path=path))
    check(report.ok, f"verify found problems: {report.problems}")
    print(f"  verify: ok, {report.members_checked} members checked")

    copy = config.model_copy(update={"database": "monetr_copy"})
    result = await mb.restore(
        mb.FileArchive(path=path), database=copy, options=mb.RestoreOptions(create_database=True)
    )
    same = pg.pg_dump_text("monetr", restrict_key=RESTRICT_KEY) == pg.pg_dump_text(
        "monetr_copy", restrict_key=RESTRICT_KEY
    )
    check(result.database_restored and same, "the restored database differs from the source")
    print(f"  restore: {result.dump_bytes:,} dump bytes into monetr_copy, identical")


async def run(pg: TemporaryPostgres, work: Path) -> None:
    """Both parts, one after the other."""
    host = HostFiles(work / "host")
    await one_call(pg.config("monetr"), host, work)
    await by_stages(pg, host, work)
    print("all checks passed")


def main() -> None:
    """Start a seeded PostgreSQL and write the host files in a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp, TemporaryPostgres() as pg:
        work = Path(tmp)
        pg.create_database("monetr")
        seed_monetr_like(pg, "monetr")
        write_host_files(work / "host")
        anyio.run(run, pg, work)


if __name__ == "__main__":
    main()
