"""Helpers for the restore, verify and inspect tests.

Damaging archives the way real damage looks (one flipped byte inside a member, with the
gzip container rebuilt so its own CRC still passes; a cut-off file), building hostile tar
archives by hand with ``tarfile``, and taking snapshots of the restore targets (files
with their modes, bucket contents, child processes) to compare before and after.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import shutil
import stat
import tarfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import zstandard

import monetr_backup as mb
from monetr_backup import stages
from monetr_backup.testing import (
    PostgresServer,
    TemporarySeaweedS3,
    seed_monetr_like,
    seed_storage_dir,
)

# --- databases -----------------------------------------------------------------------


def database_exists(pg: PostgresServer, name: str) -> bool:
    """Whether database ``name`` exists on the server."""
    literal = "'" + name.replace("'", "''") + "'"
    return pg.psql(f"SELECT count(*) FROM pg_database WHERE datname = {literal}") == "1\n"


# --- a sample to back up and restore ------------------------------------------------

#: Small dump parts, so the ~270 KB dump of the sample database spans several.
PART_SIZE = 64 * 1024
#: Fixed ``\restrict`` key: pg_dump 15.14+ writes a random one into every dump otherwise.
RESTRICT_KEY = "k"


@dataclass(frozen=True)
class Sample:
    """A seeded source database and storage folder, with local archives of both."""

    database: str
    storage: Path
    files: dict[str, bytes]
    #: ``pg_dump`` of the source database (fixed restrict key).
    dump: bytes
    #: gzip archives (dump + directory storage), one per dump format.
    archives: dict[mb.DumpFormat, Path]
    manifests: dict[mb.DumpFormat, mb.Manifest]


@contextmanager
def make_sample(pg: PostgresServer, root: Path) -> Iterator[Sample]:
    """Seed a database (dropped on exit) and a storage folder, and back both up."""
    name = f"restore_src_{uuid.uuid4().hex[:12]}"
    pg.create_database(name)
    try:
        seed_monetr_like(pg, name)
        files = seed_storage_dir(root / "storage", count=10)
        archives: dict[mb.DumpFormat, Path] = {}
        manifests: dict[mb.DumpFormat, mb.Manifest] = {}
        for dump_format in mb.DumpFormat:
            path = root / f"sample-{dump_format}.tar.gz"
            manifests[dump_format] = anyio.run(
                functools.partial(
                    mb.backup,
                    mb.FileArchive(path=path),
                    database=pg.config(name),
                    storage=mb.DirectoryStorage(path=root / "storage"),
                    options=mb.BackupOptions(dump_format=dump_format, dump_part_size=PART_SIZE),
                )
            )
            archives[dump_format] = path
        yield Sample(
            database=name,
            storage=root / "storage",
            files=files,
            dump=pg.pg_dump_text(name, restrict_key=RESTRICT_KEY),
            archives=archives,
            manifests=manifests,
        )
    finally:
        pg.drop_database(name)


# --- archive bytes -------------------------------------------------------------------


def decompress(data: bytes) -> bytes:
    """The plain tar stream inside an archive of any of the three codecs."""
    codec = stages.detect_codec(data[:4])
    if codec is mb.Codec.GZIP:
        return gzip.decompress(data)
    if codec is mb.Codec.ZSTD:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
            return reader.read()
    return data


def tar_layout(tar: bytes) -> dict[str, tuple[int, int]]:
    """Member name -> (offset of its content in the tar stream, size)."""
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
        return {info.name: (info.offset_data, info.size) for info in archive.getmembers()}


def member_names(path: Path) -> list[str]:
    """The archive's member names, in order."""
    return list(tar_layout(decompress(path.read_bytes())))


def flip_member_byte(path: Path, name: str, index: int = -1) -> None:
    """Flip byte ``index`` of member ``name``'s content in the archive at ``path``.

    The tar stream is decompressed, changed in place (sizes and tar headers stay valid)
    and compressed again with gzip, so the container's CRC is correct and only the
    archive's own SHA-256 digests can notice.
    """
    tar = bytearray(decompress(path.read_bytes()))
    offset, size = tar_layout(bytes(tar))[name]
    assert size > 0, f"{name} is empty: nothing to flip"
    tar[offset + index % size] ^= 0x5A
    path.write_bytes(gzip.compress(bytes(tar), compresslevel=1))


