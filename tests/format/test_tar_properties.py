"""Arbitrary members, cut anyhow -> encode_tar, compress -> what tarfile and our reader read back.

The stdlib's ``tarfile`` is the independent reader (and, the other way round, the
independent writer). Hypothesis draws the members (names needing PAX records or not,
sizes around the tar block and up to ~300 KB), the chunks each member's content comes
in, the codec and the chunks the archive is read back in.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monetr_backup import Codec, StorageSourceError
from monetr_backup.stages import Member, compress, encode_tar, open_tar_entries

from support.archives import decompress
from support.chunks import each
from support.properties import bounded, chunk_sizes, contents, cut, member_names


@dataclass(frozen=True)
class Spec:
    """One member to encode: its name, content, mtime, and how its chunks are cut."""

    name: str
    data: bytes
    mtime: int
    sizes: list[int]

    def member(self, declared: int | None = None) -> Member:
        size = len(self.data) if declared is None else declared
        return Member(self.name, size, each(cut(self.data, self.sizes)), mtime=self.mtime)


specs = st.builds(
    Spec,
    member_names(),
    contents(),
    # Past 8**11 seconds the mtime no longer fits the ustar field: a PAX record holds it.
    st.one_of(st.integers(0, 2**31), st.integers(8**11 - 2, 8**11 + 2)),
    chunk_sizes(),
)
members = st.lists(specs, max_size=5)


async def _members(spec_list: list[Spec]) -> AsyncIterator[Member]:
    for spec in spec_list:
        yield spec.member()


async def _archive(spec_list: list[Spec], codec: Codec, batch_size: int) -> bytes:
    stream = compress(encode_tar(_members(spec_list)), codec, batch_size=batch_size)
    return b"".join([chunk async for chunk in stream])


def _tarfile_read(tar: bytes) -> list[tuple[str, int, bytes, int, int, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
        found = []
        for info in archive:
            content = archive.extractfile(info)
            assert content is not None, info
            found.append(
                (info.name, info.size, content.read(), info.mode, int(info.mtime), info.type)
            )
        return found


async def _our_read(chunks: list[bytes]) -> list[tuple[str, int, bytes, str | None]]:
    found = []
    async with open_tar_entries(each(chunks)) as entries:
        async for entry in entries:
            data = b"".join([chunk async for chunk in entry.chunks])
            found.append((entry.name, entry.size, data, entry.sha256))
    return found


@bounded(max_examples=120)
@given(
    spec_list=members,
    codec=st.sampled_from(Codec),
    batch_size=st.one_of(st.integers(1, 5000), st.just(1024 * 1024)),
    read_sizes=chunk_sizes(),
)
def test_encode_tar_is_what_tarfile_and_our_reader_read(
    spec_list: list[Spec], codec: Codec, batch_size: int, read_sizes: list[int]
) -> None:
    """Whatever the names, sizes and chunking: tarfile reads back exactly the members
    (name, size, content, mode 0600, a regular file, mtime) from the decompressed
    stream, and open_tar_entries, fed the compressed archive cut anyhow, yields the same
    members with the SHA-256 of their content."""
    archive = anyio.run(_archive, spec_list, codec, batch_size)

    tar = archive if codec is Codec.NONE else decompress(archive, codec)
    assert len(tar) % tarfile.RECORDSIZE == 0
    expected = [(s.name, len(s.data), s.data, 0o600, s.mtime, tarfile.REGTYPE) for s in spec_list]
    assert _tarfile_read(tar) == expected

    ours = anyio.run(_our_read, cut(archive, read_sizes))
    assert ours == [
        (s.name, len(s.data), s.data, hashlib.sha256(s.data).hexdigest()) for s in spec_list
    ]


@bounded(max_examples=60)
@given(
    spec_list=st.lists(specs, max_size=4),
    tar_format=st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]),
    gzipped=st.booleans(),
    read_sizes=chunk_sizes(),
)
def test_open_tar_entries_reads_what_tarfile_writes(
    spec_list: list[Spec], tar_format: int, gzipped: bool, read_sizes: list[int]
) -> None:
    """The other way round: a tar the stdlib wrote (PAX or GNU long-name headers, plain
    or gzip) reads back member for member, whatever chunks it arrives in."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gzipped else "w:", format=tar_format) as tar:
        for spec in spec_list:
            info = tarfile.TarInfo(spec.name)
            info.size = len(spec.data)
            info.mtime = spec.mtime
            tar.addfile(info, io.BytesIO(spec.data))

    ours = anyio.run(_our_read, cut(buffer.getvalue(), read_sizes))
    assert ours == [
        (s.name, len(s.data), s.data, hashlib.sha256(s.data).hexdigest()) for s in spec_list
    ]


WRONG_SIZES = 80


@pytest.mark.reliability(
    "fault",
    f"a member giving more or fewer bytes than it declared, in {WRONG_SIZES} drawn archives",
    "StorageSourceError naming the member; no byte past its declared size",
)
@bounded(max_examples=WRONG_SIZES)
@given(
    before=st.lists(specs, max_size=2),
    bad=specs,
    declared=st.integers(0, 400_000),
)
def test_encode_tar_refuses_a_member_of_the_wrong_size(
    before: list[Spec], bad: Spec, declared: int
) -> None:
    """A member that produces more or fewer bytes than its header declared (a file that
    changed while it was read) stops the stream with StorageSourceError naming it, and
    never makes the encoder write more content than the header announced."""
    if declared == len(bad.data):
        declared += 1

    async def run() -> tuple[bytes, StorageSourceError]:
        async def members() -> AsyncIterator[Member]:
            for spec in before:
                yield spec.member()
            yield bad.member(declared)

        out: list[bytes | bytearray] = []
        try:
            async for chunk in encode_tar(members()):
                out.append(chunk)
        except StorageSourceError as exc:
            return b"".join(out), exc
        pytest.fail("a member of the wrong size was encoded")

    written, error = anyio.run(run)
    assert repr(bad.name) in str(error)
    assert f"declared {declared} bytes" in str(error)
    good = anyio.run(_archive, before, Codec.NONE, 1)
    # The good members, as a complete archive would hold them (without its end blocks).
    good_members = sum(
        len(_header(spec.name, len(spec.data), spec.mtime)) + -(-len(spec.data) // 512) * 512
        for spec in before
    )
    assert written[:good_members] == good[:good_members]
    header = _header(bad.name, declared, bad.mtime)
    assert written[good_members : good_members + len(header)] == header
    content = written[good_members + len(header) :]
    assert len(content) <= declared
    assert bad.data.startswith(content)


def _header(name: str, size: int, mtime: int) -> bytes:
    """The header tarfile itself writes for a regular file, mode 0600 (as ours are)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o600
    return info.tobuf(tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")
