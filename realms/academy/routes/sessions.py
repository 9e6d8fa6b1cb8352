"""/v1/academy/sessions: live sessions. Any user may host (schedule, start, end, cancel their
own); users register under `max_participants` (the rest are waitlisted, in order, and move up
when a place frees), subject to the session's prerequisites (`min_level`,
`required_lessons`); attendees rate a session 1-5. The room itself is the gateway's
`academy.session:<id>`; its chat stays readable here after the session ends."""

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
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from realms.academy import events, notices
from realms.academy.rls import as_user, trusted

routes = web.RouteTableDef()

Title = Annotated[str, Meta(min_length=1, max_length=300)]
Url = Annotated[str, Meta(max_length=2000)]


class Prerequisites(Struct, forbid_unknown_fields=True, omit_defaults=True):
    min_level: Annotated[int, Meta(ge=1, le=100)] | None = None
    required_lessons: Annotated[list[uuid.UUID], Meta(max_length=50)] | None = None


class SessionIn(Struct, forbid_unknown_fields=True):
    title: Title
    scheduled_at: datetime
    duration_min: Annotated[int, Meta(ge=1, le=24 * 60)]
    description: Annotated[str, Meta(max_length=5000)] | None = None
    session_type: Literal["workshop", "q&a", "presentation"] = "workshop"
    max_participants: Annotated[int, Meta(ge=1, le=100_000)] | None = None
    meeting_url: Url | None = None
    is_recorded: bool = False
    prerequisites: Prerequisites | None = None
    tags: Annotated[list[Annotated[str, Meta(max_length=50)]], Meta(max_length=20)] | None = None


class SessionOut(Struct):
    id: uuid.UUID
    title: str
    description: str | None
    host_id: uuid.UUID
    session_type: str | None
    scheduled_at: datetime
    duration_min: int
    max_participants: int | None
    current_participants: int | None
    meeting_url: str | None
    recording_url: str | None
    is_recorded: bool | None
    status: str | None
    prerequisites: dict[str, Any] | None
    tags: list[str] | None
    registered: int
    waitlisted: int
    channel: str


class SessionQuery(PageQuery, kw_only=True):
    status: Literal["scheduled", "live", "ended", "cancelled"] | None = None


class RegistrationOut(Struct):
    session_id: uuid.UUID
    user_id: uuid.UUID
    attendance_status: str
    waitlist_position: int | None = None


class ParticipantOut(Struct):
    user_id: uuid.UUID
    attendance_status: str | None
    joined_at: datetime | None
    left_at: datetime | None
    feedback_rating: int | None
    created_at: datetime


class FeedbackIn(Struct, forbid_unknown_fields=True):
    rating: int  # 1-5, checked by the handler so that the refusal names the rule
    text: Annotated[str, Meta(max_length=5000)] | None = None


class RoomMessage(Struct):
    id: uuid.UUID
    seq: int
    user_id: uuid.UUID
    text: str
    type: str
    pinned: bool
    created_at: datetime


class HistoryQuery(Struct, kw_only=True):
    before: Annotated[int, Meta(ge=1)] | None = None
    limit: Annotated[int, Meta(ge=1, le=100)] = 50


_SESSION = """
SELECT s.id, s.title, s.description, s.host_id, s.session_type, s.scheduled_at,
       (extract(epoch FROM s.duration) / 60)::int AS duration_min, s.max_participants,
       s.current_participants, s.meeting_url, s.recording_url, s.is_recorded, s.status,
       s.prerequisites, s.tags,
       (SELECT count(*) FROM academy.session_participants p WHERE p.session_id = s.id
           AND p.attendance_status IN ('registered', 'attended'))::int AS registered,
       (SELECT count(*) FROM academy.session_participants p WHERE p.session_id = s.id
           AND p.attendance_status = 'waitlisted')::int AS waitlisted
  FROM academy.live_sessions s
"""


