"""Dump parts out of order, mis-sized, or against their summary -> refused, and rolled back."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import monetr_backup as mb
from monetr_backup import stages
from monetr_backup.testing import PostgresServer

from support.archives import TOP, build_tar, header_json, regular
from support.databases import Databases
from support.samples import PART_SIZE, RESTRICT_KEY

pytestmark = pytest.mark.anyio


def summary_json(
    parts: list[bytes], *, parts_sha256: str | None = None, v1_sha256: str | None = None
) -> bytes:
    """A dump summary of ``parts`` (format v2 unless ``v1_sha256`` is given)."""
    digests = "".join(f"{hashlib.sha256(part).hexdigest()}\n" for part in parts)
    summary = stages.DumpSummary(
        total_bytes=sum(map(len, parts)),
        part_count=len(parts),
        part_size=PART_SIZE,
        sha256=v1_sha256,
        parts_sha256=None
        if v1_sha256
        else parts_sha256 or hashlib.sha256(digests.encode()).hexdigest(),
        dump_format=mb.DumpFormat.PLAIN,
        pg_dump_version="pg_dump (PostgreSQL) 15.18",
        server_version="15.18",
    )
    return summary.model_dump_json(indent=2).encode() + b"\n"


SQL = b"CREATE TABLE planted (id int);\n"


FULL_PART = (SQL + b"-- padding\n" * (PART_SIZE // 11))[: PART_SIZE - 1] + b"\n"
assert len(FULL_PART) == PART_SIZE


PLAIN_HEADER = regular(f"{TOP}/header.json", header_json(TOP, dump_format=mb.DumpFormat.PLAIN))
V1_PLAIN_HEADER = regular(
    f"{TOP}/header.json", header_json(TOP, dump_format=mb.DumpFormat.PLAIN, format_version=1)
)


MALFORMED_DUMPS = {
    "part-out-of-order": ([regular(f"{TOP}/dump/part-000002", SQL)], "out of order"),
    "short-part-not-last": (
        [regular(f"{TOP}/dump/part-000001", SQL), regular(f"{TOP}/dump/part-000002", SQL)],
        "except the last",
    ),
    "oversized-part": (
        [regular(f"{TOP}/dump/part-000001", FULL_PART + b"\n")],
        "except the last",
    ),
    "no-summary": (
        [regular(f"{TOP}/dump/part-000001", SQL), regular(f"{TOP}/storage/x", b"x")],
        "expected a dump part",
    ),
    "summary-sha256-differs": (
        [
            regular(f"{TOP}/dump/part-000001", FULL_PART),
            regular(f"{TOP}/dump/part-000002", SQL),
            regular(
                f"{TOP}/dump/summary.json", summary_json([FULL_PART, SQL], parts_sha256="0" * 64)
            ),
        ],
        "the digest of the dump parts",
    ),
    # Format v1 archives are still read: their summary holds the whole dump's digest.
    "v1-summary-sha256-differs": (
        [
            V1_PLAIN_HEADER,
            regular(f"{TOP}/dump/part-000001", FULL_PART),
            regular(f"{TOP}/dump/part-000002", SQL),
            regular(f"{TOP}/dump/summary.json", summary_json([FULL_PART, SQL], v1_sha256="0" * 64)),
        ],
        "SHA-256 of the dump stream",
    ),
    "summary-counts-differ": (
        [
            regular(f"{TOP}/dump/part-000001", SQL),
            regular(f"{TOP}/dump/summary.json", summary_json([SQL, SQL])),
        ],
        "the summary says 2 parts",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED_DUMPS))
async def test_malformed_dump_section(
    case: str, pg: PostgresServer, databases: Databases, tmp_path: Path
) -> None:
    """Dump parts out of order, of the wrong size, without (or with a disagreeing) summary:
    CorruptArchiveError (ChecksumError for the summary), and the SQL the parts hold (psql has
    already run the first of two parts) is rolled back: the database is as before."""
    members, message = MALFORMED_DUMPS[case]
    archive = tmp_path / "malformed.tar"
    has_header = members[0][0].name.endswith("/header.json")
    archive.write_bytes(build_tar(members if has_header else [PLAIN_HEADER, *members]))
    target = databases.create()
    before = pg.pg_dump_text(target, restrict_key=RESTRICT_KEY)
    with pytest.raises(mb.CorruptArchiveError, match=message):
        await mb.restore(mb.FileArchive(path=archive), database=pg.config(target))
    assert pg.pg_dump_text(target, restrict_key=RESTRICT_KEY) == before
    assert b"planted" not in before
