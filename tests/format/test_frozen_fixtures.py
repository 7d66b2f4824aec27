"""Frozen archives of every format version (tests/fixtures/v*) -> verified, inspected, restored.

Each folder's archives were written once by the writer of that version
(tests/fixtures/make_v<N>_fixtures.py) and its expected.json records what restoring them
gives. Users hold archives like these: if a test here fails, a change has stopped
reading archives that already exist. Fix the reader, never the fixtures (they must not
be regenerated). A new format version adds its folder to ``VERSIONS``.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

import monetr_backup as mb
from monetr_backup.testing import PostgresServer

from support.archives import decompress, gnu_tar_list
from support.databases import Databases, quote_ident
from support.targets import tree

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parent.parent / "fixtures"
#: Every format version a released writer produced, by its fixtures folder.
VERSIONS = {1: ROOT / "v1", 2: ROOT / "v2"}
EXPECTED: dict[int, dict[str, Any]] = {
    version: json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    for version, folder in VERSIONS.items()
}

each_archive = pytest.mark.parametrize(
    ("version", "name"),
    [(version, name) for version, expected in EXPECTED.items() for name in expected["archives"]],
    ids=lambda value: f"v{value}" if isinstance(value, int) else str(value),
)
each_version = pytest.mark.parametrize("version", list(VERSIONS), ids=lambda v: f"v{v}")


def digests(files: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    """key -> size and SHA-256, as expected.json records storage objects."""
    return {
        key: {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
        for key, content in files.items()
    }


def database_state(pg: PostgresServer, database: str, expected: dict[str, Any]) -> dict[str, str]:
    """Every check ``expected`` records, run against ``database`` with its frozen SQL."""
    session = expected["session_sql"]
    state: dict[str, str] = {}
    for table in expected["tables"]:
        name = ".".join(quote_ident(part) for part in table.split("."))
        sql = expected["table_sql"].format(table=name)
        state[f"table {table}"] = pg.psql(session + sql, database).strip()
    for check, recorded in expected["catalog"].items():
        state[check] = pg.psql(session + recorded["sql"], database).strip()
    return state


def expected_database_state(expected: dict[str, Any]) -> dict[str, str]:
    """What :func:`database_state` gave on the source database, as ``expected`` records it."""
    state = {
        f"table {table}": f"{counts['rows']}|{counts['md5']}"
        for table, counts in expected["tables"].items()
    }
    state.update({check: recorded["output"] for check, recorded in expected["catalog"].items()})
    return state


def has_instance_files(version: int, name: str) -> bool:
    """Whether the archive holds instance files (format v2 on; not every archive does)."""
    return bool(EXPECTED[version]["archives"][name].get("instance_files", False))


@each_version
def test_the_fixtures_are_the_frozen_files(version: int) -> None:
    """The archives are byte for byte what that version's writer left, and cover every
    codec and dump format, each dump in several parts (and, from v2, archives with and
    without instance files)."""
    expected, folder = EXPECTED[version], VERSIONS[version]
    archives = expected["archives"]
    on_disk = {path.name for path in folder.iterdir()} - {"source.sql", "expected.json"}
    assert on_disk == set(archives)
    for name, archive in archives.items():
        data = (folder / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (
            archive["size"],
            archive["sha256"],
        ), f"{name} changed: the v{version} fixtures must never be regenerated"
    kinds = {(archive["codec"], archive["dump_format"]) for archive in archives.values()}
    assert kinds == {("gzip", "custom"), ("zstd", "plain"), ("none", "custom"), ("gzip", None)}
    for name, archive in archives.items():
        assert archive["dump_parts"] >= (3 if archive["dump_format"] else 0), name
    assert expected["format_version"] == version
    if version >= 2:
        assert {has_instance_files(version, name) for name in archives} == {True, False}
    assert expected["tables"]
    assert any(item["size"] == 0 for item in expected["storage"].values())


@each_archive
async def test_verify_reports_no_problems(version: int, name: str) -> None:
    report = await mb.verify(mb.FileArchive(path=VERSIONS[version] / name))
    assert report.problems == []
    assert report.ok
    assert report.members_checked == len(EXPECTED[version]["archives"][name]["members"])


@each_archive
async def test_inspect_shows_the_header_and_manifest(version: int, name: str) -> None:
    expected = EXPECTED[version]
    archive = expected["archives"][name]
    has_dump = archive["dump_format"] is not None
    info = await mb.inspect(mb.FileArchive(path=VERSIONS[version] / name))
    header, manifest = info.header, info.manifest

    assert (header.format_version, manifest.format_version) == (version, version)
    assert header.codec is mb.Codec(archive["codec"])
    assert header.dump_format is (mb.DumpFormat(archive["dump_format"]) if has_dump else None)
    assert header.database == (expected["database"] if has_dump else None)
    assert header.dump_part_size == expected["dump_part_size"]
    assert header.library_version == expected["written_by"]["library_version"]
    assert manifest.top_folder == header.top_folder
    announced = [entry.name for entry in header.instance_files]
    assert announced == (list(expected["instance"]) if has_instance_files(version, name) else [])

    members = archive["members"]
    assert [entry.name for entry in manifest.members] == members[:-1]
    assert members[-1] == f"{header.top_folder}/manifest.json"
    assert manifest.member_count == len(members) - 1
    storage = expected["storage"]
    assert manifest.object_count == len(storage)
    assert manifest.object_bytes == sum(item["size"] for item in storage.values())
    assert (manifest.dump_bytes > 0) is has_dump
    assert [item.model_dump() for item in manifest.skipped] == expected["skipped"]
    assert manifest.kms_provider == expected["kms_provider"]


@each_archive
async def test_restore_into_a_new_database_and_directory(
    version: int, name: str, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    expected = EXPECTED[version]
    has_dump = expected["archives"][name]["dump_format"] is not None
    target = f"t_v{version}_{uuid.uuid4().hex[:12]}"
    # Registered before the restore creates it, so it is dropped whatever happens.
    databases.created.append(target)
    files = tmp_path / "restored-storage"
    with_instance = has_instance_files(version, name)
    restored = {
        "instance/private-key": tmp_path / "ed25519.key",
        "instance/config-1": tmp_path / "config.yaml",
    }

    result = await mb.restore(
        mb.FileArchive(path=VERSIONS[version] / name),
        database=pg.config(target) if has_dump else None,
        storage=mb.DirectoryStorage(path=files),
        instance_files=mb.InstanceFiles(
            private_key=restored["instance/private-key"],
            config_files=(restored["instance/config-1"],),
        )
        if with_instance
        else None,
        options=mb.RestoreOptions(create_database=True),
    )

    assert (result.database_restored, result.database_created) == (has_dump, has_dump)
    assert sorted(result.objects_restored) == sorted(expected["storage"])
    assert (result.conflicts, result.objects_skipped) == ([], [])
    assert digests(tree(files)) == expected["storage"]
    if with_instance:
        assert result.instance_files_restored == list(restored.values())
        assert {
            member: hashlib.sha256(path.read_bytes()).hexdigest()
            for member, path in restored.items()
        } == expected["instance"]
    if has_dump:
        assert database_state(pg, target, expected) == expected_database_state(expected)


@each_archive
def test_tarfile_and_gnu_tar_list_the_same_members(version: int, name: str) -> None:
    path = VERSIONS[version] / name
    archive = EXPECTED[version]["archives"][name]
    codec = mb.Codec(archive["codec"])
    tar = decompress(path.read_bytes(), codec)
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as opened:
        infos = opened.getmembers()
    assert all(info.isreg() for info in infos)
    listed_by_tarfile = [(info.name, info.size) for info in infos]

    assert gnu_tar_list(path, codec) == listed_by_tarfile
    assert [member for member, _ in listed_by_tarfile] == archive["members"]