def _session_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["session_id"])
    except ValueError:
        raise BadRequest("session_id is not a UUID") from None


def _out(row: asyncpg.Record) -> SessionOut:
    return SessionOut(**dict(row), channel=events.session_channel(row["id"]))


async def _counts_as_owner(conn: asyncpg.Connection, session_id: uuid.UUID) -> SessionOut:
    """The session with its registration counts over every registration (read as the server:
    a user sees only their own registrations)."""
    async with trusted(conn):
        row = await conn.fetchrow(_SESSION + " WHERE s.id = $1", session_id)
    if row is None:
        raise NotFound("no such session")
    return _out(row)


@endpoint(
    routes,
    "POST",
    "/v1/sessions",
    summary="Schedule a live session (as its host)",
    tag="academy",
    body=SessionIn,
    response=SessionOut,
    status=201,
    errors=(400, 401),
)
async def schedule(request: web.Request, body: SessionIn) -> SessionOut:
    who = await caller(request)
    prerequisites = msgspec.to_builtins(body.prerequisites) if body.prerequisites else None
    async with as_user(request.app[POOL], who.user_id) as conn:
        session_id = await conn.fetchval(
            "INSERT INTO academy.live_sessions (title, description, host_id, session_type,"
            " scheduled_at, duration, max_participants, meeting_url, is_recorded,"
            " prerequisites, tags)"
            " VALUES ($1, $2, academy.uid(), $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            body.title,
            body.description,
            body.session_type,
            body.scheduled_at,
            timedelta(minutes=body.duration_min),
            body.max_participants,
            body.meeting_url,
            body.is_recorded,
            prerequisites,
            body.tags,
        )
        return await _counts_as_owner(conn, session_id)


@endpoint(
    routes,
    "GET",
    "/v1/sessions",
    summary="Live sessions, soonest first",
    tag="academy",
    query=SessionQuery,
    response=Page[SessionOut],
    errors=(400, 401),
)
async def list_sessions(request: web.Request, query: SessionQuery) -> Page[SessionOut]:
    who = await caller(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    async with as_user(request.app[POOL], who.user_id) as conn, trusted(conn):
        rows = await conn.fetch(
            _SESSION + " WHERE ($1::text IS NULL OR s.status = $1)"
            "   AND ($2::timestamptz IS NULL OR (s.scheduled_at, s.id) > ($2, $3::uuid))"
            " ORDER BY s.scheduled_at, s.id LIMIT $4",
            query.status,
            after[0] if after else None,
            after[1] if after else None,
            query.limit + 1,
        )
    sessions = [_out(r) for r in rows]
    return page_of(sessions, query.limit, lambda s: (s.scheduled_at, str(s.id)))


@endpoint(
    routes,
    "GET",
    "/v1/sessions/{session_id}",
    summary="One live session",
    tag="academy",
    response=SessionOut,
    errors=(400, 401, 404),
)
async def get_session(request: web.Request) -> SessionOut:
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        return await _counts_as_owner(conn, _session_id(request))


async def _check_prerequisites(conn: asyncpg.Connection, prerequisites: Any) -> None:
    """As the user: their level and completed lessons against the session's prerequisites."""
    if not isinstance(prerequisites, dict):
        return
    min_level = prerequisites.get("min_level")
    if isinstance(min_level, int):
        level = await conn.fetchval(
            "SELECT coalesce(current_level, 1) FROM academy.user_profiles WHERE id = academy.uid()"
        )
        if (level or 1) < min_level:
            raise Forbidden(f"this session needs level {min_level} (you are level {level or 1})")
    required = prerequisites.get("required_lessons")
    if isinstance(required, list) and required:
        try:
            lessons = [uuid.UUID(str(x)) for x in required]
        except ValueError:
            lessons = []
        missing = await conn.fetchval(
            "SELECT count(*) FROM unnest($1::uuid[]) AS r (id) WHERE NOT EXISTS ("
            " SELECT 1 FROM academy.user_progress p WHERE p.user_id = academy.uid()"
            "    AND p.lesson_id = r.id AND p.completed IS TRUE)",
            lessons,
        )
        if missing:
            raise Forbidden(f"this session needs {missing} more required lesson(s) completed")


async def _waitlist_position(
    conn: asyncpg.Connection, session_id: uuid.UUID, user_id: uuid.UUID
) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM academy.session_participants p, academy.session_participants me"
            " WHERE me.session_id = $1 AND me.user_id = $2 AND p.session_id = $1"
            "   AND p.attendance_status = 'waitlisted'"
            "   AND (p.created_at, p.id) <= (me.created_at, me.id)",
            session_id,
            user_id,
        )
    )


