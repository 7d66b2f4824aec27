"""Frozen format-v2 archives (tests/fixtures/v2) -> verified, inspected, restored by today's code.

The archives were written once by the v2 writer (tests/fixtures/make_v2_fixtures.py) and
expected.json records what restoring them gives. Users hold archives like these: if a test
here fails, a change has stopped reading archives that already exist. Fix the reader,
never the fixtures (they must not be regenerated).
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

FIXTURES = Path(__file__).parent.parent / "fixtures" / "v2"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
ARCHIVES: dict[str, dict[str, Any]] = EXPECTED["archives"]

each_archive = pytest.mark.parametrize("name", list(ARCHIVES))


def dump_format_of(name: str) -> mb.DumpFormat | None:
    """The dump format archive ``name`` was written with (``None``: storage only)."""
    value = ARCHIVES[name]["dump_format"]
    return None if value is None else mb.DumpFormat(value)


def digests(files: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    """key -> size and SHA-256, as expected.json records storage objects."""
    return {
        key: {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
        for key, content in files.items()
    }


def database_state(pg: PostgresServer, database: str) -> dict[str, str]:
    """Every check expected.json records, run against ``database`` with the frozen SQL."""
    session = EXPECTED["session_sql"]
    state: dict[str, str] = {}
    for table in EXPECTED["tables"]:
        name = ".".join(quote_ident(part) for part in table.split("."))
        sql = EXPECTED["table_sql"].format(table=name)
        state[f"table {table}"] = pg.psql(session + sql, database).strip()
    for check, recorded in EXPECTED["catalog"].items():
        state[check] = pg.psql(session + recorded["sql"], database).strip()
    return state


def expected_database_state() -> dict[str, str]:
    """What :func:`database_state` gave on the source database, as expected.json records it."""
    state = {
        f"table {table}": f"{counts['rows']}|{counts['md5']}"
        for table, counts in EXPECTED["tables"].items()
    }
    state.update({check: recorded["output"] for check, recorded in EXPECTED["catalog"].items()})
    return state


def test_the_fixtures_are_the_frozen_files() -> None:
    """The archives are byte for byte what the v2 writer left, and cover every codec and
    dump format, each dump in several parts, with and without instance files."""
    on_disk = {path.name for path in FIXTURES.iterdir()} - {"source.sql", "expected.json"}
    assert on_disk == set(ARCHIVES)
    for name, archive in ARCHIVES.items():
        data = (FIXTURES / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (
            archive["size"],
            archive["sha256"],
        ), f"{name} changed: the v2 fixtures must never be regenerated"
    kinds = {(archive["codec"], archive["dump_format"]) for archive in ARCHIVES.values()}
    assert kinds == {("gzip", "custom"), ("zstd", "plain"), ("none", "custom"), ("gzip", None)}
    for name, archive in ARCHIVES.items():
        assert archive["dump_parts"] >= (3 if archive["dump_format"] else 0), name
    assert {archive["instance_files"] for archive in ARCHIVES.values()} == {True, False}
    assert EXPECTED["format_version"] == 2
    assert EXPECTED["tables"]
    assert any(item["size"] == 0 for item in EXPECTED["storage"].values())


@each_archive
async def test_verify_reports_no_problems(name: str) -> None:
    report = await mb.verify(mb.FileArchive(path=FIXTURES / name))
    assert report.problems == []
    assert report.ok
    assert report.members_checked == len(ARCHIVES[name]["members"])


@each_archive
async def test_inspect_shows_the_v2_header_and_manifest(name: str) -> None:
    archive = ARCHIVES[name]
    has_dump = archive["dump_format"] is not None
    info = await mb.inspect(mb.FileArchive(path=FIXTURES / name))
    header, manifest = info.header, info.manifest

    assert (header.format_version, manifest.format_version) == (2, 2)
    announced = [entry.name for entry in header.instance_files]
    assert announced == (list(EXPECTED["instance"]) if archive["instance_files"] else [])
    assert header.codec is mb.Codec(archive["codec"])
    assert header.dump_format is dump_format_of(name)
    assert header.database == (EXPECTED["database"] if has_dump else None)
    assert header.dump_part_size == EXPECTED["dump_part_size"]
    assert header.library_version == EXPECTED["written_by"]["library_version"]
    assert manifest.top_folder == header.top_folder

    members = archive["members"]
    assert [entry.name for entry in manifest.members] == members[:-1]
    assert members[-1] == f"{header.top_folder}/manifest.json"
    assert manifest.member_count == len(members) - 1
    storage = EXPECTED["storage"]
    assert manifest.object_count == len(storage)
    assert manifest.object_bytes == sum(item["size"] for item in storage.values())
    assert (manifest.dump_bytes > 0) is has_dump
    assert [item.model_dump() for item in manifest.skipped] == EXPECTED["skipped"]
    assert manifest.kms_provider == EXPECTED["kms_provider"]


@each_archive
async def test_restore_into_a_new_database_and_directory(
    name: str, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    has_dump = ARCHIVES[name]["dump_format"] is not None
    target = f"t_v2_{uuid.uuid4().hex[:12]}"
    # Registered before the restore creates it, so it is dropped whatever happens.
    databases.created.append(target)
    files = tmp_path / "restored-storage"
    with_instance = ARCHIVES[name]["instance_files"]
    instance = mb.InstanceFiles(
        private_key=tmp_path / "ed25519.key", config_files=(tmp_path / "config.yaml",)
    )

    result = await mb.restore(
        mb.FileArchive(path=FIXTURES / name),
        database=pg.config(target) if has_dump else None,
        storage=mb.DirectoryStorage(path=files),
        instance_files=instance if with_instance else None,
        options=mb.RestoreOptions(create_database=True),
    )
    if with_instance:
        restored = {
            "instance/private-key": tmp_path / "ed25519.key",
            "instance/config-1": tmp_path / "config.yaml",
        }
        assert result.instance_files_restored == list(restored.values())
        assert {
            member: hashlib.sha256(path.read_bytes()).hexdigest()
            for member, path in restored.items()
        } == EXPECTED["instance"]

    assert (result.database_restored, result.database_created) == (has_dump, has_dump)
    assert sorted(result.objects_restored) == sorted(EXPECTED["storage"])
    assert (result.conflicts, result.objects_skipped) == ([], [])
    assert digests(tree(files)) == EXPECTED["storage"]
    if has_dump:
        assert database_state(pg, target) == expected_database_state()


@each_archive
def test_tarfile_and_gnu_tar_list_the_same_members(name: str) -> None:
    path = FIXTURES / name
    codec = mb.Codec(ARCHIVES[name]["codec"])
    tar = decompress(path.read_bytes(), codec)
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
        infos = archive.getmembers()
    assert all(info.isreg() for info in infos)
    listed_by_tarfile = [(info.name, info.size) for info in infos]

    assert gnu_tar_list(path, codec) == listed_by_tarfile
    assert [member for member, _ in listed_by_tarfile] == ARCHIVES[name]["members"]
