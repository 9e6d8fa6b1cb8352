"""What completing a lesson does, in the caller's transaction: the progress row (as the
user, under RLS; the leaderboard's weekly row follows by trigger), then, as the server, XP
and level (calculate_user_level), the daily/monthly/all-time leaderboard rows, the streak,
achievements whose documented requirements are now met, and the events of the user stream."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg
import msgspec

from kernel.errors import Forbidden, NotFound
from realms.academy import events, notices
from realms.academy.rls import trusted

# The keys an achievement's `requirements` may hold, each a minimum the user must reach; an
# achievement unlocks when every key it names is reached (an empty object never unlocks).
REQUIREMENT_KEYS = (
    "lessons_completed",
    "total_xp",
    "level",
    "streak_days",
    "sessions_attended",
    "posts_created",
)


class Unlocked(msgspec.Struct):
    id: uuid.UUID
    code: str
    title: str
    xp_reward: int


class Completion(msgspec.Struct):
    lesson_id: uuid.UUID
    already_completed: bool
    xp_earned: int
    total_xp: int
    level: int
    level_up: bool
    current_streak: int
    longest_streak: int
    weekly_rank: int | None
    achievements: list[Unlocked]


_COMPLETE = """
INSERT INTO academy.user_progress AS up
       (user_id, level_id, gate_id, lesson_id, completed, score, xp_earned, time_spent,
        completed_at, last_attempt_at)
VALUES (academy.uid(), $1, $2, $3, true, $4, $5, $6, now(), now())
ON CONFLICT (user_id, level_id, gate_id) DO UPDATE
   SET completed = true, lesson_id = EXCLUDED.lesson_id, score = EXCLUDED.score,
       xp_earned = EXCLUDED.xp_earned, time_spent = EXCLUDED.time_spent,
       completed_at = now(), last_attempt_at = now(),
       attempts_count = coalesce(up.attempts_count, 0) + 1
 WHERE up.completed IS NOT TRUE
RETURNING xp_earned
"""

_XP = """
WITH before AS (
    SELECT coalesce(current_level, 1) AS level FROM academy.user_profiles WHERE id = $1 FOR UPDATE
)
UPDATE academy.user_profiles p
   SET total_xp = coalesce(p.total_xp, 0) + $2,
       current_level = academy.calculate_user_level(coalesce(p.total_xp, 0) + $2)
  FROM before
 WHERE p.id = $1
RETURNING p.total_xp, p.current_level, before.level AS level_before
"""

_STREAK = """
INSERT INTO academy.user_streaks AS s (user_id, current_streak, longest_streak,
                                       last_activity_date, streak_streak_data)
VALUES ($1, 1, 1, $2, jsonb_build_object($3::text, 1))
ON CONFLICT (user_id) DO UPDATE SET
    current_streak = CASE
        WHEN s.last_activity_date = $2 THEN coalesce(s.current_streak, 0)
        WHEN s.last_activity_date = $2 - 1 THEN coalesce(s.current_streak, 0) + 1
        ELSE 1 END,
    longest_streak = greatest(coalesce(s.longest_streak, 0), CASE
        WHEN s.last_activity_date = $2 THEN coalesce(s.current_streak, 0)
        WHEN s.last_activity_date = $2 - 1 THEN coalesce(s.current_streak, 0) + 1
        ELSE 1 END),
    last_activity_date = $2,
    -- the last 60 active days, day -> lessons completed that day
    streak_streak_data = (
        SELECT coalesce(jsonb_object_agg(k, v), '{}'::jsonb)
          FROM jsonb_each(coalesce(s.streak_streak_data, '{}'::jsonb)
                          || jsonb_build_object($3::text,
                               coalesce((s.streak_streak_data ->> $3::text)::int, 0) + 1))
               AS e (k, v)
         WHERE k::date > $2 - 60)
RETURNING current_streak, longest_streak
"""

# The other periods the trigger does not keep (it keeps 'weekly'); one upsert for all three.
_PERIODS = """
INSERT INTO academy.leaderboard AS l
       (user_id, period, xp_points, lessons_completed, streak_days, period_start_date,
        period_end_date)
SELECT $1, p.period, $2, 1, $4, p.starts, p.ends
  FROM (VALUES ('daily', $3::date, $3::date),
               ('monthly', date_trunc('month', $3::date)::date,
                (date_trunc('month', $3::date) + interval '1 month - 1 day')::date),
               ('all_time', DATE '1970-01-01', DATE '9999-12-31')) AS p (period, starts, ends)
