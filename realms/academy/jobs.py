"""The academy realm's scheduled jobs, as data: JOBS (issue 14, item 5). Each runs inside the
transaction the scheduler opened for its attempt, as the owner (RLS does not apply), reads
the time from `clock`, and returns the number of rows it touched. Running one twice for the
same time changes nothing more (each is idempotent)."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

import asyncpg

from kernel.jobs import Clock, Daily, Hourly, Job, Monthly, Weekly
from realms.academy import events, notices

# A past_due subscription still unpaid this long after its period ended becomes `unpaid`.
PAST_DUE_GRACE = timedelta(days=7)

_RANK = """
UPDATE academy.leaderboard l
   SET rank = r.rank, percentile = r.percentile
  FROM (SELECT id,
               rank() OVER (ORDER BY coalesce(xp_points, 0) DESC)::int AS rank,
               round(((1 - percent_rank() OVER (ORDER BY coalesce(xp_points, 0) DESC)) * 100)
                     ::numeric, 2) AS percentile
          FROM academy.leaderboard WHERE period = $1 AND period_start_date = $2) r
 WHERE l.id = r.id
   AND (l.rank IS DISTINCT FROM r.rank OR l.percentile IS DISTINCT FROM r.percentile)
"""


async def rank_period(conn: asyncpg.Connection, period: str, start: date) -> int:
    """Final ranks (ties share one) and percentiles of one period's leaderboard."""
    status = await conn.execute(_RANK, period, start)
    return int(status.split()[-1])


async def roll_over_weekly(conn: asyncpg.Connection, clock: Clock) -> int:
    """Rank the week that ended before now (Monday to Sunday, UTC)."""
    today = clock.now().date()
    last_monday = today - timedelta(days=today.weekday() + 7)
    return await rank_period(conn, "weekly", last_monday)


async def roll_over_monthly(conn: asyncpg.Connection, clock: Clock) -> int:
    """Rank the month that ended before now."""
    first = clock.now().date().replace(day=1)
    previous = (first - timedelta(days=1)).replace(day=1)
    return await rank_period(conn, "monthly", previous)


async def reset_broken_streaks(conn: asyncpg.Connection, clock: Clock) -> int:
    """A streak whose last active day is before yesterday (UTC) is broken: back to 0."""
    yesterday = clock.now().date() - timedelta(days=1)
    status = await conn.execute(
        "UPDATE academy.user_streaks SET current_streak = 0, last_streak_reset = $2"
        " WHERE coalesce(current_streak, 0) > 0 AND last_activity_date < $1",
        yesterday,
        clock.now(),
    )
    return int(status.split()[-1])


async def mark_missed(conn: asyncpg.Connection, clock: Clock) -> int:
    """Registered users who never joined an ended session missed it."""
    status = await conn.execute(
        "UPDATE academy.session_participants p SET attendance_status = 'missed'"
        "  FROM academy.live_sessions s"
        " WHERE s.id = p.session_id AND s.status = 'ended'"
        "   AND p.attendance_status = 'registered'"
    )
    return int(status.split()[-1])


_TRANSITIONS = """
WITH trial_over AS (
    UPDATE academy.user_subscriptions u
       SET status = 'active', current_period_start = u.trial_end,
           current_period_end = CASE p.plan_type
               WHEN 'yearly' THEN u.trial_end + interval '1 year'
               WHEN 'lifetime' THEN NULL
               ELSE u.trial_end + interval '1 month' END
      FROM academy.subscription_plans p
     WHERE p.id = u.plan_id AND u.status = 'trialing' AND u.trial_end <= $1
       AND u.cancel_at_period_end IS NOT TRUE
    RETURNING u.id
), ended AS (
    UPDATE academy.user_subscriptions u SET status = 'canceled'
     WHERE u.status IN ('active', 'trialing', 'past_due') AND u.cancel_at_period_end IS TRUE
       AND coalesce(u.current_period_end, u.trial_end) <= $1
    RETURNING u.id
), due AS (
    UPDATE academy.user_subscriptions u SET status = 'past_due'
     WHERE u.status = 'active' AND u.cancel_at_period_end IS NOT TRUE
       AND u.current_period_end <= $1
    RETURNING u.id, u.user_id, u.current_period_end
), unpaid AS (
    UPDATE academy.user_subscriptions u SET status = 'unpaid'
     WHERE u.status = 'past_due' AND u.current_period_end <= $1 - $2::interval
    RETURNING u.id
)
SELECT (SELECT count(*) FROM trial_over) + (SELECT count(*) FROM ended)
       + (SELECT count(*) FROM unpaid) AS moved,
       coalesce((SELECT array_agg(id ORDER BY id) FROM due), '{}') AS past_due,
       coalesce((SELECT array_agg(user_id ORDER BY id) FROM due), '{}') AS past_due_users,
       coalesce((SELECT array_agg(current_period_end ORDER BY id) FROM due), '{}')
           AS past_due_ends
"""


