"""list_backups(): a directory or a bucket prefix -> its backups newest first from their
entries, and what does not add up (archives without entries, entries without archives,
unreadable entries, other files)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

import monetr_backup as mb
from monetr_backup._catalog.entry import ENTRY_SUFFIX
from monetr_backup.testing import TemporarySeaweedS3

from support.catalog import START, Folder, entry_bytes, s3_folder
from support.fault_proxy import Rule, fault_proxy

pytestmark = pytest.mark.anyio


async def test_backups_come_newest_first_with_what_does_not_add_up(archives_folder: Folder) -> None:
    days = [START + timedelta(days=n, hours=n) for n in (3, 0, 7, 5)]
    for day in days:
        archives_folder.add(day)
    orphan = archives_folder.add(START + timedelta(days=9), entry=False)
    gone = archives_folder.add(START + timedelta(days=10), archive=False)
    mismatched = archives_folder.add(START + timedelta(days=1), size=12345)
    archives_folder.put("broken.tar.gz", b"x")
    archives_folder.put("broken.tar.gz" + ENTRY_SUFFIX, b"{not json")
    archives_folder.put("README.txt", b"these are the backups")
    archives_folder.put("monetr.tar.gz.bak", b"an old copy")
    archives_folder.put(".monetr.tar.gz.0123.partial", b"a backup being written")
    archives_folder.put("elsewhere.tar.gz", b"y")
    # An entry copied next to another archive: it describes the one it came from.
    archives_folder.put(
        "elsewhere.tar.gz" + ENTRY_SUFFIX, entry_bytes("monetr-other.tar.gz", b"y", START)
    )

    listing = await mb.list_backups(archives_folder.location)

    newest_first = sorted([*days, START + timedelta(days=1)], reverse=True)
    assert [b.entry.created_at for b in listing.backups] == newest_first
    assert [b.name for b in listing.size_mismatches] == [mismatched]
    assert all(b.size_matches for b in listing.backups if b.name != mismatched)
    assert listing.archives_without_entry == [orphan]
    assert listing.entries_without_archive == [gone + ENTRY_SUFFIX]
    assert [u.name for u in listing.unreadable_entries] == [
        "broken.tar.gz" + ENTRY_SUFFIX,
        "elsewhere.tar.gz" + ENTRY_SUFFIX,
    ]
    assert "describes" in listing.unreadable_entries[1].reason
    assert listing.other_files == sorted(
        ["README.txt", "monetr.tar.gz.bak", ".monetr.tar.gz.0123.partial"]
    )


async def test_an_empty_folder_lists_nothing(archives_folder: Folder) -> None:
    listing = await mb.list_backups(archives_folder.location)
    assert listing.backups == []
    assert listing.archives_without_entry == listing.other_files == []


async def test_a_directory_that_cannot_be_listed_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(mb.CatalogError, match="listing"):
        await mb.list_backups(mb.FileArchives(path=tmp_path / "missing"))
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(mb.CatalogError, match="listing"):
        await mb.list_backups(mb.FileArchives(path=tmp_path / "a-file"))


@pytest.mark.reliability(
    "fault",
    "list_backups whose S3 LIST is answered 500, has its connection reset, or has its "
    "answer cut after 60 bytes of body, every time",
    "CatalogError naming the listing; no partial listing returned",
)
@pytest.mark.parametrize(
    "action",
    [{"status": 500}, {"reset": True}, {"cut_after": 60}],
    ids=["500", "reset", "cut"],
)
@pytest.mark.usefixtures("quick_retries")
async def test_an_s3_listing_that_fails_is_a_catalog_error(
    action: dict[str, object], s3: TemporarySeaweedS3, bucket: str
) -> None:
    archives_folder = s3_folder(s3, bucket)
    archives_folder.add(START)
    rule = Rule(method="GET", query="list-type", times=None, **action)  # type: ignore[arg-type]
    async with fault_proxy(s3.ports["s3"], rule) as proxy:
        location = archives_folder.location.model_copy(
            update={"s3": s3.config(endpoint_url=proxy.endpoint_url)}
        )
        with pytest.raises(mb.CatalogError, match="listing s3://"):
            await mb.list_backups(location)
    assert rule.hits >= 1


async def test_only_the_prefixes_own_keys_count(s3: TemporarySeaweedS3, bucket: str) -> None:
    """Keys in a deeper 'folder' under the prefix, or beside it, are not listed."""
    archives_folder = s3_folder(s3, bucket, prefix="backups/")
    name = archives_folder.add(START)
    deeper = s3_folder(s3, bucket, prefix="backups/older/")
    deeper.add(START + timedelta(days=1))
    beside = s3_folder(s3, bucket, prefix="backups-other/")
    beside.add(START + timedelta(days=2))
    listing = await mb.list_backups(archives_folder.location)
    assert [b.name for b in listing.backups] == [name]
    assert listing.other_files == []


@pytest.mark.parametrize(
    "bad",
    [lambda tmp: mb.FileArchive(path=tmp), str],
    ids=["FileArchive", "str"],
)
async def test_a_wrong_location_is_a_type_error(
    bad: Callable[[Path], object], tmp_path: Path
) -> None:
    with pytest.raises(TypeError, match=r"^location must be FileArchives or S3Archives, not "):
        await mb.list_backups(bad(tmp_path))  # type: ignore[arg-type]
