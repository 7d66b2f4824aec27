"""Hostile instance sections (format v2) -> refused by the reader, nothing written anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

import monetr_backup as mb

from support.archives import TOP, build_tar, header_json, regular

pytestmark = pytest.mark.anyio

KEY = "instance/private-key"
CONFIG = "instance/config-1"


def archive(
    announced: list[tuple[str, str]], members: list[tuple[str, bytes]], v: int = 2
) -> bytes:
    """A header announcing ``announced``, then ``members`` (names under the top folder)."""
    header = header_json(TOP, format_version=v, instance_files=announced)
    return build_tar(
        [regular(f"{TOP}/header.json", header)]
        + [regular(f"{TOP}/{name}", data) for name, data in members]
    )


#: case -> (archive, what the error says)
CASES = {
    "announced-missing": (
        archive([(KEY, "private_key")], [("manifest.json", b"{}")]),
        "expected instance/private-key",
    ),
    "not-announced": (archive([], [(KEY, b"key")]), "unexpected member"),
    "name-escapes": (archive([("instance/../../x", "config")], []), "instance file named"),
    "name-elsewhere": (archive([("storage/x", "private_key")], []), "instance file named"),
    "config-numbered-wrong": (
        archive([("instance/config-2", "config")], []),
        "instance file named",
    ),
    "key-not-first": (
        archive([(CONFIG, "config"), (KEY, "private_key")], []),
        "instance file named",
    ),
    "v1-with-instance": (archive([(KEY, "private_key")], [(KEY, b"key")], v=1), "v1 header"),
    "out-of-order": (
        archive([(KEY, "private_key"), (CONFIG, "config")], [(CONFIG, b"c"), (KEY, b"k")]),
        "expected instance/private-key",
    ),
    "too-big": (
        archive([(KEY, "private_key")], [(KEY, b"k" * (1024 * 1024 + 1))]),
        "implausibly large",
    ),
}


@pytest.mark.reliability(
    "hostile input",
    "instance sections that lie: announced but missing, unannounced, misnamed, reordered, "
    "too big, in a v1 archive",
    "CorruptArchiveError from verify and restore; no file at the paths named",
)
@pytest.mark.parametrize("case", list(CASES))
async def test_hostile_instance_section(case: str, tmp_path: Path) -> None:
    """verify() reports the problem, and a restore (naming a path for the key where the
    header announces one) raises it and leaves the folder empty."""
    data, message = CASES[case]
    path = tmp_path / "hostile.tar"
    path.write_bytes(data)
    report = await mb.verify(mb.FileArchive(path=path))
    assert not report.ok
    assert message in report.problems[0].message
    assert report.problems[0].kind in {"CorruptArchiveError", "UnsafeMemberError"}
    folder = tmp_path / "etc"
    folder.mkdir()
    with pytest.raises(mb.CorruptArchiveError, match=message):
        await mb.restore(
            mb.FileArchive(path=path),
            storage=mb.DirectoryStorage(path=tmp_path / "files"),
            instance_files=mb.InstanceFiles(private_key=folder / "key")
            if case != "not-announced"
            else None,
        )
    assert list(folder.iterdir()) == []
    assert not (tmp_path / "files").exists()
