"""A storage folder -> members: odd files skipped and on record, every file closed on failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import monetr_backup as mb

from support.processes import open_files_under
from support.targets import tree

pytestmark = pytest.mark.anyio


async def test_odd_files_in_a_storage_folder_are_skipped_and_recorded(tmp_path: Path) -> None:
    """A symlink, a FIFO and a file whose name is not UTF-8 are not archived; the manifest
    names each with the reason, and the regular files round-trip."""
    root = tmp_path / "storage"
    (root / "data").mkdir(parents=True)
    (root / "data" / "ok.csv").write_bytes(b"a,b\n")
    (root / "data" / "link").symlink_to(root / "data" / "ok.csv")
    os.mkfifo(root / "data" / "pipe")
    (root / "data").joinpath(os.fsdecode(b"bad-\xff-name")).write_bytes(b"x")
    archive = tmp_path / "a.tar.gz"

    manifest = await mb.backup(mb.FileArchive(path=archive), storage=mb.DirectoryStorage(path=root))

    reasons = {item.key: item.reason for item in manifest.skipped}
    assert reasons["data/link"] == "symlink (not followed)"
    assert reasons["data/pipe"] == "not a regular file"
    assert reasons["data/bad-\ufffd-name"] == "file name is not valid UTF-8"
    assert manifest.object_count == 1
    restored = tmp_path / "restored"
    await mb.restore(mb.FileArchive(path=archive), storage=mb.DirectoryStorage(path=restored))
    assert tree(restored) == {"data/ok.csv": b"a,b\n"}


class FailingSink:
    """An ArchiveSink whose ``fail_at``-th write fails, as an upload would."""

    def __init__(self, fail_at: int) -> None:
        self.writes = 0
        self.fail_at = fail_at

    async def write(self, data: bytes) -> None:
        self.writes += 1
        if self.writes == self.fail_at:
            raise mb.ArchiveWriteError("the destination went away")

    async def commit(self) -> None:
        raise AssertionError("never reached")

    async def abort(self) -> None:
        pass


@pytest.mark.parametrize("fail_at", range(1, 9))
async def test_a_failed_backup_leaves_no_storage_file_open(tmp_path: Path, fail_at: int) -> None:
    """The sink fails at every point of the first storage members (their tar header,
    content, padding): whatever the source had opened is closed when backup() returns,
    including a file whose member was handed over but never read."""
    root = tmp_path / "storage"
    root.mkdir()
    for i in range(3):
        (root / f"f{i}.csv").write_bytes(b"x" * 1000)
    sink = FailingSink(fail_at)

    with pytest.raises(mb.ArchiveWriteError, match="went away"):
        # Uncompressed, so each tar piece reaches the sink as its own write.
        await mb.backup(
            sink,
            storage=mb.DirectoryStorage(path=root),
            options=mb.BackupOptions(codec=mb.Codec.NONE),
        )

    assert open_files_under(root) == []
