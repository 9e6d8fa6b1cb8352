"""Scheduled jobs as data: schedules (hourly, daily, weekly, monthly), the clock, a job's
declaration with its retry policy, and the run records in gateway.job_runs. Realms declare
their jobs with these; workers/scheduler.py runs them and the api lists them."""

from __future__ import annotations

import asyncio
import calendar
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import asyncpg
import msgspec

# --- schedules -----------------------------------------------------------------------------------


class Hourly(msgspec.Struct, frozen=True, tag="hourly"):
    """Every hour at `minute` past the hour."""

    minute: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.minute <= 59:
            raise ValueError(f"minute must be 0 to 59, not {self.minute}")

    def describe(self) -> str:
        return f"hourly at :{self.minute:02d}"


class Daily(msgspec.Struct, frozen=True, tag="daily"):
    """Every day at hour:minute UTC."""

    hour: int
    minute: int = 0

    def __post_init__(self) -> None:
        _check_time(self.hour, self.minute)

    def describe(self) -> str:
        return f"daily at {self.hour:02d}:{self.minute:02d} UTC"


class Weekly(msgspec.Struct, frozen=True, tag="weekly"):
    """Every week on `weekday` (0 = Monday … 6 = Sunday, as calendar.MONDAY…) at hour:minute UTC."""

    weekday: int
    hour: int
    minute: int = 0

    def __post_init__(self) -> None:
        _check_time(self.hour, self.minute)
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), not {self.weekday}")

    def describe(self) -> str:
        day = calendar.day_name[self.weekday]
        return f"weekly on {day} at {self.hour:02d}:{self.minute:02d} UTC"


class Monthly(msgspec.Struct, frozen=True, tag="monthly"):
    """Every month on `day` at hour:minute UTC; a day past the month's end means its last day
    (day 31 runs on 30 April and 28 or 29 February)."""

    day: int
    hour: int
    minute: int = 0

    def __post_init__(self) -> None:
        _check_time(self.hour, self.minute)
        if not 1 <= self.day <= 31:
            raise ValueError(f"day must be 1 to 31, not {self.day}")

    def describe(self) -> str:
        return f"monthly on day {self.day} at {self.hour:02d}:{self.minute:02d} UTC"


Schedule = Hourly | Daily | Weekly | Monthly

# No schedule above leaves more than 31 days between two of its times (an hourly one, an hour).
_LONGEST_GAP = timedelta(days=32)
_HOUR = timedelta(hours=1)


def _check_time(hour: int, minute: int) -> None:
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError(f"{hour:02d}:{minute:02d} is not a time of day")


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("schedules need an aware datetime (UTC), not a naive one")
    return t.astimezone(UTC)


def _in_month(schedule: Monthly, year: int, month: int) -> datetime:
    day = min(schedule.day, calendar.monthrange(year, month)[1])
    return datetime(year, month, day, schedule.hour, schedule.minute, tzinfo=UTC)


def next_after(schedule: Schedule, t: datetime) -> datetime:
    """The first time of `schedule` strictly after the aware datetime `t`, in UTC."""
    t = _utc(t)
    if isinstance(schedule, Hourly):
        at = t.replace(minute=schedule.minute, second=0, microsecond=0)
        return at if at > t else at + _HOUR
    if isinstance(schedule, Daily):
        at = t.replace(hour=schedule.hour, minute=schedule.minute, second=0, microsecond=0)
        return at if at > t else at + timedelta(days=1)
    if isinstance(schedule, Weekly):
        day = t + timedelta(days=(schedule.weekday - t.weekday()) % 7)
        at = day.replace(hour=schedule.hour, minute=schedule.minute, second=0, microsecond=0)
        return at if at > t else at + timedelta(days=7)
    at = _in_month(schedule, t.year, t.month)
    if at > t:
        return at
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return _in_month(schedule, year, month)


def last_at_or_before(schedule: Schedule, t: datetime) -> datetime:
    """The latest time of `schedule` at or before the aware datetime `t`, in UTC."""
    t = _utc(t)
    at = next_after(schedule, t - (_HOUR if isinstance(schedule, Hourly) else _LONGEST_GAP))
    while (following := next_after(schedule, at)) <= t:
        at = following
    return at


# --- clock ---------------------------------------------------------------------------------------


class Clock(Protocol):
    """Where the scheduler and the jobs read the time, so tests can set it."""

    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return once now() >= when. Cancelling the caller ends the wait at once."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        # asyncio sleeps on the monotonic clock, which stops while the machine is suspended and
        # ignores wall-clock steps; re-reading the wall clock each minute keeps us on time.
        while (left := (when - self.now()).total_seconds()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(left, 60.0))


# --- jobs ----------------------------------------------------------------------------------------

JobFunction = Callable[[asyncpg.Connection, Clock], Awaitable[int]]
_JOB_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Up to `attempts` attempts per scheduled time; the wait before attempt n+1 is
    first_delay * backoff**(n-1). After the last one the time stays `failed` and the job next
    runs at its next scheduled time."""

    attempts: int = 3
    first_delay: timedelta = timedelta(minutes=5)
    backoff: int = 4

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < 1 or self.first_delay <= timedelta(0):
            raise ValueError(f"not a retry policy: {self!r}")

    def delay_after(self, attempt: int) -> timedelta | None:
        """The wait after failed attempt `attempt` (1-based); None when it was the last."""
        if attempt >= self.attempts:
            return None
        factor: int = self.backoff ** (attempt - 1)
        return self.first_delay * factor


# Three attempts: at the scheduled time, 5 minutes after the first failure, 20 after the second.
DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A declared job: `run(conn, clock)` does its work on `conn`, inside the transaction the
    scheduler opened, and returns the number of rows it touched."""

    name: str
    schedule: Schedule
    run: JobFunction
    summary: str
    retry: RetryPolicy = DEFAULT_RETRY
    # An attempt still running after `timeout` is cancelled (rolled back) and counts as failed.
    timeout: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        if not _JOB_NAME.match(self.name):
            raise ValueError(f"job names are lower_snake_case: {self.name!r}")


# --- run records ---------------------------------------------------------------------------------


class RunRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One row of gateway.job_runs: a scheduled (or by-hand) time of a job and how it went."""

    id: int
    job: str
    scheduled_for: datetime
    manual: bool
    status: Literal["running", "succeeded", "failed"]
    attempts: int
    node: str
    started_at: datetime
    finished_at: datetime | None
    rows_touched: int | None
    error: str | None
    retry_at: datetime | None


RUN_COLUMNS = (
    "id, job, scheduled_for, manual, status, attempts, node, started_at, finished_at,"
    " rows_touched, error, retry_at"
)


async def recent_runs(
    conn: asyncpg.Connection | asyncpg.Pool,
    job: str | None = None,
    limit: int = 50,
    *,
    jobs: list[str] | None = None,
) -> list[RunRecord]:
    """The latest runs, newest scheduled time first; only `job`'s, or only those of `jobs`,
    when given."""
    if not 1 <= limit <= 1000:
        raise ValueError(f"limit must be 1 to 1000, not {limit}")
    rows = await conn.fetch(
        f"SELECT {RUN_COLUMNS} FROM gateway.job_runs"
        " WHERE ($1::text IS NULL OR job = $1) AND ($3::text[] IS NULL OR job = ANY ($3))"
        " ORDER BY scheduled_for DESC, id DESC LIMIT $2",
        job,
        limit,
        jobs,
    )
    return [RunRecord(**dict(r)) for r in rows]
