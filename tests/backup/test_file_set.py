"""A monetr database's files rows, read in the dump's own snapshot -> the archive's file set."""

from __future__ import annotations

from pathlib import Path

import pytest

import monetr_backup as mb
from monetr_backup.testing import seed_storage_dir

from support.archives import decompress, tar_layout
from support.env import Env
from support.monetr import live_rows as rows_of
from support.monetr import monetr_key

pytestmark = pytest.mark.anyio


def archived_objects(path: Path) -> dict[str, int]:
    """key -> size of the storage members in the archive at ``path``."""
    layout = tar_layout(decompress(path.read_bytes()))
    found = {}
    for name, (_offset, size) in layout.items():
        _top, _, rest = name.partition("/")
        if rest.startswith("storage/"):
            found[rest.removeprefix("storage/")] = size
    return found


NEW_FILE_SQL = """
INSERT INTO files (file_id, account_id, name, content_type, kind, size, created_at)
SELECT 'file_01zznew', account_id, 'new.csv', 'text/csv', 'transactions/uploads', 3,
       now() FROM accounts ORDER BY account_id LIMIT 1
RETURNING account_id
"""


@pytest.mark.parametrize("mode", [mb.StorageMode.REFERENCED, mb.StorageMode.ALL])
async def test_the_file_set_is_the_dumps_snapshot(
    mode: mb.StorageMode, env: Env, tmp_path: Path
) -> None:
    """While pg_dump runs, monetr goes on: one live row's object is deleted, and a new
    row is added with its object. The archive's file set follows the rows of the dump's
    snapshot: the new file is not among the referenced objects (mode ``all`` takes it,
    and counts it as referenced by no row), the deleted one is recorded as missing, a
    reconciled row's leftover object is not taken (``referenced``), and every object whose
    size differs from its row is listed. Nothing is dropped without a record."""
    database = env.databases.create(seed=True)
    storage = tmp_path / "storage"
    seed_storage_dir(storage, count=20)
    rows = rows_of(env.pg, database)
    every_object = {
        path.relative_to(storage).as_posix(): path.stat().st_size
        for path in storage.rglob("*")
        if path.is_file()
    }
    assert set(rows) < set(every_object), "the sample has objects of reconciled rows too"
    deleted = sorted(rows)[0]
    changed: dict[str, str] = {}

    def on_progress(progress: mb.Progress) -> None:
        if progress.phase is mb.Phase.DUMPING_DATABASE and not changed:
            (storage / deleted).unlink()
            account = env.pg.psql(NEW_FILE_SQL, database).split()[0]
            new_key = monetr_key("file_01zznew", account, "transactions/uploads")
            (storage / new_key).parent.mkdir(parents=True, exist_ok=True)
            (storage / new_key).write_bytes(b"new")
            changed["new"] = new_key

    archive = tmp_path / "monetr.tar.gz"
    manifest = await mb.backup(
        mb.FileArchive(path=archive),
        database=env.pg.config(database),
        storage=mb.DirectoryStorage(path=storage),
        options=mb.BackupOptions(storage_mode=mode, progress_interval=0),
        progress=on_progress,
    )
    new_key = changed["new"]
    file_set = manifest.file_set
    assert file_set is not None
    assert file_set.mode == mode
    objects = archived_objects(archive)
    if mode is mb.StorageMode.REFERENCED:
        assert set(objects) == set(rows) - {deleted}
    else:
        assert set(objects) == (set(every_object) - {deleted}) | {new_key}
    # Per kind: the snapshot's rows, the objects taken, what is missing or differs.
    for kind, entry in file_set.kinds.items():
        kind_rows = {key: size for key, (k, size) in rows.items() if k == kind}
        assert entry.rows == len(kind_rows)
        kind_objects = {key for key in objects if key.startswith(f"data/{kind}/")}
        assert entry.objects == len(kind_objects)
        assert entry.missing == sorted({deleted} & set(kind_rows))
        assert entry.missing_count == len(entry.missing)
        differing = {
            key for key, size in kind_rows.items() if key in objects and objects[key] != size
        }
        assert {item.key for item in entry.size_differs} == differing
        assert entry.size_differs_count == len(differing)
        unreferenced = kind_objects - set(kind_rows)
        if mode is mb.StorageMode.REFERENCED:
            assert entry.unreferenced == []
        else:
            assert set(entry.unreferenced) == unreferenced
    assert new_key not in rows
    if mode is mb.StorageMode.ALL:
        assert new_key in file_set.kinds["transactions/uploads"].unreferenced
    # The restored database has the snapshot's rows: not the new one.
    target = env.databases.create()
    await mb.restore(mb.FileArchive(path=archive), database=env.pg.config(target))
    assert rows_of(env.pg, target) == rows