@endpoint(
    routes,
    "POST",
    "/v1/sessions/{session_id}/registration",
    summary="Register for a session (or join its waitlist)",
    tag="academy",
    response=RegistrationOut,
    status=201,
    errors=(400, 401, 403, 404, 409),
)
async def register(request: web.Request) -> RegistrationOut:
    """Registrations of one session queue on its row: with `max_participants` set, exactly
    that many are `registered` and the rest `waitlisted`, in the order they arrived."""
    who = await caller(request)
    session_id = _session_id(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        async with trusted(conn):
            session = await conn.fetchrow(
                "SELECT host_id, status, max_participants, prerequisites,"
                " EXISTS (SELECT 1 FROM academy.session_removals r WHERE r.session_id = s.id"
                "         AND r.user_id = $2) AS removed"
                " FROM academy.live_sessions s WHERE id = $1 FOR UPDATE",
                session_id,
                who.user_id,
            )
        if session is None:
            raise NotFound("no such session")
        if session["status"] not in ("scheduled", "live"):
            raise Forbidden(f"registration is closed: the session is {session['status']}")
        if session["host_id"] == who.user_id:
            raise BadRequest("the host does not register for their own session")
        if session["removed"]:
            raise Forbidden("the host removed you from this session")
        await _check_prerequisites(conn, session["prerequisites"])
        try:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO academy.session_participants (session_id, user_id)"
                    " VALUES ($1, academy.uid())",
                    session_id,
                )
        except asyncpg.UniqueViolationError:
            raise Conflict("you are already registered for this session") from None
        status = "registered"
        async with trusted(conn):
            if session["max_participants"] is not None:
                taken = await conn.fetchval(
                    "SELECT count(*) FROM academy.session_participants WHERE session_id = $1"
                    " AND attendance_status IN ('registered', 'attended')",
                    session_id,
                )
                if taken > session["max_participants"]:
                    status = "waitlisted"
                    await conn.execute(
                        "UPDATE academy.session_participants SET attendance_status = 'waitlisted'"
                        " WHERE session_id = $1 AND user_id = $2",
                        session_id,
                        who.user_id,
                    )
            position = (
                await _waitlist_position(conn, session_id, who.user_id)
                if status == "waitlisted"
                else None
            )
    return RegistrationOut(session_id, who.user_id, status, position)