def truncate_file(path: Path, fraction: float) -> None:
    """Cut the file at ``path`` to ``fraction`` of its length."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


# --- hand-built tar archives ---------------------------------------------------------


def header_json(top: str, *, dump_format: mb.DumpFormat | None = None) -> bytes:
    """A valid ``header.json`` for an archive with top folder ``top``."""
    header = mb.Header(
        created_at=datetime(2024, 3, 5, 14, 15, 2, tzinfo=UTC),
        library_version=mb.__version__,
        top_folder=top,
        database="monetr" if dump_format is not None else None,
        dump_format=dump_format,
        dump_part_size=64 * 1024,
        storage="directory /srv/monetr" if dump_format is None else None,
        codec=mb.Codec.NONE,
    )
    return header.model_dump_json(indent=2).encode() + b"\n"


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes | None]:
    """A regular-file member."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = 1_700_000_000
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    """A member that is not a regular file (``tarfile.SYMTYPE``, ``LNKTYPE``, ``DIRTYPE`` ...)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o700 if kind == tarfile.DIRTYPE else 0o600
    info.mtime = 1_700_000_000
    return info, None


def build_tar(members: Iterable[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """A plain (uncompressed) tar stream holding ``members`` exactly as given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


# --- snapshots of the targets --------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Everything under ``root``, folders included: path -> (kind, mode, content).

    :func:`tree` sees files only; "as it was" also means no folder appeared or went.
    """
    found: dict[str, tuple[str, int, bytes]] = {}
    if not root.exists():
        return found
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        kind = "dir" if stat.S_ISDIR(info.st_mode) else "file"
        content = path.read_bytes() if kind == "file" else b""
        found[path.relative_to(root).as_posix()] = (kind, stat.S_IMODE(info.st_mode), content)
    return found


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` (relative POSIX path -> content).

    Anything else but folders (a symlink, a FIFO) fails the test: a restore never makes one.
    """
    files: dict[str, bytes] = {}
    if not root.exists():
        return files
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode):
            continue
        assert stat.S_ISREG(mode), f"unexpected non-regular file {path}"
        files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def modes(root: Path) -> dict[str, int]:
    """Permission bits of every file and folder under ``root`` (relative path -> mode)."""
    return {
        path.relative_to(root).as_posix(): stat.S_IMODE(path.lstat().st_mode)
        for path in sorted(root.rglob("*"))
    }


def partial_files(root: Path) -> list[str]:
    """Temporary ``.partial`` files a restore may have left behind."""
    return [path.as_posix() for path in root.rglob("*.partial")]


def write_files(root: Path, files: dict[str, bytes], mode: int = 0o600) -> None:
    """Write ``files`` under ``root`` (folders 0700), each with ``mode``."""
    for key, content in files.items():
        target = root / key
        folder = root
        for part in Path(key).parent.parts:
            folder /= part
            if not folder.exists():
                folder.mkdir(parents=True)
                folder.chmod(0o700)
        target.write_bytes(content)
        target.chmod(mode)


def bucket_objects(s3: TemporarySeaweedS3, bucket: str) -> dict[str, bytes]:
    """Every object in ``bucket`` (key -> content)."""
    client = s3.client()
    objects: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for listed in page.get("Contents", []):
            key = listed["Key"]
            objects[key] = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return objects


def put_objects(s3: TemporarySeaweedS3, bucket: str, objects: dict[str, bytes]) -> None:
    """Put ``objects`` (key -> content) into ``bucket``."""
    client = s3.client()
    for key, content in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=content)


def child_processes() -> dict[int, str]:
    """This process's children, zombies included (pid -> command name), read from /proc."""
    children: dict[int, str] = {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        name = raw[raw.index(b"(") + 1 : raw.rindex(b")")].decode(errors="replace")
        ppid = raw.rsplit(b")", 1)[1].split()[1]
        if int(ppid) == me:
            children[int(entry)] = name
    return children


#: The top folder of the archives these tests build by hand.
TOP = "monetr-backup-20240305T141502Z"


def copy_archive(sample: Sample, dump_format: mb.DumpFormat, tmp_path: Path) -> Path:
    """A private copy of a sample archive, for a test to damage."""
    path = tmp_path / f"copy-{dump_format}.tar.gz"
    shutil.copyfile(sample.archives[dump_format], path)
    return path
