"""The static default when no forecast answers: 02:00 local time of the region."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from carbonshift.units import from_epoch_s, to_epoch_s

DEFAULT_LOCAL_START = time(2, 0)


def static_start_s(
    earliest_s: int,
    deadline_s: int,
    duration_s: float,
    timezone: str,
    local_start: time = DEFAULT_LOCAL_START,
) -> tuple[int, bool]:
    """Next `local_start` in `timezone` at or after `earliest_s` that ends by the deadline.

    Returns the start and whether a 02:00 slot fitted; when none fits, the job starts at once
    (the earliest start), which still meets the deadline.
    """
    tz = zone(timezone)
    day = from_epoch_s(earliest_s).astimezone(tz).date()
    latest = deadline_s - duration_s
    while True:
        start = to_epoch_s(datetime.combine(day, local_start, tzinfo=tz))
        if start > latest:
            return earliest_s, False
        if start >= earliest_s:
            return start, True
        day += timedelta(days=1)


@cache
def zone(name: str) -> ZoneInfo:
    """`ZoneInfo(name)`, kept: ZoneInfo's own cache holds 8 zones strongly, so planning over the
    catalog's ~20 read their files again and again (ZoneInfo(name) is the same object)."""
    return ZoneInfo(name)
