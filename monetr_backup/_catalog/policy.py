"""Backups' times and a retention policy -> which to keep and the rules that keep each.

restic's ``forget`` semantics (restic's snapshot_policy.go, and its documentation):
backups are taken newest first; ``keep_last`` keeps the n newest; each of ``keep_hourly``
... ``keep_yearly`` keeps the newest backup of each of the n most recent hours, days,
ISO weeks, months or years that have one (a bucket with no backup does not count), and,
if fewer than n buckets have backups, the oldest backup as well; ``keep_within`` keeps
every backup made within that long of the newest backup not in the future (not of now,
so a host that stopped backing up does not age its last backups out; and a clock that
jumped ahead once does not age out the rest). A count of -1 keeps every bucket.
Buckets are UTC calendar units: restic uses local time, which a server in UTC shares.

On top of restic, the newest backup is always kept, whatever the policy says (wal-g#636
deleted the newest backups after an upgrade changed its sort order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["NEWEST", "RetentionPolicy", "apply_policy"]

#: The reason that keeps the newest backup under any policy.
NEWEST = "newest"


class RetentionPolicy(BaseModel):
    """Which backups :func:`prune` keeps, as restic's ``forget --keep-*`` rules.

    A backup is kept if any rule keeps it, and the newest backup always is. Counts of 0
    turn a rule off; -1 keeps every hour/day/week/month/year that has a backup. A policy
    with no rule keeps everything.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The n newest backups.
    keep_last: int = Field(0, ge=-1)
    #: The newest backup of each of the n most recent hours (UTC) that have one.
    keep_hourly: int = Field(0, ge=-1)
    #: ... of each of the n most recent days (UTC).
    keep_daily: int = Field(0, ge=-1)
    #: ... of each of the n most recent ISO weeks (Monday to Sunday, UTC).
    keep_weekly: int = Field(0, ge=-1)
    #: ... of each of the n most recent calendar months.
    keep_monthly: int = Field(0, ge=-1)
    #: ... of each of the n most recent calendar years.
    keep_yearly: int = Field(0, ge=-1)
    #: Every backup made within this long of the newest one.
    keep_within: timedelta | None = Field(None, gt=timedelta(0))

    def is_empty(self) -> bool:
        """No rule set: nothing would be deleted."""
        counts = (
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        )
        return not any(counts) and self.keep_within is None


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


_BUCKETS: list[tuple[str, Callable[[datetime], tuple[int, ...]]]] = [
    ("hourly", lambda t: (t.year, t.month, t.day, t.hour)),
    ("daily", lambda t: (t.year, t.month, t.day)),
    ("weekly", lambda t: tuple(t.isocalendar()[:2])),
    ("monthly", lambda t: (t.year, t.month)),
    ("yearly", lambda t: (t.year,)),
]


def apply_policy(
    times: Sequence[datetime], policy: RetentionPolicy, now: datetime
) -> list[list[str]]:
    """For ``times`` sorted newest first, the reasons each is kept (empty: not kept)."""
    count = len(times)
    reasons: list[list[str]] = [[] for _ in range(count)]
    if count == 0:
        return reasons
    if policy.is_empty():
        return [["no rule"] for _ in range(count)]
    moments = [_utc(t) for t in times]
    last_count = count if policy.keep_last == -1 else min(policy.keep_last, count)
    for index in range(last_count):
        reasons[index].append("last")
    for rule, bucket_of in _BUCKETS:
        left = getattr(policy, f"keep_{rule}")
        last: tuple[int, ...] | None = None
        for index, moment in enumerate(moments):
            if left == 0:
                break
            bucket = bucket_of(moment)
            oldest = index == count - 1
            if bucket != last:
                reasons[index].append(rule)
                last = bucket
                left -= 1 if left > 0 else 0
            elif oldest:
                # restic: a rule with buckets left keeps the oldest backup too, so that
                # too few backups still stretch as far back as they can.
                reasons[index].append(f"{rule} (oldest)")
    if policy.keep_within is not None:
        latest = max((moment for moment in moments if moment <= _utc(now)), default=None)
        for index, moment in enumerate(moments):
            if latest is None or moment > latest - policy.keep_within:
                reasons[index].append("within")
    reasons[0].insert(0, NEWEST)
    return reasons