ON CONFLICT (user_id, period, period_start_date) DO UPDATE
   SET xp_points = coalesce(l.xp_points, 0) + EXCLUDED.xp_points,
       lessons_completed = coalesce(l.lessons_completed, 0) + 1,
       streak_days = EXCLUDED.streak_days
"""

_WEEKLY_RANK = """
SELECT 1 + (SELECT count(*) FROM academy.leaderboard o
             WHERE o.period = 'weekly' AND o.period_start_date = me.period_start_date
               AND o.xp_points > me.xp_points)
  FROM academy.leaderboard me
 WHERE me.user_id = $1 AND me.period = 'weekly'
   AND me.period_start_date = date_trunc('week', now() AT TIME ZONE 'UTC')::date
"""

_UNLOCK = """
WITH stats AS (
    SELECT
      (SELECT count(*) FROM academy.user_progress
        WHERE user_id = $1 AND completed IS TRUE) AS lessons_completed,
      (SELECT coalesce(total_xp, 0) FROM academy.user_profiles WHERE id = $1) AS total_xp,
      (SELECT coalesce(current_level, 1) FROM academy.user_profiles WHERE id = $1) AS level,
      (SELECT coalesce(max(current_streak), 0) FROM academy.user_streaks
        WHERE user_id = $1) AS streak_days,
      (SELECT count(*) FROM academy.session_participants
        WHERE user_id = $1 AND attendance_status = 'attended') AS sessions_attended,
      (SELECT count(*) FROM academy.community_posts WHERE author_id = $1) AS posts_created
), met AS (
    SELECT a.id, a.code, a.title, coalesce(a.xp_reward, 0) AS xp_reward, a.requirements
      FROM academy.achievements a, stats s
     WHERE a.is_active IS TRUE
       AND jsonb_typeof(a.requirements) = 'object' AND a.requirements <> '{}'::jsonb
       -- every key is a known one (an unknown key never unlocks)
       AND NOT EXISTS (SELECT 1 FROM jsonb_object_keys(a.requirements) k
                        WHERE k <> ALL ($2::text[]))
       AND coalesce((a.requirements ->> 'lessons_completed')::int, 0) <= s.lessons_completed
       AND coalesce((a.requirements ->> 'total_xp')::int, 0) <= coalesce(s.total_xp, 0)
       AND coalesce((a.requirements ->> 'level')::int, 0) <= coalesce(s.level, 1)
       AND coalesce((a.requirements ->> 'streak_days')::int, 0) <= s.streak_days
       AND coalesce((a.requirements ->> 'sessions_attended')::int, 0) <= s.sessions_attended
       AND coalesce((a.requirements ->> 'posts_created')::int, 0) <= s.posts_created
), ins AS (
    INSERT INTO academy.user_achievements (user_id, achievement_id, progress_value, metadata)
    SELECT $1, met.id, 100, jsonb_build_object('requirements', met.requirements) FROM met
    ON CONFLICT (user_id, achievement_id) DO NOTHING
    RETURNING achievement_id
)
SELECT met.id, met.code, met.title, met.xp_reward FROM met JOIN ins ON ins.achievement_id = met.id
 ORDER BY met.code
"""


async def unlock_achievements(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[Unlocked]:
    """As the server: unlock every active achievement whose requirements the user now meets,
    add their XP (profile total and level; the leaderboards count lessons only), log each
    unlock, tell the user's stream and notify the user. Returns what was unlocked now."""
    rows = await conn.fetch(_UNLOCK, user_id, list(REQUIREMENT_KEYS))
    unlocked = [Unlocked(**dict(r)) for r in rows]
    if not unlocked:
        return []
    bonus = sum(u.xp_reward for u in unlocked)
    if bonus:
        await conn.execute(_XP, user_id, bonus)
    await conn.execute(
        "INSERT INTO academy.user_activity_log (user_id, activity_type, entity_type, entity_id,"
        " metadata) SELECT $1, 'achievement_gain', 'achievement', u.id,"
        " jsonb_build_object('code', u.code, 'xp_reward', u.xp)"
        " FROM unnest($2::uuid[], $3::text[], $4::int[]) AS u (id, code, xp)",
        user_id,
        [u.id for u in unlocked],
        [u.code for u in unlocked],
        [u.xp_reward for u in unlocked],
    )
    for u in unlocked:
        await events.publish(
            conn,
            events.user_channel(user_id),
            "achievement_unlocked",
            {"id": str(u.id), "code": u.code, "title": u.title, "xp_reward": u.xp_reward},
        )
        await notices.achievement_unlocked(conn, user_id, u.id, u.title, u.xp_reward)
    return unlocked


