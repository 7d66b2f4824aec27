"""The hostile corpus -> each variant refused by verify() and restore(), every target as it was.

Every variant of tests/support/hostile.py is verified, then restored, at once, into an
existing seeded database (``clean``) and a directory with files in it
(``overwrite=always``), and into a new database (``create_database``) and an empty bucket.
verify() must report problems of the variant's kind only; both restores must raise exactly
that type and leave the existing database's ``pg_dump``, the directory (files, folders and
modes), the new database (absent) and the bucket (empty, no unfinished upload) as they
were, with no child process left and no file descriptor leaked.

The bounds: each of the three operations ends within :data:`MAX_SECONDS`; verify, and the
two restores together, allocate at most :data:`MAX_PYTHON_BYTES` of Python memory at their
peak (tracemalloc, which sees the reader's worker thread too) and raise the process's peak
RSS by at most :data:`MAX_RSS_GROWTH` (``VmHWM``, reset before each), which also sees what
C and Rust code allocate.
"""

from __future__ import annotations

import functools
import os
import re
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

import monetr_backup as mb
from monetr_backup.stages import open_s3_client
from monetr_backup.testing import PostgresServer, TemporarySeaweedS3

from support.databases import Databases, database_exists, new_database_name, quote_ident
from support.hostile import RECORD, Good, Variant, corpus, write
from support.processes import child_processes
from support.samples import RESTRICT_KEY, Sample
from support.sizes import MIB
from support.targets import (
    bucket_objects,
    empty_bucket,
    multipart_uploads,
    new_bucket,
    snapshot,
    tree,
    write_files,
)

pytestmark = pytest.mark.anyio

#: Wall-clock bound on each operation (verify, and each restore) of one variant.
MAX_SECONDS = 5.0
#: Bound on the Python memory verify, and the two restores together, allocate at their peak.
MAX_PYTHON_BYTES = 64 * MIB
#: Bound on how far verify, and the two restores together, raise the process's peak RSS.
MAX_RSS_GROWTH = 128 * MIB

#: Made in the existing database before each restore: a committed ``clean`` restore
#: would drop it, so an unchanged ``pg_dump`` proves nothing was committed.
MARKER_SQL = """
CREATE TABLE kept_by_failed_restore (id int PRIMARY KEY, note text NOT NULL);
INSERT INTO kept_by_failed_restore VALUES (1, 'here before the restore');
"""


def _status_kib(field_name: str) -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field_name}:\s+(\d+) kB$", status, re.MULTILINE)
    assert match is not None, field_name
    return int(match.group(1))


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class BoundExceeded(AssertionError):
    """An operation on a variant took longer or more memory than the bounds allow."""


@dataclass
class Costs:
    """What the operations on one variant took, checked against the bounds."""

    variant: str
    #: Wall-clock seconds of each operation.
    seconds: dict[str, float] = field(default_factory=dict)
    #: Peak Python allocations and peak RSS growth of each measured stretch.
    python_peak: dict[str, int] = field(default_factory=dict)
    rss_growth: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def memory(self, stretch: str) -> Iterator[None]:
        """Trace the allocations of the block (its own exceptions pass)."""
        # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
        Path("/proc/self/clear_refs").write_text("5")
        rss_before = _status_kib("VmRSS")
        tracemalloc.start()
        try:
            yield
        finally:
            self.python_peak[stretch] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            self.rss_growth[stretch] = max(0, _status_kib("VmHWM") - rss_before) * 1024

    @contextmanager
    def timed(self, operation: str) -> Iterator[None]:
        """Time the block (its own exceptions pass)."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[operation] = time.monotonic() - started

    def line(self) -> str:
        """One line per variant, for ``pytest -s``."""
        timed = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.seconds.items())
        memory = ", ".join(
            f"{name} {peak / MIB:.1f} MiB (RSS +{self.rss_growth[name] / MIB:.0f})"
            for name, peak in self.python_peak.items()
        )
        return f"bounds {self.variant}: {timed}; {memory}"

    def check(self) -> None:
        """Every operation within the time bound, every stretch within the memory bounds."""
        print(self.line())
        if (
            max(self.seconds.values()) >= MAX_SECONDS
            or max(self.python_peak.values()) >= MAX_PYTHON_BYTES
            or max(self.rss_growth.values()) >= MAX_RSS_GROWTH
        ):
            raise BoundExceeded(self.line())


@pytest.fixture(scope="module")
def goods(sample: Sample) -> dict[mb.DumpFormat, Good]:
    """The sample's archives, taken apart."""
    return {dump_format: Good.read(path) for dump_format, path in sample.archives.items()}


