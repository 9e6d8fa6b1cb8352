"""Scheduled jobs: schedules as data, the clock, and the loop that runs each job at most once per
scheduled time across every worker process, by claiming (job, time) rows in gateway.job_runs.

Contract of a run: the claimer runs the job inside one transaction and records its success in
that same transaction, so a run's effect and its `succeeded` record commit together or not at
all. A failed attempt is rolled back, recorded `failed` with its error, and retried per the
job's RetryPolicy by whichever scheduler claims the time again first (see docs/jobs.md).
"""

from __future__ import annotations

import asyncio
import calendar
import dataclasses
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import asyncpg
import msgspec

from kernel.logs import EventLog

log = EventLog("worker.scheduler")

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


_RUN_COLUMNS = (
    "id, job, scheduled_for, manual, status, attempts, node, started_at, finished_at,"
    " rows_touched, error, retry_at"
)


async def recent_runs(
    conn: asyncpg.Connection | asyncpg.Pool, job: str | None = None, limit: int = 50
) -> list[RunRecord]:
    """The latest runs, newest scheduled time first; only `job`'s when given."""
    if not 1 <= limit <= 1000:
        raise ValueError(f"limit must be 1 to 1000, not {limit}")
    rows = await conn.fetch(
        f"SELECT {_RUN_COLUMNS} FROM gateway.job_runs"
        " WHERE $1::text IS NULL OR job = $1"
        " ORDER BY scheduled_for DESC, id DESC LIMIT $2",
        job,
        limit,
    )
    return [RunRecord(**dict(r)) for r in rows]


# --- one attempt ---------------------------------------------------------------------------------

# Inserting the row claims the time. An existing row is claimed again only once its retry_at
# has passed (a retry is due, or a running attempt outlived its time limit); otherwise nothing
# is returned and the caller skips. retry_at of the new attempt is its lease expiry, or NULL on
# the last attempt (a last attempt whose worker dies stays `running`).
_CLAIM = """
INSERT INTO gateway.job_runs AS r
       (job, scheduled_for, manual, status, attempts, node, started_at, retry_at)
VALUES ($1, $2, $3, 'running', 1, $4, $5, CASE WHEN 1 < $6 THEN $7::timestamptz END)
ON CONFLICT (job, scheduled_for) DO UPDATE
   SET status = 'running', attempts = r.attempts + 1, node = EXCLUDED.node,
       started_at = EXCLUDED.started_at, finished_at = NULL,
       retry_at = CASE WHEN r.attempts + 1 < $6 THEN $7::timestamptz END
 WHERE r.retry_at <= EXCLUDED.started_at
RETURNING id, attempts
"""
# Both updates are fenced on (id, attempts, running): an attempt whose claim was taken over
# after its lease expired cannot record anything, and its work rolls back.
_SUCCEEDED = """
UPDATE gateway.job_runs
   SET status = 'succeeded', finished_at = $3, rows_touched = $4, retry_at = NULL
 WHERE id = $1 AND attempts = $2 AND status = 'running'
"""
_FAILED = """
UPDATE gateway.job_runs
   SET status = 'failed', finished_at = $3, error = $4, retry_at = $5
 WHERE id = $1 AND attempts = $2 AND status = 'running'
"""
# Past its time limit, a claimed attempt is treated as dead after this much more.
LEASE_GRACE = timedelta(minutes=1)
_MAX_ERROR_CHARS = 4000


class ClaimLost(Exception):
    """The attempt's claim was taken over by another worker; its work is rolled back."""


async def attempt(
    pool: asyncpg.Pool,
    job: Job,
    scheduled_for: datetime,
    *,
    clock: Clock,
    node: str,
    manual: bool = False,
) -> datetime | None:
    """Claim `scheduled_for` of `job` and, if claimed, run one attempt and record it.

    Returns when the caller should try this time again (a retry is due then, or another
    worker's attempt will be over its time limit then), or None when there is nothing more to
    do for it: it succeeded, is out of attempts, or is another worker's finished business.
    Database errors while claiming or recording propagate; the claim then expires on its own.
    """
    started = clock.now()
    lease = started + job.timeout + LEASE_GRACE
    claim = await pool.fetchrow(
        _CLAIM, job.name, scheduled_for, manual, node, started, job.retry.attempts, lease
    )
    if claim is None:
        again: datetime | None = await pool.fetchval(
            "SELECT retry_at FROM gateway.job_runs WHERE job = $1 AND scheduled_for = $2",
            job.name,
            scheduled_for,
        )
        log.debug("job_skipped", job=job.name, scheduled_for=scheduled_for, again=again)
        return again
    run_id, number = claim["id"], claim["attempts"]
    fields = {"job": job.name, "scheduled_for": scheduled_for, "run": run_id, "attempt": number}
    log.info("job_started", node=node, **fields)
    began = time.perf_counter()
    try:
        async with asyncio.timeout(job.timeout.total_seconds()):
            async with pool.acquire() as conn, conn.transaction():
                rows = await job.run(conn, clock)
                done = await conn.execute(_SUCCEEDED, run_id, number, clock.now(), rows)
                if done != "UPDATE 1":
                    raise ClaimLost(f"run {run_id} attempt {number} was taken over")
    except ClaimLost:
        log.warning("job_claim_lost", **fields)
        return None
    except asyncio.CancelledError:
        await _record_failure(pool, job, run_id, number, "interrupted: the worker stopped", clock)
        raise
    except Exception as exc:
        text = (
            f"timed out after {job.timeout.total_seconds():g} s"
            if isinstance(exc, TimeoutError)
            else f"{type(exc).__name__}: {exc}"
        )
        log.exception("job_failed", error=text, **fields)
        return await _record_failure(pool, job, run_id, number, text, clock)
    log.info("job_succeeded", rows=rows, ms=round((time.perf_counter() - began) * 1000), **fields)
    return None


