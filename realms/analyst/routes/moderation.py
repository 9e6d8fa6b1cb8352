"""/v1/moderation: users report users, analysts, posts, chat messages and reviews; admins work
the queue (take under review, resolve, dismiss) and act on the reported content or account."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.notify import notify
from kernel.web.auth import Caller, admin, caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid
from realms.analyst.credentials import revoke_all

routes = web.RouteTableDef()

EntityType = Literal["user", "analyst", "post", "chat_message", "review", "comment"]
Reason = Literal[
    "spam",
    "harassment",
    "fraudulent_activity",
    "fake_calls",
    "inappropriate_content",
    "misleading_information",
    "impersonation",
    "other",
]
Priority = Literal["low", "medium", "high", "critical"]
Status = Literal["pending", "under_review", "resolved", "dismissed", "action_taken"]
Action = Literal["content_removed", "user_warned", "user_suspended", "user_banned"]
Notes = Annotated[str, Meta(min_length=1, max_length=5000)]

OPEN = ("pending", "under_review")

# What a report starts at; reporters do not choose it (everything would be critical), admins
# may change it when they take the flag under review.
REASON_PRIORITY: dict[str, str] = {
    "fraudulent_activity": "high",
    "fake_calls": "high",
    "impersonation": "high",
    "harassment": "high",
    "misleading_information": "medium",
    "inappropriate_content": "medium",
    "other": "medium",
    "spam": "low",
}

# The account each kind of entity belongs to (`owner`, the user an action affects) and whether
# it is still live. An `analyst` is reported by its user id, like every analyst_id column.
_ENTITY = {
    "user": "SELECT id AS owner, deleted_at IS NULL AS live FROM analyst.users WHERE id = $1",
    "analyst": "SELECT id AS owner, deleted_at IS NULL AS live FROM analyst.users"
    " WHERE id = $1 AND user_type = 'analyst'",
    "post": "SELECT analyst_id AS owner, deleted_at IS NULL AS live FROM analyst.posts"
    " WHERE id = $1",
    "chat_message": "SELECT user_id AS owner, NOT is_deleted AS live FROM analyst.chat_messages"
    " WHERE id = $1",
    "review": "SELECT user_id AS owner, deleted_at IS NULL AS live FROM analyst.reviews"
    " WHERE id = $1",
    "comment": "SELECT user_id AS owner, deleted_at IS NULL AS live FROM analyst.post_comments"
    " WHERE id = $1",
}

_RANK = "CASE priority WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END"


class ReportBody(Struct, forbid_unknown_fields=True):
    entity_type: EntityType
    entity_id: uuid.UUID
    reason: Reason
    description: Annotated[str, Meta(max_length=2000)] | None = None


class ReviewBody(Struct, forbid_unknown_fields=True):
    priority: Priority | None = None


class ResolveBody(Struct, forbid_unknown_fields=True):
    outcome: Literal["resolved", "dismissed"]
    notes: Notes


class ActionBody(Struct, forbid_unknown_fields=True):
    action: Action
    notes: Notes


class QueueQuery(PageQuery, kw_only=True):
    status: Status | None = None
    entity_type: EntityType | None = None


class ReportOut(Struct):
    """A report as its reporter sees it: not who reviewed it, nor the admins' notes."""

    id: uuid.UUID
    entity_type: str
    entity_id: uuid.UUID
    reason: str
    description: str | None
    status: str
    created_at: datetime
    updated_at: datetime


class FlagOut(Struct):
    """A flag as admins see it."""

    id: uuid.UUID
    reported_by: uuid.UUID | None
    entity_type: str
    entity_id: uuid.UUID
    reason: str
    description: str | None
    status: str
    priority: str
    reviewed_by: uuid.UUID | None
    reviewed_at: datetime | None
    resolution_notes: str | None
    action_taken: str | None
    created_at: datetime
    updated_at: datetime


_COLUMNS = (
    "id, reported_by, flagged_entity_type AS entity_type, flagged_entity_id AS entity_id,"
    " flag_reason AS reason, flag_description AS description, status, priority, reviewed_by,"
    " reviewed_at, resolution_notes, action_taken, created_at, updated_at"
)


def _report(row: asyncpg.Record) -> ReportOut:
    return msgspec.convert(dict(row), ReportOut)


def _flag(row: asyncpg.Record) -> FlagOut:
    return msgspec.convert(dict(row), FlagOut)


