"""workers/scheduler.py: schedules, once-per-time claims across workers, retries, shutdown, records.

Time is a ManualClock: the scheduler sleeps on it, and tests move it and wait until the
scheduler sleeps again (on a known time) instead of sleeping themselves.
"""

from __future__ import annotations

import asyncio
import calendar
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import msgspec
import pytest

from kernel.db import connect, create_pool
from kernel.jobs import (
    Clock,
    Daily,
    Hourly,
    Job,
    JobFunction,
    Monthly,
    RetryPolicy,
    Weekly,
    last_at_or_before,
    next_after,
    recent_runs,
)
from workers.scheduler import LEASE_GRACE, Scheduler, attempt, run_by_hand


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


class ManualClock:
    """A clock that moves only when told; sleepers wake once it reaches their time."""

    def __init__(self, now: datetime) -> None:
        self._now = now
        self._changed = asyncio.Condition()
        self._sleepers: list[datetime] = []

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        async with self._changed:
            self._sleepers.append(when)
            self._changed.notify_all()
            try:
                await self._changed.wait_for(lambda: self._now >= when)
            finally:
                self._sleepers.remove(when)
                self._changed.notify_all()

    async def move_to(self, when: datetime) -> None:
        async with self._changed:
            self._now = when
            self._changed.notify_all()

    async def sleeping(self, *times: datetime) -> None:
        """Wait until tasks sleep on exactly `times` (one task per entry), all in the future."""
        await self._wait_for(lambda: sorted(self._sleepers) == sorted(times))

    async def settled(self, count: int) -> None:
        """Wait until exactly `count` tasks sleep, all on future times (whichever)."""
        await self._wait_for(lambda: len(self._sleepers) == count)

    async def _wait_for(self, predicate: Callable[[], bool]) -> None:
        def settled() -> bool:
            return predicate() and all(t > self._now for t in self._sleepers)

        async with asyncio.timeout(10), self._changed:
            await self._changed.wait_for(settled)


DAILY = Daily(hour=0, minute=5)
SLOT = utc(2031, 1, 15, 0, 5)
NEXT_SLOT = utc(2031, 1, 16, 0, 5)


# --- schedules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (utc(2031, 1, 15, 0, 0), utc(2031, 1, 15, 0, 5)),
        (utc(2031, 1, 15, 0, 5), utc(2031, 1, 16, 0, 5)),  # strictly after
        (utc(2031, 1, 15, 0, 4, 59, 999999), utc(2031, 1, 15, 0, 5)),
        (utc(2031, 1, 31, 12, 0), utc(2031, 2, 1, 0, 5)),  # month end
        (utc(2032, 2, 28, 23, 0), utc(2032, 2, 29, 0, 5)),  # leap day
        (utc(2031, 12, 31, 0, 6), utc(2032, 1, 1, 0, 5)),  # year wrap
    ],
)
def test_daily_next_time(t: datetime, expected: datetime) -> None:
    assert next_after(DAILY, t) == expected


HOURLY = Hourly(minute=2)


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (utc(2031, 1, 15, 9, 0), utc(2031, 1, 15, 9, 2)),
        (utc(2031, 1, 15, 9, 2), utc(2031, 1, 15, 10, 2)),  # strictly after
        (utc(2031, 1, 15, 9, 1, 59, 999999), utc(2031, 1, 15, 9, 2)),
        (utc(2031, 1, 15, 9, 30), utc(2031, 1, 15, 10, 2)),
        (utc(2031, 1, 31, 23, 2), utc(2031, 2, 1, 0, 2)),  # day and month wrap
        (utc(2031, 12, 31, 23, 59), utc(2032, 1, 1, 0, 2)),  # year wrap
    ],
)
def test_hourly_next_time(t: datetime, expected: datetime) -> None:
    assert next_after(HOURLY, t) == expected


