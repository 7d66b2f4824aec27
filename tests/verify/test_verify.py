"""verify() and inspect() on good and damaged archives, local and on a real S3 server.

verify() must read the whole archive, touch no target, and name the member where each
kind of damage shows; inspect() returns the header and the manifest.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

import monetr_backup as mb
from monetr_backup.testing import TemporarySeaweedS3

from support.archives import (
    TOP,
    build_tar,
    flip_member_byte,
    header_json,
    member_names,
    regular,
    special,
    truncate_file,
)
from support.samples import Sample, copy_archive

pytestmark = pytest.mark.anyio


def problem_members(report: mb.VerifyReport) -> list[str | None]:
    return [problem.member for problem in report.problems]


@pytest.mark.parametrize("dump_format", list(mb.DumpFormat))
async def test_verify_good_archive(dump_format: mb.DumpFormat, sample: Sample) -> None:
    """A good archive: ok, every member (the manifest too) checked, no problem."""
    report = await mb.verify(mb.FileArchive(path=sample.archives[dump_format]))
    manifest = sample.manifests[dump_format]
    assert report.ok
    assert report.problems == []
    assert report.manifest == manifest
    assert report.header is not None
    assert report.header.dump_format is dump_format
    assert report.members_checked == manifest.member_count + 1
    assert manifest.object_count == len(sample.files)


async def test_verify_and_inspect_from_s3(
    sample: Sample, s3: TemporarySeaweedS3, bucket: str
) -> None:
    """The same through S3: verify is ok and inspect returns header and manifest."""
    s3.client().put_object(
        Bucket=bucket, Key="x/a.tar.gz", Body=sample.archives[mb.DumpFormat.CUSTOM].read_bytes()
    )
    source = mb.S3Archive(s3=s3.config(), bucket=bucket, key="x/a.tar.gz")
    report = await mb.verify(source)
    assert report.ok
    assert report.members_checked == sample.manifests[mb.DumpFormat.CUSTOM].member_count + 1
    info = await mb.inspect(source)
    assert info.manifest == sample.manifests[mb.DumpFormat.CUSTOM]
    assert info.header.codec is mb.Codec.GZIP


async def test_inspect(sample: Sample) -> None:
    """inspect() returns the header and the manifest as the backup wrote them."""
    path = sample.archives[mb.DumpFormat.PLAIN]
    info = await mb.inspect(mb.FileArchive(path=path))
    manifest = sample.manifests[mb.DumpFormat.PLAIN]
    assert info.manifest == manifest
    header = info.header
    assert (header.format_version, header.dump_format, header.codec) == (
        2,
        mb.DumpFormat.PLAIN,
        mb.Codec.GZIP,
    )
    assert header.database == sample.database
    assert header.dump_part_size == 64 * 1024
    assert header.storage == f"directory {sample.storage}"
    assert header.top_folder == manifest.top_folder
    assert [entry.name for entry in manifest.members] == member_names(path)[:-1]


@pytest.mark.parametrize("dump_format", list(mb.DumpFormat))
async def test_verify_flipped_byte_in_last_dump_part(
    dump_format: mb.DumpFormat, sample: Sample, tmp_path: Path
) -> None:
    """Flipped byte in the last dump part (gzip CRC rebuilt): not ok; one problem names
    that part (from the manifest comparison), another the dump summary."""
    path = copy_archive(sample, dump_format, tmp_path)
    last_part = [name for name in member_names(path) if "/dump/part-" in name][-1]
    flip_member_byte(path, last_part)

    report = await mb.verify(mb.FileArchive(path=path))

    assert not report.ok
    top = sample.manifests[dump_format].top_folder
    assert set(problem_members(report)) == {last_part, f"{top}/dump/summary.json"}
    [part_problem] = [p for p in report.problems if p.member == last_part]
    assert part_problem.kind == "ChecksumError"
    assert "SHA-256 differs from the manifest" in part_problem.message
    # The whole archive was still read: the manifest is there and every member checked.
    assert report.manifest == sample.manifests[dump_format]
    assert report.members_checked == report.manifest.member_count + 1


async def test_verify_changed_storage_object(sample: Sample, tmp_path: Path) -> None:
    """A storage object's bytes changed: the problem names ``<top>/storage/<key>``."""
    path = copy_archive(sample, mb.DumpFormat.CUSTOM, tmp_path)
    key = sorted(key for key, content in sample.files.items() if content)[3]
    top = sample.manifests[mb.DumpFormat.CUSTOM].top_folder
    flip_member_byte(path, f"{top}/storage/{key}", index=0)

    report = await mb.verify(mb.FileArchive(path=path))

    assert not report.ok
    assert problem_members(report) == [f"{top}/storage/{key}"]
    assert report.problems[0].kind == "ChecksumError"


