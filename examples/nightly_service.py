"""A nightly backup inside a long-running anyio service, with retention and a clean shutdown.

Shows a task group holding a scheduler loop and a signal watcher; one backup a night
(database, storage files, monetr's private key and config files), each followed by
``prune(..., dry_run=False)`` under a ``RetentionPolicy``; the advisory lock's
``ConcurrentOperationError`` taken as "skip this run" (last night's backup, or a restore,
still runs); logging configured by the service (the library only adds a NullHandler);
SIGTERM or SIGINT cancelling everything, which leaves no partial archive behind.

For real (from a systemd unit, say; the password in ``MONETR_PG_PASSWORD``, as monetr's)::

    python examples/nightly_service.py --config /etc/monetr/config.yaml \\
        --archives /var/backups/monetr --at 02:30

Without arguments (as CI runs it) it starts a throwaway PostgreSQL, runs the service with
a one-second "night", holds the lock across its first run, stops it with SIGTERM after
four runs and checks what the catalog lists.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import anyio
import asyncpg

import monetr_backup as mb
from monetr_backup.testing import TemporaryPostgres, seed_monetr_like, seed_storage_dir

log = logging.getLogger("nightly")
#: The key of the library's advisory lock (README, "One backup or restore ... at a time").
LOCK_KEY = 6891533182244017885
POLICY = mb.RetentionPolicy(keep_daily=7, keep_weekly=5, keep_monthly=12)


def check(ok: bool, problem: str) -> None:
    """Exit non-zero with ``problem`` unless ``ok`` (asserts vanish under ``python -O``)."""
    if not ok:
        raise SystemExit(f"check failed: {problem}")


@dataclass
class Service:
    """Backs ``instance`` up into the folder ``archives`` once a night, then prunes it."""

    instance: mb.MonetrInstance
    archives: Path
    policy: mb.RetentionPolicy
    at: time = time(2, 30)
    #: Seconds between runs instead of a daily ``at`` (the demo's one-second night).
    every: float | None = None
    #: Stop after this many runs; ``None``: until a signal.
    runs: int | None = None
    outcomes: list[str] = field(default_factory=list)
    made: list[str] = field(default_factory=list)
    last_prune: mb.PruneResult | None = None
    #: Called after each run (the demo's way to watch the service).
    after_run: Callable[[], None] | None = None

    def delay(self) -> float:
        """Seconds until the next run."""
        if self.every is not None:
            return self.every
        now = datetime.now(UTC)
        next_run = datetime.combine(now.date(), self.at, UTC)
        if next_run <= now:
            next_run += timedelta(days=1)
        return (next_run - now).total_seconds()

    async def run_once(self) -> str:
        """Back up, then prune: ``done``, ``skipped`` (the lock is held elsewhere) or ``failed``."""
        name = f"monetr-{datetime.now(UTC):%Y%m%dT%H%M%S}Z.tar.gz"
        try:
            await mb.backup(
                mb.FileArchive(path=self.archives / name),
                database=self.instance.database,
                storage=self.instance.storage,
                instance_files=self.instance.instance_files,
                options=mb.BackupOptions(kms_provider=self.instance.kms_provider),
            )
            self.made.append(name)
            self.last_prune = await mb.prune(
                mb.FileArchives(path=self.archives), self.policy, dry_run=False
            )
        except mb.ConcurrentOperationError as exc:
            log.warning("skipping this run: pid %s holds the backup lock", exc.holder_pid)
            return "skipped"
        except mb.BackupError as exc:
            # The library has logged a `failed` record already; the service lives on.
            log.error("run failed: %s: %s", type(exc).__name__, exc)  # noqa: TRY400
            return "failed"
        deleted = [backup.name for backup in self.last_prune.deleted]
        log.info("backed up %s; pruned %s", name, deleted or "nothing")
        return "done"

    async def schedule(self) -> None:
        """Sleep until the next run, run, and again."""
        while self.runs is None or len(self.outcomes) < self.runs:
            await anyio.sleep(self.delay())
            self.outcomes.append(await self.run_once())
            if self.after_run is not None:
                self.after_run()


async def stop_on_signal(scope: anyio.CancelScope) -> None:
    """Cancel ``scope`` at SIGTERM or SIGINT: a backup under way is aborted, leaving nothing."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("%s: shutting down", signal.Signals(signum).name)
            scope.cancel()
            return


async def serve(service: Service) -> None:
    """Run the scheduler until it has done its runs or a signal comes."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_on_signal, tg.cancel_scope)
        await service.schedule()
        tg.cancel_scope.cancel()


async def demo(pg: TemporaryPostgres, service: Service) -> None:
    """Serve with the lock held across the first run, SIGTERM after the fourth; check."""
    first_run = anyio.Event()

    def after_run() -> None:
        first_run.set()
        if len(service.outcomes) == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # as systemd stops a service

    service.after_run = after_run
    # An operator's restore, say: a session holding the library's lock.
    holder = await asyncpg.connect(pg.dsn("monetr"))
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        # Bounded: a service that ignored SIGTERM would fail here rather than hang CI.
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(serve, service)
                await first_run.wait()
                await holder.close()  # the lock goes with the session
    finally:
        await holder.close()
    check(service.outcomes == ["skipped", "done", "done", "done"], f"ran {service.outcomes}")
    listing = await mb.list_backups(mb.FileArchives(path=service.archives))
    # keep_last=2: the two newest stay, the first backup went at the third run.
    expected = service.made[::-1][:2]
    check([backup.name for backup in listing.backups] == expected, f"listed {listing}")
    kept = [kept.reasons for kept in service.last_prune.kept] if service.last_prune else []
    check(kept == [["newest", "last"], ["last"]], f"the last prune kept {kept}")
    left = sorted(path.name for path in service.archives.iterdir())
    check(left == sorted([*expected, *(name + ".catalog.json" for name in expected)]), f"{left}")
    print(f"nightly service: {service.outcomes}, kept {expected}: all checks passed")


def main() -> None:
    """For real with ``--config``, else the demo against a throwaway PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, action="append", help="monetr's config file(s)")
    parser.add_argument("--archives", type=Path, help="folder the archives go to")
    parser.add_argument("--at", type=time.fromisoformat, default=time(2, 30), help="UTC")
    parser.add_argument("--every", type=float, help="seconds between runs, instead of --at")
    parser.add_argument("--runs", type=int, help="stop after this many runs")
    args = parser.parse_args()
    if args.config and args.archives is None:
        parser.error("--config needs --archives")
    # The library's records say what happened in their message; the same facts are in
    # extra= (monetr_backup.duration_s, ...) for a JSON formatter to pick up.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.config:
        instance = mb.MonetrInstance.from_config(args.config)
        service = Service(instance, args.archives, POLICY, args.at, args.every, args.runs)
        anyio.run(serve, service)
        return
    with tempfile.TemporaryDirectory() as tmp, TemporaryPostgres() as pg:
        work = Path(tmp)
        pg.create_database("monetr")
        seed_monetr_like(pg, "monetr")
        seed_storage_dir(work / "storage")
        (work / "ed25519.key").write_bytes(os.urandom(64))
        (work / "archives").mkdir()
        instance = mb.MonetrInstance(
            database=pg.config("monetr"),
            storage=mb.DirectoryStorage(path=work / "storage"),
            private_key_path=work / "ed25519.key",
        )
        policy = mb.RetentionPolicy(keep_last=2)
        anyio.run(demo, pg, Service(instance, work / "archives", policy, every=1.0))


if __name__ == "__main__":
    main()
