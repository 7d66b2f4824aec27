#!/usr/bin/env python3
"""A monetr-like dump -> the CPU seconds per GB of each per-byte stage a backup can run."""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

import anyio
import pyrage
import zstandard
from isal import isal_zlib

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from harness.data import create_database  # noqa: E402
from harness.settings import MIB  # noqa: E402

from monetr_backup._format.age_stream import AgeThread  # noqa: E402
from monetr_backup.stages import open_tar_entries  # noqa: E402
from monetr_backup.testing import TemporaryPostgres  # noqa: E402

CHUNK = MIB
#: The stage whose output ratio sizes the archive the upload checksums run over.
DEFAULT_CODEC = "gzip, ISA-L level 2 (default)"


class _Compressor(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...
    def flush(self) -> bytes: ...


def _deflate(make: Callable[[], _Compressor]) -> Callable[[list[bytes]], int]:
    def run(chunks: list[bytes]) -> int:
        compressor = make()
        size = sum(len(compressor.compress(c)) for c in chunks)
        return size + len(compressor.flush())

    return run


def _digest(name: str) -> Callable[[list[bytes]], int]:
    def run(chunks: list[bytes]) -> int:
        digest = hashlib.new(name)
        for chunk in chunks:
            digest.update(chunk)
        return 0

    return run


def _crc(function: Callable[[bytes, int], int]) -> Callable[[list[bytes]], int]:
    def run(chunks: list[bytes]) -> int:
        value = 0
        for chunk in chunks:
            value = function(chunk, value)
        return 0

    return run


STAGES: list[tuple[str, str, Callable[[list[bytes]], int]]] = [
    ("codec", "gzip, ISA-L level 1", _deflate(lambda: isal_zlib.compressobj(1, 8, 31))),
    ("codec", DEFAULT_CODEC, _deflate(lambda: isal_zlib.compressobj(2, 8, 31))),
    ("codec", "gzip, ISA-L level 3", _deflate(lambda: isal_zlib.compressobj(3, 8, 31))),
    ("codec", "gzip, zlib level 1", _deflate(lambda: zlib.compressobj(1, 8, 31))),
    ("codec", "gzip, zlib level 6 (gzip's default)", _deflate(lambda: zlib.compressobj(6, 8, 31))),
    ("codec", "zstd level 1", _deflate(lambda: zstandard.ZstdCompressor(level=1).compressobj())),
    ("codec", "zstd level 3", _deflate(lambda: zstandard.ZstdCompressor(level=3).compressobj())),
    ("hash", "SHA-256 (manifest, dump summary)", _digest("sha256")),
    ("upload", "CRC32, ISA-L (default upload checksum)", _crc(isal_zlib.crc32)),
    ("upload", "MD5 (Content-MD5)", _digest("md5")),
    ("upload", "SHA-256 (botocore payload signing, plain http)", _digest("sha256")),
    # The same pass over the archive's bytes as stored, for its catalog entry.
    ("upload", "SHA-256 of the archive (catalog entry)", _digest("sha256")),
]


def _rechunk(pieces: list[bytes]) -> list[bytes]:
    data = b"".join(pieces)
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def _through_age_thread(
    call: Callable[[io.BufferedIOBase, io.BufferedIOBase], object], chunks: list[bytes]
) -> list[bytes]:
    """``call(input, output)`` fed as the pipeline feeds it: 1 MiB steps through the
    age thread (its thread's CPU counts: process_time is the whole process's)."""
    engine = AgeThread(call)
    try:
        out = [engine.step(chunk) for chunk in chunks]
        out.append(engine.step(b""))
    finally:
        engine.close()
    return out


def age_rows(chunks: list[bytes], rounds: int) -> list[tuple[str, float, int]]:
    """Encryption and decryption of the default codec's archive of the dump (what the
    age stage really runs over): (name, seconds, archive bytes)."""
    compressor = isal_zlib.compressobj(2, 8, 31)
    archive = _rechunk([compressor.compress(c) for c in chunks] + [compressor.flush()])
    identity = pyrage.x25519.Identity.generate()
    recipient = identity.to_public()

    def encrypt(source: io.BufferedIOBase, sink: io.BufferedIOBase) -> None:
        pyrage.encrypt_io(source, sink, [recipient])

    def decrypt(source: io.BufferedIOBase, sink: io.BufferedIOBase) -> None:
        pyrage.decrypt_io(source, sink, [identity])

    ciphertext = _rechunk(_through_age_thread(encrypt, archive))
    size = sum(map(len, archive))
    rows = []
    runs: list[tuple[str, Callable[[], object]]] = [
        (
            "age encryption, X25519 (backup, 1 MiB steps)",
            lambda: _through_age_thread(encrypt, archive),
        ),
        (
            "age decryption (restore, verify, 1 MiB steps)",
            lambda: _through_age_thread(decrypt, ciphertext),
        ),
    ]
    for name, run in runs:
        times = []
        for _ in range(rounds):
            started = time.process_time()
            run()
            times.append(time.process_time() - started)
        rows.append((name, statistics.median(times), size))
    return rows


def generated_dump(work: Path, mib: float) -> Path:
    path = work / "cpu-costs.dump"
    with TemporaryPostgres() as pg:
        print(f"generating a ~{mib:g} MiB database ...", flush=True)
        create_database(pg, "monetr", mib)
        env = pg.env("monetr")
        subprocess.run(
            [str(pg.bin_dir / "pg_dump"), "-Fc", "-Z0", "-f", str(path)], env=env, check=True
        )
    return path


def _default_archive(data: bytes) -> bytes:
    """The dump as a backup stores it: 2 MiB part members of a tar, gzip level 2."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for number, start in enumerate(range(0, len(data), 2 * MIB), 1):
            part = data[start : start + 2 * MIB]
            info = tarfile.TarInfo(f"monetr-backup/dump/part-{number:06d}")
            info.size = len(part)
            tar.addfile(info, io.BytesIO(part))
    compressor = isal_zlib.compressobj(2, 8, 31)
    return compressor.compress(buffer.getvalue()) + compressor.flush()


def restore_rows(data: bytes, rounds: int) -> list[tuple[str, float]]:
    """Reading the default archive of the dump back: inflate alone, and the tar reader
    (inflate, tar headers, a SHA-256 per member, its thread's hops), in 1 MiB chunks as
    a download gives them: (name, seconds of the whole process, median)."""
    archive = _default_archive(data)
    pieces = [archive[i : i + CHUNK] for i in range(0, len(archive), CHUNK)]

    def inflate() -> None:
        decompressor = isal_zlib.decompressobj(wbits=31)
        for piece in pieces:
            decompressor.decompress(piece)

    async def each() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    async def read() -> None:
        async with open_tar_entries(each()) as entries:
            async for entry in entries:
                async for _ in entry.chunks:
                    pass

    rows = []
    for name, run in [
        ("inflate, ISA-L (restore of the default codec)", inflate),
        ("tar reader: inflate + headers + SHA-256s", lambda: anyio.run(read)),
    ]:
        times = []
        for _ in range(rounds):
            started = time.process_time()
            run()
            times.append(time.process_time() - started)
        rows.append((name, statistics.median(times)))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Time each stage on one core over the dump and print the table.

    On a 2-core machine a backup is CPU-bound (see RESULTS.md), so what each stage costs
    per byte decides the defaults: the gzip level, the upload checksum. The input is a
    real monetr-like ``pg_dump -Fc -Z0`` output, fed in 1 MiB chunks as the pipeline
    does::

        python benchmarks/cpu_costs.py                  # generates a ~256 MiB dump first
        python benchmarks/cpu_costs.py --dump FILE      # an existing pg_dump -Fc -Z0 file

    Each stage runs ``--rounds`` times (median); the table gives MB/s of input, seconds
    of one core per GB of dump (for the upload checksums: of the archive the default
    codec makes of a GB of dump, what they really hash), and the output ratio for codecs.
    """
    parser = argparse.ArgumentParser(
        description="CPU cost per GB of dump of each per-byte stage a backup can run, on one core."
    )
    parser.add_argument("--dump", type=Path, help="a pg_dump -Fc -Z0 file (default: generate)")
    parser.add_argument("--dump-mib", type=float, default=256, help="size to generate")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="monetr-cpu-costs-") as work:
        path = args.dump or generated_dump(Path(work), args.dump_mib)
        data = path.read_bytes()
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    size = len(data)
    print(f"input: {size:,} bytes of pg_dump -Fc -Z0 in {CHUNK // MIB} MiB chunks")
    header = f"| {'stage':<48} | {'MB/s':>6} | {'s per GB of dump':>16} | {'ratio':>5} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    archive_ratio = 1.0
    for kind, name, run in STAGES:
        times = []
        out = 0
        for _ in range(args.rounds):
            started = time.process_time()
            out = run(chunks)
            times.append(time.process_time() - started)
        seconds = statistics.median(times)
        per_gb = seconds / (size / 1e9)
        if name == DEFAULT_CODEC:
            archive_ratio = size / out
        if kind == "upload":
            per_gb /= archive_ratio
        ratio = f"{size / out:.2f}" if out else "-"
        print(f"| {name:<48} | {size / 1e6 / seconds:>6.0f} | {per_gb:>16.2f} | {ratio:>5} |")
    for name, seconds, archive_size in age_rows(chunks, args.rounds):
        per_gb = seconds / (archive_size / 1e9) / archive_ratio
        print(f"| {name:<48} | {archive_size / 1e6 / seconds:>6.0f} | {per_gb:>16.2f} | {'-':>5} |")
    for name, seconds in restore_rows(data, args.rounds):
        per_gb = seconds / (size / 1e9)
        print(f"| {name:<48} | {size / 1e6 / seconds:>6.0f} | {per_gb:>16.2f} | {'-':>5} |")
    print(
        "s per GB of dump: CPU seconds of one core; upload checksums and age run on the "
        f"archive, {archive_ratio:.2f}x smaller than the dump with the default codec "
        "(their MB/s is of archive bytes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
