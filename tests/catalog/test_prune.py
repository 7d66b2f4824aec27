"""prune(): restic's rules applied to the catalog, deleting only backups provably ours,
never the newest, never anything when the listing or an entry cannot be read, never a
stray file; unfinished uploads older than asked aborted, younger ones left."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import monetr_backup as mb
from monetr_backup._catalog.entry import ENTRY_SUFFIX
from monetr_backup._catalog.prune import MISMATCH
from monetr_backup.testing import TemporarySeaweedS3

from support.catalog import START, Folder, entry_bytes, file_folder, s3_folder
from support.fault_proxy import Rule, fault_proxy
from support.properties import bounded

pytestmark = pytest.mark.anyio

STRAYS = {
    "README.txt": b"these are the backups",
    "monetr.tar.gz.bak": b"an old copy",
    ".monetr-20240101T000000.tar.gz.0123ab.partial": b"a backup being written",
    "notes.catalog.json.txt": b"{}",
}
ODD_NAME = "monetr-20231101T000000.tar.gz.old"


def _fill(archives_folder: Folder) -> dict[str, str]:
    """Seven daily backups, and everything prune must leave alone."""
    names = {f"day{n}": archives_folder.add(START + timedelta(days=n)) for n in range(7)}
    # Older than all, so any rule would let it go: but it cannot be proved ours.
    names["orphan"] = archives_folder.add(START - timedelta(days=30), entry=False)
    names["mismatch"] = archives_folder.add(START - timedelta(days=20), size=99_999)
    names["gone"] = archives_folder.add(START - timedelta(days=10), archive=False)
    for name, data in STRAYS.items():
        archives_folder.put(name, data)
    # A stray with a valid entry naming it: only its name says it is not an archive.
    old = START - timedelta(days=40)
    archives_folder.put(ODD_NAME, b"renamed by hand")
    archives_folder.put(ODD_NAME + ENTRY_SUFFIX, entry_bytes(ODD_NAME, b"renamed by hand", old))
    return names


async def test_dry_run_is_the_default_and_deletes_nothing(archives_folder: Folder) -> None:
    names = _fill(archives_folder)
    before = archives_folder.names()
    result = await mb.prune(archives_folder.location, mb.RetentionPolicy(keep_last=2))
    assert result.dry_run
    assert archives_folder.names() == before
    assert [b.name for b in result.deleted] == [names[f"day{n}"] for n in (4, 3, 2, 1, 0)]


async def test_prune_deletes_what_no_rule_keeps_and_nothing_else(archives_folder: Folder) -> None:
    names = _fill(archives_folder)
    before = archives_folder.names()
    policy = mb.RetentionPolicy(keep_last=1, keep_daily=3)

    result = await mb.prune(archives_folder.location, policy, dry_run=False)

    doomed = [names[f"day{n}"] for n in (3, 2, 1, 0)]
    assert [b.name for b in result.deleted] == doomed
    gone = {name for name in doomed} | {name + ENTRY_SUFFIX for name in doomed}
    assert archives_folder.names() == sorted(set(before) - gone)
    # Every stray, the archive without an entry, the entry without an archive and the
    # backup whose size does not match survive; the last is reported with its reason.
    survivors = [*STRAYS, ODD_NAME, ODD_NAME + ENTRY_SUFFIX, names["orphan"], names["mismatch"]]
    for name in [*survivors, names["gone"] + ENTRY_SUFFIX]:
        assert name in archives_folder.names()
    assert {k.backup.name: k.reasons for k in result.kept} == {
        names["day6"]: ["newest", "last", "daily"],
        names["day5"]: ["daily"],
        names["day4"]: ["daily"],
        names["mismatch"]: [MISMATCH],
    }
    assert result.listing.archives_without_entry == [names["orphan"]]
    assert [b.name for b in result.listing.size_mismatches] == [names["mismatch"]]

    # Run again: nothing more to delete.
    again = await mb.prune(archives_folder.location, policy, dry_run=False)
    assert again.deleted == []
    assert archives_folder.names() == sorted(set(before) - gone)


async def test_the_newest_backup_survives_a_policy_that_keeps_nothing_else(
    archives_folder: Folder,
) -> None:
    names = _fill(archives_folder)
    policy = mb.RetentionPolicy(keep_within=timedelta(seconds=1))
    result = await mb.prune(archives_folder.location, policy, dry_run=False)
    assert names["day6"] in archives_folder.names()
    assert names["day6"] + ENTRY_SUFFIX in archives_folder.names()
    assert [k.reasons for k in result.kept if k.backup.name == names["day6"]] == [
        ["newest", "within"]
    ]
    assert len(result.deleted) == 6


@pytest.mark.reliability(
    "hostile input",
    "prune over a folder with one entry that is not JSON (or describes another archive)",
    "CatalogError naming the entry before anything is deleted; the folder as it was",
)
@pytest.mark.parametrize("damage", ["garbage", "another archive"])
async def test_an_unreadable_entry_stops_prune_before_any_delete(
    archives_folder: Folder, damage: str
) -> None:
    names = _fill(archives_folder)
    victim = names["day3"] + ENTRY_SUFFIX
    if damage == "garbage":
        archives_folder.put(victim, b"\x00not an entry")
    else:
        archives_folder.put(victim, entry_bytes(names["day4"], b"x", START))
    before = archives_folder.names()
    with pytest.raises(mb.CatalogError, match=r"cannot be read .*nothing was pruned"):
        await mb.prune(archives_folder.location, mb.RetentionPolicy(keep_last=1), dry_run=False)
    assert archives_folder.names() == before


@pytest.mark.reliability(
    "fault",
    "prune whose S3 LIST is answered 500 every time, or whose listing of a directory fails",
    "CatalogError; no DELETE sent, nothing deleted",
)
@pytest.mark.usefixtures("quick_retries")
async def test_a_listing_error_makes_prune_fail_without_deleting(
    s3: TemporarySeaweedS3, bucket: str, tmp_path: Path
) -> None:
    archives_folder = s3_folder(s3, bucket)
    _fill(archives_folder)
    before = archives_folder.names()
    listing = Rule(method="GET", query="list-type", status=500, times=None)
    deletes = Rule(method="DELETE", times=None)
    async with fault_proxy(s3.ports["s3"], listing, deletes) as proxy:
        location = archives_folder.location.model_copy(
            update={"s3": s3.config(endpoint_url=proxy.endpoint_url)}
        )
        with pytest.raises(mb.CatalogError, match="listing s3://"):
            await mb.prune(location, mb.RetentionPolicy(keep_last=1), dry_run=False)
    assert listing.hits >= 1
    assert proxy.exchanges(deletes) == []
    assert archives_folder.names() == before

    # A directory: its path is a file, so it cannot be listed.
    (tmp_path / "not-a-folder").write_bytes(b"")
    with pytest.raises(mb.CatalogError, match="listing"):
        await mb.prune(
            mb.FileArchives(path=tmp_path / "not-a-folder"),
            mb.RetentionPolicy(keep_last=1),
            dry_run=False,
        )
    assert (tmp_path / "not-a-folder").exists()


@pytest.mark.reliability(
    "fault",
    "prune whose second DELETE is answered 500 every time",
    "CatalogError noting the backup deleted before; the rest of the folder untouched",
)
@pytest.mark.usefixtures("quick_retries")
async def test_a_failing_delete_stops_prune_and_says_what_was_deleted(
    s3: TemporarySeaweedS3, bucket: str
) -> None:
    archives_folder = s3_folder(s3, bucket)
    names = _fill(archives_folder)
    before = archives_folder.names()
    # The first backup's archive and entry go; the next archive's DELETE fails.
    rule = Rule(method="DELETE", skip=2, status=500, times=None)
    async with fault_proxy(s3.ports["s3"], rule) as proxy:
        location = archives_folder.location.model_copy(
            update={"s3": s3.config(endpoint_url=proxy.endpoint_url)}
        )
        with pytest.raises(mb.CatalogError, match="deleting s3://") as caught:
            await mb.prune(location, mb.RetentionPolicy(keep_last=1), dry_run=False)
    first = names["day5"]
    assert caught.value.__notes__ == [f"deleted before the failure: {first}"]
    assert archives_folder.names() == sorted(set(before) - {first, first + ENTRY_SUFFIX})


async def test_stale_uploads_are_aborted_and_fresh_ones_kept(
    s3: TemporarySeaweedS3, bucket: str
) -> None:
    archives_folder = s3_folder(s3, bucket)
    client = s3.client()
    prefix = archives_folder.location.prefix  # type: ignore[union-attr]

    def start(key: str) -> str:
        upload_id: str = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        return upload_id

    stale = start(prefix + "monetr-stale.tar.gz")
    stray = start(prefix + "not-a-backup.bin")
    elsewhere = start("other/monetr-stale.tar.gz")
    await anyio.sleep(3)
    fresh = start(prefix + "monetr-fresh.tar.gz")

    def open_uploads() -> set[str]:
        listed = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return {upload["UploadId"] for upload in listed}

    age = timedelta(seconds=1.5)
    dry = await mb.prune(
        archives_folder.location, mb.RetentionPolicy(), abort_uploads_older_than=age
    )
    assert [u.upload_id for u in dry.aborted_uploads] == [stale]
    assert open_uploads() == {stale, stray, elsewhere, fresh}

    result = await mb.prune(
        archives_folder.location, mb.RetentionPolicy(), dry_run=False, abort_uploads_older_than=age
    )
    assert [u.upload_id for u in result.aborted_uploads] == [stale]
    assert [u.upload_id for u in result.kept_uploads] == [fresh]
    assert open_uploads() == {stray, elsewhere, fresh}


async def test_wrong_arguments_fail_at_once(tmp_path: Path) -> None:
    location = mb.FileArchives(path=tmp_path)
    with pytest.raises(TypeError, match=r"^policy must be RetentionPolicy, not dict$"):
        await mb.prune(location, {"keep_last": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="S3Archives only"):
        await mb.prune(location, mb.RetentionPolicy(), abort_uploads_older_than=timedelta(days=1))


_POLICIES = st.builds(
    mb.RetentionPolicy,
    keep_last=st.integers(0, 2),
    keep_daily=st.integers(0, 2),
    keep_weekly=st.integers(0, 2),
    keep_monthly=st.integers(0, 2),
    keep_within=st.none() | st.timedeltas(timedelta(seconds=1), timedelta(days=60)),
)
_DATES = st.lists(
    st.datetimes(datetime(2020, 1, 1), datetime(2026, 1, 1), timezones=st.just(UTC)),
    min_size=1,
    max_size=12,
    unique_by=lambda moment: moment.replace(microsecond=0),
)


@bounded(60)
@given(policy=_POLICIES, dates=_DATES)
def test_the_newest_backup_survives_every_prune(
    policy: mb.RetentionPolicy, dates: list[datetime]
) -> None:
    """Real prunes of a real directory: whatever the policy and the dates, the newest
    backup and its entry are there afterwards, and what was kept is all still there."""
    with tempfile.TemporaryDirectory() as root:
        archives_folder = file_folder(Path(root) / "backups")
        names = {archives_folder.add(moment.replace(microsecond=0)) for moment in dates}
        newest = max(names)  # the names sort as their times do
        result = anyio.run(lambda: mb.prune(archives_folder.location, policy, dry_run=False))
        left = set(archives_folder.names())
        assert {newest, newest + ENTRY_SUFFIX} <= left
        assert {k.backup.name for k in result.kept} <= left
        assert {b.name for b in result.deleted}.isdisjoint(left)
        assert {k.backup.name for k in result.kept} | {b.name for b in result.deleted} == names