async def move_subscriptions(conn: asyncpg.Connection, clock: Clock) -> int:
    """Subscription status transitions by time (there is no payment provider to renew):
    trialing past trial_end -> active for a period; cancelling ones past their end ->
    canceled; active past current_period_end -> past_due (its subscriber is told);
    past_due for PAST_DUE_GRACE -> unpaid."""
    row = await conn.fetchrow(_TRANSITIONS, clock.now(), PAST_DUE_GRACE)
    for sub_id, user_id, ended in zip(
        row["past_due"], row["past_due_users"], row["past_due_ends"], strict=True
    ):
        await events.publish(conn, events.user_channel(user_id), "subscription_past_due", {})
        await notices.subscription_past_due(conn, sub_id, user_id, ended)
    return int(row["moved"]) + len(row["past_due"])


async def remind_starting_sessions(conn: asyncpg.Connection, clock: Clock) -> int:
    """Registered users of sessions starting within notices.REMINDER_LEAD are told (once)."""
    return await notices.sessions_starting_soon(conn, clock.now())


async def warn_streaks_at_risk(conn: asyncpg.Connection, clock: Clock) -> int:
    """In the evening (UTC): users active yesterday but not yet today are told their streak
    breaks at midnight."""
    return await notices.streaks_at_risk(conn, clock.now().date())


# Every REMINDER_EVERY (5 minutes): the scheduler's finest schedule is hourly, so one
# entry per slot of the hour.
_REMINDER_MINUTES = range(0, 60, int(notices.REMINDER_EVERY.total_seconds() // 60))

JOBS: list[Job] = [
    Job(
        name="academy_weekly_leaderboard",
        schedule=Weekly(weekday=calendar.MONDAY, hour=0, minute=10),
        run=roll_over_weekly,
        summary="rank the academy's weekly leaderboard of the week that ended",
    ),
    Job(
        name="academy_monthly_leaderboard",
        schedule=Monthly(day=1, hour=0, minute=15),
        run=roll_over_monthly,
        summary="rank the academy's monthly leaderboard of the month that ended",
    ),
    Job(
        name="academy_streak_reset",
        schedule=Daily(hour=0, minute=20),
        run=reset_broken_streaks,
        summary="reset the streaks of academy users who missed a day",
    ),
    Job(
        name="academy_mark_missed",
        schedule=Hourly(minute=5),
        run=mark_missed,
        summary="mark registered users of ended academy sessions who never joined as missed",
    ),
    Job(
        name="academy_subscription_transitions",
        schedule=Hourly(minute=10),
        run=move_subscriptions,
        summary="move academy subscriptions on by time: trial end, cancellation, past_due, unpaid",
    ),
    Job(
        name="academy_streak_warning",
        schedule=Daily(hour=18, minute=0),
        run=warn_streaks_at_risk,
        summary="notify academy users whose streak breaks at midnight unless they learn today",
    ),
    *(
        Job(
            name=f"academy_session_reminder_{minute:02d}",
            schedule=Hourly(minute=minute),
            run=remind_starting_sessions,
            summary="notify registered users of academy sessions starting within 15 minutes",
        )
        for minute in _REMINDER_MINUTES
    ),
]
