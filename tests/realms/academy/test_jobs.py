"""The academy's scheduled jobs, run by hand against real Postgres at fixed times: weekly and
monthly leaderboard rollover with ranks, streak resets, missed sessions, subscription
transitions. Each is idempotent: a second run touches nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import asyncpg

from kernel.realms import enabled_realms
from realms.academy import jobs
from tests.realms.academy.helpers import Rows


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        raise AssertionError("a job run by hand never sleeps")


MONDAY = datetime(2025, 1, 13, 0, 10, tzinfo=UTC)  # the week of 6-12 January has ended


async def board(db: asyncpg.Connection, rows: Rows, period: str, start: date, xp: int) -> UUID:
    user = await rows.user()
    await db.execute(
        "INSERT INTO academy.leaderboard (user_id, period, xp_points, period_start_date,"
        " period_end_date) VALUES ($1, $2, $3, $4::date, $4::date + 6)",
        user,
        period,
        xp,
        start,
    )
    return user


async def test_jobs_are_declared_by_the_realm() -> None:
    names = {job.name for _, job in enabled_realms({"SWITCHBOARD_REALMS": "academy"}).jobs()}
    # 5 of issue item 5, the evening streak warning, 12 session reminders (every 5 minutes)
    assert names == {j.name for j in jobs.JOBS} and len(names) == 5 + 1 + 12


async def test_weekly_rollover_ranks_the_ended_week_with_shared_ranks(
    db: asyncpg.Connection, rows: Rows
) -> None:
    week = date(2025, 1, 6)
    top = await board(db, rows, "weekly", week, 300)
    tied = await board(db, rows, "weekly", week, 300)
    last = await board(db, rows, "weekly", week, 10)
    current = await board(db, rows, "weekly", date(2025, 1, 13), 999)
    assert await jobs.roll_over_weekly(db, FixedClock(MONDAY)) == 3
    ranked = dict(await db.fetch("SELECT user_id, rank FROM academy.leaderboard"))
    assert ranked == {top: 1, tied: 1, last: 3, current: None}
    assert (
        await db.fetchval("SELECT percentile FROM academy.leaderboard WHERE user_id = $1", last)
        == 0
    )
    assert await jobs.roll_over_weekly(db, FixedClock(MONDAY)) == 0


async def test_monthly_rollover_ranks_the_previous_month(
    db: asyncpg.Connection, rows: Rows
) -> None:
    a = await board(db, rows, "monthly", date(2024, 12, 1), 5)
    b = await board(db, rows, "monthly", date(2024, 12, 1), 50)
    assert (
        await jobs.roll_over_monthly(db, FixedClock(datetime(2025, 1, 1, 0, 15, tzinfo=UTC))) == 2
    )
    assert dict(await db.fetch("SELECT user_id, rank FROM academy.leaderboard")) == {a: 2, b: 1}


async def test_streaks_of_users_who_missed_a_day_are_reset(
    db: asyncpg.Connection, rows: Rows
) -> None:
    now = datetime(2025, 1, 10, 0, 20, tzinfo=UTC)
    kept, broken = await rows.user(), await rows.user()
    for user, last in ((kept, date(2025, 1, 9)), (broken, date(2025, 1, 8))):
        await db.execute(
            "INSERT INTO academy.user_streaks (user_id, current_streak, longest_streak,"
            " last_activity_date) VALUES ($1, 3, 3, $2)",
            user,
            last,
        )
    assert await jobs.reset_broken_streaks(db, FixedClock(now)) == 1
    streaks = dict(await db.fetch("SELECT user_id, current_streak FROM academy.user_streaks"))
    assert streaks == {kept: 3, broken: 0}
    assert (
        await db.fetchval(
            "SELECT longest_streak FROM academy.user_streaks WHERE user_id = $1", broken
        )
        == 3
    )
    assert await jobs.reset_broken_streaks(db, FixedClock(now)) == 0


async def test_registered_users_of_ended_sessions_are_marked_missed(
    db: asyncpg.Connection, rows: Rows
) -> None:
    ended = await rows.create("live_sessions", status="ended")
    live = await rows.create("live_sessions", status="live")
    no_show = await rows.create("session_participants", session_id=ended)
    came = await rows.create("session_participants", session_id=ended, attendance_status="attended")
    waiting = await rows.create("session_participants", session_id=live)
    assert await jobs.mark_missed(db, FixedClock(MONDAY)) == 1
    statuses = dict(
        await db.fetch("SELECT id, attendance_status FROM academy.session_participants")
    )
    assert statuses == {no_show: "missed", came: "attended", waiting: "registered"}


async def test_subscriptions_move_on_by_time(db: asyncpg.Connection, rows: Rows) -> None:
    now = datetime(2025, 3, 1, 12, tzinfo=UTC)
    plan = await rows.create("subscription_plans", plan_type="monthly")

    async def sub(**fields: object) -> UUID:
        return await rows.create("user_subscriptions", plan_id=plan, **fields)

    trial = await sub(status="trialing", trial_end=now - timedelta(hours=1))
    cancelling = await sub(
        status="active", cancel_at_period_end=True, current_period_end=now - timedelta(hours=1)
    )
    due = await sub(status="active", current_period_end=now - timedelta(hours=1))
    overdue = await sub(status="past_due", current_period_end=now - timedelta(days=8))
    fine = await sub(status="active", current_period_end=now + timedelta(days=3))
    assert await jobs.move_subscriptions(db, FixedClock(now)) == 4
    statuses = dict(await db.fetch("SELECT id, status FROM academy.user_subscriptions"))
    assert statuses == {
        trial: "active",
        cancelling: "canceled",
        due: "past_due",
        overdue: "unpaid",
        fine: "active",
    }
    assert await db.fetchval(
        "SELECT current_period_end = trial_end + interval '1 month'"
        " FROM academy.user_subscriptions WHERE id = $1",
        trial,
    )
    assert await jobs.move_subscriptions(db, FixedClock(now)) == 0
