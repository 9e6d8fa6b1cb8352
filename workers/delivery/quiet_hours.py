"""Quiet hours: whether a moment falls in a user's quiet window, in their time zone, and when
that window ends. Push and e-mail wait it out; 'urgent' notifications never do."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kernel.logs import EventLog

log = EventLog("workers.delivery.quiet_hours")


@lru_cache(maxsize=512)
def zone(name: str) -> dt.tzinfo:
    """The named IANA zone; UTC (logged) for a name this machine's tz database lacks."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown_time_zone", time_zone=name)
        return dt.UTC


def quiet_until(
    now: dt.datetime, time_zone: str, window: tuple[dt.time, dt.time] | None
) -> dt.datetime | None:
    """The end of the quiet window `now` falls in (UTC), or None when `now` is not quiet.

    `window` is (start, end) in local wall-clock time; start > end spans midnight. The start
    is inside the window, the end is not. `now` must be timezone-aware.
    """
    if window is None:
        return None
    start, end = window
    tz = zone(time_zone)
    local = now.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    day = local.date()
    if start < end:
        if not start <= t < end:
            return None
        ends_on = day
    elif t >= start:
        ends_on = day + dt.timedelta(days=1)
    elif t < end:
        ends_on = day
    else:
        return None
    # A wall-clock end that a DST change skips resolves forward (zoneinfo's fold=0 rule).
    until = dt.datetime.combine(ends_on, end, tzinfo=tz).astimezone(dt.UTC)
    return until if until > now else now + dt.timedelta(minutes=1)


def held_until(
    now: dt.datetime, priority: str, time_zone: str, window: tuple[dt.time, dt.time] | None
) -> dt.datetime | None:
    """Quiet hours as they apply to a delivery of `priority`: urgent ones are never held."""
    if priority == "urgent":
        return None
    return quiet_until(now, time_zone, window)