async def complete_lesson(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    lesson_id: uuid.UUID,
    *,
    score: int | None,
    time_spent_s: int | None,
) -> Completion:
    """Complete `lesson_id` for `user_id`, whose request transaction `conn` is (as_user).
    Completing a completed lesson again changes nothing (already_completed)."""
    lesson = await conn.fetchrow(
        "SELECT id, level_id, gate_id, coalesce(xp_reward, 0) AS xp_reward, prerequisites"
        " FROM academy.lessons WHERE id = $1 AND is_active IS TRUE",
        lesson_id,
    )
    if lesson is None:
        raise NotFound("no such active lesson")
    if lesson["prerequisites"]:
        missing = await conn.fetchval(
            "SELECT count(*) FROM unnest($1::uuid[]) AS r (id) WHERE NOT EXISTS ("
            " SELECT 1 FROM academy.user_progress p WHERE p.user_id = academy.uid()"
            "    AND p.lesson_id = r.id AND p.completed IS TRUE)",
            lesson["prerequisites"],
        )
        if missing:
            raise Forbidden(f"complete this lesson's {missing} prerequisite lesson(s) first")
    rank_before = await conn.fetchval(_WEEKLY_RANK, user_id)
    gained = await conn.fetchval(
        _COMPLETE,
        lesson["level_id"],
        lesson["gate_id"],
        lesson_id,
        score,
        lesson["xp_reward"],
        None if time_spent_s is None else timedelta(seconds=time_spent_s),
    )
    async with trusted(conn):
        await conn.execute(
            "INSERT INTO academy.user_profiles (id) VALUES ($1) ON CONFLICT (id) DO NOTHING",
            user_id,
        )
        if gained is None:
            return await _unchanged(conn, user_id, lesson_id, rank_before)
        today = await conn.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
        xp = await conn.fetchrow(_XP, user_id, gained)
        streak = await conn.fetchrow(_STREAK, user_id, today, today.isoformat())
        await conn.execute(_PERIODS, user_id, gained, today, streak["current_streak"])
        await conn.execute(
            "UPDATE academy.leaderboard SET streak_days = $2 WHERE user_id = $1"
            " AND period = 'weekly' AND period_start_date = date_trunc('week', $3::date)::date",
            user_id,
            streak["current_streak"],
            today,
        )
        await conn.execute(
            "INSERT INTO academy.user_activity_log (user_id, activity_type, entity_type,"
            " entity_id, metadata) VALUES ($1, 'lesson_complete', 'lesson', $2, $3)",
            user_id,
            lesson_id,
            {"xp_earned": gained, "score": score},
        )
        unlocked = await unlock_achievements(conn, user_id)
        totals = await conn.fetchrow(
            "SELECT coalesce(total_xp, 0) AS total_xp, coalesce(current_level, 1) AS level"
            " FROM academy.user_profiles WHERE id = $1",
            user_id,
        )
        rank = await conn.fetchval(_WEEKLY_RANK, user_id)
        if rank != rank_before:
            await events.publish(
                conn,
                events.user_channel(user_id),
                "leaderboard_rank",
                {"period": "weekly", "rank": rank, "previous_rank": rank_before},
            )
    return Completion(
        lesson_id=lesson_id,
        already_completed=False,
        xp_earned=gained,
        total_xp=totals["total_xp"],
        level=totals["level"],
        level_up=totals["level"] > xp["level_before"],
        current_streak=streak["current_streak"],
        longest_streak=streak["longest_streak"],
        weekly_rank=rank,
        achievements=unlocked,
    )


async def _unchanged(
    conn: asyncpg.Connection, user_id: uuid.UUID, lesson_id: uuid.UUID, rank: int | None
) -> Completion:
    row = await conn.fetchrow(
        "SELECT coalesce(p.total_xp, 0) AS total_xp, coalesce(p.current_level, 1) AS level,"
        " coalesce(s.current_streak, 0) AS current_streak,"
        " coalesce(s.longest_streak, 0) AS longest_streak,"
        " (SELECT coalesce(xp_earned, 0) FROM academy.user_progress"
        "   WHERE user_id = $1 AND lesson_id = $2 AND completed IS TRUE LIMIT 1) AS xp"
        " FROM academy.user_profiles p LEFT JOIN academy.user_streaks s ON s.user_id = p.id"
        " WHERE p.id = $1",
        user_id,
        lesson_id,
    )
    return Completion(
        lesson_id=lesson_id,
        already_completed=True,
        xp_earned=row["xp"] or 0,
        total_xp=row["total_xp"],
        level=row["level"],
        level_up=False,
        current_streak=row["current_streak"],
        longest_streak=row["longest_streak"],
        weekly_rank=rank,
        achievements=[],
    )
