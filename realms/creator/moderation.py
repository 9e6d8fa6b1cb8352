"""Moderation of the creator realm (issue 16, item 5): what a user may report and how a repeat
report is absorbed, the staff queue of reports, moderation actions on content, messages and
comments (they take effect by trigger, sql/3007), and the audit context every write of a
person sets for the audit trigger (3008). Violations of users: realms/creator/violations.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec
from aiohttp import web

from kernel.errors import BadRequest, Conflict, NotFound
from realms.creator import notices

TargetType = Literal["content", "message", "comment", "live_stream", "user"]
ActionTarget = Literal["content", "message", "comment"]
ReportType = Literal[
    "inappropriate_content",
    "copyright_violation",
    "harassment",
    "spam",
    "underage",
    "non_consensual",
    "violence",
    "hate_speech",
    "other",
]
Priority = Literal["low", "medium", "high", "critical"]
ReportStatus = Literal["pending", "in_review", "escalated", "resolved", "dismissed"]
Action = Literal[
    "approve", "reject", "remove", "flag", "age_restrict", "shadow_ban", "require_warning"
]
Enforcement = Literal["warning", "temporary_suspension", "permanent_ban", "feature_restriction"]
Severity = Literal["low", "medium", "high", "critical"]

OPEN = ("pending", "in_review", "escalated")
# A report's starting priority follows what it alleges: harm to minors or without consent
# first, then violence, hate and harassment; the queue is served in this order.
PRIORITY_OF: dict[str, Priority] = {
    "underage": "critical",
    "non_consensual": "critical",
    "violence": "high",
    "hate_speech": "high",
    "harassment": "high",
    "inappropriate_content": "medium",
    "copyright_violation": "medium",
    "spam": "low",
    "other": "low",
}
# Messages and comments are only approved, flagged or removed (sql/3007).
ITEM_ACTIONS = frozenset({"approve", "remove", "flag"})


async def audit_context(
    conn: asyncpg.Connection, actor: uuid.UUID, request: web.Request | None = None
) -> None:
    """Name who acts (and from where) for the rest of the transaction: the audit trigger
    records them (admin_id when staff). Call inside the transaction of the write."""
    remote = request.remote if request is not None else None
    agent = request.headers.get("User-Agent", "") if request is not None else ""
    await conn.execute(
        "SELECT set_config('creator.user_id', $1, true),"
        " set_config('creator.ip_address', $2, true), set_config('creator.user_agent', $3, true)",
        str(actor),
        remote or "",
        agent[:500],
    )


# --- reports ------------------------------------------------------------------------------------


class Report(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    reporter_id: uuid.UUID | None
    target_type: str
    target_id: uuid.UUID | None
    reported_user_id: uuid.UUID | None
    report_type: str
    description: str | None
    evidence: list[Any]
    priority: str
    status: str
    assigned_to: uuid.UUID | None
    assigned_at: datetime | None
    resolved_by: uuid.UUID | None
    resolved_at: datetime | None
    resolution_notes: str | None
    created_at: datetime


_TARGET = (
    "coalesce(reported_content_id, reported_message_id, reported_comment_id,"
    " reported_live_stream_id, reported_user_id)"
)
REPORT_COLUMNS = (
    f"id, reporter_id, target_type, {_TARGET} AS target_id, reported_user_id, report_type,"
    " description, evidence, priority, status, assigned_to, assigned_at, resolved_by,"
    " resolved_at, resolution_notes, created_at"
)
_RANK = "CASE priority WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END"

# Who answers for a target the reporter can see (NULL: no such target, or not visible to them).
_RESPONSIBLE: dict[str, str] = {
    "content": "SELECT creator_id FROM creator.content"
    " WHERE id = $1 AND deleted_at IS NULL AND status = 'published'",
    "message": "SELECT m.sender_id FROM creator.messages m"
    " JOIN creator.conversations c ON c.id = m.conversation_id"
    " WHERE m.id = $1 AND NOT m.is_deleted AND $2 IN (c.fan_id, c.creator_id)",
    "comment": "SELECT cm.user_id FROM creator.comments cm"
    " JOIN creator.content c ON c.id = cm.content_id"
    " WHERE cm.id = $1 AND cm.deleted_at IS NULL AND c.deleted_at IS NULL"
    " AND c.status = 'published'",
    "live_stream": "SELECT creator_id FROM creator.live_streams WHERE id = $1",
    "user": "SELECT id FROM creator.users WHERE id = $1 AND deleted_at IS NULL",
}

_FILE_REPORT = f"""
INSERT INTO creator.content_reports
       (reporter_id, target_type, reported_content_id, reported_message_id, reported_comment_id,
        reported_live_stream_id, reported_user_id, report_type, description, evidence, priority)
