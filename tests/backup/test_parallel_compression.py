"""BackupOptions.compress_threads -> an archive compressed in threads that every reader reads."""

from __future__ import annotations

import random
from pathlib import Path

import pydantic
import pytest

import monetr_backup as mb

from support.archives import gnu_tar_list
from support.processes import run
from support.sizes import MIB
from support.targets import tree

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("codec", [mb.Codec.GZIP, mb.Codec.ZSTD])
async def test_a_backup_compressed_in_threads_verifies_and_restores(
    codec: mb.Codec, tmp_path: Path
) -> None:
    root = tmp_path / "storage"
    root.mkdir()
    rng = random.Random(3)
    files = {f"f{n}": rng.randbytes(4096) * (n * 300 + 1) for n in range(6)}  # up to 6 MiB
    for name, data in files.items():
        (root / name).write_bytes(data)
    archive = tmp_path / f"a.tar.{'gz' if codec is mb.Codec.GZIP else 'zst'}"
    options = mb.BackupOptions(codec=codec, compress_threads=2, dump_part_size=MIB)
    await mb.backup(
        mb.FileArchive(path=archive), storage=mb.DirectoryStorage(path=root), options=options
    )
    assert (await mb.verify(mb.FileArchive(path=archive))).ok
    if codec is mb.Codec.GZIP:
        run(["gzip", "-t", str(archive)])
        # The parallel writer's marks (the option reached the compressor): batches end
        # with a sync flush (an empty stored block), the stream with an empty final block.
        stream = archive.read_bytes()
        assert b"\x00\x00\xff\xff" in stream
        assert stream[-10:-8] == b"\x03\x00"
    listed = {name.rsplit("/storage/", 1)[-1]: size for name, size in gnu_tar_list(archive, codec)}
    assert {name: listed[name] for name in files} == {n: len(d) for n, d in files.items()}
    await mb.restore(mb.FileArchive(path=archive), storage=mb.DirectoryStorage(path=tmp_path / "t"))
    assert tree(tmp_path / "t") == {name: data for name, data in files.items()}


def test_compress_threads_has_bounds() -> None:
    with pytest.raises(pydantic.ValidationError, match="compress_threads"):
        mb.BackupOptions(compress_threads=0)
    assert mb.BackupOptions().compress_threads is None