async def test_verify_two_damaged_members(sample: Sample, tmp_path: Path) -> None:
    """verify() does not stop at the first damaged member: both are named."""
    path = copy_archive(sample, mb.DumpFormat.CUSTOM, tmp_path)
    names = member_names(path)
    first_part = next(name for name in names if "/dump/part-" in name)
    last_object = [name for name in names if "/storage/" in name][-1]
    flip_member_byte(path, first_part, index=1000)
    flip_member_byte(path, last_object, index=-1)

    report = await mb.verify(mb.FileArchive(path=path))

    assert not report.ok
    assert {first_part, last_object} <= set(problem_members(report))


@pytest.mark.parametrize("fraction", [0.6, 0.99])
async def test_verify_truncated(fraction: float, sample: Sample, tmp_path: Path) -> None:
    """A cut-off archive: not ok, the problem says it is truncated, no manifest."""
    path = copy_archive(sample, mb.DumpFormat.PLAIN, tmp_path)
    truncate_file(path, fraction)

    report = await mb.verify(mb.FileArchive(path=path))

    assert not report.ok
    assert report.manifest is None
    assert len(report.problems) == 1
    assert report.problems[0].kind == "CorruptArchiveError"
    assert "truncated" in report.problems[0].message
    with pytest.raises(mb.CorruptArchiveError, match="truncated"):
        await mb.inspect(mb.FileArchive(path=path))


@pytest.mark.parametrize(
    ("member", "kind"),
    [
        pytest.param(regular("../x", b"x"), "UnsafeMemberError", id="dot-dot"),
        pytest.param(
            special(f"{TOP}/storage/l", tarfile.SYMTYPE, "/etc/passwd"),
            "UnsafeMemberError",
            id="symlink",
        ),
        pytest.param(
            regular(f"{TOP}/other/x", b"x"), "CorruptArchiveError", id="unexpected-folder"
        ),
    ],
)
async def test_verify_hostile_member(
    member: tuple[tarfile.TarInfo, bytes | None], kind: str, tmp_path: Path
) -> None:
    """A member that must not be there is a problem naming it, of the right kind."""
    path = tmp_path / "hostile.tar"
    path.write_bytes(build_tar([regular(f"{TOP}/header.json", header_json(TOP)), member]))

    report = await mb.verify(mb.FileArchive(path=path))

    assert not report.ok
    assert report.header is not None
    assert [(p.member, p.kind) for p in report.problems] == [(member[0].name, kind)]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(os.urandom(20_000), id="random"),
        pytest.param(build_tar([regular("readme.txt", b"hi")]), id="foreign-tar"),
    ],
)
async def test_verify_foreign(data: bytes, tmp_path: Path) -> None:
    """Not an archive of ours: not ok, no header, one CorruptArchiveError problem."""
    path = tmp_path / "foreign"
    path.write_bytes(data)
    report = await mb.verify(mb.FileArchive(path=path))
    assert not report.ok
    assert report.header is None
    assert report.members_checked == 0
    assert [p.kind for p in report.problems] == ["CorruptArchiveError"]
