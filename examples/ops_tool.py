"""An operator's command line: back up with a rich progress bar, list backups, prune them.

Shows ``Progress`` drawn honestly (a determinate bar while a total is known, with the
library's own rate and ETA; an indeterminate one without a total or once an estimate has
been passed), ``list_backups`` as a table with what is amiss in the folder, and ``prune``
always as a dry run first, printing what would go and the rules that keep the rest.
``rich`` is needed by this example only (the ``test`` extra installs it).

    python examples/ops_tool.py --config /etc/monetr/config.yaml --archives DIR backup
    python examples/ops_tool.py --archives DIR list
    python examples/ops_tool.py --archives DIR prune --keep-daily 7 --keep-weekly 5 [--apply]

Without arguments (as CI runs it) it starts a throwaway PostgreSQL, writes a monetr
config file for it and runs every subcommand against it, checking what each returned.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import anyio
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.table import Column, Table

import monetr_backup as mb
from monetr_backup.testing import TemporaryPostgres, seed_monetr_like, seed_storage_dir

# Off a terminal (CI logs, cron mail) rich assumes 80 columns: too few for the table.
console = Console(width=None if sys.stdout.isatty() else 120)
Result = mb.Manifest | mb.BackupListing | mb.PruneResult
R = TypeVar("R", mb.Manifest, mb.BackupListing, mb.PruneResult)


class Bar:
    """A progress callback drawing ``mb.Progress`` snapshots on a rich bar."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("starting", total=None, rate="", eta="")

    def __call__(self, snapshot: mb.Progress) -> None:
        total = snapshot.total_bytes
        # The dump's total is the database's on-disk size, an estimate: once passed it
        # says nothing any more, and a bar stuck at 100% would lie.
        if total is not None and snapshot.done_bytes > total:
            total = None
        eta = f"ETA {snapshot.eta:.0f} s" if snapshot.eta is not None else ""
        if snapshot.phase is mb.Phase.DONE:
            # The final snapshot still carries the ETA against the estimate: none is left.
            total, eta = snapshot.done_bytes, ""
        rate = f"{snapshot.rate / 1e6:.1f} MB/s" if snapshot.rate is not None else ""
        self.progress.update(
            self.task,
            description=str(snapshot.phase),
            completed=snapshot.done_bytes,
            total=total,
            rate=rate,
            eta=eta,
        )


async def backup(args: argparse.Namespace) -> mb.Manifest:
    """Back the instance up into a new archive in the folder."""
    instance = mb.MonetrInstance.from_config(args.config)
    now = datetime.now(UTC)
    name = f"monetr-{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z.tar.gz"
    columns = (TextColumn("{task.description:<18}"), BarColumn(), DownloadColumn())
    with Progress(
        *columns, TextColumn("{task.fields[rate]} {task.fields[eta]}"), console=console
    ) as progress:
        manifest = await mb.backup(
            mb.FileArchive(path=args.archives / name),
            database=instance.database,
            storage=instance.storage,
            options=mb.BackupOptions(kms_provider=instance.kms_provider, progress_interval=0.1),
            progress=Bar(progress),
        )
    console.print(f"[green]{name}[/]: {manifest.member_count} members, {manifest.total_bytes:,} B")
    return manifest


async def list_(args: argparse.Namespace) -> mb.BackupListing:
    """A table of the backups, newest first, and what else is in the folder."""
    listing = await mb.list_backups(mb.FileArchives(path=args.archives))
    columns = ("created (UTC)", "size", "dump", "objects", "whole")
    table = Table(Column("archive", no_wrap=True), *columns)
    for found in listing.backups:
        entry = found.entry
        table.add_row(
            found.name,
            f"{entry.created_at:%Y-%m-%d %H:%M:%S}",
            f"{found.size:,}",
            f"{entry.totals.dump_bytes:,}",
            str(entry.totals.object_count),
            "yes" if found.size_matches else "[red]size differs[/]",
        )
    console.print(table)
    for label, names in (
        ("archives without an entry (never pruned)", listing.archives_without_entry),
        ("entries without an archive", listing.entries_without_archive),
        ("unreadable entries (prune refuses)", [u.name for u in listing.unreadable_entries]),
        ("other files (left alone)", listing.other_files),
    ):
        if names:
            console.print(f"[yellow]{label}:[/] {', '.join(names)}")
    return listing


