"""The public surface: every export resolves and says where it lives; wrong arguments fail
at once with a clear TypeError; progress comes at a bounded rate with a typed phase."""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import monetr_backup as mb
from monetr_backup import stages

from support.env import Env, Sources

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("module", [mb, stages], ids=["monetr_backup", "stages"])
def test_every_export_resolves_to_the_public_module(module: ModuleType) -> None:
    """Each ``__all__`` name exists, has a docstring, and (classes and functions) reports
    the public module, so reprs and tracebacks never show a private path."""
    names: list[str] = module.__all__
    assert len(names) == len(set(names))
    for name in names:
        value = getattr(module, name)
        if name == "__version__":
            assert isinstance(value, str)
            continue
        if not (isinstance(value, type) or hasattr(value, "__code__")):
            continue  # a type alias (ProgressCallback) carries neither
        assert value.__module__ == module.__name__, name
        assert (value.__doc__ or "").strip(), f"{name} has no docstring"


def test_the_one_call_api_stays_small() -> None:
    """The top level serves the one-call user; stages are for composing (issue 8: ~45, and
    issue 10's MonetrInstance, ConfigError, InstanceFiles and InstanceFileError; issue 11's
    catalog group, CatalogError, ConcurrentOperationError and DecryptionError)."""
    assert len(mb.__all__) <= 60
    assert not set(mb.__all__) & set(stages.__all__)


BAD_ARCHIVES = [
    (mb.S3Storage(s3=mb.S3Config(), bucket="b"), "S3Storage"),
    ("backup.tar.gz", "str"),
    (Path("backup.tar.gz"), "PosixPath"),
]


@pytest.mark.parametrize(("value", "given"), BAD_ARCHIVES)
async def test_wrong_archive_type_is_a_clear_type_error(value: Any, given: str) -> None:
    """A storage location (or a bare path) handed to ``archive=`` names the parameter, the
    type given and the types accepted, before any connection or file is opened."""
    accepted = "archive must be FileArchive, S3Archive or an async iterable of bytes"
    for call in (mb.restore, mb.verify, mb.inspect):
        with pytest.raises(TypeError, match=f"^{accepted}, not {given}$"):
            await call(value)
    with pytest.raises(
        TypeError, match=f"^archive must be FileArchive, S3Archive or ArchiveSink, not {given}$"
    ):
        await mb.backup(value, storage=mb.DirectoryStorage(path=Path("/nonexistent")))


async def test_wrong_storage_and_database_types_are_clear_type_errors(tmp_path: Path) -> None:
    archive = mb.FileArchive(path=tmp_path / "a.tar")
    with pytest.raises(
        TypeError,
        match=r"^storage must be DirectoryStorage, S3Storage or an async iterable of Member, "
        r"not FileArchive$",
    ):
        await mb.backup(archive, storage=archive)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"^storage must be DirectoryStorage, S3Storage or StorageTarget, not str$"
    ):
        await mb.restore(archive, storage="/srv/monetr")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^database must be PostgresConfig, not str$"):
        await mb.restore(archive, database="postgresql://x@y/z")  # type: ignore[arg-type]
    assert not (tmp_path / "a.tar").exists()


async def test_progress_is_throttled_and_typed(env: Env, source_db: str, sources: Sources) -> None:
    """Counters move hundreds of times for an 11 MB dump; the callback gets a snapshot per
    phase change and at most one per interval in between, the last one with the final
    counts. ``progress_interval=0`` gets every change."""

    async def run(interval: float, name: str) -> tuple[list[mb.Progress], float, mb.Manifest]:
        seen: list[mb.Progress] = []
        started = time.monotonic()
        manifest = await mb.backup(
            mb.FileArchive(path=env.output_dir / name),
            database=env.pg.config(source_db),
            storage=mb.DirectoryStorage(path=sources.directory),
            options=mb.BackupOptions(
                codec=mb.Codec.NONE,
                progress_interval=interval,
                storage_mode=mb.StorageMode.ALL,
            ),
            progress=seen.append,
        )
        return seen, time.monotonic() - started, manifest

    every, _, _ = await run(0, "every.tar")
    seen, elapsed, manifest = await run(0.5, "throttled.tar")

    phases = [mb.Phase.STARTING, mb.Phase.DUMPING_DATABASE, mb.Phase.COPYING_STORAGE]
    phases += [mb.Phase.COMMITTING, mb.Phase.DONE]
    assert all(isinstance(progress.phase, mb.Phase) for progress in seen)
    assert list(dict.fromkeys(progress.phase for progress in seen)) == phases
    assert len(every) > 100
    # Phase changes, the snapshot flushed before each, and one per interval.
    assert len(seen) <= 2 * len(phases) + elapsed / 0.5 + 1
    final = seen[-1]
    assert final.phase is mb.Phase.DONE
    assert final.dump_bytes == manifest.dump_bytes
    assert final.objects_done == manifest.object_count
    assert final.archive_bytes == (env.output_dir / "throttled.tar").stat().st_size