@pytest.fixture(scope="module")
def good(goods: dict[mb.DumpFormat, Good]) -> Good:
    """The sample's custom-format archive, taken apart."""
    return goods[mb.DumpFormat.CUSTOM]


@dataclass(frozen=True)
class Existing:
    """The existing database every case restores into, and its ``pg_dump`` to compare."""

    name: str
    dump: bytes


@pytest.fixture(scope="module")
def existing(pg: PostgresServer, sample: Sample) -> Iterator[Existing]:
    """A clone of the sample database plus a marker table, shared by the cases: each one
    compares it with the dump taken here, so a case that changed it fails itself (and a
    clone per case would cost ~0.3 s each)."""
    name = f"hostile_existing_{uuid.uuid4().hex[:12]}"
    pg.psql(f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(sample.database)}")
    try:
        pg.psql(MARKER_SQL, name)
        yield Existing(name, pg.pg_dump_text(name, restrict_key=RESTRICT_KEY))
    finally:
        pg.drop_database(name)


@pytest.fixture(scope="module")
def shared_bucket(s3: TemporarySeaweedS3) -> str:
    """One bucket for every case, as each must leave it empty: SeaweedFS grows volumes for
    every bucket written to (~0.2 s) and refuses writes after ~78 such buckets a session."""
    return new_bucket(s3, "hostile")


@pytest.fixture
def hostile_bucket(s3: TemporarySeaweedS3, shared_bucket: str) -> Iterator[str]:
    """The shared bucket, empty; what a failing case left in it is removed after the case."""
    assert bucket_objects(s3, shared_bucket) == {}
    yield shared_bucket
    empty_bucket(s3.client(), shared_bucket)


def existing_files(sample: Sample) -> dict[str, bytes]:
    """A directory target's content before the restore: two of the archive's keys with
    other bytes (``overwrite=always`` would replace them) and a file of its own."""
    keys = sorted(sample.files)
    return {
        keys[0]: b"an older version of this object",
        keys[-1]: b"",
        "unrelated/kept.txt": b"not in the archive",
    }


def _variant_params() -> list[Any]:
    params = []
    for variant in corpus():
        outcome = f"{variant.error.__name__} from verify and restore; nothing changed"
        marks = []
        if variant.over_bounds:
            # Refused and nothing changed (checked first, as for every variant), but late:
            # only exceeding the bounds is expected, any other failure still fails.
            outcome += "; over the time or memory bound"
            marks += [
                pytest.mark.slow,
                pytest.mark.xfail(raises=BoundExceeded, strict=True, reason=variant.over_bounds),
            ]
        marks.append(pytest.mark.reliability("hostile input", variant.what, outcome))
        params.append(pytest.param(variant, id=variant.name, marks=marks))
    return params