async def _record_failure(
    pool: asyncpg.Pool, job: Job, run_id: int, number: int, error: str, clock: Clock
) -> datetime | None:
    now = clock.now()
    delay = job.retry.delay_after(number)
    retry_at = None if delay is None else now + delay
    await pool.execute(_FAILED, run_id, number, now, error[:_MAX_ERROR_CHARS], retry_at)
    event = "job_retry_planned" if retry_at else "job_gave_up"
    log.warning(event, job=job.name, run=run_id, attempt=number, retry_at=retry_at)
    return retry_at


async def run_by_hand(pool: asyncpg.Pool, job: Job, *, clock: Clock, node: str) -> RunRecord:
    """Run `job` once now, recorded as a manual run (one attempt, no retry); its record."""
    at = clock.now()
    once = dataclasses.replace(job, retry=RetryPolicy(attempts=1))
    await attempt(pool, once, at, clock=clock, node=node, manual=True)
    row = await pool.fetchrow(
        f"SELECT {_RUN_COLUMNS} FROM gateway.job_runs WHERE job = $1 AND scheduled_for = $2",
        job.name,
        at,
    )
    assert row is not None
    return RunRecord(**dict(row))


# --- the loop ------------------------------------------------------------------------------------


def node_name() -> str:
    """host:pid, recorded on each attempt."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Scheduler:
    """Runs `jobs` on their schedules until stopped; any number may run against one database.

    With `catch_up` (the default) each job first looks at its latest time at or before now, so
    a time missed while no worker ran is run once, late (a time already claimed is skipped).
    Only the latest missed time is run, never a backlog.
    """

    # After a database error while claiming or recording, look at the same time again then.
    RECHECK_AFTER_ERROR = timedelta(seconds=30)
    # Never look at the same time again sooner (a retry_at already past, from a skewed clock).
    RECHECK_AT_LEAST = timedelta(seconds=1)

    def __init__(
        self,
        pool: asyncpg.Pool,
        jobs: Sequence[Job],
        *,
        clock: Clock,
        node: str | None = None,
        catch_up: bool = True,
    ) -> None:
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")
        self.pool = pool
        self.jobs = tuple(jobs)
        self.clock = clock
        self.node = node or node_name()
        self.catch_up = catch_up

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then return at once: waits end, and an attempt in progress
        is cancelled (its transaction rolls back; it is recorded failed and retried)."""
        tasks = [asyncio.create_task(self._drive(job), name=f"job:{job.name}") for job in self.jobs]
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stopping, *tasks):
                task.cancel()
            await asyncio.gather(stopping, *tasks, return_exceptions=True)
        for task in done:
            if task is not stopping:
                task.result()  # a job loop never ends by itself: re-raise what ended it

    async def _drive(self, job: Job) -> None:
        now = self.clock.now()
        first = last_at_or_before if self.catch_up else next_after
        slot = first(job.schedule, now)
        when = slot
        log.info("job_scheduled", job=job.name, schedule=job.schedule.describe(), next=slot)
        while True:
            await self.clock.sleep_until(when)
            now = self.clock.now()
            if next_after(job.schedule, slot) <= now:
                # Later times passed meanwhile (a long run, a sleeping machine): only the latest
                # of them runs, and a retry not yet made is given up for it.
                slot = last_at_or_before(job.schedule, now)
            try:
                again = await attempt(self.pool, job, slot, clock=self.clock, node=self.node)
            except Exception:
                log.exception("job_attempt_error", job=job.name, scheduled_for=slot)
                when = self.clock.now() + self.RECHECK_AFTER_ERROR
                continue
            following = next_after(job.schedule, slot)
            if again is not None and again < following:
                when = max(again, self.clock.now() + self.RECHECK_AT_LEAST)
            else:
                slot = when = following