# --- reporters ------------------------------------------------------------------------------


@endpoint(
    routes,
    "POST",
    "/v1/moderation/flags",
    summary="Report a user, analyst, post, chat message, review or comment",
    tag="moderation",
    body=ReportBody,
    response=ReportOut,
    status=201,
    errors=(401, 404, 409),
)
async def report(request: web.Request, body: ReportBody) -> ReportOut:
    """One open report per reporter and entity (409 while the earlier one is open). The entity
    must exist and be live; nobody reports themselves or their own content."""
    who = await caller(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        target = await conn.fetchrow(_ENTITY[body.entity_type], body.entity_id)
        if target is None or not target["live"]:
            raise NotFound(f"{body.entity_type} {body.entity_id} does not exist")
        if target["owner"] == who.user_id:
            raise BadRequest("you cannot report yourself or your own content")
        # No unique index covers "one open report": serialise this reporter and entity.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            f"moderation:{who.user_id}:{body.entity_type}:{body.entity_id}",
        )
        if await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM analyst.moderation_flags WHERE reported_by = $1"
            " AND flagged_entity_type = $2 AND flagged_entity_id = $3"
            " AND status = ANY ($4::text[]))",
            who.user_id,
            body.entity_type,
            body.entity_id,
            list(OPEN),
        ):
            raise Conflict("you already have an open report of this entity")
        row = await conn.fetchrow(
            f"INSERT INTO analyst.moderation_flags (reported_by, flagged_entity_type,"
            f" flagged_entity_id, flag_reason, flag_description, priority)"
            f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}",
            who.user_id,
            body.entity_type,
            body.entity_id,
            body.reason,
            body.description,
            REASON_PRIORITY[body.reason],
        )
        # The content tables carry their own flag marks (the gateway sets them the same way).
        if body.entity_type == "chat_message":
            await conn.execute(
                "UPDATE analyst.chat_messages SET is_flagged = true, flagged_by = $2,"
                " flagged_reason = $3 WHERE id = $1",
                body.entity_id,
                who.user_id,
                body.reason,
            )
        elif body.entity_type == "review":
            await conn.execute(
                "UPDATE analyst.reviews SET is_flagged = true,"
                " flagged_reason = coalesce(flagged_reason, $2) WHERE id = $1",
                body.entity_id,
                body.reason,
            )
    return _report(row)


@endpoint(
    routes,
    "GET",
    "/v1/moderation/flags",
    summary="The caller's own reports, newest first",
    tag="moderation",
    query=PageQuery,
    response=Page[ReportOut],
    errors=(401,),
)
async def my_reports(request: web.Request, query: PageQuery) -> Page[ReportOut]:
    who = await caller(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        f"SELECT {_COLUMNS} FROM analyst.moderation_flags WHERE reported_by = $1"
        f" AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))"
        f" ORDER BY created_at DESC, id DESC LIMIT $4",
        who.user_id,
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
    )
    return page_of([_report(r) for r in rows], query.limit, lambda f: (f.created_at, f.id))


@endpoint(
    routes,
    "GET",
    "/v1/moderation/flags/{id}",
    summary="One of the caller's own reports",
    tag="moderation",
    response=ReportOut,
    errors=(401, 404),
)
async def my_report(request: web.Request) -> ReportOut:
    who = await caller(request)
    row = await request.app[POOL].fetchrow(
        f"SELECT {_COLUMNS} FROM analyst.moderation_flags WHERE id = $1 AND reported_by = $2",
        path_uuid(request),
        who.user_id,
    )
    if row is None:
        raise NotFound("no such report of yours")
    return _report(row)


# --- admins -----------------------------------------------------------------------------------


@endpoint(
    routes,
    "GET",
    "/v1/moderation/queue",
    summary="Flags to handle: critical first, then high, medium, low; oldest first within each",
    tag="moderation",
    query=QueueQuery,
    response=Page[FlagOut],
    errors=(401, 403),
)
async def queue(request: web.Request, query: QueueQuery) -> Page[FlagOut]:
    """Without `status`, the open flags (pending and under review)."""
    await admin(request)
    after = decode_cursor(query.cursor, int, datetime, uuid.UUID)
    statuses = [query.status] if query.status else list(OPEN)
    rows = await request.app[POOL].fetch(
        f"SELECT {_COLUMNS}, {_RANK} AS rank FROM analyst.moderation_flags"
        f" WHERE status = ANY ($1::text[]) AND ($2::text IS NULL OR flagged_entity_type = $2)"
        f"   AND ($3::int IS NULL OR ({_RANK}, created_at, id) > ($3, $4, $5))"
        f" ORDER BY rank, created_at, id LIMIT $6",
        statuses,
        query.entity_type,
        *(after or (None, None, None)),
        query.limit + 1,
    )
    ranks = {r["id"]: r["rank"] for r in rows}
    flags = [_flag(r) for r in rows]
    return page_of(flags, query.limit, lambda f: (ranks[f.id], f.created_at, f.id))


