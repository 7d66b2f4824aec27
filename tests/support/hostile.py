# ruff: noqa: E501 - the corpus is a table, one variant a line
"""A good archive -> the hostile corpus: named damaged variants, each with the error it must raise.

:func:`corpus` lists the variants, one line each: a name, the most specific error type
``restore()`` must raise (``verify()`` must report a problem of that kind), a short
description, and how to build the archive file's bytes from a :class:`Good` archive
taken apart. Damage inside the tar stream is compressed again (gzip, so the container's
CRC is right and only the archive reader can notice); damage to the compressed file
itself (cuts, flipped trailer bytes, padding after it) is done to the file as written.
"""

from __future__ import annotations

import bz2
import io
import json
import lzma
import random
import tarfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import zstandard
from isal import igzip, isal_zlib

import monetr_backup as mb
from monetr_backup._format.archive_reader import MANIFEST_BASE_SIZE, MANIFEST_SIZE_PER_MEMBER

from .archives import decompress, regular, special
from .sizes import GIB, MIB

Piece = tuple[tarfile.TarInfo, bytes]
TarFormat = Literal[0, 1, 2]  # tarfile's USTAR_FORMAT, GNU_FORMAT, PAX_FORMAT

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE

#: Entries in the manifest bomb: issue 9 saw 320,000 fake entries cost 497-661 MiB.
MANIFEST_BOMB_ENTRIES = 300_000
#: Size of the decompression bomb's one storage member (zeros: ~1 MB gzipped).
BOMB_SIZE = GIB
#: A declared size no archive of ours has, for members whose content is short.
HUGE = 1 << 40
#: Size of the PAX header bomb's one extended header (zeros: ~256 KB gzipped).
PAX_BOMB_SIZE = 256 * MIB


def gz(tar: bytes) -> bytes:
    """``tar`` gzipped, as a backup would write it (ISA-L, fixed mtime)."""
    return igzip.compress(tar, compresslevel=1, mtime=0)


def raw_member(
    info: tarfile.TarInfo, data: bytes, tar_format: TarFormat = tarfile.PAX_FORMAT
) -> bytes:
    """A member's header block(s), as ``info`` says, then ``data`` padded to a block."""
    header = info.tobuf(tar_format, encoding="utf-8", errors="surrogateescape")
    return header + data + bytes(-len(data) % BLOCK)


def pack_prefix(pieces: Iterable[Piece]) -> bytes:
    """The tar stream of ``pieces`` without the end blocks: more members are to follow."""
    return b"".join(raw_member(info, data) for info, data in pieces)


def pack(pieces: Iterable[Piece]) -> bytes:
    """A tar stream of ``pieces`` exactly as given, then two end blocks and zeros to a
    whole record, as tar (and the library's writer) pads it."""
    body = pack_prefix(pieces)
    end = 2 * BLOCK
    return body + bytes(end + -(len(body) + end) % RECORD)


def file_member(name: str, data: bytes) -> Piece:
    """A regular-file member."""
    info, _ = regular(name, data)
    return info, data


def special_member(name: str, kind: bytes, linkname: str = "") -> Piece:
    """A member that is not a regular file (no content)."""
    info, _ = special(name, kind, linkname)
    return info, b""


def _flip(data: bytes, index: int) -> bytes:
    """``data`` with byte ``index`` changed (a letter's case, any other byte's low bit)."""
    changed = bytearray(data)
    changed[index] ^= 0x20 if chr(changed[index]).isalpha() else 0x01
    return bytes(changed)


def _sized(info: tarfile.TarInfo, size: int) -> tarfile.TarInfo:
    """A copy of ``info`` declaring ``size`` bytes."""
    lying = tarfile.TarInfo(info.name)
    lying.size, lying.mode, lying.mtime = size, info.mode, info.mtime
    return lying