VALUES ($1, $2::text, CASE WHEN $2::text = 'content' THEN $3::uuid END,
        CASE WHEN $2::text = 'message' THEN $3::uuid END,
        CASE WHEN $2::text = 'comment' THEN $3::uuid END,
        CASE WHEN $2::text = 'live_stream' THEN $3::uuid END,
        CASE WHEN $2::text = 'user' THEN $3::uuid END,
        $4, $5, $6::jsonb, $7)
ON CONFLICT (reporter_id, target_type, ({_TARGET}))
   WHERE status IN ('pending', 'in_review', 'escalated') DO NOTHING
RETURNING {REPORT_COLUMNS}
"""
_OPEN_REPORT_OF = (
    f"SELECT {REPORT_COLUMNS} FROM creator.content_reports"
    f" WHERE reporter_id = $1 AND target_type = $2 AND {_TARGET} = $3"
    " AND status IN ('pending', 'in_review', 'escalated')"
)


def report_of(row: asyncpg.Record) -> Report:
    values = dict(row)
    values.pop("rank", None)
    return msgspec.convert(values, Report)


async def file_report(
    conn: asyncpg.Connection,
    *,
    reporter: uuid.UUID,
    target_type: TargetType,
    target_id: uuid.UUID,
    report_type: ReportType,
    description: str | None,
    evidence: list[Any],
    request: web.Request | None = None,
) -> tuple[Report, bool]:
    """File a report of something the reporter can see; (report, created). A reporter's
    second report of a target already in the queue adds nothing: it answers the open one."""
    async with conn.transaction():
        await audit_context(conn, reporter, request)
        # Only a message's visibility depends on who asks ($2: its conversation's parties).
        viewer = (reporter,) if target_type == "message" else ()
        responsible = await conn.fetchval(_RESPONSIBLE[target_type], target_id, *viewer)
        if responsible is None:
            raise NotFound(f"no {target_type} {target_id} that you can see")
        if responsible == reporter:
            raise BadRequest(f"you cannot report your own {target_type.replace('_', ' ')}")
        row = await conn.fetchrow(
            _FILE_REPORT,
            reporter,
            target_type,
            target_id,
            report_type,
            description,
            evidence,
            PRIORITY_OF[report_type],
        )
        if row is not None:
            return report_of(row), True
        existing = await conn.fetchrow(_OPEN_REPORT_OF, reporter, target_type, target_id)
        if existing is None:  # closed between the conflict and this read: report again
            raise Conflict("your earlier report of this was just closed; report again")
        return report_of(existing), False


@dataclass(frozen=True, slots=True)
class QueueFilter:
    statuses: list[str]
    target_type: str | None = None
    report_type: str | None = None
    priority: str | None = None
    assigned_to: uuid.UUID | None = None
    reported_user_id: uuid.UUID | None = None
    reporter_id: uuid.UUID | None = None


_QUEUE = f"""
SELECT * FROM (SELECT {REPORT_COLUMNS}, {_RANK} AS rank FROM creator.content_reports
                WHERE status = ANY ($1::text[])
                  AND ($2::text IS NULL OR target_type = $2)
                  AND ($3::text IS NULL OR report_type = $3)
                  AND ($4::text IS NULL OR priority = $4)
                  AND ($5::uuid IS NULL OR assigned_to = $5)
                  AND ($6::uuid IS NULL OR reported_user_id = $6)
                  AND ($7::uuid IS NULL OR reporter_id = $7)) r
 WHERE $8::int IS NULL OR (rank, created_at, id) > ($8, $9, $10)
 ORDER BY rank, created_at, id
 LIMIT $11
