"""A PostgreSQL server -> a seeded database and storage folder, backed up once, to restore."""

from __future__ import annotations

import functools
import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

import monetr_backup as mb
from monetr_backup.testing import PostgresServer, seed_monetr_like, seed_storage_dir

#: Small dump parts, so the ~270 KB dump of the sample database spans several.
PART_SIZE = 64 * 1024


#: Fixed ``\restrict`` key: pg_dump 15.14+ writes a random one into every dump otherwise.
RESTRICT_KEY = "k"


@dataclass(frozen=True)
class Sample:
    """A seeded source database and storage folder, with local archives of both."""

    database: str
    storage: Path
    files: dict[str, bytes]
    #: ``pg_dump`` of the source database (fixed restrict key).
    dump: bytes
    #: gzip archives (dump + directory storage), one per dump format.
    archives: dict[mb.DumpFormat, Path]
    manifests: dict[mb.DumpFormat, mb.Manifest]


@contextmanager
def make_sample(pg: PostgresServer, root: Path) -> Iterator[Sample]:
    """Seed a database (dropped on exit) and a storage folder, and back both up."""
    name = f"restore_src_{uuid.uuid4().hex[:12]}"
    pg.create_database(name)
    try:
        seed_monetr_like(pg, name)
        files = seed_storage_dir(root / "storage", count=10)
        archives: dict[mb.DumpFormat, Path] = {}
        manifests: dict[mb.DumpFormat, mb.Manifest] = {}
        for dump_format in mb.DumpFormat:
            path = root / f"sample-{dump_format}.tar.gz"
            manifests[dump_format] = anyio.run(
                functools.partial(
                    mb.backup,
                    mb.FileArchive(path=path),
                    database=pg.config(name),
                    storage=mb.DirectoryStorage(path=root / "storage"),
                    # Every file of the folder, whether or not a row references it.
                    options=mb.BackupOptions(
                        dump_format=dump_format,
                        dump_part_size=PART_SIZE,
                        storage_mode=mb.StorageMode.ALL,
                    ),
                )
            )
            archives[dump_format] = path
        yield Sample(
            database=name,
            storage=root / "storage",
            files=files,
            dump=pg.pg_dump_text(name, restrict_key=RESTRICT_KEY),
            archives=archives,
            manifests=manifests,
        )
    finally:
        pg.drop_database(name)


class Samples:
    """One :func:`make_sample` per server, made on first use; :meth:`close` drops them all."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._stack = ExitStack()
        self._made: dict[tuple[str, int], Sample] = {}

    def of(self, pg: PostgresServer) -> Sample:
        """The sample on ``pg``: its seeded database, folder and archives."""
        key = (pg.host, pg.port)
        if key not in self._made:
            folder = self._root / f"{pg.host}-{pg.port}"
            self._made[key] = self._stack.enter_context(make_sample(pg, folder))
        return self._made[key]

    def close(self) -> None:
        """Drop every sample database made."""
        self._stack.close()


def copy_archive(sample: Sample, dump_format: mb.DumpFormat, tmp_path: Path) -> Path:
    """A private copy of a sample archive, for a test to damage."""
    path = tmp_path / f"copy-{dump_format}.tar.gz"
    shutil.copyfile(sample.archives[dump_format], path)
    return path


async def restore_into_new(
    pg: PostgresServer, path: Path, database: str, files: Path | None = None
) -> mb.RestoreResult:
    """Restore the archive file at ``path`` into the new ``database`` (and ``files``)."""
    return await mb.restore(
        mb.FileArchive(path=path),
        database=pg.config(database),
        storage=mb.DirectoryStorage(path=files) if files is not None else None,
        options=mb.RestoreOptions(create_database=True),
    )