def test_the_corpus_is_large_enough() -> None:
    """Issue 9 asks for at least 40 variants, with unique names."""
    names = [variant.name for variant in corpus()]
    assert len(names) >= 40
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("variant", _variant_params())
async def test_hostile_variant(
    *,
    variant: Variant,
    goods: dict[mb.DumpFormat, Good],
    sample: Sample,
    existing: Existing,
    pg: PostgresServer,
    s3: TemporarySeaweedS3,
    databases: Databases,
    hostile_bucket: str,
    tmp_path: Path,
) -> None:
    """verify() reports only problems of the variant's kind; both restores raise exactly
    that type, leave every target as it was, and each operation stays within the bounds."""
    path = write(variant, goods[variant.dump_format], tmp_path)
    bucket = hostile_bucket
    files = tmp_path / "files"
    write_files(files, existing_files(sample))
    (files / "empty-folder").mkdir(mode=0o750)
    files_before = snapshot(files)
    new = new_database_name(databases)
    children = child_processes()
    fds = _open_fds()
    costs = Costs(variant.name)

    with costs.memory("verify"), costs.timed("verify"):
        report = await mb.verify(mb.FileArchive(path=path))
    assert not report.ok
    assert {problem.kind for problem in report.problems} == {variant.error.__name__}, (
        report.problems
    )
    # A report lists at most 100 problems and counts the rest.
    assert len(report.problems) == min(report.problem_count, 100)

    raised: dict[str, BaseException | None] = {}

    async def restore(operation: str, **targets: Any) -> None:
        with costs.timed(operation):
            try:
                await mb.restore(mb.FileArchive(path=path), **targets)
            except mb.BackupError as exc:
                raised[operation] = exc
            else:
                raised[operation] = None

    # Both restores at once, into targets that share nothing: half the wall time, and
    # their memory is measured together. A client of the test's own for the bucket:
    # opening and closing one per restore costs ~0.25 s.
    async with open_s3_client(s3.config()) as client:
        with costs.memory("restores"):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(
                    functools.partial(
                        restore,
                        "restore-existing",
                        database=pg.config(existing.name),
                        storage=mb.DirectoryStorage(path=files),
                        options=mb.RestoreOptions(clean=True, overwrite=mb.Overwrite.ALWAYS),
                    )
                )
                tasks.start_soon(
                    functools.partial(
                        restore,
                        "restore-new",
                        database=pg.config(new),
                        storage=s3.storage(bucket),
                        options=mb.RestoreOptions(create_database=True),
                        s3_client=client,
                    )
                )
    assert type(raised["restore-existing"]) is variant.error, raised
    assert type(raised["restore-new"]) is variant.error, raised
    assert pg.pg_dump_text(existing.name, restrict_key=RESTRICT_KEY) == existing.dump
    assert snapshot(files) == files_before
    assert not database_exists(pg, new)
    assert bucket_objects(s3, bucket) == {}
    assert multipart_uploads(s3.client(), bucket) == []
    assert child_processes() == children
    assert _open_fds() == fds

    costs.check()


@pytest.mark.parametrize(
    "padding",
    [
        pytest.param("one-record-in-tar", id="zeros-to-one-record-after-the-end-block"),
        pytest.param("10kib-after-gzip", id="10kib-of-zeros-after-the-gzip-stream"),
    ],
)
@pytest.mark.reliability(
    "hostile input",
    "zero padding after the archive, up to one tar record (10 KiB)",
    "accepted: verify ok, restored in full",
)
async def test_padding_up_to_one_record_is_accepted(
    *,
    padding: str,
    good: Good,
    sample: Sample,
    pg: PostgresServer,
    databases: Databases,
    tmp_path: Path,
) -> None:
    """What tar pads an archive with (the second end block, then up to a whole 10 KiB
    record) and a record of zeros after the compressed stream do not make a good archive
    bad: it verifies and restores in full. One more zero byte inside the tar stream is the
    ``padding-one-byte-too-many`` variant."""
    if padding == "one-record-in-tar":
        # Zeros after the first end block, up to exactly one record in all.
        data = good.padded(RECORD - (len(good.tar) - good.tar_end() - 512))
    else:
        data = good.file + bytes(RECORD)
    path = tmp_path / "padded.tar.gz"
    path.write_bytes(data)

    report = await mb.verify(mb.FileArchive(path=path))
    assert report.ok, report.problems
    target = new_database_name(databases)
    result = await mb.restore(
        mb.FileArchive(path=path),
        database=pg.config(target),
        storage=mb.DirectoryStorage(path=tmp_path / "files"),
        options=mb.RestoreOptions(create_database=True),
    )
    assert result.database_restored
    assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == sample.dump
    assert tree(tmp_path / "files") == sample.files


async def test_the_corpus_packs_good_archives_that_restore(
    good: Good, sample: Sample, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    """The control: the sample taken apart and packed again by the corpus's own packer
    restores in full, so each variant is refused for its damage, not for the packing."""
    path = tmp_path / "repacked.tar.gz"
    path.write_bytes(good.members(good.pieces))
    report = await mb.verify(mb.FileArchive(path=path))
    assert report.ok, report.problems
    target = new_database_name(databases)
    await mb.restore(
        mb.FileArchive(path=path),
        database=pg.config(target),
        storage=mb.DirectoryStorage(path=tmp_path / "files"),
        options=mb.RestoreOptions(create_database=True),
    )
    assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == sample.dump
    assert tree(tmp_path / "files") == sample.files