async def test_referenced_needs_a_monetr_database(env: Env, tmp_path: Path) -> None:
    """``referenced`` asks for the files rows: a database without them is a clear error,
    and nothing is written."""
    database = env.databases.create()
    storage = tmp_path / "storage"
    seed_storage_dir(storage, count=2)
    with pytest.raises(ValueError, match="needs monetr's files table"):
        await mb.backup(
            mb.FileArchive(path=tmp_path / "a.tar"),
            database=env.pg.config(database),
            storage=mb.DirectoryStorage(path=storage),
            options=mb.BackupOptions(storage_mode=mb.StorageMode.REFERENCED),
        )
    assert not (tmp_path / "a.tar").exists()
    manifest = await mb.backup(
        mb.FileArchive(path=tmp_path / "b.tar"),
        database=env.pg.config(database),
        storage=mb.DirectoryStorage(path=storage),
    )
    # Not a monetr database: all files, and no file set to report.
    assert manifest.file_set is None
    assert manifest.object_count == 2


async def test_the_manifest_names_the_kms_keys_and_schema_version(env: Env, tmp_path: Path) -> None:
    """What a restore needs besides the archive: the KMS keys the secrets rows use (with
    their counts) and the monetr schema version; and under the plaintext KMS provider a
    plain warning that the archive holds live tokens. inspect() shows the same."""
    database = env.databases.create(seed=True)
    env.pg.psql(
        "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean);"
        "INSERT INTO schema_migrations VALUES (107, false), (108, false);"
        "UPDATE secrets SET key_id = 'arn:aws:kms:k1', version = '2' WHERE kind = 'plaid';",
        database,
    )
    expected = env.pg.psql(
        "SELECT coalesce(key_id, '-') || ' ' || coalesce(version, '-') || ' ' || count(*)"
        " FROM secrets GROUP BY key_id, version",
        database,
    ).splitlines()
    archive = mb.FileArchive(path=tmp_path / "monetr.tar.gz")
    manifest = await mb.backup(
        archive,
        database=env.pg.config(database),
        options=mb.BackupOptions(kms_provider="plaintext"),
    )
    assert manifest.monetr is not None
    assert manifest.monetr.schema_version == 108
    keys = manifest.monetr.kms_keys
    seen = [f"{key.key_id or '-'} {key.version or '-'} {key.secrets}" for key in keys]
    assert sorted(seen) == sorted(expected)
    assert any(key.key_id == "arn:aws:kms:k1" for key in manifest.monetr.kms_keys)
    assert manifest.live_secrets is not None
    assert "live secrets" in manifest.live_secrets
    inspected = await mb.inspect(archive)
    assert inspected.manifest.monetr == manifest.monetr
    assert inspected.manifest.live_secrets == manifest.live_secrets

    other = mb.FileArchive(path=tmp_path / "aws.tar.gz")
    manifest = await mb.backup(
        other, database=env.pg.config(database), options=mb.BackupOptions(kms_provider="aws")
    )
    assert manifest.live_secrets is None