SUNDAY_2AM = Weekly(weekday=calendar.SUNDAY, hour=2)


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (utc(2031, 1, 15, 9, 0), utc(2031, 1, 19, 2, 0)),  # Wednesday -> Sunday
        (utc(2031, 1, 19, 1, 59), utc(2031, 1, 19, 2, 0)),  # Sunday, before the time
        (utc(2031, 1, 19, 2, 0), utc(2031, 1, 26, 2, 0)),  # Sunday, at the time
        (utc(2031, 1, 20, 0, 0), utc(2031, 1, 26, 2, 0)),  # Monday
        (utc(2031, 1, 27, 0, 0), utc(2031, 2, 2, 2, 0)),  # month wrap
        (utc(2030, 12, 30, 0, 0), utc(2031, 1, 5, 2, 0)),  # year wrap
    ],
)
def test_weekly_next_time(t: datetime, expected: datetime) -> None:
    assert expected.weekday() == calendar.SUNDAY
    assert next_after(SUNDAY_2AM, t) == expected


@pytest.mark.parametrize(
    ("schedule", "t", "expected"),
    [
        (Monthly(day=1, hour=0, minute=35), utc(2031, 1, 1, 0, 0), utc(2031, 1, 1, 0, 35)),
        (Monthly(day=1, hour=0, minute=35), utc(2031, 1, 1, 0, 35), utc(2031, 2, 1, 0, 35)),
        (Monthly(day=1, hour=0, minute=35), utc(2031, 12, 15), utc(2032, 1, 1, 0, 35)),
        (Monthly(day=15, hour=3), utc(2031, 1, 15, 3, 0, 1), utc(2031, 2, 15, 3, 0)),
        # A day past the month's end is the month's last day.
        (Monthly(day=31, hour=12), utc(2031, 1, 31, 12, 0), utc(2031, 2, 28, 12, 0)),
        (Monthly(day=31, hour=12), utc(2032, 1, 31, 12, 0), utc(2032, 2, 29, 12, 0)),
        (Monthly(day=31, hour=12), utc(2031, 2, 28, 12, 0), utc(2031, 3, 31, 12, 0)),
        (Monthly(day=31, hour=12), utc(2031, 4, 1), utc(2031, 4, 30, 12, 0)),
        (Monthly(day=30, hour=12), utc(2031, 2, 1), utc(2031, 2, 28, 12, 0)),
        (Monthly(day=31, hour=12), utc(2031, 12, 31, 12, 0), utc(2032, 1, 31, 12, 0)),
    ],
)
def test_monthly_next_time(schedule: Monthly, t: datetime, expected: datetime) -> None:
    assert next_after(schedule, t) == expected


def test_next_time_is_in_utc_whatever_the_zone_of_the_input() -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    # 05:00 in India is 23:30 UTC the day before.
    assert next_after(DAILY, datetime(2031, 1, 15, 5, 0, tzinfo=india)) == SLOT
    assert next_after(DAILY, datetime(2031, 1, 15, 5, 0, tzinfo=india)).tzinfo is UTC


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_after(DAILY, datetime(2031, 1, 15))


@pytest.mark.parametrize(
    "schedule",
    [HOURLY, DAILY, SUNDAY_2AM, Monthly(day=1, hour=1), Monthly(day=31, hour=23, minute=59)],
)
def test_last_time_at_or_before_brackets_every_instant(
    schedule: Hourly | Daily | Weekly | Monthly,
) -> None:
    t = utc(2031, 11, 1)
    while t < utc(2032, 4, 1):  # across a year end and a leap February
        last = last_at_or_before(schedule, t)
        assert last <= t < next_after(schedule, last)
        assert next_after(schedule, last - timedelta(microseconds=1)) == last
        t += timedelta(hours=5, minutes=17)


def test_the_time_itself_is_its_own_last_time() -> None:
    assert last_at_or_before(DAILY, SLOT) == SLOT


