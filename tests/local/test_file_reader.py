"""An archive file -> its bytes in chunks; the file closed as soon as the reader is."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path

import anyio
import pytest

from monetr_backup import stages

from support.processes import open_files_under

pytestmark = pytest.mark.anyio


async def test_an_archive_reader_closed_while_cancelled_closes_its_file(tmp_path: Path) -> None:
    """A refused restore closes its reader inside a cancelled task group: the file must
    still be closed when aclose() returns (it once was only closed later, in a thread)."""
    path = tmp_path / "archive.bin"
    path.write_bytes(b"x" * (3 * 1024 * 1024))
    with anyio.CancelScope() as scope:
        async with aclosing(stages.file_bytes(path)) as chunks:
            await anext(chunks)
            scope.cancel()
    assert open_files_under(tmp_path) == []