@endpoint(
    routes,
    "DELETE",
    "/v1/sessions/{session_id}/registration",
    summary="Cancel one's registration (the first waitlisted moves up)",
    tag="academy",
    errors=(400, 401, 404),
)
async def unregister(request: web.Request) -> None:
    who = await caller(request)
    session_id = _session_id(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        async with trusted(conn):
            await conn.execute(
                "SELECT 1 FROM academy.live_sessions WHERE id = $1 FOR UPDATE", session_id
            )
        was = await conn.fetchval(
            "DELETE FROM academy.session_participants WHERE session_id = $1"
            " AND user_id = academy.uid() RETURNING attendance_status",
            session_id,
        )
        if was is None:
            raise NotFound("you are not registered for this session")
        if was != "registered":
            return
        async with trusted(conn):
            promoted = await conn.fetchval(
                "UPDATE academy.session_participants SET attendance_status = 'registered'"
                " WHERE id = (SELECT p.id FROM academy.session_participants p"
                "             JOIN academy.live_sessions s ON s.id = p.session_id"
                "            WHERE p.session_id = $1 AND p.attendance_status = 'waitlisted'"
                "              AND s.status IN ('scheduled', 'live')"
                "            ORDER BY p.created_at, p.id LIMIT 1)"
                " RETURNING user_id",
                session_id,
            )
        if promoted is not None:
            await events.publish(
                conn,
                events.user_channel(promoted),
                "session_registered",
                {
                    "session_id": str(session_id),
                    "from": "waitlist",
                },
            )


async def _host_transition(
    conn: asyncpg.Connection, session_id: uuid.UUID, allowed_from: tuple[str, ...], to: str
) -> None:
    """As the user: move the session from one of `allowed_from` to `to`; RLS lets only its
    host update it, so a refusal is told apart afterwards."""
    changed = await conn.fetchval(
        "UPDATE academy.live_sessions SET status = $2 WHERE id = $1"
        " AND status = ANY($3::text[]) RETURNING id",
        session_id,
        to,
        list(allowed_from),
    )
    if changed is not None:
        return
    row = await conn.fetchrow(
        "SELECT host_id = academy.uid() AS host, status FROM academy.live_sessions WHERE id = $1",
        session_id,
    )
    if row is None:
        raise NotFound("no such session")
    if not row["host"]:
        raise Forbidden("only the session's host may do this")
    raise Conflict(f"the session is {row['status']}")


@endpoint(
    routes,
    "POST",
    "/v1/sessions/{session_id}/start",
    summary="Go live (host)",
    tag="academy",
    response=SessionOut,
    errors=(400, 401, 403, 404, 409),
)
async def start(request: web.Request) -> SessionOut:
    who = await caller(request)
    session_id = _session_id(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        await _host_transition(conn, session_id, ("scheduled",), "live")
        session = await _counts_as_owner(conn, session_id)
        await events.publish(
            conn,
            events.session_channel(session_id),
            "session_started",
            {
                "session_id": str(session_id),
                "title": session.title,
            },
        )
        async with trusted(conn):
            await notices.session_started(conn, session_id, session.title)
    return session


@endpoint(
    routes,
    "POST",
    "/v1/sessions/{session_id}/end",
    summary="End the session (host)",
    tag="academy",
    response=SessionOut,
    errors=(400, 401, 403, 404, 409),
)
async def end(request: web.Request) -> SessionOut:
    """Everyone in the room gets `session_ended`, then the room closes (each socket gets
    `removed`); its chat stays readable at /messages."""
    who = await caller(request)
    session_id = _session_id(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        await _host_transition(conn, session_id, ("live",), "ended")
        await events.publish(
            conn,
            events.session_channel(session_id),
            "session_ended",
            {
                "session_id": str(session_id),
                "by": str(who.user_id),
            },
        )
        await events.session_changed(conn, session_id)
        return await _counts_as_owner(conn, session_id)


@endpoint(
    routes,
    "POST",
    "/v1/sessions/{session_id}/cancel",
    summary="Cancel a scheduled session (host)",
    tag="academy",
    response=SessionOut,
    errors=(400, 401, 403, 404, 409),
)
async def cancel(request: web.Request) -> SessionOut:
    who = await caller(request)
    session_id = _session_id(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        await _host_transition(conn, session_id, ("scheduled",), "cancelled")
        await events.session_changed(conn, session_id)
        return await _counts_as_owner(conn, session_id)


@endpoint(
    routes,
    "PUT",
    "/v1/sessions/{session_id}/feedback",
    summary="Rate a session one attended (1-5)",
    tag="academy",
    body=FeedbackIn,
    response=ParticipantOut,
    errors=(400, 401),
)
async def feedback(request: web.Request, body: FeedbackIn) -> ParticipantOut:
    if not 1 <= body.rating <= 5:
        raise BadRequest("rating must be 1 to 5")
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        row = await conn.fetchrow(
            "UPDATE academy.session_participants SET feedback_rating = $2, feedback_text = $3"
            " WHERE session_id = $1 AND user_id = academy.uid()"
            " RETURNING user_id, attendance_status, joined_at, left_at, feedback_rating,"
            " created_at",
            _session_id(request),
            body.rating,
            body.text,
        )
    if row is None:  # RLS lets a user rate only a registration marked attended
        raise BadRequest("only participants who attended the session may rate it")
    return ParticipantOut(**dict(row))


@endpoint(
    routes,
    "GET",
    "/v1/sessions/{session_id}/participants",
    summary="A session's registrations (the host sees all, a user their own)",
    tag="academy",
    response=list[ParticipantOut],
    errors=(400, 401),
)
async def participants(request: web.Request) -> list[ParticipantOut]:
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        rows = await conn.fetch(
            "SELECT user_id, attendance_status, joined_at, left_at, feedback_rating, created_at"
            " FROM academy.session_participants WHERE session_id = $1"
            " ORDER BY created_at, id LIMIT 100000",
            _session_id(request),
        )
    return [ParticipantOut(**dict(r)) for r in rows]


@endpoint(
    routes,
    "GET",
    "/v1/sessions/{session_id}/messages",
    summary="The room's chat (host and participants; also after the end)",
    tag="academy",
    query=HistoryQuery,
    response=list[RoomMessage],
    errors=(400, 401),
)
async def history(request: web.Request, query: HistoryQuery) -> list[RoomMessage]:
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        rows = await conn.fetch(
            "SELECT * FROM (SELECT id, seq, user_id, body AS text, message_type AS type,"
            "  is_pinned AS pinned, created_at FROM academy.session_messages"
            "  WHERE session_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3) m ORDER BY seq",
            _session_id(request),
            query.before or 2**62,
            query.limit,
        )
    return [RoomMessage(**dict(r)) for r in rows]


class RemovalIn(Struct, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(max_length=500)] | None = None


@endpoint(
    routes,
    "POST",
    "/v1/sessions/{session_id}/participants/{user_id}/removal",
    summary="Remove a participant from the session (host)",
    tag="academy",
    body=RemovalIn,
    errors=(400, 401, 403, 404),
)
async def remove_participant(request: web.Request, body: RemovalIn) -> None:
    """The participant's sockets leave the room at once, on every gateway (`removed`), the
    room gets `participant_removed`, and they cannot join or register again."""
    who = await caller(request)
    session_id = _session_id(request)
    try:
        user_id = uuid.UUID(request.match_info["user_id"])
    except ValueError:
        raise BadRequest("user_id is not a UUID") from None
    async with as_user(request.app[POOL], who.user_id) as conn:
        host = await conn.fetchval(
            "SELECT host_id = academy.uid() FROM academy.live_sessions WHERE id = $1", session_id
        )
        if host is None:
            raise NotFound("no such session")
        if not host:
            raise Forbidden("only the session's host may remove participants")
        if user_id == who.user_id:
            raise BadRequest("the host cannot remove themselves")
        async with trusted(conn):
            if not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM academy.users WHERE id = $1)", user_id
            ):
                raise NotFound("no such user")
            await conn.execute(
                "INSERT INTO academy.session_removals (session_id, user_id, removed_by, reason)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (session_id, user_id) DO NOTHING",
                session_id,
                user_id,
                who.user_id,
                body.reason,
            )
        channel = events.session_channel(session_id)
        await events.revoke(conn, channel, user_id)
        await events.publish(
            conn,
            channel,
            "participant_removed",
            {
                "user_id": str(user_id),
                "by": str(who.user_id),
            },
        )
