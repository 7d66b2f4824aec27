"""Test data and archive checks shared by the backup tests.

The checks read an archive the way an operator would without this library: GNU tar
lists it, Python's ``tarfile`` extracts it, the dump parts are concatenated and fed to
``pg_restore``/``psql``, and every storage object is compared byte for byte.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import re
import signal
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from monetr_backup import Codec, DumpFormat, Header, Manifest
from monetr_backup.stages import DumpSummary
from monetr_backup.testing import PostgresServer

MIB = 1024 * 1024
#: S3's smallest allowed non-final multipart part.
MIN_PART = 5 * MIB
#: Dump part size for the tests: small, so a modest database spans many parts.
DUMP_PART_SIZE = 256 * 1024

#: Added to a monetr-seeded database by the ``rich_template`` fixture: bytea (random,
#: empty, NUL, escapes), large unicode text, and ``events``, a table of several MB that
#: spans many 256 KiB dump parts (and keeps pg_dump busy long enough to interrupt it).
RICH_SEED_SQL = r"""
SET client_min_messages = warning;
BEGIN;
CREATE TABLE blobs (id int PRIMARY KEY, data bytea NOT NULL);
INSERT INTO blobs SELECT i, gen_random_bytes(1 + i % 1024) FROM generate_series(1, 300) i;
INSERT INTO blobs
  SELECT 0, (SELECT string_agg(gen_random_bytes(1024), ''::bytea) FROM generate_series(1, 512));
INSERT INTO blobs VALUES (-1, '\x00'::bytea), (-2, ''::bytea), (-3, '\x5c0a0d0900ff'::bytea);

CREATE TABLE documents (id int PRIMARY KEY, title text NOT NULL, body text NOT NULL);
INSERT INTO documents
  SELECT i, 'Dokument №' || i || ' — ünïcødé 日本語 🎉',
         repeat(E'Zeile mit Tab\tund Backslash \\ und "Quotes" — 中文 emoji 😀\r\n', 3000 + i)
  FROM generate_series(1, 6) i;

CREATE TABLE unicode_samples (id serial PRIMARY KEY, s text NOT NULL);
INSERT INTO unicode_samples (s) VALUES
  ('Zoë'), ('עברית'), ('العربية'), ('🏳️‍🌈'), (U&'e\0301'), (U&'\+01D518\+01D52B\+01D526'),
  (E'\\N'), ('NULL'), (E'line1\nline2\r\n'), (''), ('\.'), (repeat('ß', 10000));

CREATE TABLE events (
  id bigint PRIMARY KEY,
  account_id text NOT NULL,
  kind text NOT NULL,
  payload jsonb NOT NULL,
  at timestamptz NOT NULL
);
INSERT INTO events
  SELECT i, 'acct_' || (i % 3), (ARRAY['created', 'updated', 'deleted'])[i % 3 + 1],
         jsonb_build_object('n', i, 'md5', md5(i::text), 'note', 'Ünïcødé ☕ ' || i),
         timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second'
  FROM generate_series(1, 60000) i;
COMMIT;
ANALYZE;
"""

#: Keys a bucket may hold that must never become member names: they are skipped, and
#: listed in the manifest. (SeaweedFS itself normalises ``a//b`` and refuses ``.``/``..``,
#: so a "folder marker" is the unsafe key a real bucket can hold here.)
UNSAFE_S3_KEYS = ("data/folder-marker/",)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def make_storage_corpus() -> dict[str, bytes]:
    """Hundreds of small objects, one larger than a multipart part, unicode and >100-byte
    keys, S3-awkward characters, an empty object. Deterministic."""
    rng = random.Random(20240305)
    corpus: dict[str, bytes] = {}
    for i in range(300):
        kind = "imports" if i % 2 else "uploads"
        key = f"data/transactions/{kind}/{i % 7:02d}/file-{i:04d}.{('csv', 'ofx', 'bin')[i % 3]}"
        if i % 3 == 2:
            content = rng.randbytes(rng.randrange(1, 3000))
        else:
            lines = [
                f"2024-03-{d:02d},Café ☕ Ünïcødé 日本語 #{i},-{d * i}.{i % 100:02d}"
                for d in range(1, 29)
            ]
            content = "\r\n".join(lines[: rng.randrange(1, 29)]).encode()
        corpus[key] = content
    corpus["data/empty-file"] = b""
    # Larger than S3's minimum part: its bytes straddle a multipart part boundary.
    corpus["data/large/statement-archive.bin"] = rng.randbytes(6 * MIB + 4321)
    corpus["data/ünïcødé/日本語/明細 März.qfx"] = "明細 ✓\n".encode() * 50
    corpus["data/emoji/📄 receipt ☕.pdf"] = b"%PDF-1.4\n" + rng.randbytes(2000)
    corpus["data/special/space name+plus=eq&amp%25pct~tilde.txt"] = b"special\n"
    corpus["data/special/#hash;semi,comma@at!bang'quote(paren).txt"] = b"more special\n"
    # Keys longer than the 100-byte ustar name field (PAX 'path' records carry them).
    corpus["data/long/" + "k" * 150 + ".bin"] = rng.randbytes(777)
    corpus["data/" + "/".join(f"segment-{j:02d}" for j in range(15)) + "/deep.txt"] = b"deep\n"
    corpus["data/ünïcødé/" + "日本語" * 20 + ".txt"] = "長い名前\n".encode()
    assert sum(len(key.encode()) > 100 for key in corpus) >= 3
    return corpus


def write_storage_dir(root: Path, corpus: dict[str, bytes]) -> None:
    for key, content in corpus.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


# --- processes ---------------------------------------------------------------------


def _stat_fields(pid: str) -> tuple[str, str, int] | None:
    """(comm, state, ppid) of a process from /proc, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    comm = raw[raw.index(b"(") + 1 : raw.rindex(b")")].decode(errors="replace")
    state, ppid = raw[raw.rindex(b")") + 2 :].split()[:2]
    return comm, state.decode(), int(ppid)


