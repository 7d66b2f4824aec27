"""Restoring into a directory -> files under safe paths only, whatever the names and links."""

from __future__ import annotations

from pathlib import Path

import pytest

import monetr_backup as mb

from support.samples import Sample
from support.targets import partial_files

pytestmark = pytest.mark.anyio


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