@pytest.mark.parametrize(
    "build",
    [
        lambda: Hourly(minute=60),
        lambda: Hourly(minute=-1),
        lambda: Daily(hour=24),
        lambda: Daily(hour=0, minute=60),
        lambda: Weekly(weekday=7, hour=0),
        lambda: Monthly(day=0, hour=0),
        lambda: Monthly(day=32, hour=0),
    ],
)
def test_impossible_schedules_are_refused(build: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        build()


def test_schedules_describe_themselves() -> None:
    assert HOURLY.describe() == "hourly at :02"
    assert DAILY.describe() == "daily at 00:05 UTC"
    assert SUNDAY_2AM.describe() == "weekly on Sunday at 02:00 UTC"
    assert Monthly(day=1, hour=1, minute=30).describe() == "monthly on day 1 at 01:30 UTC"


def test_default_retry_policy_is_three_attempts_with_growing_waits() -> None:
    policy = RetryPolicy()
    assert [policy.delay_after(n) for n in (1, 2, 3)] == [
        timedelta(minutes=5),
        timedelta(minutes=20),
        None,
    ]
    with pytest.raises(ValueError, match="retry policy"):
        RetryPolicy(attempts=0)


def test_jobs_need_snake_case_names_and_schedulers_unique_ones() -> None:
    async def nothing(conn: asyncpg.Connection, clock: Clock) -> int:
        return 0

    with pytest.raises(ValueError, match="snake_case"):
        Job(name="Bad Name", schedule=DAILY, run=nothing, summary="")
    job = Job(name="same", schedule=DAILY, run=nothing, summary="")
    with pytest.raises(ValueError, match="unique"):
        Scheduler(None, [job, job], clock=ManualClock(SLOT))


# --- helpers for running schedulers against the test database --------------------------------


@pytest.fixture
async def probe(db: asyncpg.Connection) -> asyncpg.Connection:
    """A counter the probe jobs bump, and a switch that makes them fail after bumping it."""
    await db.execute(
        "CREATE TABLE public.probe (effects int NOT NULL, fail boolean NOT NULL);"
        "INSERT INTO public.probe VALUES (0, false);"
    )
    return db


async def effects(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT effects FROM public.probe"))


async def set_failing(db: asyncpg.Connection, fail: bool) -> None:
    await db.execute("UPDATE public.probe SET fail = $1", fail)


async def bump_then_maybe_fail(conn: asyncpg.Connection, clock: Clock) -> int:
    """Changes a row, then raises when the switch is on: the change must not survive."""
    await conn.execute("UPDATE public.probe SET effects = effects + 1")
    if await conn.fetchval("SELECT fail FROM public.probe"):
        raise RuntimeError("disk on fire")
    return 1


def probe_job(
    run: JobFunction = bump_then_maybe_fail, timeout: timedelta = timedelta(minutes=30)
) -> Job:
    return Job(name="probe", schedule=DAILY, run=run, summary="test probe", timeout=timeout)


async def runs(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(await db.fetch("SELECT * FROM gateway.job_runs ORDER BY scheduled_for, id"))


@asynccontextmanager
async def scheduler_pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(dsn, min_size=1, max_size=3, application_name="test-scheduler")
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def running(scheduler: Scheduler) -> AsyncIterator[asyncio.Task[None]]:
    """The scheduler running in a task; stopped (and awaited) on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    try:
        yield task
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


# --- once per scheduled time -------------------------------------------------------------------


async def test_concurrent_claims_of_one_time_run_the_job_once(
    dsn: str, probe: asyncpg.Connection
) -> None:
    clock = ManualClock(SLOT)
    pools = [await create_pool(dsn, min_size=1, max_size=1) for _ in range(6)]
    try:
        await asyncio.gather(
            *(attempt(p, probe_job(), SLOT, clock=clock, node=f"n{i}") for i, p in enumerate(pools))
        )
    finally:
        for p in pools:
            await p.close()
    assert await effects(probe) == 1
    [run] = await runs(probe)
    assert (run["job"], run["scheduled_for"], run["status"]) == ("probe", SLOT, "succeeded")


async def test_two_schedulers_started_together_run_each_due_time_once(
    dsn: str, probe: asyncpg.Connection
) -> None:
    clock = ManualClock(SLOT)
    async with scheduler_pool(dsn) as pool_a, scheduler_pool(dsn) as pool_b:
        a = Scheduler(pool_a, [probe_job()], clock=clock, node="a")
        b = Scheduler(pool_b, [probe_job()], clock=clock, node="b")
        async with running(a), running(b):
            # The one that lost the claim sleeps until the next time, or (if the winner was still
            # running when it looked) until the winner's time limit, to look again then.
            await clock.settled(2)
            assert await effects(probe) == 1
            await clock.move_to(NEXT_SLOT)
            await clock.settled(2)
            assert await effects(probe) == 2
    rows = await runs(probe)
    assert [(r["scheduled_for"], r["status"], r["attempts"]) for r in rows] == [
        (SLOT, "succeeded", 1),
        (NEXT_SLOT, "succeeded", 1),
    ]
    assert {r["node"] for r in rows} <= {"a", "b"}
    assert all(r["rows_touched"] == 1 and not r["manual"] for r in rows)


async def test_scheduler_sleeps_until_the_due_time(dsn: str, probe: asyncpg.Connection) -> None:
    clock = ManualClock(SLOT - timedelta(minutes=1))
    async with scheduler_pool(dsn) as pool:
        async with running(Scheduler(pool, [probe_job()], clock=clock, catch_up=False)):
            await clock.sleeping(SLOT)
            assert await effects(probe) == 0
            await clock.move_to(SLOT)
            await clock.sleeping(NEXT_SLOT)
            assert await effects(probe) == 1
    [run] = await runs(probe)
    assert run["scheduled_for"] == SLOT
    assert run["started_at"] == SLOT and run["finished_at"] == SLOT


async def test_a_time_missed_while_no_worker_ran_is_run_once_late(
    dsn: str, probe: asyncpg.Connection
) -> None:
    clock = ManualClock(SLOT + timedelta(hours=3))
    async with scheduler_pool(dsn) as pool:
        for node in ("first", "restarted"):
            async with running(Scheduler(pool, [probe_job()], clock=clock, node=node)):
                await clock.sleeping(NEXT_SLOT)
    assert await effects(probe) == 1
    [run] = await runs(probe)
    assert (run["scheduled_for"], run["node"]) == (SLOT, "first")


async def test_only_the_latest_missed_time_is_run_not_a_backlog(
    dsn: str, probe: asyncpg.Connection
) -> None:
    clock = ManualClock(SLOT)
    async with scheduler_pool(dsn) as pool:
        async with running(Scheduler(pool, [probe_job()], clock=clock)):
            await clock.sleeping(NEXT_SLOT)
            await clock.move_to(SLOT + timedelta(days=3, hours=1))  # slept through three times
            await clock.sleeping(SLOT + timedelta(days=4))
    assert [r["scheduled_for"] for r in await runs(probe)] == [SLOT, SLOT + timedelta(days=3)]


# --- failures and retries ----------------------------------------------------------------------


async def test_a_job_failing_midway_leaves_nothing_and_is_retried_until_it_succeeds(
    dsn: str, probe: asyncpg.Connection
) -> None:
    await set_failing(probe, True)
    clock = ManualClock(SLOT)
    retry_at = SLOT + timedelta(minutes=5)
    async with scheduler_pool(dsn) as pool:
        async with running(Scheduler(pool, [probe_job()], clock=clock, node="w")):
            await clock.sleeping(retry_at)
            assert await effects(probe) == 0  # the update before the error was rolled back
            [run] = await runs(probe)
            assert (run["status"], run["attempts"], run["retry_at"]) == ("failed", 1, retry_at)
            assert run["error"] == "RuntimeError: disk on fire"
            assert run["finished_at"] == SLOT and run["rows_touched"] is None

            await set_failing(probe, False)  # the cause is gone
            await clock.move_to(retry_at)
            await clock.sleeping(NEXT_SLOT)
    assert await effects(probe) == 1
    [run] = await runs(probe)
    assert (run["status"], run["attempts"], run["retry_at"]) == ("succeeded", 2, None)
    assert run["started_at"] == retry_at and run["rows_touched"] == 1
    assert run["error"] == "RuntimeError: disk on fire"  # kept: why it needed a second attempt


async def test_after_its_last_attempt_a_time_stays_failed_until_the_next_time(
    dsn: str, probe: asyncpg.Connection
) -> None:
    await set_failing(probe, True)
    clock = ManualClock(SLOT)
    second, third = SLOT + timedelta(minutes=5), SLOT + timedelta(minutes=25)
    async with scheduler_pool(dsn) as pool:
        async with running(Scheduler(pool, [probe_job()], clock=clock)):
            await clock.sleeping(second)
            await clock.move_to(second)
            await clock.sleeping(third)
            await clock.move_to(third)
            await clock.sleeping(NEXT_SLOT)  # gave up: nothing until the next time
            [run] = await runs(probe)
            assert (run["status"], run["attempts"], run["retry_at"]) == ("failed", 3, None)
            await set_failing(probe, False)
            await clock.move_to(NEXT_SLOT)
            await clock.sleeping(NEXT_SLOT + timedelta(days=1))
    assert await effects(probe) == 1
    assert [(r["scheduled_for"], r["status"]) for r in await runs(probe)] == [
        (SLOT, "failed"),
        (NEXT_SLOT, "succeeded"),
    ]


async def test_a_pending_retry_is_taken_up_by_another_worker_after_a_restart(
    dsn: str, probe: asyncpg.Connection
) -> None:
    await set_failing(probe, True)
    clock = ManualClock(SLOT)
    retry_at = SLOT + timedelta(minutes=5)
    async with scheduler_pool(dsn) as pool:
        async with running(Scheduler(pool, [probe_job()], clock=clock, node="gone")):
            await clock.sleeping(retry_at)
        await set_failing(probe, False)
        await clock.move_to(SLOT + timedelta(minutes=1))
        async with running(Scheduler(pool, [probe_job()], clock=clock, node="new")):
            await clock.sleeping(retry_at)  # the new worker waits for the planned retry
            await clock.move_to(retry_at)
            await clock.sleeping(NEXT_SLOT)
    [run] = await runs(probe)
    assert (run["status"], run["attempts"], run["node"]) == ("succeeded", 2, "new")
    assert await effects(probe) == 1


async def test_a_dead_workers_claim_is_taken_over_once_its_time_limit_has_passed(
    dsn: str, probe: asyncpg.Connection
) -> None:
    job = probe_job()
    lease = SLOT + job.timeout + LEASE_GRACE
    await probe.execute(
        "INSERT INTO gateway.job_runs (job, scheduled_for, status, node, started_at, retry_at)"
        " VALUES ('probe', $1, 'running', 'dead', $1, $2)",
        SLOT,
        lease,
    )
    async with scheduler_pool(dsn) as pool:
        clock = ManualClock(SLOT + timedelta(minutes=1))
        assert await attempt(pool, job, SLOT, clock=clock, node="alive") == lease
        assert await effects(probe) == 0
        await clock.move_to(lease)
        assert await attempt(pool, job, SLOT, clock=clock, node="alive") is None
    [run] = await runs(probe)
    assert (run["status"], run["attempts"], run["node"]) == ("succeeded", 2, "alive")
    assert await effects(probe) == 1


async def test_an_attempt_whose_claim_was_taken_over_commits_nothing(
    dsn: str, probe: asyncpg.Connection
) -> None:
    async def overtaken(conn: asyncpg.Connection, clock: Clock) -> int:
        await conn.execute("UPDATE public.probe SET effects = effects + 1")
        other = await connect(dsn)  # another worker re-claims the time meanwhile
        try:
            await other.execute("UPDATE gateway.job_runs SET attempts = attempts + 1")
        finally:
            await other.close()
        return 1

    async with scheduler_pool(dsn) as pool:
        assert (
            await attempt(pool, probe_job(overtaken), SLOT, clock=ManualClock(SLOT), node="x")
            is None
        )
    assert await effects(probe) == 0
    [run] = await runs(probe)
    assert (run["status"], run["attempts"]) == ("running", 2)  # the other worker's business


async def test_an_attempt_over_its_time_limit_is_rolled_back_and_recorded_failed(
    dsn: str, probe: asyncpg.Connection
) -> None:
    async def slow(conn: asyncpg.Connection, clock: Clock) -> int:
        await conn.execute("UPDATE public.probe SET effects = effects + 1")
        await conn.execute("SELECT pg_sleep(30)")
        return 1

    job = probe_job(slow, timeout=timedelta(milliseconds=200))
    async with scheduler_pool(dsn) as pool:
        retry_at = await attempt(pool, job, SLOT, clock=ManualClock(SLOT), node="x")
    assert retry_at == SLOT + timedelta(minutes=5)
    assert await effects(probe) == 0
    [run] = await runs(probe)
    assert (run["status"], run["error"]) == ("failed", "timed out after 0.2 s")


# --- shutdown ----------------------------------------------------------------------------------


async def test_stop_ends_a_waiting_scheduler_at_once(dsn: str, probe: asyncpg.Connection) -> None:
    clock = ManualClock(SLOT - timedelta(hours=1))
    async with scheduler_pool(dsn) as pool:
        stop = asyncio.Event()
        task = asyncio.create_task(
            Scheduler(pool, [probe_job()], clock=clock, catch_up=False).run(stop)
        )
        await clock.sleeping(SLOT)
        stop.set()
        async with asyncio.timeout(5):
            await task
    assert await runs(probe) == []


async def test_stop_interrupts_a_running_job_which_is_rolled_back_and_recorded(
    dsn: str, probe: asyncpg.Connection
) -> None:
    entered = asyncio.Event()

    async def stuck(conn: asyncpg.Connection, clock: Clock) -> int:
        await conn.execute("UPDATE public.probe SET effects = effects + 1")
        entered.set()
        await asyncio.Event().wait()
        return 1

    async with scheduler_pool(dsn) as pool:
        async with running(Scheduler(pool, [probe_job(stuck)], clock=ManualClock(SLOT))):
            async with asyncio.timeout(10):
                await entered.wait()
    assert await effects(probe) == 0
    [run] = await runs(probe)
    assert (run["status"], run["error"]) == ("failed", "interrupted: the worker stopped")
    assert run["retry_at"] == SLOT + timedelta(minutes=5)


# --- records -----------------------------------------------------------------------------------


async def test_recent_runs_lists_newest_first_and_filters_by_job(
    dsn: str, probe: asyncpg.Connection
) -> None:
    other = Job(name="other", schedule=DAILY, run=bump_then_maybe_fail, summary="")
    clock = ManualClock(SLOT)
    async with scheduler_pool(dsn) as pool:
        for day in range(3):
            await attempt(pool, probe_job(), SLOT + timedelta(days=day), clock=clock, node="n")
        await attempt(pool, other, SLOT, clock=clock, node="n")
    everything = await recent_runs(probe)
    assert [(r.job, r.scheduled_for) for r in everything] == [
        ("probe", SLOT + timedelta(days=2)),
        ("probe", SLOT + timedelta(days=1)),
        ("other", SLOT),
        ("probe", SLOT),
    ]
    assert [r.job for r in await recent_runs(probe, job="other")] == ["other"]
    assert len(await recent_runs(probe, job="probe", limit=2)) == 2
    decoded = msgspec.json.decode(msgspec.json.encode(everything[0]))
    assert decoded["status"] == "succeeded" and decoded["rows_touched"] == 1
    with pytest.raises(ValueError, match="limit"):
        await recent_runs(probe, limit=0)


async def test_run_by_hand_runs_once_now_and_is_recorded_as_manual(
    dsn: str, probe: asyncpg.Connection
) -> None:
    await set_failing(probe, True)
    clock = ManualClock(SLOT + timedelta(hours=7, minutes=3))
    async with scheduler_pool(dsn) as pool:
        failed = await run_by_hand(pool, probe_job(), clock=clock, node="cli")
        await set_failing(probe, False)
        await clock.move_to(clock.now() + timedelta(seconds=1))
        ok = await run_by_hand(pool, probe_job(), clock=clock, node="cli")
    assert (failed.status, failed.manual, failed.retry_at) == ("failed", True, None)
    assert (ok.status, ok.rows_touched, ok.scheduled_for) == ("succeeded", 1, clock.now())
    assert await effects(probe) == 1


async def test_jobs_read_the_time_from_the_scheduler_clock(dsn: str) -> None:
    seen: list[datetime] = []

    async def look(conn: asyncpg.Connection, clock: Clock) -> int:
        seen.append(clock.now())
        return 0

    async with scheduler_pool(dsn) as pool:
        await attempt(pool, probe_job(look), SLOT, clock=ManualClock(SLOT), node="n")
    assert seen == [SLOT]