def pg_dump_children() -> list[int]:
    """Process ids of this process's pg_dump children, zombies included."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(entry)
        if fields is not None and fields[0] == "pg_dump" and fields[2] == os.getpid():
            found.append(int(entry))
    return found


def kill_pg_dump() -> int:
    """SIGKILL this process's one running pg_dump child; return its pid."""
    children = pg_dump_children()
    assert len(children) == 1, children
    os.kill(children[0], signal.SIGKILL)
    return children[0]


def process_cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


# --- PostgreSQL --------------------------------------------------------------------


def client_env(pg: PostgresServer, database: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    return {**env, **pg.env(database), "PGCLIENTENCODING": "UTF8"}


def restore_dump(pg: PostgresServer, dump: bytes, dump_format: DumpFormat, database: str) -> None:
    """Restore ``dump`` into the empty ``database`` with the stock tools, reading stdin."""
    if dump_format is DumpFormat.CUSTOM:
        args = [
            str(pg.bin_dir / "pg_restore"),
            "--exit-on-error",
            "--single-transaction",
            "--no-password",
            f"--dbname={database}",
        ]
    else:
        args = [
            str(pg.bin_dir / "psql"),
            "--no-psqlrc",
            "--quiet",
            "--no-password",
            "--single-transaction",
            "-v",
            "ON_ERROR_STOP=1",
        ]
    proc = subprocess.run(
        args, input=dump, capture_output=True, env=client_env(pg, database), check=False
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")


def assert_same_database(pg: PostgresServer, expected: str, actual: str) -> None:
    """``pg_dump -Fp`` of both databases is identical.

    The plain dump names no database (that only happens with ``--create``), so no
    normalisation is needed beyond a fixed ``\\restrict`` key.
    """
    want = pg.pg_dump_text(expected, restrict_key="monetrbackuptest")
    got = pg.pg_dump_text(actual, restrict_key="monetrbackuptest")
    assert expected.encode() not in want
    assert b"COPY public.events" in want
    assert got == want


# --- S3 ----------------------------------------------------------------------------


def object_keys(client: Any, bucket: str) -> list[str]:
    response = client.list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in response.get("Contents", [])]


def multipart_uploads(client: Any, bucket: str) -> list[dict[str, Any]]:
    uploads: list[dict[str, Any]] = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return uploads


def assert_nothing_at(client: Any, bucket: str, key: str) -> None:
    """No object at ``key`` (nor anywhere in the bucket) and no unfinished upload."""
    assert key not in object_keys(client, bucket)
    assert object_keys(client, bucket) == []
    assert multipart_uploads(client, bucket) == []


# --- archives ----------------------------------------------------------------------

_MAGIC = {Codec.GZIP: b"\x1f\x8b", Codec.ZSTD: b"\x28\xb5\x2f\xfd"}


def decompress(data: bytes, codec: Codec) -> bytes:
    """The tar stream inside an archive, decompressed with the stock Python modules."""
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

    # Layout: header, dump parts 1..N, summary, storage objects, manifest last.
    assert relative[0] == "header.json"
    assert relative[-1] == "manifest.json"
    header = Header.model_validate_json(read("header.json"))
    manifest = Manifest.model_validate_json(read("manifest.json"))
    assert header.top_folder == manifest.top_folder == top

    position = 1
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
        assert summary.sha256 == sha256(b"".join(parts))
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
    assert json.loads(read("manifest.json"))["format_version"] == 1
    return Extracted(
        root=dest,
        top=top,
        names=names,
        header=header,
        manifest=manifest,
        summary=summary,
        dump=b"".join(parts),
        objects=objects,
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


# --- small blocking helpers (kept out of async test bodies) ------------------------


def names_in(directory: Path) -> list[str]:
    """Sorted names of the entries in ``directory``."""
    return sorted(path.name for path in directory.iterdir())


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run a command, asserting it succeeds."""
    proc = subprocess.run(args, capture_output=True, check=False)
    assert proc.returncode == 0, (args, proc.stderr.decode(errors="replace"))
    return proc


def file_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def server_checks_passwords(pg: PostgresServer) -> bool:
    """Whether the server refuses a wrong password over TCP (a server given through
    MONETR_BACKUP_TEST_PG_DSN might trust every local connection)."""
    env = {**client_env(pg, pg.database), "PGPASSWORD": "surely-not-the-password"}
    args = [str(pg.bin_dir / "psql"), "-X", "-tA", "-c", "SELECT 1"]
    return subprocess.run(args, env=env, capture_output=True, check=False).returncode != 0