async def prune(args: argparse.Namespace) -> mb.PruneResult:
    """A dry run, printed; with ``--apply`` then the real prune, which must agree."""
    location = mb.FileArchives(path=args.archives)
    policy = mb.RetentionPolicy(keep_last=args.keep_last, keep_daily=args.keep_daily)
    plan = await mb.prune(location, policy)
    for kept in plan.kept:
        console.print(f"keep   {kept.backup.name}  ({', '.join(kept.reasons)})")
    for gone in plan.deleted:
        console.print(f"[red]delete[/] {gone.name}")
    if not args.apply:
        console.print("dry run: nothing deleted (--apply deletes)")
        return plan
    result = await mb.prune(location, policy, dry_run=False)
    if [b.name for b in result.deleted] != [b.name for b in plan.deleted]:
        console.print("[yellow]the folder changed between the dry run and the prune[/]")
    console.print(f"deleted {len(result.deleted)} backups")
    return result


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line: common options, then one subcommand."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archives", type=Path, required=True, help="folder of archives")
    parser.add_argument("--config", type=Path, action="append", help="monetr's config file(s)")
    commands = parser.add_subparsers(required=True)
    commands.add_parser("backup").set_defaults(run=backup)
    commands.add_parser("list").set_defaults(run=list_)
    pruning = commands.add_parser("prune")
    pruning.set_defaults(run=prune)
    pruning.add_argument("--keep-last", type=int, default=0)
    pruning.add_argument("--keep-daily", type=int, default=0)
    pruning.add_argument("--apply", action="store_true", help="delete (default: dry run)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> Result:
    """Run one subcommand; what it found or did comes back for the caller to check."""
    args = parse(argv)
    result: Result = anyio.run(args.run, args)
    return result


def check(ok: bool, problem: str) -> None:
    """Exit non-zero with ``problem`` unless ``ok`` (asserts vanish under ``python -O``)."""
    if not ok:
        raise SystemExit(f"check failed: {problem}")


def run(kind: type[R], *argv: str) -> R:
    """``main(argv)``, whose result must be a ``kind``."""
    result = main(list(argv))
    if not isinstance(result, kind):
        raise SystemExit(f"check failed: {argv} returned {type(result).__name__}")
    return result


def demo() -> None:
    """Every subcommand against a throwaway PostgreSQL, as monetr's config file describes it."""
    with tempfile.TemporaryDirectory() as tmp, TemporaryPostgres() as pg:
        work = Path(tmp)
        pg.create_database("monetr")
        seed_monetr_like(pg, "monetr", scale=20)
        seed_storage_dir(work / "storage")
        (work / "archives").mkdir()
        (work / "archives" / "README.txt").write_text("not a backup: prune leaves it\n")
        config = work / "config.yaml"
        config.write_text(
            f"postgreSql: {{address: {pg.host}, port: {pg.port}, username: {pg.user}, "
            f"database: monetr}}\nstorage: {{enabled: true, provider: filesystem, "
            f"filesystem: {{basePath: {work / 'storage'}}}}}\n"
        )
        os.environ["MONETR_PG_PASSWORD"] = pg.password  # as monetr's container gets it
        common = ("--archives", str(work / "archives"), "--config", str(config))
        made = [run(mb.Manifest, *common, "backup") for _ in range(3)]
        check(all(manifest.object_count == 13 for manifest in made), "storage files missing")
        listing = run(mb.BackupListing, *common, "list")
        names = [found.name for found in listing.backups]
        check(len(names) == 3 and listing.other_files == ["README.txt"], f"listed {listing}")
        plan = run(mb.PruneResult, *common, "prune", "--keep-last", "2")
        check(plan.dry_run and [gone.name for gone in plan.deleted] == names[2:], f"{plan}")
        check(len(run(mb.BackupListing, *common, "list").backups) == 3, "the dry run deleted")
        done = run(mb.PruneResult, *common, "prune", "--keep-last", "2", "--apply")
        check([gone.name for gone in done.deleted] == names[2:], f"deleted {done.deleted}")
        check([k.reasons for k in done.kept] == [["newest", "last"], ["last"]], f"{done.kept}")
        left = sorted(path.name for path in (work / "archives").iterdir())
        expected = sorted(["README.txt", *names[:2], *(n + ".catalog.json" for n in names[:2])])
        check(left == expected, f"the folder holds {left}")
    console.print("[green]all checks passed[/]")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        try:
            main(sys.argv[1:])
        except mb.BackupError as exc:  # the library's messages are made for operators
            raise SystemExit(f"{type(exc).__name__}: {exc}") from exc
    else:
        demo()