"""


async def queue(
    conn: asyncpg.Connection | asyncpg.Pool,
    which: QueueFilter,
    after: tuple[int, datetime, uuid.UUID] | None,
    limit: int,
) -> list[tuple[Report, tuple[int, str, str]]]:
    """Reports by priority (critical first), oldest first within one; each with its cursor key."""
    rows = await conn.fetch(
        _QUEUE,
        which.statuses,
        which.target_type,
        which.report_type,
        which.priority,
        which.assigned_to,
        which.reported_user_id,
        which.reporter_id,
        *(after if after else (None, None, None)),
        limit,
    )
    return [(report_of(r), (r["rank"], r["created_at"].isoformat(), str(r["id"]))) for r in rows]


async def _report_state(conn: asyncpg.Connection, report_id: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT status, assigned_to FROM creator.content_reports WHERE id = $1", report_id
    )
    if row is None:
        raise NotFound(f"no report {report_id}")
    return row


async def take(
    conn: asyncpg.Connection, staff: uuid.UUID, report_id: uuid.UUID, request: web.Request
) -> Report:
    """Assign an open report to `staff` (in_review). 409 when another holds it in review."""
    async with conn.transaction():
        await audit_context(conn, staff, request)
        row = await conn.fetchrow(
            "UPDATE creator.content_reports"
            " SET status = 'in_review', assigned_to = $2,"
            " assigned_at = CASE WHEN assigned_to = $2 THEN assigned_at ELSE now() END"
            " WHERE id = $1 AND status IN ('pending', 'in_review', 'escalated')"
            " AND (status <> 'in_review' OR assigned_to IS NULL OR assigned_to = $2)"
            f" RETURNING {REPORT_COLUMNS}",
            report_id,
            staff,
        )
        if row is None:
            state = await _report_state(conn, report_id)
            if state["status"] in OPEN:
                raise Conflict("another moderator is reviewing this report")
            raise Conflict(f"the report is already {state['status']}")
        return report_of(row)


async def close_report(
    conn: asyncpg.Connection,
    staff: uuid.UUID,
    report_id: uuid.UUID,
    *,
    status: Literal["resolved", "dismissed", "escalated"],
    notes: str | None,
    priority: str | None = None,
    request: web.Request | None = None,
) -> Report:
    """Move an open report to `status` (escalated keeps it open, at `priority` if given)."""
    async with conn.transaction():
        if request is not None:
            await audit_context(conn, staff, request)
        row = await conn.fetchrow(
            "UPDATE creator.content_reports"
            " SET status = $2::text, priority = coalesce($4, priority),"
            " resolution_notes = coalesce($3, resolution_notes),"
            " resolved_by = CASE WHEN $2::text = 'escalated' THEN resolved_by ELSE $5 END,"
            " resolved_at = CASE WHEN $2::text = 'escalated' THEN resolved_at ELSE now() END"
            " WHERE id = $1 AND status IN ('pending', 'in_review', 'escalated')"
            f" RETURNING {REPORT_COLUMNS}",
            report_id,
            status,
            notes,
            priority,
            staff,
        )
        if row is None:
            state = await _report_state(conn, report_id)
            raise Conflict(f"the report is already {state['status']}")
        return report_of(row)


# --- moderation actions -----------------------------------------------------------------------


class ActionOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    report_id: uuid.UUID | None
    target_type: str
    target_id: uuid.UUID
    action: str
    moderator_id: uuid.UUID
    reason: str | None
    warning_text: str | None
    created_at: datetime
    reports_closed: int


_ITEM: dict[str, str] = {
    "content": "SELECT creator_id AS owner, title FROM creator.content WHERE id = $1",
    "message": "SELECT sender_id AS owner, NULL::text AS title FROM creator.messages WHERE id = $1",
    "comment": "SELECT user_id AS owner, NULL::text AS title FROM creator.comments WHERE id = $1",
}
_REPORT_COLUMN = {
    "content": "reported_content_id",
    "message": "reported_message_id",
    "comment": "reported_comment_id",
}
# Every open report on one target, closed by an action on it (resolved; a flag escalates).
_CLOSE_REPORTS_ON = {
    kind: "UPDATE creator.content_reports"
    " SET status = CASE WHEN $2 = 'flag' THEN 'escalated' ELSE 'resolved' END,"
    " resolved_by = CASE WHEN $2 = 'flag' THEN resolved_by ELSE $3 END,"
    " resolved_at = CASE WHEN $2 = 'flag' THEN resolved_at ELSE now() END,"
    " resolution_notes = coalesce(resolution_notes, $4)"
    f" WHERE {column} = $1 AND status IN ('pending', 'in_review', 'escalated')"
    " AND NOT ($2 = 'flag' AND status = 'escalated')"
    for kind, column in _REPORT_COLUMN.items()
}


async def _target_of_report(
    conn: asyncpg.Connection,
    report_id: uuid.UUID,
    target_type: str | None,
    target_id: uuid.UUID | None,
) -> tuple[str, uuid.UUID]:
    """The item a report is about (locked with the report), which a named target must be."""
    report = await conn.fetchrow(
        "SELECT target_type, reported_content_id, reported_message_id,"
        " reported_comment_id FROM creator.content_reports WHERE id = $1 FOR UPDATE",
        report_id,
    )
    if report is None:
        raise NotFound(f"no report {report_id}")
    kind = report["target_type"]
    if kind not in _ITEM:
        raise BadRequest(
            f"a report on a {kind.replace('_', ' ')} is acted on with a violation of its user"
            " (POST moderation/violations)"
        )
    item = report[_REPORT_COLUMN[kind]]
    if item is None:
        raise Conflict("the reported item no longer exists")
    if target_type is not None and (target_type, target_id) != (kind, item):
        raise BadRequest("the report is about another item")
    return kind, item


async def act(
    conn: asyncpg.Connection,
    *,
    moderator: uuid.UUID,
    action: Action,
    report_id: uuid.UUID | None,
    target_type: str | None,
    target_id: uuid.UUID | None,
    reason: str | None,
    warning_text: str | None,
    request: web.Request | None = None,
) -> ActionOut:
    """Record a moderator's action; it takes effect in the same transaction (content status,
    a message deleted for every open client, a comment removed), closes the open reports on
    its target, and tells the content's creator of an approval or removal (once per action)."""
    async with conn.transaction():
        await audit_context(conn, moderator, request)
        if report_id is not None:
            target_type, target_id = await _target_of_report(
                conn, report_id, target_type, target_id
            )
        if target_type is None or target_id is None:
            raise BadRequest("name the target (target_type and target_id) or a report_id")
        if target_type != "content" and action not in ITEM_ACTIONS:
            raise BadRequest(f"a {target_type} is only approved, flagged or removed")
        if action == "require_warning" and not warning_text:
            raise BadRequest("require_warning needs warning_text")
        item = await conn.fetchrow(_ITEM[target_type], target_id)
        if item is None:
            raise NotFound(f"no {target_type} {target_id}")
        row = await conn.fetchrow(
            "INSERT INTO creator.content_moderation_actions (report_id, target_type, content_id,"
            " message_id, comment_id, action, moderator_id, reason, warning_text)"
            " VALUES ($1, $2::text, CASE WHEN $2::text = 'content' THEN $3::uuid END,"
            " CASE WHEN $2::text = 'message' THEN $3::uuid END,"
            " CASE WHEN $2::text = 'comment' THEN $3::uuid END, $4, $5, $6, $7)"
            " RETURNING id, created_at",
            report_id,
            target_type,
            target_id,
            action,
            moderator,
            reason,
            warning_text if action == "require_warning" else None,
        )
        closed = await conn.execute(
            _CLOSE_REPORTS_ON[target_type],
            target_id,
            action,
            moderator,
            reason or f"moderation action {action}",
        )
        if target_type == "content" and action in ("approve", "remove", "reject"):
            await _tell_creator(conn, row["id"], item, target_id, action, reason)
        return ActionOut(
            id=row["id"],
            report_id=report_id,
            target_type=target_type,
            target_id=target_id,
            action=action,
            moderator_id=moderator,
            reason=reason,
            warning_text=warning_text if action == "require_warning" else None,
            created_at=row["created_at"],
            reports_closed=int(closed.split()[-1]),
        )


async def _tell_creator(
    conn: asyncpg.Connection,
    action_id: uuid.UUID,
    item: asyncpg.Record,
    content_id: uuid.UUID,
    action: str,
    reason: str | None,
) -> None:
    approved = action == "approve"
    kind = "content_approved" if approved else "content_removed"
    title = "Your post was approved" if approved else "Your post was removed"
    # The seed's own notifications row (reporting), in the same transaction as the core's.
    await conn.execute(
        "INSERT INTO creator.notifications (user_id, notification_type, title, body,"
        " related_entity_type, related_entity_id, data)"
        " VALUES ($1, $2, $3, $4, 'content', $5, jsonb_build_object('action_id', $6::text))",
        item["owner"],
        kind,
        title,
        None if approved else reason,
        content_id,
        str(action_id),
    )
    await notices.content_moderated(
        conn,
        action_id=action_id,
        creator_id=item["owner"],
        content_id=content_id,
        content_title=item["title"],
        approved=approved,
        reason=None if approved else reason,
    )
