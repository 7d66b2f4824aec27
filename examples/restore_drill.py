"""A restore drill: the latest backup restored into a scratch database and folder, checked, dropped.

Shows ``list_backups`` picking the newest backup, ``restore`` into a database it creates
(``monetr_drill_<random>``) and a fresh folder, then the checks a drill is for: each
table's row count against the source database, ``RestoreResult.missing_files`` empty,
every restored file's SHA-256 against the manifest. Whatever happened, ``finally`` drops
the scratch database and removes the folder (shielded: a cancelled drill cleans up too).

For real (monthly from cron, say; the password in ``MONETR_PG_PASSWORD``, as monetr's)::

    python examples/restore_drill.py --config /etc/monetr/config.yaml \\
        --archives /var/backups/monetr --max-drift 0.05

A live source changes after its backup: ``--max-drift`` is the fraction by which a
table's count may differ from the restored one (0 by default). Without arguments (as CI
runs it) it drills a fresh backup of a throwaway PostgreSQL (must pass), then again after
rows were deleted from the source (must fail), and checks that neither left anything.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlencode

import anyio
import asyncpg

import monetr_backup as mb
from monetr_backup.testing import TemporaryPostgres, seed_monetr_like, seed_storage_dir


class DrillFailed(Exception):
    """The restored copy is not what it should be; the message lists every difference."""


async def connect(config: mb.PostgresConfig, database: str | None = None) -> asyncpg.Connection:
    """asyncpg to ``database`` (default: the configured one), with the config's TLS."""
    tls = {"sslmode": config.sslmode, "sslrootcert": config.sslrootcert}
    tls |= {"sslcert": config.sslcert, "sslkey": config.sslkey}
    query = urlencode({key: str(value) for key, value in tls.items() if value is not None})
    return await asyncpg.connect(
        f"postgresql://?{query}" if query else None,  # asyncpg reads TLS paths from a DSN
        host=config.host,
        port=config.port,
        user=config.user,
        password=config.password.get_secret_value() if config.password else None,
        database=database or config.database,
    )


async def row_counts(config: mb.PostgresConfig) -> dict[str, int]:
    """Rows per user table, by ``schema.table``."""
    conn = await connect(config)
    try:
        tables = await conn.fetch(
            "SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
        return {t["name"]: await conn.fetchval(f"SELECT count(*) FROM {t['name']}") for t in tables}
    finally:
        await conn.close()


def file_problems(manifest: mb.Manifest, folder: Path) -> list[str]:
    """Every storage member of the manifest that is not at ``folder`` byte for byte."""
    prefix = f"{manifest.top_folder}/storage/"
    problems = []
    for member in manifest.members:
        if member.name.startswith(prefix):
            path = folder / member.name.removeprefix(prefix)
            if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != member.sha256:
                problems.append(f"file {path.relative_to(folder)} is missing or differs")
    return problems


async def drill(
    instance: mb.MonetrInstance, archives: Path, scratch: Path, max_drift: float = 0.0
) -> None:
    """Restore the newest backup in ``archives`` beside ``instance``, check it, drop it."""
    listing = await mb.list_backups(mb.FileArchives(path=archives))
    if not listing.backups:
        raise DrillFailed(f"no backup with a catalog entry in {archives}")
    latest = listing.backups[0]
    name = f"monetr_drill_{secrets.token_hex(4)}"
    target = instance.database.model_copy(update={"database": name})
    folder = Path(tempfile.mkdtemp(prefix="monetr-drill-", dir=scratch))
    print(f"drill: {latest.name} ({latest.entry.created_at:%Y-%m-%d %H:%M} UTC) into {name}")
    try:
        result = await mb.restore(
            mb.FileArchive(path=archives / latest.name),
            database=target,
            storage=mb.DirectoryStorage(path=folder / "storage"),
            options=mb.RestoreOptions(create_database=True),
        )
        source, restored = await row_counts(instance.database), await row_counts(target)
        problems = [
            f"{table}: {restored.get(table)} rows restored, {source.get(table)} in the source"
            for table in sorted(source.keys() | restored.keys())
            if table not in source
            or table not in restored
            or abs(restored[table] - source[table]) > max_drift * source[table]
        ]
        problems += [f"no file for live row {key}" for key in result.missing_files or []]
        problems += file_problems(result.manifest, folder / "storage")
        if result.missing_files is None:
            problems.append("the restore did not check the files rows against the files")
        if problems:
            raise DrillFailed("; ".join(problems))
        files = len(result.objects_restored)
        print(f"  ok: {len(restored)} tables, {sum(restored.values())} rows, {files} files")
    finally:
        with anyio.CancelScope(shield=True):
            conn = await connect(instance.database, "postgres")
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()
            await anyio.to_thread.run_sync(shutil.rmtree, folder)


def check(ok: bool, problem: str) -> None:
    """Exit non-zero with ``problem`` unless ``ok`` (asserts vanish under ``python -O``)."""
    if not ok:
        raise SystemExit(f"check failed: {problem}")


async def demo(pg: TemporaryPostgres, instance: mb.MonetrInstance, work: Path) -> None:
    """A drill that passes, a drill that fails, and nothing left behind by either."""
    archives, scratch = work / "archives", work / "scratch"
    await mb.backup(
        mb.FileArchive(path=archives / "monetr-1.tar.gz"),
        database=instance.database,
        storage=instance.storage,
    )
    leftovers = "SELECT count(*) FROM pg_database WHERE datname LIKE 'monetr_drill_%'"
    await drill(instance, archives, scratch)
    check(pg.psql(leftovers).strip() == "0" and not any(scratch.iterdir()), "drill 1 left")
    pg.psql("DELETE FROM transactions WHERE transaction_id LIKE '%1'", "monetr")
    try:
        await drill(instance, archives, scratch)
    except DrillFailed as exc:
        print(f"  failed, as it should: {exc}")
        check("public.transactions" in str(exc), f"the wrong check failed: {exc}")
    else:
        raise SystemExit("check failed: a drill against a changed source passed")
    check(pg.psql(leftovers).strip() == "0" and not any(scratch.iterdir()), "drill 2 left")


def main() -> None:
    """For real with ``--config``, else the demo against a throwaway PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, action="append", help="monetr's config file(s)")
    parser.add_argument("--archives", type=Path, help="folder of archives")
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--max-drift", type=float, default=0.0)
    args = parser.parse_args()
    if args.config and args.archives is None:
        parser.error("--config needs --archives")
    if args.config:
        try:
            instance = mb.MonetrInstance.from_config(args.config)
            anyio.run(drill, instance, args.archives, args.scratch, args.max_drift)
        except (DrillFailed, mb.BackupError) as exc:
            raise SystemExit(f"restore drill failed: {type(exc).__name__}: {exc}") from exc
        return
    with tempfile.TemporaryDirectory() as tmp, TemporaryPostgres() as pg:
        work = Path(tmp)
        pg.create_database("monetr")
        seed_monetr_like(pg, "monetr")
        seed_storage_dir(work / "storage")
        (work / "archives").mkdir()
        (work / "scratch").mkdir()
        instance = mb.MonetrInstance(
            database=pg.config("monetr"), storage=mb.DirectoryStorage(path=work / "storage")
        )
        anyio.run(demo, pg, instance, work)
    print("all checks passed")


if __name__ == "__main__":
    main()
