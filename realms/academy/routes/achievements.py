"""/v1/academy/achievements and /v1/academy/leaderboard: the achievement catalogue (admins
manage it; `requirements` name the minimums that unlock one), the caller's unlocked
achievements, and the leaderboard of a period."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

import asyncpg
from aiohttp import web
from msgspec import Meta, Struct, to_builtins

from kernel.errors import Conflict, Forbidden
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from realms.academy.rls import as_user

routes = web.RouteTableDef()

Minimum = Annotated[int, Meta(ge=0, le=100_000_000)]
Period = Literal["daily", "weekly", "monthly", "all_time"]


class Requirements(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Every minimum given must be reached for the achievement to unlock."""

    lessons_completed: Minimum | None = None
    total_xp: Minimum | None = None
    level: Minimum | None = None
    streak_days: Minimum | None = None
    sessions_attended: Minimum | None = None
    posts_created: Minimum | None = None


class AchievementIn(Struct, forbid_unknown_fields=True):
    code: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[a-z0-9_.-]+\Z")]
    title: Annotated[str, Meta(min_length=1, max_length=200)]
    description: Annotated[str, Meta(min_length=1, max_length=2000)]
    requirements: Requirements
    icon_url: Annotated[str, Meta(max_length=2000)] | None = None
    category: Annotated[str, Meta(max_length=100)] = "general"
    xp_reward: Annotated[int, Meta(ge=0, le=1_000_000)] = 0
    rarity: Literal["common", "rare", "epic", "legendary"] = "common"
    is_active: bool = True


class AchievementOut(Struct):
    id: uuid.UUID
    code: str
    title: str
    description: str
    icon_url: str | None
    category: str | None
    xp_reward: int | None
    requirements: dict[str, int] | None
    rarity: str | None
    is_active: bool | None


class UnlockedOut(Struct):
    achievement: AchievementOut
    unlocked_at: datetime
    progress_value: int | None


class LeaderboardQuery(PageQuery, kw_only=True):
    period: Period = "weekly"
    on: date | None = None  # a day in the period; default today (UTC)


class LeaderboardEntry(Struct):
    user_id: uuid.UUID
    full_name: str | None
    rank: int
    xp_points: int
    lessons_completed: int
    streak_days: int
    period_start_date: date
    period_end_date: date


_A_COLUMNS = (
    "a.id, a.code, a.title, a.description, a.icon_url, a.category, a.xp_reward,"
    " a.requirements, a.rarity, a.is_active"
)


@endpoint(
    routes,
    "GET",
    "/v1/achievements",
    summary="The achievement catalogue",
    tag="academy",
    response=list[AchievementOut],
    errors=(401,),
)
async def list_achievements(request: web.Request) -> list[AchievementOut]:
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        rows = await conn.fetch(
            f"SELECT {_A_COLUMNS} FROM academy.achievements a ORDER BY a.category, a.code"
        )
    return [AchievementOut(**dict(r)) for r in rows]


@endpoint(
    routes,
    "POST",
    "/v1/achievements",
    summary="Create an achievement (admins)",
    tag="academy",
    body=AchievementIn,
    response=AchievementOut,
    status=201,
    errors=(400, 401, 403, 409),
)
async def create_achievement(request: web.Request, body: AchievementIn) -> AchievementOut:
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        try:
            row = await conn.fetchrow(
                "INSERT INTO academy.achievements AS a (code, title, description, icon_url,"
                " category, xp_reward, requirements, rarity, is_active)"
                f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {_A_COLUMNS}",
                body.code,
                body.title,
                body.description,
                body.icon_url,
                body.category,
                body.xp_reward,
                to_builtins(body.requirements),
                body.rarity,
                body.is_active,
            )
        except asyncpg.InsufficientPrivilegeError:
            raise Forbidden("only admins manage achievements") from None
        except asyncpg.UniqueViolationError:
            raise Conflict(f"an achievement with code {body.code!r} exists") from None
    return AchievementOut(**dict(row))


@endpoint(
    routes,
    "GET",
    "/v1/me/achievements",
    summary="The caller's unlocked achievements",
    tag="academy",
    response=list[UnlockedOut],
    errors=(401,),
)
async def my_achievements(request: web.Request) -> list[UnlockedOut]:
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        rows = await conn.fetch(
            f"SELECT {_A_COLUMNS}, ua.unlocked_at, ua.progress_value"
            "  FROM academy.user_achievements ua"
            "  JOIN academy.achievements a ON a.id = ua.achievement_id"
            " ORDER BY ua.unlocked_at DESC, a.code"
        )
    out = []
    for r in rows:
        fields = dict(r)
        unlocked_at, progress = fields.pop("unlocked_at"), fields.pop("progress_value")
        out.append(UnlockedOut(AchievementOut(**fields), unlocked_at, progress))
    return out


_LEADERBOARD = """
WITH bounds AS (
    SELECT CASE $1::text
             WHEN 'daily' THEN $2::date
             WHEN 'weekly' THEN date_trunc('week', $2::date)::date
             WHEN 'monthly' THEN date_trunc('month', $2::date)::date
             ELSE DATE '1970-01-01' END AS starts
), ranked AS (
    SELECT l.user_id, coalesce(l.xp_points, 0) AS xp_points,
           coalesce(l.lessons_completed, 0) AS lessons_completed,
           coalesce(l.streak_days, 0) AS streak_days, l.period_start_date, l.period_end_date,
           rank() OVER (ORDER BY coalesce(l.xp_points, 0) DESC)::int AS rank
      FROM academy.leaderboard l, bounds
     WHERE l.period = $1 AND l.period_start_date = bounds.starts
)
SELECT r.*, p.full_name
  FROM ranked r LEFT JOIN academy.user_profiles p ON p.id = r.user_id
 WHERE $3::int IS NULL OR (r.rank, r.user_id) > ($3::int, $4::uuid)
 ORDER BY r.rank, r.user_id
 LIMIT $5
"""


@endpoint(
    routes,
    "GET",
    "/v1/leaderboard",
    summary="The leaderboard of a period",
    tag="academy",
    query=LeaderboardQuery,
    response=Page[LeaderboardEntry],
    errors=(400, 401),
)
async def leaderboard(request: web.Request, query: LeaderboardQuery) -> Page[LeaderboardEntry]:
    """Ranked by XP (ties share a rank); the period containing `on` (default today, UTC)."""
    who = await caller(request)
    after = decode_cursor(query.cursor, int, uuid.UUID)
    async with as_user(request.app[POOL], who.user_id) as conn:
        on = query.on or await conn.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
        rows = await conn.fetch(
            _LEADERBOARD,
            query.period,
            on,
            after[0] if after else None,
            after[1] if after else None,
            query.limit + 1,
        )
    entries = [LeaderboardEntry(**dict(r)) for r in rows]
    return page_of(entries, query.limit, lambda e: (e.rank, str(e.user_id)))
