"""Back up, verify and restore a monetr-like instance on embedded defaults.

Starts a throwaway PostgreSQL (seeded with a small monetr-like schema and data) and a
local storage directory, backs both up into a local .tar.gz, verifies the archive,
restores it into a fresh database and directory, and checks the copy matches.

    python examples/demo.py            # needs PostgreSQL 15 binaries; run as root or not
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from pathlib import Path

import anyio

import monetr_backup as mb
from monetr_backup.testing import TemporaryPostgres, seed_monetr_like, seed_storage_dir


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


class Bar:
    """Progress display driven by the library's progress callback.

    On a terminal it redraws one line; otherwise (CI logs) it prints each new phase.
    """

    def __init__(self) -> None:
        self.last = 0.0
        self.phase = ""
        self.tty = sys.stdout.isatty()

    def __call__(self, progress: mb.Progress) -> None:
        line = (
            f"  {progress.phase:<20} dump {progress.dump_bytes / 1e6:7.1f} MB  "
            f"objects {progress.objects_done:4d}  archive {progress.archive_bytes / 1e6:6.1f} MB"
        )
        if not self.tty:
            if progress.phase != self.phase:
                self.phase = progress.phase
                print(line, flush=True)
            return
        now = time.monotonic()
        if now - self.last >= 0.2 or progress.phase == "done":
            self.last = now
            print("\r" + line, end="\n" if progress.phase == "done" else "", flush=True)


async def run(pg: TemporaryPostgres, work: Path) -> None:
    source = pg.config("monetr")
    archive = work / "monetr-backup.tar.gz"

    print("backup:")
    started = time.perf_counter()
    manifest = await mb.backup(
        mb.FileArchive(path=archive),
        database=source,
        storage=mb.DirectoryStorage(path=work / "storage"),
        options=mb.BackupOptions(kms_provider="plaintext"),
        progress=Bar(),
    )
    took = time.perf_counter() - started
    print(
        f"  {manifest.member_count} members, dump {manifest.dump_bytes:,} bytes, "
        f"{manifest.object_count} objects ({manifest.object_bytes:,} bytes) "
        f"-> {archive.stat().st_size:,} bytes in {took:.2f} s"
    )
    # monetr's default file set: the objects the live files rows of the dump reference.
    assert manifest.file_set is not None
    for kind, entry in manifest.file_set.kinds.items():
        print(
            f"  {kind}: {entry.rows} live rows, {entry.objects} objects, "
            f"{entry.missing_count} missing, {entry.size_differs_count} of another size"
        )
    taken = {
        name.split("/storage/", 1)[1]
        for name in (member.name for member in manifest.members)
        if "/storage/" in name
    }

    report = await mb.verify(mb.FileArchive(path=archive))
    print(f"verify: ok={report.ok}, {report.members_checked} members checked")
    if not report.ok:
        raise SystemExit(f"verify failed: {report.problems}")

    print("restore:")
    target = source.model_copy(update={"database": "monetr_restored"})
    result = await mb.restore(
        mb.FileArchive(path=archive),
        database=target,
        storage=mb.DirectoryStorage(path=work / "restored-storage"),
        options=mb.RestoreOptions(create_database=True),
        progress=Bar(),
    )
    print(
        f"  database restored={result.database_restored} ({result.dump_bytes:,} bytes), "
        f"{len(result.objects_restored)} objects restored, {len(result.conflicts)} conflicts"
    )

    # A fixed restrict key: pg_dump otherwise writes a random one into every dump.
    same_db = pg.pg_dump_text("monetr", restrict_key="demo") == pg.pg_dump_text(
        "monetr_restored", restrict_key="demo"
    )
    source_files = {
        key: digest for key, digest in _digest_tree(work / "storage").items() if key in taken
    }
    same_files = source_files == _digest_tree(work / "restored-storage")
    print(f"check: database identical={same_db}, storage identical={same_files}")
    if result.missing_files:
        print(f"  {len(result.missing_files)} live rows have no file (the seed has fewer files)")
    if not (same_db and same_files):
        raise SystemExit("the restored copy differs from the source")


def main() -> None:
    """Run the demo in a temporary directory that is removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp, TemporaryPostgres() as pg:
        work = Path(tmp)
        pg.create_database("monetr")
        seed_monetr_like(pg, "monetr", scale=20)
        seed_storage_dir(work / "storage", count=50)
        anyio.run(run, pg, work)


if __name__ == "__main__":
    main()
