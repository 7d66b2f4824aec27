"""Archive files -> tar streams checked and listed like an operator would; damaged, hand-built."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import zstandard

import monetr_backup as mb
from monetr_backup import Codec, Header, Manifest
from monetr_backup.stages import DumpSummary

# --- reading an archive with the stock tools ------------------------------------------

_MAGIC = {Codec.GZIP: b"\x1f\x8b", Codec.ZSTD: b"\x28\xb5\x2f\xfd"}


def decompress(data: bytes, codec: Codec | None = None) -> bytes:
    """The tar stream inside an archive, decompressed with the stock Python modules.

    ``codec`` is the one the archive must be in; without it, the archive's first bytes
    decide (checked here, not by the library's own detection).
    """
    if codec is None:
        codec = next((c for c, magic in _MAGIC.items() if data.startswith(magic)), Codec.NONE)
    if codec is Codec.NONE:
        assert data[257:262] == b"ustar"
        return data
    assert data.startswith(_MAGIC[codec])
    if codec is Codec.GZIP:
        return gzip.decompress(data)
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
    with reader:
        return reader.read()


_TAR_LINE = re.compile(r"^(\S+) (\S+)\s+(\d+) (\d{4}-\d\d-\d\d \d\d:\d\d) (.*)$")


def gnu_tar_list(path: Path, codec: Codec) -> list[tuple[str, int]]:
    """``tar -t[z]vf``: (name, size) of every member, asserting tar exits 0."""
    flags = {Codec.GZIP: "-tzvf", Codec.ZSTD: "--zstd -tvf", Codec.NONE: "-tvf"}[codec].split()
    proc = subprocess.run(
        ["tar", "--quoting-style=literal", *flags, str(path)],
        capture_output=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stderr == b""
    listed = []
    for line in proc.stdout.decode().splitlines():
        match = _TAR_LINE.match(line)
        assert match is not None, line
        assert match.group(1) == "-rw-------", line
        listed.append((match.group(5), int(match.group(3))))
    return listed


def zstd_cli_decompress(path: Path) -> bytes:
    """``zstd -t`` and ``zstd -dc`` on an archive (the CLI checks the frame checksum)."""
    check = subprocess.run(["zstd", "-q", "-t", str(path)], capture_output=True, check=False)
    assert check.returncode == 0, check.stderr
    out = subprocess.run(["zstd", "-q", "-dc", str(path)], capture_output=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


@dataclass
class Extracted:
    """An archive unpacked by ``tarfile`` and checked against its own documents."""

    root: Path
    top: str
    names: list[str]
    header: Header
    manifest: Manifest
    summary: DumpSummary | None
    dump: bytes
    objects: dict[str, bytes]
    #: member name (``instance/private-key``, ...) -> content, as the header announces them.
    instance: dict[str, bytes]


def extract(tar_bytes: bytes, dest: Path) -> Extracted:
    """Extract with ``tarfile`` (data filter), check member headers, the layout, the
    header, the dump summary and the manifest, and return what the archive holds."""
    assert len(tar_bytes) % tarfile.RECORDSIZE == 0
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        infos = tar.getmembers()
        for info in infos:
            assert info.isreg(), info.name
            assert (info.mode, info.uid, info.gid, info.uname, info.gname) == (
                0o600,
                0,
                0,
                "",
                "",
            )
            assert set(info.pax_headers) <= {"path", "size", "mtime"}, info.pax_headers
        tar.extractall(dest, filter="data")
    names = [info.name for info in infos]
    assert len(set(names)) == len(names)
    top = names[0].split("/")[0]
    assert all(name.startswith(top + "/") for name in names)
    relative = [name[len(top) + 1 :] for name in names]

    def read(name: str) -> bytes:
        return (dest / top / name).read_bytes()

    # Layout: header, instance files, dump parts 1..N, summary, storage objects, manifest last.
    assert relative[0] == "header.json"
    assert relative[-1] == "manifest.json"
    header = Header.model_validate_json(read("header.json"))
    manifest = Manifest.model_validate_json(read("manifest.json"))
    assert header.top_folder == manifest.top_folder == top

    position = 1
    instance: dict[str, bytes] = {}
    for announced in header.instance_files:
        assert relative[position] == announced.name
        instance[announced.name] = read(announced.name)
        position += 1
    parts: list[bytes] = []
    while relative[position].startswith("dump/part-"):
        assert relative[position] == f"dump/part-{len(parts) + 1:06d}"
        parts.append(read(relative[position]))
        position += 1
    summary = None
    if header.database is not None:
        assert relative[position] == "dump/summary.json"
        summary = DumpSummary.model_validate_json(read("dump/summary.json"))
        position += 1
        assert summary.part_count == len(parts)
        assert summary.part_size == header.dump_part_size
        assert all(len(part) == summary.part_size for part in parts[:-1])
        assert 0 < len(parts[-1]) <= summary.part_size
        assert summary.total_bytes == sum(map(len, parts))
        assert summary.sha256 is None  # v1's whole-dump digest; v2 has the parts' instead
        assert summary.parts_sha256 == sha256("".join(f"{sha256(p)}\n" for p in parts).encode())
        assert summary.dump_format == header.dump_format
        assert summary.pg_dump_version.startswith("pg_dump (PostgreSQL)")
    else:
        assert parts == []
    storage = relative[position:-1]
    assert all(name.startswith("storage/") for name in storage)
    objects = {name.removeprefix("storage/"): read(name) for name in storage}

    # The manifest lists every other member, in order, with true sizes and digests.
    assert [entry.name for entry in manifest.members] == names[:-1]
    for entry in manifest.members:
        content = (dest / entry.name).read_bytes()
        assert entry.size == len(content), entry.name
        assert entry.sha256 == sha256(content), entry.name
    assert manifest.member_count == len(names) - 1
    assert manifest.total_bytes == sum(entry.size for entry in manifest.members)
    assert manifest.dump_bytes == (summary.total_bytes if summary else 0)
    assert manifest.object_count == len(objects)
    assert manifest.object_bytes == sum(map(len, objects.values()))
    assert manifest.created_at == header.created_at <= manifest.completed_at
    assert json.loads(read("manifest.json"))["format_version"] == 2
    return Extracted(
        root=dest,
        top=top,
        names=names,
        header=header,
        manifest=manifest,
        summary=summary,
        dump=b"".join(parts),
        objects=objects,
        instance=instance,
    )


def check_archive_file(path: Path, codec: Codec, dest: Path) -> Extracted:
    """Everything an operator could do with the file: GNU tar lists each member with the
    right size, the stock decompressors (and the ``zstd`` CLI) agree, tarfile extracts."""
    data = path.read_bytes()
    tar_bytes = decompress(data, codec)
    if codec is Codec.ZSTD:
        assert zstd_cli_decompress(path) == tar_bytes
    extracted = extract(tar_bytes, dest)
    listed = gnu_tar_list(path, codec)
    assert [name for name, _ in listed] == extracted.names
    sizes = {entry.name: entry.size for entry in extracted.manifest.members}
    for name, size in listed[:-1]:
        assert sizes[name] == size, name
    return extracted


def tar_layout(tar: bytes) -> dict[str, tuple[int, int]]:
    """Member name -> (offset of its content in the tar stream, size)."""
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
        return {info.name: (info.offset_data, info.size) for info in archive.getmembers()}


def member_names(path: Path) -> list[str]:
    """The archive's member names, in order."""
    return list(tar_layout(decompress(path.read_bytes())))


def last_dump_part(path: Path) -> str:
    """The name of the archive's last dump part."""
    return [name for name in member_names(path) if "/dump/part-" in name][-1]


# --- damage, done the way real damage looks ------------------------------------------


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


#: The top folder of the archives these tests build by hand.
TOP = "monetr-backup-20240305T141502Z"


def header_json(
    top: str,
    *,
    dump_format: mb.DumpFormat | None = None,
    format_version: int = 2,
    instance_files: list[tuple[str, str]] = [],  # noqa: B006 (read only)
) -> bytes:
    """A valid ``header.json`` for an archive with top folder ``top`` (``instance_files``:
    (member name, kind) as announced, valid or not)."""
    header = mb.Header(
        format_version=format_version,
        instance_files=[
            {"name": name, "kind": kind, "source": f"/etc/monetr/{kind}"}
            for name, kind in instance_files
        ],
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
