"""Members -> a tar stream: byte for byte what tarfile writes, and what GNU tar lists."""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monetr_backup import Codec, Header, Manifest, StorageSourceError
from monetr_backup.stages import Member, SkippedObject, archive_members, encode_tar

from support.chunks import each, pieces, sample_data
from support.processes import run

SPEC = [
    ("monetr-backup-20240305T141502Z/header.json", b'{"a": 1}\n', 1709648102),
    ("monetr-backup-20240305T141502Z/dump/part-000001", sample_data(10240), 1709648102),
    ("monetr-backup-20240305T141502Z/storage/empty", b"", 0),
    ("monetr-backup-20240305T141502Z/storage/one", b"x", 1),
    ("monetr-backup-20240305T141502Z/storage/block", b"b" * 512, 2),
    ("monetr-backup-20240305T141502Z/storage/block+1", b"c" * 513, 3),
    ("monetr-backup-20240305T141502Z/storage/" + "long-" * 30 + "name", b"long", 4),
    ("monetr-backup-20240305T141502Z/storage/ünïcødé/日本語/📄 x.pdf", b"%PDF", 5),
    ("monetr-backup-20240305T141502Z/storage/" + "日本語" * 40, b"u" * 1000, 6),
]


async def encode(spec: list[tuple[str, bytes, int]]) -> bytes:
    async def members() -> AsyncIterator[Member]:
        for number, (name, data, mtime) in enumerate(spec):
            yield Member(name, len(data), each(pieces(data, number)), mtime=mtime)

    return b"".join([chunk async for chunk in encode_tar(members())])


def tarfile_reference(spec: list[tuple[str, bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mtime in spec:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = mtime
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.anyio
@pytest.mark.parametrize("count", [0, 1, len(SPEC)])
async def test_encode_tar_matches_tarfile_byte_for_byte(count: int) -> None:
    """Long and unicode names (PAX records), sizes around the 512-byte block, empty
    members, no members at all: the stream is exactly what ``tarfile`` itself writes."""
    spec = SPEC[:count]
    ours = await encode(spec)
    assert ours == tarfile_reference(spec)
    assert len(ours) % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(ours)) as tar:
        got = [(m.name, tar.extractfile(m).read(), m.mtime) for m in tar]  # type: ignore[union-attr]
    assert got == spec


@pytest.mark.anyio
async def test_encode_tar_gnu_tar_lists_it(tmp_path: Path) -> None:
    path = tmp_path / "x.tar"
    path.write_bytes(await encode(SPEC))
    proc = run(["env", "LC_ALL=C.UTF-8", "tar", "--quoting-style=literal", "-tf", str(path)])
    assert proc.stdout.decode().splitlines() == [name for name, _, _ in SPEC]


@pytest.mark.anyio
@pytest.mark.parametrize(("declared", "actual"), [(10, 11), (10, 9), (0, 1), (1, 0)])
async def test_encode_tar_refuses_a_member_of_the_wrong_size(declared: int, actual: int) -> None:
    async def members() -> AsyncIterator[Member]:
        yield Member("top/changed-while-read", declared, each([b"x" * actual]))

    with pytest.raises(StorageSourceError, match="top/changed-while-read"):
        async for _ in encode_tar(members()):
            pass


@pytest.mark.anyio
async def test_the_manifest_names_at_most_1000_skipped_objects() -> None:
    """However many objects a source skipped, the manifest lists the first 1,000 and counts
    them all, so its size stays within what a reader allows (no manifest bomb of our own)."""
    header = Header(
        created_at=datetime.now(UTC),
        library_version="test",
        top_folder="t",
        database=None,
        dump_format=None,
        dump_part_size=1,
        storage="custom",
        codec=Codec.NONE,
    )
    skipped = [SkippedObject(key=f"k{i}", reason="deleted before it was read") for i in range(2500)]
    manifests: list[Manifest] = []
    async for member in archive_members(header, None, None, skipped, on_manifest=manifests.append):
        async for _ in member.chunks:
            pass
    assert manifests[0].skipped_count == 2500
    assert [item.key for item in manifests[0].skipped] == [f"k{i}" for i in range(1000)]
