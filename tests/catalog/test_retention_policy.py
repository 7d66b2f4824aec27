"""RetentionPolicy: restic's keep rules on backup times, and the newest backup kept always."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monetr_backup import RetentionPolicy
from monetr_backup._catalog.policy import NEWEST, apply_policy

from support.properties import bounded

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def kept(times: list[str], policy: RetentionPolicy) -> list[str]:
    moments = sorted((_at(t) for t in times), reverse=True)
    reasons = apply_policy(moments, policy, NOW)
    return sorted(t.isoformat()[:16] for t, why in zip(moments, reasons, strict=True) if why)


def test_keep_daily_keeps_the_newest_of_each_day_that_has_one() -> None:
    """restic's documented example: --keep-daily 4 over backups on May 1, 2 (twice), 4
    and 5 keeps May 5, 4, the later one of May 2, and May 1 (a day without a backup does
    not count)."""
    times = ["2023-05-01T08:00", "2023-05-02T08:00", "2023-05-02T11:00", "2023-05-04T09:00"]
    times.append("2023-05-05T10:00")
    assert kept(times, RetentionPolicy(keep_daily=4)) == [
        "2023-05-01T08:00",
        "2023-05-02T11:00",
        "2023-05-04T09:00",
        "2023-05-05T10:00",
    ]


def test_a_rule_with_buckets_left_keeps_the_oldest_backup_too() -> None:
    """restic: when fewer days than asked have backups, the oldest backup is kept as well."""
    times = ["2023-05-01T08:00", "2023-05-01T09:00", "2023-05-02T08:00"]
    moments = sorted((_at(t) for t in times), reverse=True)
    reasons = apply_policy(moments, RetentionPolicy(keep_daily=5), NOW)
    assert reasons == [[NEWEST, "daily"], ["daily"], ["daily (oldest)"]]
    # With its buckets used up before the oldest, the rule keeps no more.
    assert kept(times, RetentionPolicy(keep_daily=1)) == ["2023-05-02T08:00"]


def test_weeks_are_iso_weeks_months_and_years_calendar_ones() -> None:
    # Sunday 2023-01-01 is in ISO week 2022-W52; Monday 2023-01-02 starts 2023-W01.
    times = ["2022-12-26T12:00", "2023-01-01T12:00", "2023-01-02T12:00", "2023-01-08T12:00"]
    assert kept(times, RetentionPolicy(keep_weekly=2)) == [
        "2023-01-01T12:00",
        "2023-01-08T12:00",
    ]
    times = ["2022-11-30T12:00", "2022-12-01T12:00", "2022-12-31T23:59", "2023-01-01T00:00"]
    assert kept(times, RetentionPolicy(keep_monthly=2)) == [
        "2022-12-31T23:59",
        "2023-01-01T00:00",
    ]
    assert kept(times, RetentionPolicy(keep_yearly=1)) == ["2023-01-01T00:00"]
    # Unlimited: every year, and (as in restic, where -1 always has buckets left) the oldest.
    assert kept(times, RetentionPolicy(keep_yearly=-1)) == [
        "2022-11-30T12:00",
        "2022-12-31T23:59",
        "2023-01-01T00:00",
    ]


def test_keep_last_and_keep_within() -> None:
    times = [f"2023-05-{day:02}T10:00" for day in range(1, 11)]
    assert kept(times, RetentionPolicy(keep_last=3)) == times[-3:]
    # Within two days of the newest backup (May 10 10:00): after May 8 10:00.
    assert kept(times, RetentionPolicy(keep_within=timedelta(days=2))) == times[-2:]
    assert kept(times, RetentionPolicy(keep_last=-1)) == times


def test_keep_within_counts_from_the_newest_backup_not_in_the_future() -> None:
    """A backup stamped in the future (a clock that jumped ahead) does not age out the
    others: as in restic, ``within`` counts back from the newest one not after now."""
    times = ["2029-12-30T10:00", "2029-12-31T10:00", "2031-06-01T10:00"]
    assert kept(times, RetentionPolicy(keep_within=timedelta(days=3))) == sorted(t for t in times)


def test_an_empty_policy_keeps_everything() -> None:
    times = [f"2023-05-{day:02}T10:00" for day in range(1, 6)]
    assert kept(times, RetentionPolicy()) == times


def test_counts_below_minus_one_are_refused() -> None:
    with pytest.raises(ValueError, match="keep_daily"):
        RetentionPolicy(keep_daily=-2)


_POLICIES = st.builds(
    RetentionPolicy,
    keep_last=st.integers(-1, 3),
    keep_hourly=st.integers(-1, 3),
    keep_daily=st.integers(-1, 3),
    keep_weekly=st.integers(-1, 3),
    keep_monthly=st.integers(-1, 3),
    keep_yearly=st.integers(-1, 3),
    keep_within=st.none() | st.timedeltas(timedelta(seconds=1), timedelta(days=400)),
)
_TIMES = st.lists(
    st.datetimes(datetime(2020, 1, 1), datetime(2032, 1, 1), timezones=st.just(UTC)),
    min_size=1,
    max_size=40,
)


@bounded(300)
@given(policy=_POLICIES, times=_TIMES)
def test_the_newest_backup_survives_every_policy(
    policy: RetentionPolicy, times: list[datetime]
) -> None:
    moments = sorted(times, reverse=True)
    reasons = apply_policy(moments, policy, NOW)
    assert reasons[0]
    assert len(reasons) == len(moments)
    # And a rule with n buckets never keeps more than n + 1 (the oldest) for itself.
    for rule in ("hourly", "daily", "weekly", "monthly", "yearly"):
        count = getattr(policy, f"keep_{rule}")
        if count >= 0:
            assert sum(rule in why for why in reasons) <= count + 1