@endpoint(
    routes,
    "GET",
    "/v1/moderation/queue/{id}",
    summary="Any flag, in full",
    tag="moderation",
    response=FlagOut,
    errors=(401, 403, 404),
)
async def get_flag(request: web.Request) -> FlagOut:
    await admin(request)
    row = await request.app[POOL].fetchrow(
        f"SELECT {_COLUMNS} FROM analyst.moderation_flags WHERE id = $1", path_uuid(request)
    )
    if row is None:
        raise NotFound("no such flag")
    return _flag(row)


async def _open_flag(conn: asyncpg.Connection, flag_id: uuid.UUID) -> asyncpg.Record:
    """The flag, locked for this transaction; NotFound, or Conflict once it is closed."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM analyst.moderation_flags WHERE id = $1 FOR UPDATE", flag_id
    )
    if row is None:
        raise NotFound("no such flag")
    if row["status"] not in OPEN:
        raise Conflict(f"the flag is already {row['status']}")
    return row


@endpoint(
    routes,
    "POST",
    "/v1/moderation/queue/{id}/review",
    summary="Take a pending flag under review (optionally re-prioritised)",
    tag="moderation",
    body=ReviewBody,
    response=FlagOut,
    errors=(401, 403, 404, 409),
)
async def take_under_review(request: web.Request, body: ReviewBody) -> FlagOut:
    who = await admin(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        flag = await _open_flag(conn, path_uuid(request))
        if flag["status"] != "pending":
            raise Conflict("the flag is already under review")
        row = await conn.fetchrow(
            f"UPDATE analyst.moderation_flags SET status = 'under_review', reviewed_by = $2,"
            f" reviewed_at = now(), priority = coalesce($3, priority)"
            f" WHERE id = $1 RETURNING {_COLUMNS}",
            flag["id"],
            who.user_id,
            body.priority,
        )
    return _flag(row)


@endpoint(
    routes,
    "POST",
    "/v1/moderation/queue/{id}/resolve",
    summary="Close an open flag without acting on the entity: resolved or dismissed",
    tag="moderation",
    body=ResolveBody,
    response=FlagOut,
    errors=(401, 403, 404, 409),
)
async def resolve(request: web.Request, body: ResolveBody) -> FlagOut:
    who = await admin(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        flag = await _open_flag(conn, path_uuid(request))
        row = await conn.fetchrow(
            f"UPDATE analyst.moderation_flags SET status = $2, reviewed_by = $3,"
            f" reviewed_at = now(), resolution_notes = $4 WHERE id = $1 RETURNING {_COLUMNS}",
            flag["id"],
            body.outcome,
            who.user_id,
            body.notes,
        )
        await _tell_reporter(conn, row, body.outcome)
    return _flag(row)


@endpoint(
    routes,
    "POST",
    "/v1/moderation/queue/{id}/action",
    summary="Act on the flagged entity (remove content, warn, suspend or ban its author)",
    tag="moderation",
    body=ActionBody,
    response=FlagOut,
    errors=(401, 403, 404, 409),
)
async def take_action(request: web.Request, body: ActionBody) -> FlagOut:
    """In one transaction: the entity is changed, the flag becomes `action_taken`, and the
    affected user is notified. Suspending or banning also ends the user's sessions."""
    who = await admin(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        flag = await _open_flag(conn, path_uuid(request))
        kind, entity_id = flag["entity_type"], flag["entity_id"]
        target = await conn.fetchrow(_ENTITY[kind] + " FOR UPDATE", entity_id)
        if target is None:
            raise Conflict(f"the flagged {kind} no longer exists; resolve or dismiss the flag")
        owner: uuid.UUID | None = target["owner"]
        if body.action == "content_removed":
            await _remove_content(conn, who, kind, entity_id, flag["reason"])
        elif owner is None:
            raise BadRequest(f"the flagged {kind} has no author to act on")
        if owner is not None:
            # Before a suspension: notify() reaches active accounts only.
            await notify(
                conn,
                event_key=f"moderation_flag:{flag['id']}:action",
                recipients=[owner],
                notification_type="moderation_action",
                title=_NOTICE_TITLE[body.action],
                message=f"Reason: {flag['reason'].replace('_', ' ')}.",
                related_entity_type=kind,
                related_entity_id=entity_id,
                priority="high",
                bypass_preferences=True,
            )
        if body.action in ("user_suspended", "user_banned") and owner is not None:
            await _disable_account(conn, owner, ban=body.action == "user_banned")
        row = await conn.fetchrow(
            f"UPDATE analyst.moderation_flags SET status = 'action_taken', action_taken = $2,"
            f" reviewed_by = $3, reviewed_at = now(), resolution_notes = $4"
            f" WHERE id = $1 RETURNING {_COLUMNS}",
            flag["id"],
            body.action,
            who.user_id,
            body.notes,
        )
        await _tell_reporter(conn, row, "action_taken")
    return _flag(row)


_OUTCOME_TITLE = {
    "resolved": "Your report was reviewed and resolved",
    "dismissed": "Your report was reviewed and dismissed",
    "action_taken": "Action was taken on your report",
}


async def _tell_reporter(conn: asyncpg.Connection, flag: asyncpg.Record, outcome: str) -> None:
    """The reporter learns the outcome of their report, in the app at once (their open
    sockets get the notification), in the flag's transaction."""
    if flag["reported_by"] is None:
        return
    await notify(
        conn,
        event_key=f"moderation_flag:{flag['id']}:closed",
        recipients=[flag["reported_by"]],
        notification_type="report_closed",
        title=_OUTCOME_TITLE[outcome],
        related_entity_type=flag["entity_type"],
        related_entity_id=flag["entity_id"],
        send_push=False,
        send_email=False,
    )


_NOTICE_TITLE = {
    "content_removed": "Your content was removed by a moderator",
    "user_warned": "A moderator has warned you",
    "user_suspended": "Your account has been suspended",
    "user_banned": "Your account has been banned",
}


async def _remove_content(
    conn: asyncpg.Connection, who: Caller, kind: str, entity_id: uuid.UUID, reason: str
) -> None:
    """Hide a post (soft delete), a chat message (deleted, by the admin), a review (no
    longer approved, so it leaves the analyst's rating) or a comment (soft delete, by the
    admin, so it leaves comments_count). Already hidden content stays so."""
    if kind == "post":
        await conn.execute(
            "UPDATE analyst.posts SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL",
            entity_id,
        )
    elif kind == "chat_message":
        await conn.execute(
            "UPDATE analyst.chat_messages SET is_deleted = true, deleted_by = $2,"
            " deleted_at = now(), deletion_reason = $3 WHERE id = $1 AND NOT is_deleted",
            entity_id,
            who.user_id,
            f"moderation: {reason}",
        )
    elif kind == "review":
        await conn.execute(
            "UPDATE analyst.reviews SET is_approved = false, moderated_by = $2,"
            " moderated_at = now() WHERE id = $1",
            entity_id,
            who.user_id,
        )
    elif kind == "comment":
        await conn.execute(
            "UPDATE analyst.post_comments SET deleted_at = now(), deleted_by = $2,"
            " deletion_reason = $3 WHERE id = $1 AND deleted_at IS NULL",
            entity_id,
            who.user_id,
            f"moderation: {reason}",
        )
    else:
        raise BadRequest(
            f"content_removed applies to a post, chat_message, review or comment, not to a {kind}"
        )


async def _disable_account(conn: asyncpg.Connection, user_id: uuid.UUID, *, ban: bool) -> None:
    """Suspend (is_active = false: reversible) or ban (also deleted_at: the account is gone
    for good), and revoke every refresh token so no session outlives its access token."""
    if await conn.fetchval(
        "SELECT user_type = 'admin' FROM analyst.users WHERE id = $1 FOR UPDATE", user_id
    ):
        raise Forbidden("admin accounts are not suspended or banned through moderation")
    await conn.execute(
        "UPDATE analyst.users SET is_active = false,"
        " deleted_at = CASE WHEN $2 THEN coalesce(deleted_at, now()) ELSE deleted_at END"
        " WHERE id = $1",
        user_id,
        ban,
    )
    await revoke_all(conn, user_id)
