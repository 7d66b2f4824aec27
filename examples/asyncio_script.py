"""Back up and verify from a plain asyncio script: ``asyncio.run``, no anyio in your code.

The library is written with anyio, which runs on asyncio's own event loop: its calls are
ordinary coroutines, and asyncio's timeouts, tasks and cancellation apply to them (a
backup cancelled by ``asyncio.timeout`` leaves nothing behind). This script backs up a
database and its storage folder into a local file under a time limit, verifies the
archive and its catalog entry, and checks the storage files in the manifest are the
folder's, digest for digest.

    python examples/asyncio_script.py    # starts a throwaway PostgreSQL 15

Against your own instance, replace the ``MonetrInstance(...)`` below with
``mb.MonetrInstance.from_config("/etc/monetr/config.yaml")``.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from pathlib import Path

import monetr_backup as mb
from monetr_backup.testing import TemporaryPostgres, seed_monetr_like, seed_storage_dir


def check(ok: bool, problem: str) -> None:
    """Exit non-zero with ``problem`` unless ``ok`` (asserts vanish under ``python -O``)."""
    if not ok:
        raise SystemExit(f"check failed: {problem}")


async def back_up_and_verify(instance: mb.MonetrInstance, folder: Path) -> None:
    """One backup under a time limit, then verify() and the catalog entry side by side."""
    archive = mb.FileArchive(path=folder / "monetr.tar.zst")
    async with asyncio.timeout(600):
        manifest = await mb.backup(
            archive,
            database=instance.database,
            storage=instance.storage,
            options=mb.BackupOptions(codec=mb.Codec.ZSTD, kms_provider=instance.kms_provider),
        )
    print(f"backup: {manifest.member_count} members, {manifest.dump_bytes:,} dump bytes")

    # Two reads at once, as asyncio tasks: the whole archive checked, and its catalog
    # entry (with use_catalog, inspect reads the small entry beside the archive instead).
    async with asyncio.TaskGroup() as tg:
        verifying = tg.create_task(mb.verify(archive))
        inspecting = tg.create_task(mb.inspect(archive, use_catalog=True))
    report, entry = verifying.result(), inspecting.result()
    check(report.ok, f"verify found {report.problem_count} problems: {report.problems}")
    check(report.members_checked == manifest.member_count + 1, "verify skipped members")
    if not isinstance(entry, mb.CatalogEntry):
        raise SystemExit("check failed: no catalog entry beside the archive")
    stored = hashlib.sha256(archive.path.read_bytes()).hexdigest()
    check(entry.archive_sha256 == stored, "the catalog entry describes other bytes")
    check(entry.totals.member_count == manifest.member_count, "the entry's totals differ")
    print(f"verify: ok, {report.members_checked} members; the entry matches the file")

    storage = instance.storage
    if not isinstance(storage, mb.DirectoryStorage):
        raise SystemExit("check failed: the digest check reads a storage folder")
    prefix = f"{manifest.top_folder}/storage/"
    listed = {m.name.removeprefix(prefix): m.sha256 for m in manifest.members if prefix in m.name}
    on_disk = {key: hashlib.sha256((storage.path / key).read_bytes()).hexdigest() for key in listed}
    check(bool(listed) and listed == on_disk, "the manifest's digests are not the files'")
    print(f"storage: {len(listed)} files, every digest matches the folder")


def main() -> None:
    """A throwaway PostgreSQL and storage folder, then the asyncio part."""
    with tempfile.TemporaryDirectory() as tmp, TemporaryPostgres() as pg:
        work = Path(tmp)
        pg.create_database("monetr")
        seed_monetr_like(pg, "monetr")
        seed_storage_dir(work / "storage")
        instance = mb.MonetrInstance(
            database=pg.config("monetr"), storage=mb.DirectoryStorage(path=work / "storage")
        )
        asyncio.run(back_up_and_verify(instance, work))
    print("all checks passed")


if __name__ == "__main__":
    main()