@dataclass(frozen=True)
class Good:
    """A good gzip archive taken apart: the file, its tar stream, its members in order."""

    file: bytes
    tar: bytes
    pieces: list[Piece]
    #: name -> (offset of its first header block, offset of its content) in ``tar``.
    offsets: dict[str, tuple[int, int]]
    top: str

    @classmethod
    def read(cls, path: Path) -> Good:
        """Take apart the archive at ``path`` (one written by ``backup()``)."""
        file = path.read_bytes()
        tar = decompress(file)
        pieces: list[Piece] = []
        offsets: dict[str, tuple[int, int]] = {}
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
            for info in archive.getmembers():
                content = archive.extractfile(info)
                assert content is not None
                piece = file_member(info.name, content.read())
                piece[0].mtime = info.mtime
                pieces.append(piece)
                offsets[info.name] = (info.offset, info.offset_data)
        good = cls(file, tar, pieces, offsets, pieces[0][0].name.split("/")[0])
        assert pack(pieces) == tar, "pack() does not pack the sample as the library does"
        assert len(good.parts) >= 3, "the variants need several dump parts"
        assert len(good.objects) >= 3, "the variants need several storage objects"
        return good

    # --- members, by role ------------------------------------------------------------

    def index(self, relative: str) -> int:
        """Index of the member ``<top>/<relative>``."""
        names = [info.name for info, _ in self.pieces]
        return names.index(f"{self.top}/{relative}")

    @property
    def parts(self) -> list[int]:
        """Indices of the dump parts."""
        return [i for i, (info, _) in enumerate(self.pieces) if "/dump/part-" in info.name]

    @property
    def objects(self) -> list[int]:
        """Indices of the storage members that are not empty."""
        return [
            i for i, (info, data) in enumerate(self.pieces) if "/storage/" in info.name and data
        ]

    def role(self, role: str) -> int:
        """A member by role: header, part-1, part-last, summary, object, object-last, manifest."""
        if role == "header":
            return 0
        if role == "manifest":
            return len(self.pieces) - 1
        if role == "summary":
            return self.index("dump/summary.json")
        if role.startswith("part-"):
            return self.parts[0 if role == "part-1" else -1]
        assert role in {"object", "object-last"}, role
        return self.objects[-1 if role == "object-last" else 0]

    def block(self, role: str) -> int:
        """Offset in the tar stream of the member's first header block."""
        return self.offsets[self.pieces[self.role(role)][0].name][0]

    def data(self, role: str) -> int:
        """Offset in the tar stream of the member's content."""
        return self.offsets[self.pieces[self.role(role)][0].name][1]

    def size(self, role: str) -> int:
        """The member's size."""
        return len(self.pieces[self.role(role)][1])

    def tar_end(self) -> int:
        """Offset of the first end-of-archive block in the tar stream."""
        manifest = self.size("manifest")
        return self.data("manifest") + manifest + -manifest % BLOCK

    def storage(self, key: str, data: bytes) -> Piece:
        """A regular storage member ``<top>/storage/<key>``."""
        return file_member(f"{self.top}/storage/{key}", data)

    # --- variants of the tar stream, gzipped again -----------------------------------

    def cut(self, offset: int) -> bytes:
        """The tar stream cut at ``offset``."""
        return gz(self.tar[:offset])

    def flip(self, offset: int) -> bytes:
        """The tar stream with the byte at ``offset`` flipped."""
        return gz(_flip(self.tar, offset))

    def flip_after(self, role: str, text: bytes) -> bytes:
        """The member's content with the byte after the first ``text`` in it flipped."""
        _, data = self.pieces[self.role(role)]
        return self.flip(self.data(role) + data.index(text) + len(text))

    def members(self, pieces: Iterable[Piece]) -> bytes:
        """An archive of ``pieces`` (taken from :attr:`pieces`, changed, or new)."""
        return gz(pack(pieces))

    def without(self, *roles: str) -> bytes:
        """The archive without the members of ``roles``."""
        drop = {self.role(role) for role in roles}
        return self.members(p for i, p in enumerate(self.pieces) if i not in drop)

    def doubled(self, role: str) -> bytes:
        """The archive with the member of ``role`` twice in a row."""
        at = self.role(role)
        return self.members([*self.pieces[: at + 1], *self.pieces[at:]])

    def swapped(self, first: int, second: int) -> bytes:
        """The archive with the members at indices ``first`` and ``second`` swapped."""
        pieces = list(self.pieces)
        pieces[first], pieces[second] = pieces[second], pieces[first]
        return self.members(pieces)

    def moved(self, role: str, to: int) -> bytes:
        """The archive with the member of ``role`` moved to index ``to``."""
        pieces = list(self.pieces)
        pieces.insert(to, pieces.pop(self.role(role)))
        return self.members(pieces)

    def inserted(self, before: str, *extra: Piece) -> bytes:
        """The archive with ``extra`` members in front of the member of ``before``."""
        at = self.role(before)
        return self.members([*self.pieces[:at], *extra, *self.pieces[at:]])

    def appended(self, *extra: Piece) -> bytes:
        """The archive with ``extra`` members after the manifest."""
        return self.members([*self.pieces, *extra])

    def replaced(self, role: str, piece: Piece) -> bytes:
        """The archive with the member of ``role`` replaced by ``piece``."""
        pieces = list(self.pieces)
        pieces[self.role(role)] = piece
        return self.members(pieces)

    def spliced(self, at: int, raw: bytes, *, replace: bool = False) -> bytes:
        """The archive with ``raw`` tar bytes (header blocks and content, as they are) in
        front of the member at index ``at``, or in its place."""
        rest = self.pieces[at + 1 :] if replace else self.pieces[at:]
        return gz(pack_prefix(self.pieces[:at]) + raw + pack(rest))

    def declared(self, role: str, size: int, tar_format: TarFormat = tarfile.PAX_FORMAT) -> bytes:
        """The member's header declares ``size`` bytes; its content and the rest follow."""
        at = self.role(role)
        info, data = self.pieces[at]
        return self.spliced(at, raw_member(_sized(info, size), data, tar_format), replace=True)

    def document(self, role: str, change: Callable[[dict[str, Any]], object]) -> bytes:
        """The archive with the JSON document of ``role`` changed by ``change`` (in place)."""
        info, data = self.pieces[self.role(role)]
        document = json.loads(data)
        change(document)
        return self.replaced(role, file_member(info.name, json.dumps(document, indent=2).encode()))

    def padded(self, zeros: int) -> bytes:
        """The tar stream with ``zeros`` more zero bytes after its end, gzipped."""
        return gz(self.tar + bytes(zeros))

    def recompressed(self, compress: Callable[[bytes], bytes]) -> bytes:
        """The tar stream compressed with ``compress``."""
        return compress(self.tar)

    # --- bombs -----------------------------------------------------------------------

    def bomb(self) -> bytes:
        """A storage member of :data:`BOMB_SIZE` zeros, declared honestly but not in the
        manifest, in front of it: ~1 MB of gzip, compressed as a stream."""
        at = self.role("manifest")
        header = raw_member(_sized(self.storage("bomb", b"")[0], BOMB_SIZE), b"")
        compressor = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 16 + isal_zlib.MAX_WBITS)
        out = [compressor.compress(pack_prefix(self.pieces[:at]) + header)]
        zeros = bytes(MIB)
        out += [compressor.compress(zeros) for _ in range(BOMB_SIZE // MIB)]
        out += [compressor.compress(pack(self.pieces[at:])), compressor.flush()]
        return b"".join(out)

    def manifest_bomb(self, entries: int = MANIFEST_BOMB_ENTRIES) -> bytes:
        """The manifest listing ``entries`` fake members in front of the real ones."""
        info, data = self.pieces[self.role("manifest")]
        fake = "".join(_fake_entry(self.top, n) for n in range(entries)).encode()
        listed = b'"members": ['
        assert data.count(listed) == 1
        return self.replaced(
            "manifest", file_member(info.name, data.replace(listed, listed + fake))
        )


def _fake_entry(top: str, number: int) -> str:
    """One manifest entry of a member that is not there, as JSON text (and a comma)."""
    return f'{{"name": "{top}/storage/fake/{number:07d}", "size": 1, "sha256": "{"0" * 64}"}}, '


# --- archives that are not ours --------------------------------------------------------


def _zip_of(good: Good) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in good.pieces:
            archive.writestr(info.name, data)
    return buffer.getvalue()


def _random(size: int, prefix: bytes = b"") -> bytes:
    return prefix + random.Random(size).randbytes(size)


def _zstd(tar: bytes) -> bytes:
    return zstandard.ZstdCompressor(write_checksum=True).compress(tar)


def _zstd_cut_after_end_block(good: Good) -> bytes:
    """A zstd frame of the tar stream cut after the block that ends with the first
    end-of-archive block: the zero padding after it and the frame's end are gone."""
    cut = good.tar_end() + BLOCK
    body = zstandard.ZstdCompressor(write_checksum=True).compressobj()
    head = body.compress(good.tar[:cut]) + body.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    whole = head + body.compress(good.tar[cut:]) + body.flush()
    assert zstandard.ZstdDecompressor().decompress(whole, max_output_size=len(good.tar)) == good.tar
    return head


def _retarred(good: Good) -> bytes:
    """What ``tar czf`` of the extracted archive gives: folder members first."""
    folders = sorted(
        {
            "/".join(info.name.split("/")[:depth])
            for info, _ in good.pieces
            for depth in range(1, info.name.count("/") + 1)
        }
    )
    return good.members([*(special_member(f, tarfile.DIRTYPE) for f in folders), *good.pieces])


def _gnu_longname(good: Good, name: str) -> bytes:
    """A GNU tar member whose long name (a ``L`` header of its own) is ``name``."""
    info, data = file_member(name, b"escape")
    return good.spliced(good.role("object-last"), raw_member(info, data, tarfile.GNU_FORMAT))


def _pax_path(good: Good, path: str) -> Piece:
    """A member with a harmless ustar name whose PAX ``path`` record says ``path``."""
    info, data = good.storage("harmless", b"escape")
    info.pax_headers = {"path": path}
    return info, data


def _pax_header_bomb(good: Good) -> bytes:
    """A PAX extended header of :data:`PAX_BOMB_SIZE` zeros in front of the last object,
    compressed as a stream: a reader that takes a header whole holds all of it."""
    at = good.role("object-last")
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, PAX_BOMB_SIZE
    header = info.tobuf(tarfile.USTAR_FORMAT, encoding="utf-8", errors="surrogateescape")
    compressor = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 16 + isal_zlib.MAX_WBITS)
    out = [compressor.compress(pack_prefix(good.pieces[:at]) + header)]
    zeros = bytes(MIB)
    out += [compressor.compress(zeros) for _ in range(PAX_BOMB_SIZE // MIB)]
    out += [compressor.compress(pack(good.pieces[at:])), compressor.flush()]
    return b"".join(out)


def _gnu_sparse(good: Good) -> bytes:
    """A GNU sparse member (type ``S``) among the objects: no backup writes one."""
    info, data = good.storage("sparse", b"escape")
    info.type = tarfile.GNUTYPE_SPARSE
    return good.spliced(good.role("object-last"), raw_member(info, data, tarfile.GNU_FORMAT))


def _device(good: Good, kind: bytes) -> Piece:
    info, data = special_member(f"{good.top}/storage/dev", kind)
    info.devmajor, info.devminor = 1, 3  # /dev/null
    return info, data


def _manifest_bomb_under_limit(good: Good) -> bytes:
    """As many fake manifest entries as the reader's size limit lets through (~15 MiB):
    parsed, compared, and refused with one bounded error."""
    members = good.pieces[:-1]
    limit = MANIFEST_BASE_SIZE + sum(len(i.name) + MANIFEST_SIZE_PER_MEMBER for i, _ in members)
    return good.manifest_bomb((limit - good.size("manifest")) // len(_fake_entry(good.top, 0)) - 1)


def _bad_block_type(good: Good) -> bytes:
    """The first deflate block's type bits set to 11, which deflate reserves."""
    # ISA-L writes a 10-byte gzip header (no name, no extra field): the block header follows.
    assert good.file[3] == 0
    changed = bytearray(good.file)
    changed[10] |= 0b110
    return bytes(changed)


def _cut_file(good: Good, keep: int) -> bytes:
    return good.file[:keep]


def _flip_file(good: Good, index: int) -> bytes:
    return _flip(good.file, index % len(good.file))


# --- the corpus ------------------------------------------------------------------------

Corrupt = mb.CorruptArchiveError
Checksum = mb.ChecksumError
Unsafe = mb.UnsafeMemberError


@dataclass(frozen=True)
class Variant:
    """One hostile archive: what was done, the error it must raise, how to build it."""

    name: str
    error: type[mb.CorruptArchiveError]
    what: str
    build: Callable[[Good], bytes]
    #: Why the variant is known to exceed the time or memory bounds (refused, but late).
    over_bounds: str = ""
    #: The sample archive it is made from: a custom dump (pg_restore) or a plain one (psql).
    dump_format: mb.DumpFormat = mb.DumpFormat.CUSTOM


def corpus() -> list[Variant]:
    """Every hostile variant, built on demand from a good archive of the sample.

    The sample has a header, 5 dump parts of 64 KiB, the dump summary, 10 storage
    objects (one empty) and the manifest (see tests/support/samples.py). Members that
    must not be there go in front of the last object, so the others are already staged
    (or uploaded) when the restore meets them.
    """

    def v(
        name: str,
        error: type[mb.CorruptArchiveError],
        what: str,
        build: Callable[[Good], bytes],
        over_bounds: str = "",
    ) -> Variant:
        return Variant(name, error, what, build, over_bounds)

    def plain(
        name: str, error: type[mb.CorruptArchiveError], what: str, build: Callable[[Good], bytes]
    ) -> Variant:
        return Variant(name, error, f"plain dump: {what}", build, dump_format=mb.DumpFormat.PLAIN)

    top = "{top}"  # only in descriptions
    # fmt: off
    return [
        # Cut short, in every region of the tar stream (gzip intact around it).
        v("cut-in-header-block", Corrupt, "cut inside the first tar header block", lambda g: g.cut(g.block("header") + 100)),
        v("cut-in-header-json", Corrupt, "cut inside header.json", lambda g: g.cut(g.data("header") + 50)),
        v("cut-before-part-1", Corrupt, "cut between the header and the first dump part", lambda g: g.cut(g.block("part-1"))),
        v("cut-in-part-1-block", Corrupt, "cut inside the first dump part's tar header", lambda g: g.cut(g.block("part-1") + 300)),
        v("cut-in-part-1", Corrupt, "cut inside the first dump part", lambda g: g.cut(g.data("part-1") + 1000)),
        v("cut-in-part-last", Corrupt, "cut inside the last dump part", lambda g: g.cut(g.data("part-last") + g.size("part-last") // 2)),
        v("cut-before-summary", Corrupt, "cut between the last dump part and the summary", lambda g: g.cut(g.block("summary"))),
        v("cut-in-summary", Corrupt, "cut inside dump/summary.json", lambda g: g.cut(g.data("summary") + 100)),
        v("cut-before-storage", Corrupt, "cut between the summary and the first object", lambda g: g.cut(g.block("object"))),
        v("cut-in-pax-header", Corrupt, "cut inside an object's PAX extended header", lambda g: g.cut(g.block("object") + 700)),
        v("cut-in-object", Corrupt, "cut inside a storage object", lambda g: g.cut(g.data("object") + g.size("object") // 2)),
        v("cut-in-object-last", Corrupt, "cut one byte before the end of the last object", lambda g: g.cut(g.data("object-last") + g.size("object-last") - 1)),
        v("cut-before-manifest", Corrupt, "cut between the last object and the manifest", lambda g: g.cut(g.block("manifest"))),
        v("cut-in-manifest", Corrupt, "cut inside manifest.json", lambda g: g.cut(g.data("manifest") + g.size("manifest") // 2)),
        v("cut-manifest-last-byte", Corrupt, "cut one byte before the end of the manifest", lambda g: g.cut(g.data("manifest") + g.size("manifest") - 1)),
        # Cut short, the compressed file itself.
        v("cut-gzip-header", Corrupt, "file cut inside the gzip header", lambda g: _cut_file(g, 5)),
        v("cut-gzip-early", Corrupt, "file cut at 10% of the compressed stream", lambda g: _cut_file(g, len(g.file) // 10)),
        v("cut-gzip-middle", Corrupt, "file cut at 50% of the compressed stream", lambda g: _cut_file(g, len(g.file) // 2)),
        v("cut-gzip-late", Corrupt, "file cut at 99% of the compressed stream", lambda g: _cut_file(g, len(g.file) * 99 // 100)),
        v("cut-gzip-trailer", Corrupt, "file cut without the gzip trailer (CRC32, length)", lambda g: _cut_file(g, len(g.file) - 8)),
        v("cut-gzip-isize", Corrupt, "file cut inside the gzip trailer (length missing)", lambda g: _cut_file(g, len(g.file) - 3)),
        v("cut-plain-in-object", Corrupt, "uncompressed archive cut inside an object", lambda g: g.tar[: g.data("object") + 10]),
        # One byte flipped, in every member kind and in the codec's own bytes.
        v("flip-header-value", Checksum, "a letter of a header.json value changed", lambda g: g.flip_after("header", b'"storage": "')),
        v("flip-header-syntax", Corrupt, "header.json's opening brace changed", lambda g: g.flip(g.data("header"))),
        v("flip-part-1", Checksum, "a byte of the first dump part flipped", lambda g: g.flip(g.data("part-1") + 30_000)),
        v("flip-part-last", Checksum, "a byte of the last dump part flipped", lambda g: g.flip(g.data("part-last") + g.size("part-last") - 2)),
        v("flip-summary-value", Checksum, "a digit of the summary's parts digest changed", lambda g: g.flip_after("summary", b'"parts_sha256": "')),
        v("flip-summary-syntax", Corrupt, "dump/summary.json's opening brace changed", lambda g: g.flip(g.data("summary"))),
        v("flip-object", Checksum, "a byte of a storage object flipped", lambda g: g.flip(g.data("object"))),
        v("flip-object-last", Checksum, "the last byte of the last storage object flipped", lambda g: g.flip(g.data("object-last") + g.size("object-last") - 1)),
        v("flip-manifest-value", Checksum, "a digit of a SHA-256 in the manifest changed", lambda g: g.flip_after("manifest", b'"sha256": "')),
        v("flip-manifest-syntax", Corrupt, "manifest.json's opening brace changed", lambda g: g.flip(g.data("manifest"))),
        v("flip-tar-checksum", Corrupt, "a dump part's tar header checksum field changed", lambda g: g.flip(g.block("part-last") + 150)),
        v("flip-tar-size-field", Corrupt, "a digit of an object's tar size field changed", lambda g: g.flip(g.data("object") - BLOCK + 130)),
        v("flip-pax-record", Unsafe, "an object's PAX record length changed (its name cut short)", lambda g: g.flip(g.block("object") + BLOCK)),
        v("flip-gzip-magic", Corrupt, "the gzip magic changed (read as plain tar)", lambda g: _flip_file(g, 1)),
        v("flip-gzip-method", Corrupt, "the gzip header's compression method changed", lambda g: _flip_file(g, 2)),
        v("deflate-bad-block-type", Corrupt, "the first deflate block of a reserved type", _bad_block_type),
        v("flip-gzip-crc", Corrupt, "a byte of the gzip trailer's CRC32 flipped", lambda g: _flip_file(g, -8)),
        v("flip-gzip-isize", Corrupt, "a byte of the gzip trailer's length flipped", lambda g: _flip_file(g, -1)),
        v("flip-zstd-checksum", Corrupt, "a byte of the zstd frame checksum flipped", lambda g: _flip(_zstd(g.tar), -1)),
        # Not an archive of ours, or not in a codec we read.
        v("empty", Corrupt, "an empty file", lambda g: b""),
        v("random", Corrupt, "64 KiB of random bytes", lambda g: _random(64 * 1024)),
        v("random-gzip-magic", Corrupt, "random bytes behind the gzip magic", lambda g: _random(4096, b"\x1f\x8b\x08\x00")),
        v("random-zstd-magic", Corrupt, "random bytes behind the zstd magic", lambda g: _random(4096, b"\x28\xb5\x2f\xfd")),
        v("foreign-tar", Corrupt, "a gzipped tar that is not a backup", lambda g: gz(pack([file_member("notes/readme.txt", b"hello")]))),
        v("zip", Corrupt, "the archive's members in a zip file", _zip_of),
        v("codec-bzip2", Corrupt, "the tar stream compressed with bzip2", lambda g: g.recompressed(bz2.compress)),
        v("codec-xz", Corrupt, "the tar stream compressed with xz", lambda g: g.recompressed(lzma.compress)),
        v("codec-gzip-twice", Corrupt, "the gzip archive gzipped again", lambda g: gz(g.file)),
        v("retarred-with-folders", Unsafe, "extracted and tarred again (folder members)", _retarred),
        # Members that must never be written.
        v("traversal", Unsafe, "a storage member named ../x", lambda g: g.inserted("object-last", file_member("../x", b"escape"))),
        v("traversal-inside", Unsafe, f"a member named {top}/storage/../../x", lambda g: g.inserted("object-last", g.storage("../../x", b"escape"))),
        v("traversal-in-dump", Unsafe, f"{top}/dump/../../x before the first part", lambda g: g.inserted("part-1", file_member(f"{g.top}/dump/../../x", b"escape"))),
        v("traversal-first", Unsafe, "the first member named ../header.json", lambda g: g.replaced("header", file_member("../header.json", g.pieces[0][1]))),
        v("absolute", Unsafe, "a member named /etc/cron.d/x", lambda g: g.inserted("object-last", file_member("/etc/cron.d/x", b"escape"))),
        v("empty-component", Unsafe, f"a member named {top}/storage/a//x", lambda g: g.inserted("object-last", g.storage("a//x", b"escape"))),
        v("nul-in-pax-path", Unsafe, "a PAX path with a NUL byte", lambda g: g.inserted("object-last", _pax_path(g, f"{g.top}/storage/a\0b"))),
        v("symlink", Unsafe, "a symlink to /etc/passwd among the objects", lambda g: g.inserted("object-last", special_member(f"{g.top}/storage/link", tarfile.SYMTYPE, "/etc/passwd"))),
        v("symlink-as-part", Unsafe, "a symlink in place of dump part 1", lambda g: g.replaced("part-1", special_member(f"{g.top}/dump/part-000001", tarfile.SYMTYPE, "/etc/passwd"))),
        v("hardlink", Unsafe, "a hard link to header.json among the objects", lambda g: g.inserted("object-last", special_member(f"{g.top}/storage/hard", tarfile.LNKTYPE, f"{g.top}/header.json"))),
        v("char-device", Unsafe, "a character device among the objects", lambda g: g.inserted("object-last", _device(g, tarfile.CHRTYPE))),
        v("block-device", Unsafe, "a block device among the objects", lambda g: g.inserted("object-last", _device(g, tarfile.BLKTYPE))),
        v("fifo", Unsafe, "a FIFO among the objects", lambda g: g.inserted("object-last", special_member(f"{g.top}/storage/fifo", tarfile.FIFOTYPE))),
        v("directory", Unsafe, "a directory member among the objects", lambda g: g.inserted("object-last", special_member(f"{g.top}/storage/folder", tarfile.DIRTYPE))),
        v("pax-path-traversal", Unsafe, "a harmless ustar name, PAX path ../../etc/x", lambda g: g.inserted("object-last", _pax_path(g, "../../etc/x"))),
        v("pax-path-absolute", Unsafe, "a harmless ustar name, PAX path /etc/x", lambda g: g.inserted("object-last", _pax_path(g, "/etc/x"))),
        v("pax-path-outside-top", Unsafe, "a harmless ustar name, PAX path in another top folder", lambda g: g.inserted("object-last", _pax_path(g, "elsewhere/storage/x"))),
        v("gnu-longname-traversal", Unsafe, "a GNU long name climbing out with ..", lambda g: _gnu_longname(g, f"{g.top}/storage/" + "../" * 40 + "etc/x")),
        v("gnu-sparse", Corrupt, "a GNU sparse member among the objects", _gnu_sparse),
        v("outside-top", Unsafe, "a member under another top folder", lambda g: g.inserted("object-last", file_member("monetr-backup-20990101T000000Z/storage/x", b"x"))),
        # Members duplicated, missing, reordered or unexpected.
        v("part-duplicated", Corrupt, "the first dump part twice", lambda g: g.doubled("part-1")),
        v("part-missing", Corrupt, "dump part 2 left out", lambda g: g.members(p for i, p in enumerate(g.pieces) if i != g.parts[1])),
        v("parts-reordered", Corrupt, "dump parts 2 and 3 swapped", lambda g: g.swapped(g.parts[1], g.parts[2])),
        v("part-last-missing", Checksum, "the last dump part left out", lambda g: g.without("part-last")),
        v("summary-missing", Corrupt, "dump/summary.json left out", lambda g: g.without("summary")),
        v("header-missing", Corrupt, "header.json left out", lambda g: g.without("header")),
        v("header-not-first", Corrupt, "header.json after the first dump part", lambda g: g.moved("header", 1)),
        v("manifest-missing", Corrupt, "manifest.json left out", lambda g: g.without("manifest")),
        v("manifest-duplicated", Corrupt, "manifest.json twice", lambda g: g.doubled("manifest")),
        v("member-after-manifest", Corrupt, "a storage member after the manifest", lambda g: g.appended(g.storage("late", b"late"))),
        v("object-duplicated", Checksum, "a storage object twice", lambda g: g.doubled("object")),
        v("object-missing", Checksum, "a storage object left out", lambda g: g.without("object")),
        v("objects-reordered", Checksum, "two storage objects swapped", lambda g: g.swapped(g.objects[0], g.objects[1])),
        v("object-unlisted", Checksum, "a storage object the manifest does not list", lambda g: g.inserted("manifest", g.storage("planted.txt", b"planted"))),
        v("unexpected-folder", Corrupt, f"a member under {top}/other/", lambda g: g.inserted("object-last", file_member(f"{g.top}/other/x", b"x"))),
        # Documents that lie.
        v("manifest-size-lie", Checksum, "the manifest gives an object one byte more", lambda g: g.document("manifest", lambda m: m["members"][-1].update(size=m["members"][-1]["size"] + 1))),
        v("manifest-hash-lie", Checksum, "the manifest gives a dump part another SHA-256", lambda g: g.document("manifest", lambda m: m["members"][1].update(sha256="0" * 64))),
        v("manifest-total-lie", Checksum, "the manifest's total_bytes one more", lambda g: g.document("manifest", lambda m: m.update(total_bytes=m["total_bytes"] + 1))),
        v("manifest-count-lie", Checksum, "the manifest's object_count one more", lambda g: g.document("manifest", lambda m: m.update(object_count=m["object_count"] + 1))),
        v("manifest-top-lie", Checksum, "the manifest names another top folder", lambda g: g.document("manifest", lambda m: m.update(top_folder="elsewhere"))),
        v("manifest-not-json-model", Corrupt, "the manifest without its members list", lambda g: g.document("manifest", lambda m: m.pop("members"))),
        v("summary-size-lie", Checksum, "the summary's total_bytes one more", lambda g: g.document("summary", lambda s: s.update(total_bytes=s["total_bytes"] + 1))),
        v("summary-hash-lie", Checksum, "the summary gives the dump parts another digest", lambda g: g.document("summary", lambda s: s.update(parts_sha256="0" * 64))),
        v("summary-part-size-lie", Checksum, "the summary's part_size doubled", lambda g: g.document("summary", lambda s: s.update(part_size=s["part_size"] * 2))),
        v("header-part-size-lie", Corrupt, "the header's dump_part_size doubled", lambda g: g.document("header", lambda h: h.update(dump_part_size=h["dump_part_size"] * 2))),
        v("header-future-format", Corrupt, "the header says format_version 3", lambda g: g.document("header", lambda h: h.update(format_version=3))),
        # Members declaring a huge size (content short: the archive's end comes first).
        v("huge-object", Corrupt, "an object's PAX size says 1 TiB", lambda g: g.declared("object", HUGE)),
        v("huge-object-gnu", Corrupt, "an object's base-256 GNU size says 1 TiB", lambda g: g.declared("object", HUGE, tarfile.GNU_FORMAT)),
        v("huge-part", Corrupt, "a dump part's size says 1 TiB", lambda g: g.declared("part-1", HUGE)),
        v("huge-header", Corrupt, "header.json's size says 1 TiB", lambda g: g.declared("header", HUGE)),
        v("huge-summary", Corrupt, "dump/summary.json's size says 1 TiB", lambda g: g.declared("summary", HUGE)),
        v("huge-manifest", Corrupt, "manifest.json's size says 1 TiB", lambda g: g.declared("manifest", HUGE)),
        # Bombs: small files that expand.
        v("decompression-bomb", Checksum, "a 1 GiB object of zeros (1 MB gzipped) not in the manifest", Good.bomb, over_bounds="the 1 GiB goes to the targets before the manifest says it should not be there"),
        v("pax-header-bomb", Corrupt, f"a PAX extended header of {PAX_BOMB_SIZE // MIB} MiB of zeros (~256 KB gzipped)", _pax_header_bomb),
        v("manifest-bomb", Corrupt, f"a manifest of {MANIFEST_BOMB_ENTRIES:,} fake entries", Good.manifest_bomb),
        v("manifest-bomb-under-limit", Checksum, "a manifest of fake entries just under its size limit", _manifest_bomb_under_limit),
        v("header-bomb", Corrupt, "header.json padded to 1 MiB + 1 byte", lambda g: g.replaced("header", file_member(g.pieces[0][0].name, g.pieces[0][1] + b" " * (MIB + 1 - len(g.pieces[0][1]))))),
        v("manifest-deep-nesting", Corrupt, "a manifest of 100,000 nested lists", lambda g: g.replaced("manifest", file_member(g.pieces[-1][0].name, b"[" * 100_000 + b"]" * 100_000))),
        # The same damage to an archive of a plain SQL dump: psql has run part of it.
        plain("plain-parts-reordered", Corrupt, "dump parts 2 and 3 swapped", lambda g: g.swapped(g.parts[1], g.parts[2])),
        plain("plain-flip-part-last", Checksum, "a byte of the last dump part flipped", lambda g: g.flip(g.data("part-last") + g.size("part-last") // 2)),
        plain("plain-cut-in-object", Corrupt, "cut inside a storage object", lambda g: g.cut(g.data("object-last") + 5)),
        plain("plain-symlink", Unsafe, "a symlink among the objects", lambda g: g.inserted("object-last", special_member(f"{g.top}/storage/link", tarfile.SYMTYPE, "/etc/passwd"))),
        plain("plain-manifest-hash-lie", Checksum, "the manifest gives an object another SHA-256", lambda g: g.document("manifest", lambda m: m["members"][-1].update(sha256="0" * 64))),
        # What follows the end of the archive.
        v("padding-64mib", Corrupt, "64 MiB of zeros after the tar end (64 KiB gzipped)", lambda g: g.padded(64 * MIB)),
        v("padding-one-byte-too-many", Corrupt, "one byte more zero padding than one record", lambda g: g.padded(RECORD + 1 - (len(g.tar) - g.tar_end() - BLOCK))),
        v("padding-plain-64mib", Corrupt, "uncompressed archive and 64 MiB of zeros", lambda g: g.tar + bytes(64 * MIB)),
        v("garbage-after-end", Corrupt, "bytes after the tar end, inside the gzip stream", lambda g: gz(g.tar + b"garbage")),
        v("garbage-after-gzip", Corrupt, "bytes after the gzip stream", lambda g: g.file + b"garbage"),
        v("second-gzip-member", Corrupt, "another gzipped tar after the archive", lambda g: g.file + gz(pack([file_member("x", b"x")]))),
        v("zeros-after-zstd", Corrupt, "10 KiB of zeros after a zstd frame", lambda g: _zstd(g.tar) + bytes(10 * 1024)),
        # python-zstandard's stream reader takes a cut frame for the end of the stream, and
        # ISA-L (like gzip(1)) skips any zeros after a gzip member: the reader follows the
        # zstd frames and checks what follows the gzip member itself.
        v("cut-zstd-checksum", Corrupt, "zstd archive cut inside the frame checksum", lambda g: _zstd(g.tar)[:-2]),
        v("cut-zstd-after-end-block", Corrupt, "zstd archive cut after the tar's end block", _zstd_cut_after_end_block),
        v("zeros-after-gzip-64mib", Corrupt, "64 MiB of zeros after the gzip stream", lambda g: g.file + bytes(64 * MIB)),
    ]
    # fmt: on


def write(variant: Variant, good: Good, folder: Path) -> Path:
    """The variant's archive file, written under ``folder``."""
    path = folder / f"{variant.name}.bin"
    path.write_bytes(variant.build(good))
    return path
