"""/v1/academy/lessons: the catalogue (learners see active lessons only, by RLS; admins see
and manage every lesson), completing a lesson, and the caller's progress and statistics."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from realms.academy.progress import Completion, complete_lesson
from realms.academy.rls import as_user

routes = web.RouteTableDef()

Difficulty = Literal["beginner", "intermediate", "advanced"]
Title = Annotated[str, Meta(min_length=1, max_length=300)]
Text = Annotated[str, Meta(max_length=5000)]
Seconds = Annotated[int, Meta(ge=0, le=31 * 24 * 3600)]


class LessonOut(Struct):
    id: uuid.UUID
    level_id: int
    gate_id: int
    title: str
    subtitle: str | None
    description: str | None
    content_type: str | None
    content_data: dict[str, Any]
    assessment_data: dict[str, Any] | None
    xp_reward: int | None
    estimated_time_s: int | None
    difficulty: str | None
    prerequisites: list[uuid.UUID] | None
    is_active: bool | None
    order_index: int | None
    created_at: datetime
    updated_at: datetime


class LessonIn(Struct, forbid_unknown_fields=True):
    level_id: Annotated[int, Meta(ge=0)]
    gate_id: Annotated[int, Meta(ge=0)]
    title: Title
    content_data: dict[str, Any]
    subtitle: Title | None = None
    description: Text | None = None
    content_type: Annotated[str, Meta(max_length=50)] = "interactive"
    assessment_data: dict[str, Any] | None = None
    xp_reward: Annotated[int, Meta(ge=0, le=1_000_000)] = 0
    estimated_time_s: Seconds | None = None
    difficulty: Difficulty = "intermediate"
    prerequisites: Annotated[list[uuid.UUID], Meta(max_length=50)] | None = None
    is_active: bool = True
    order_index: int = 0


class LessonPatch(Struct, forbid_unknown_fields=True, omit_defaults=True):
    title: Title | None = None
    subtitle: Title | None = None
    description: Text | None = None
    content_type: Annotated[str, Meta(max_length=50)] | None = None
    content_data: dict[str, Any] | None = None
    assessment_data: dict[str, Any] | None = None
    xp_reward: Annotated[int, Meta(ge=0, le=1_000_000)] | None = None
    estimated_time_s: Seconds | None = None
    difficulty: Difficulty | None = None
    prerequisites: Annotated[list[uuid.UUID], Meta(max_length=50)] | None = None
    is_active: bool | None = None
    order_index: int | None = None


class LessonQuery(Struct, kw_only=True):
    level_id: int | None = None


class CompleteBody(Struct, forbid_unknown_fields=True):
    score: Annotated[int, Meta(ge=0, le=100)] | None = None
    time_spent_s: Seconds | None = None


class ProgressOut(Struct):
    id: uuid.UUID
    level_id: int
    gate_id: int
    lesson_id: uuid.UUID | None
    completed: bool | None
    score: int | None
    xp_earned: int | None
    attempts_count: int | None
    completed_at: datetime | None


class StatsOut(Struct):
    completed_lessons: int
    total_xp: int
    level: int
    current_streak: int
    longest_streak: int
    last_activity: datetime | None


_COLUMNS = (
    "id, level_id, gate_id, title, subtitle, description, content_type, content_data,"
    " assessment_data, xp_reward, extract(epoch FROM estimated_time)::int AS estimated_time_s,"
    " difficulty, prerequisites, is_active, order_index, created_at, updated_at"
)


def _lesson_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["lesson_id"])
    except ValueError:
        raise BadRequest("lesson_id is not a UUID") from None


def _db_value(name: str, value: Any) -> Any:
    return timedelta(seconds=value) if name == "estimated_time_s" and value is not None else value


def _column(name: str) -> str:
    return "estimated_time" if name == "estimated_time_s" else name


@endpoint(
    routes,
    "GET",
    "/v1/lessons",
    summary="Lessons (learners: active ones only)",
    tag="academy",
    query=LessonQuery,
    response=list[LessonOut],
    errors=(401,),
)
async def list_lessons(request: web.Request, query: LessonQuery) -> list[LessonOut]:
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM academy.lessons WHERE ($1::int IS NULL OR level_id = $1)"
            " ORDER BY level_id, gate_id, order_index LIMIT 1000",
            query.level_id,
        )
    return [LessonOut(**dict(r)) for r in rows]


@endpoint(
    routes,
    "GET",
    "/v1/lessons/{lesson_id}",
    summary="One lesson",
    tag="academy",
    response=LessonOut,
    errors=(400, 401, 404),
)
async def get_lesson(request: web.Request) -> LessonOut:
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM academy.lessons WHERE id = $1", _lesson_id(request)
        )
    if row is None:
        raise NotFound("no such lesson")
    return LessonOut(**dict(row))


@endpoint(
    routes,
    "POST",
    "/v1/lessons",
    summary="Create a lesson (admins)",
    tag="academy",
    body=LessonIn,
    response=LessonOut,
    status=201,
    errors=(400, 401, 403, 409),
)
async def create_lesson(request: web.Request, body: LessonIn) -> LessonOut:
    who = await caller(request)
    fields = msgspec.structs.asdict(body)
    columns = ", ".join(_column(k) for k in fields)
    params = ", ".join(f"${i}" for i in range(2, len(fields) + 2))
    async with as_user(request.app[POOL], who.user_id) as conn:
        try:
            row = await conn.fetchrow(
                f"INSERT INTO academy.lessons (created_by, {columns}) VALUES ($1, {params})"
                f" RETURNING {_COLUMNS}",
                who.user_id,
                *(_db_value(k, v) for k, v in fields.items()),
            )
        except asyncpg.InsufficientPrivilegeError:
            raise Forbidden("only admins manage lessons") from None
        except asyncpg.UniqueViolationError:
            raise Conflict("a lesson with this level_id and gate_id exists") from None
    return LessonOut(**dict(row))


@endpoint(
    routes,
    "PATCH",
    "/v1/lessons/{lesson_id}",
    summary="Edit a lesson (admins)",
    tag="academy",
    body=LessonPatch,
    response=LessonOut,
    errors=(400, 401, 403, 404),
)
async def edit_lesson(request: web.Request, body: LessonPatch) -> LessonOut:
    who = await caller(request)
    changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
    if not changes:
        raise BadRequest("nothing to change")
    sets = ", ".join(f"{_column(k)} = ${i}" for i, k in enumerate(changes, start=2))
    async with as_user(request.app[POOL], who.user_id) as conn:
        if not await conn.fetchval("SELECT academy.is_admin()"):
            raise Forbidden("only admins manage lessons")
        row = await conn.fetchrow(
            f"UPDATE academy.lessons SET {sets} WHERE id = $1 RETURNING {_COLUMNS}",
            _lesson_id(request),
            *(_db_value(k, v) for k, v in changes.items()),
        )
    if row is None:
        raise NotFound("no such lesson")
    return LessonOut(**dict(row))


@endpoint(
    routes,
    "DELETE",
    "/v1/lessons/{lesson_id}",
    summary="Delete a lesson (admins)",
    tag="academy",
    errors=(400, 401, 403, 404, 409),
)
async def delete_lesson(request: web.Request) -> None:
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        if not await conn.fetchval("SELECT academy.is_admin()"):
            raise Forbidden("only admins manage lessons")
        try:
            status = await conn.execute(
                "DELETE FROM academy.lessons WHERE id = $1", _lesson_id(request)
            )
        except asyncpg.ForeignKeyViolationError:
            raise Conflict("learners have progress on this lesson: deactivate it instead") from None
    if status == "DELETE 0":
        raise NotFound("no such lesson")


@endpoint(
    routes,
    "POST",
    "/v1/lessons/{lesson_id}/complete",
    summary="Complete a lesson",
    tag="academy",
    body=CompleteBody,
    response=Completion,
    errors=(400, 401, 403, 404),
)
async def complete(request: web.Request, body: CompleteBody) -> Completion:
    """XP (the lesson's xp_reward), level, leaderboards, streak, activity log and achievements.
    A second completion of the same lesson changes nothing (`already_completed`)."""
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        return await complete_lesson(
            conn,
            who.user_id,
            _lesson_id(request),
            score=body.score,
            time_spent_s=body.time_spent_s,
        )


@endpoint(
    routes,
    "GET",
    "/v1/progress",
    summary="The caller's progress",
    tag="academy",
    response=list[ProgressOut],
    errors=(401,),
)
async def my_progress(request: web.Request) -> list[ProgressOut]:
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        rows = await conn.fetch(
            "SELECT id, level_id, gate_id, lesson_id, completed, score, xp_earned,"
            " attempts_count, completed_at FROM academy.user_progress"
            " ORDER BY level_id, gate_id LIMIT 5000"
        )
    return [ProgressOut(**dict(r)) for r in rows]


@endpoint(
    routes,
    "GET",
    "/v1/stats",
    summary="The caller's learning statistics",
    tag="academy",
    response=StatsOut,
    errors=(401,),
)
async def my_stats(request: web.Request) -> StatsOut:
    """From the view user_learning_stats (security_invoker: the caller's own row), the
    profile and the streak."""
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        row = await conn.fetchrow(
            "SELECT coalesce(st.completed_lessons, 0)::int AS completed_lessons,"
            "       coalesce(p.total_xp, 0) AS total_xp, coalesce(p.current_level, 1) AS level,"
            "       coalesce(s.current_streak, 0) AS current_streak,"
            "       coalesce(s.longest_streak, 0) AS longest_streak,"
            "       st.last_activity"
            "  FROM (SELECT academy.uid() AS id) me"
            "  LEFT JOIN academy.user_profiles p ON p.id = me.id"
            "  LEFT JOIN academy.user_streaks s ON s.user_id = me.id"
            "  LEFT JOIN academy.user_learning_stats st ON st.user_id = me.id"
        )
    return StatsOut(**dict(row))
