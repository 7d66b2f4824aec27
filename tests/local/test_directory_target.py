"""Restoring into a directory -> files under safe paths only, whatever the names and links."""

from __future__ import annotations

from pathlib import Path

import pytest

import monetr_backup as mb

from support.samples import Sample
from support.targets import partial_files, tree

pytestmark = pytest.mark.anyio


async def test_restore_of_a_long_unicode_file_name(tmp_path: Path) -> None:
    """A 240-byte UTF-8 file name (near the 255-byte limit) restores: temporary names
    do not grow with the final name."""
    name = "明" * 80  # 240 bytes
    root = tmp_path / "storage"
    (root / "data").mkdir(parents=True)
    (root / "data" / name).write_bytes(b"long")
    archive = tmp_path / "a.tar.gz"
    await mb.backup(mb.FileArchive(path=archive), storage=mb.DirectoryStorage(path=root))
    restored = tmp_path / "restored"
    await mb.restore(mb.FileArchive(path=archive), storage=mb.DirectoryStorage(path=restored))
    assert tree(restored) == {f"data/{name}": b"long"}


@pytest.mark.parametrize("policy", list(mb.Overwrite))
async def test_directory_target_follows_no_symlink(
    policy: mb.Overwrite, sample: Sample, tmp_path: Path
) -> None:
    """A folder of the target that is a symlink is not followed: the restore fails with
    UnsafeMemberError and nothing is written through the link."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "target"
    root.mkdir()
    (root / "data").symlink_to(outside, target_is_directory=True)
    with pytest.raises(mb.UnsafeMemberError, match="not a folder"):
        await mb.restore(
            mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM]),
            storage=mb.DirectoryStorage(path=root),
            options=mb.RestoreOptions(overwrite=policy),
        )
    assert list(outside.iterdir()) == []
    assert partial_files(root) == []
