"""An archive's bytes -> its members; anything after the end of the archive is damage."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

import monetr_backup as mb

from support.targets import tree

pytestmark = pytest.mark.anyio


async def test_data_after_the_end_of_the_archive_is_damage(tmp_path: Path) -> None:
    """A second gzip member appended after the archive is reported, not ignored."""
    root = tmp_path / "storage"
    root.mkdir()
    (root / "f").write_bytes(b"content")
    archive = tmp_path / "a.tar.gz"
    await mb.backup(mb.FileArchive(path=archive), storage=mb.DirectoryStorage(path=root))
    assert (await mb.verify(mb.FileArchive(path=archive))).ok

    appended = tmp_path / "appended.tar.gz"
    appended.write_bytes(archive.read_bytes() + gzip.compress(b"more tar data" * 100))
    report = await mb.verify(mb.FileArchive(path=appended))
    assert not report.ok
    assert "data after the end of the" in report.problems[0].message
    with pytest.raises(mb.CorruptArchiveError, match="after the end"):
        await mb.restore(
            mb.FileArchive(path=appended), storage=mb.DirectoryStorage(path=tmp_path / "t")
        )
    assert tree(tmp_path / "t") == {}
