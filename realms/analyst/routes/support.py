"""/v1/support: users open tickets and follow them; support staff (admins) triage, assign and
move them through their lifecycle. The schema holds no reply thread: the API records the
ticket's state, who acted and when (docs/api-notes-platform.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import UNSET, Meta, Struct, UnsetType

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.notify import notify
from kernel.web.auth import admin, caller
from kernel.web.endpoints import all_or_none, endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid

routes = web.RouteTableDef()

TicketType = Literal[
    "technical_issue",
    "payment_issue",
    "account_issue",
    "verification_issue",
    "subscription_issue",
    "content_issue",
    "other",
]
Priority = Literal["low", "medium", "high", "critical"]
Status = Literal["open", "in_progress", "waiting_user", "resolved", "closed", "escalated"]

# Who may move a ticket from one status to another. Staff work it; its user may close it at
# any point, reopen it once resolved, and hand it back after answering (waiting_user).
STAFF_MOVES: dict[str, frozenset[str]] = {
    "open": frozenset({"in_progress", "waiting_user", "escalated", "resolved"}),
    "in_progress": frozenset({"waiting_user", "escalated", "resolved"}),
    "waiting_user": frozenset({"in_progress", "escalated", "resolved"}),
    "escalated": frozenset({"in_progress", "waiting_user", "resolved"}),
    "resolved": frozenset({"closed", "in_progress"}),
    "closed": frozenset(),
}
OWNER_MOVES: dict[str, frozenset[str]] = {
    "open": frozenset({"closed"}),
    "in_progress": frozenset({"closed"}),
    "waiting_user": frozenset({"closed", "in_progress"}),
    "escalated": frozenset({"closed"}),
    "resolved": frozenset({"closed", "open"}),
    "closed": frozenset(),
}

_RANK = "CASE priority WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END"


class Attachment(Struct, forbid_unknown_fields=True):
    url: Annotated[str, Meta(max_length=500, pattern=r"^https://")]
    name: Annotated[str, Meta(min_length=1, max_length=255)] | None = None


class OpenTicketBody(Struct, forbid_unknown_fields=True):
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        all_or_none("related_entity_type", "related_entity_id"),
    )
    subject: Annotated[str, Meta(min_length=1, max_length=500)]
    description: Annotated[str, Meta(max_length=10000)] | None = None
    ticket_type: TicketType = "other"
    priority: Priority = "medium"
    related_entity_type: Annotated[str, Meta(max_length=50, pattern=r"^[a-z][a-z_]*\Z")] | None = (
        None
    )
    related_entity_id: uuid.UUID | None = None
    attachments: Annotated[list[Attachment], Meta(max_length=10)] | None = None


class StatusBody(Struct, forbid_unknown_fields=True):
    status: Status
    resolution_notes: Annotated[str, Meta(min_length=1, max_length=5000)] | None = None


class TriageBody(Struct, forbid_unknown_fields=True):
    # one of the two at least (a null `assigned_to` unassigns, so it counts)
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = ({"minProperties": 1},)
    priority: Priority | UnsetType = UNSET
    assigned_to: uuid.UUID | UnsetType | None = UNSET


class MyTicketsQuery(PageQuery, kw_only=True):
    status: Status | None = None


class QueueQuery(PageQuery, kw_only=True):
    status: Status | None = None
    priority: Priority | None = None
    assigned_to: uuid.UUID | None = None
    unassigned: bool = False
    priority_support: bool | None = None


class TicketOut(Struct):
    id: uuid.UUID
    user_id: uuid.UUID
    subject: str
    description: str | None
    ticket_type: str
    status: str
    priority: str
    assigned_to: uuid.UUID | None
    assigned_at: datetime | None
    resolution_notes: str | None
    resolved_at: datetime | None
    resolved_by: uuid.UUID | None
    related_entity_type: str | None
    related_entity_id: uuid.UUID | None
    attachments: list[Attachment] | None
    last_response_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    # The user held a subscription with priority support when opening it (tier perk).
    priority_support: bool = False


_COLUMNS = (
    "id, user_id, subject, description, ticket_type, status, priority, assigned_to,"
    " assigned_at, resolution_notes, resolved_at, resolved_by, related_entity_type,"
    " related_entity_id, attachments, last_response_at, closed_at, created_at, updated_at,"
    " priority_support"
)
# Whether user $1 holds, now, an active subscription on a tier with priority support (the
# tier's terms as bought: a tier deactivated since still serves its subscribers).
_HAS_PRIORITY_SUPPORT = """EXISTS (
    SELECT 1 FROM analyst.subscriptions s
      JOIN analyst.subscription_tiers t ON t.id = s.tier_id
     WHERE s.user_id = $1 AND s.status = 'active' AND s.deleted_at IS NULL
       AND (s.expires_at IS NULL OR s.expires_at > now()) AND t.priority_support)"""


def _ticket(row: asyncpg.Record) -> TicketOut:
    return msgspec.convert(dict(row), TicketOut)


@endpoint(
    routes,
    "POST",
    "/v1/support/tickets",
    summary="Open a support ticket",
    tag="support",
    body=OpenTicketBody,
    response=TicketOut,
    status=201,
    errors=(401,),
)
async def open_ticket(request: web.Request, body: OpenTicketBody) -> TicketOut:
    """A ticket of a user with priority support (an active subscription on a tier that has
    it) is marked `priority_support`: staff's queue puts it first within its priority, and
    staff's answers reach the user at high priority."""
    who = await caller(request)
    if (body.related_entity_type is None) != (body.related_entity_id is None):
        raise BadRequest("give both `related_entity_type` and `related_entity_id`, or neither")
    row = await request.app[POOL].fetchrow(
        f"INSERT INTO analyst.support_tickets (user_id, subject, description, ticket_type,"
        f" priority, related_entity_type, related_entity_id, attachments, priority_support)"
        f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {_HAS_PRIORITY_SUPPORT}) RETURNING {_COLUMNS}",
        who.user_id,
        body.subject,
        body.description,
        body.ticket_type,
        body.priority,
        body.related_entity_type,
        body.related_entity_id,
        msgspec.to_builtins(body.attachments) if body.attachments else None,
    )
    return _ticket(row)


@endpoint(
    routes,
    "GET",
    "/v1/support/tickets",
    summary="The caller's own tickets, newest first",
    tag="support",
    query=MyTicketsQuery,
    response=Page[TicketOut],
    errors=(401,),
)
async def my_tickets(request: web.Request, query: MyTicketsQuery) -> Page[TicketOut]:
    who = await caller(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        f"SELECT {_COLUMNS} FROM analyst.support_tickets"
        f" WHERE user_id = $1 AND ($2::text IS NULL OR status = $2)"
        f"   AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))"
        f" ORDER BY created_at DESC, id DESC LIMIT $5",
        who.user_id,
        query.status,
        *(after or (None, None)),
        query.limit + 1,
    )
    return page_of([_ticket(r) for r in rows], query.limit, lambda t: (t.created_at, t.id))


@endpoint(
    routes,
    "GET",
    "/v1/support/tickets/{id}",
    summary="One ticket (its user or support staff)",
    tag="support",
    response=TicketOut,
    errors=(401, 404),
)
async def get_ticket(request: web.Request) -> TicketOut:
    who = await caller(request)
    row = await request.app[POOL].fetchrow(
        f"SELECT {_COLUMNS} FROM analyst.support_tickets WHERE id = $1", path_uuid(request)
    )
    if row is None or (row["user_id"] != who.user_id and not who.is_admin):
        raise NotFound("no such ticket")
    return _ticket(row)


@endpoint(
    routes,
    "GET",
    "/v1/support/queue",
    summary="All tickets for support staff: critical first; within a priority, priority"
    " support first, then oldest first",
    tag="support",
    query=QueueQuery,
    response=Page[TicketOut],
    errors=(401, 403),
)
async def queue(request: web.Request, query: QueueQuery) -> Page[TicketOut]:
    await admin(request)
    if query.unassigned and query.assigned_to is not None:
        raise BadRequest("give `assigned_to` or `unassigned`, not both")
    after = decode_cursor(query.cursor, int, bool, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        f"SELECT {_COLUMNS}, {_RANK} AS rank FROM analyst.support_tickets"
        f" WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR priority = $2)"
        f"   AND ($3::uuid IS NULL OR assigned_to = $3) AND (NOT $4 OR assigned_to IS NULL)"
        f"   AND ($9::boolean IS NULL OR priority_support = $9)"
        f"   AND ($5::int IS NULL"
        f"        OR ({_RANK}, NOT priority_support, created_at, id) > ($5, $6, $7, $8))"
        f" ORDER BY rank, NOT priority_support, created_at, id LIMIT $10",
        query.status,
        query.priority,
        query.assigned_to,
        query.unassigned,
        *(after or (None, None, None, None)),
        query.priority_support,
        query.limit + 1,
    )
    ranks = {r["id"]: r["rank"] for r in rows}
    tickets = [_ticket(r) for r in rows]
    return page_of(
        tickets,
        query.limit,
        lambda t: (ranks[t.id], not t.priority_support, t.created_at, t.id),
    )


@endpoint(
    routes,
    "PATCH",
    "/v1/support/tickets/{id}",
    summary="Triage a ticket: its priority and who it is assigned to (support staff)",
    tag="support",
    body=TriageBody,
    response=TicketOut,
    errors=(401, 403, 404, 409),
)
async def triage(request: web.Request, body: TriageBody) -> TicketOut:
    """`assigned_to` must be an active admin, or null to unassign; assigned_at is stamped."""
    await admin(request)
    if body.priority is UNSET and body.assigned_to is UNSET:
        raise BadRequest("give `priority` and/or `assigned_to`")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        ticket = await _locked(conn, path_uuid(request))
        if ticket["status"] == "closed":
            raise Conflict("the ticket is closed")
        assignee = ticket["assigned_to"]
        if not isinstance(body.assigned_to, UnsetType):
            assignee = body.assigned_to
            if assignee is not None and not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM analyst.users WHERE id = $1"
                " AND user_type = 'admin' AND is_active AND deleted_at IS NULL)",
                assignee,
            ):
                raise BadRequest("`assigned_to` must be an active support staff (admin) account")
        row = await conn.fetchrow(
            f"UPDATE analyst.support_tickets SET priority = $2, assigned_to = $3,"
            f" assigned_at = CASE WHEN $3::uuid IS NULL THEN NULL"
            f"                    WHEN $3 IS DISTINCT FROM assigned_to THEN now()"
            f"                    ELSE assigned_at END"
            f" WHERE id = $1 RETURNING {_COLUMNS}",
            ticket["id"],
            ticket["priority"] if isinstance(body.priority, UnsetType) else body.priority,
            assignee,
        )
    return _ticket(row)


@endpoint(
    routes,
    "POST",
    "/v1/support/tickets/{id}/status",
    summary="Move a ticket through its lifecycle (staff; its user may close, reopen, answer)",
    tag="support",
    body=StatusBody,
    response=TicketOut,
    errors=(401, 403, 404, 409),
)
async def move(request: web.Request, body: StatusBody) -> TicketOut:
    """Staff: open -> in_progress -> waiting_user -> resolved -> closed, escalated from any
    open state, back to in_progress from waiting_user, escalated or resolved. The ticket's
    user: closed from any state but closed, open from resolved (reopen), in_progress from
    waiting_user (answered). Anything else is 409. Resolving needs `resolution_notes`.
    A move by staff notifies the ticket's user."""
    who = await caller(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        ticket = await _locked(conn, path_uuid(request))
        owner = ticket["user_id"] == who.user_id
        if not owner and not who.is_admin:
            raise NotFound("no such ticket")
        current, target = ticket["status"], body.status
        allowed = (STAFF_MOVES[current] if who.is_admin else frozenset()) | (
            OWNER_MOVES[current] if owner else frozenset()
        )
        if target not in allowed:
            if target in STAFF_MOVES[current]:
                raise Forbidden(f"only support staff may move a ticket to {target}")
            raise Conflict(f"a ticket cannot go from {current} to {target}")
        if target == "resolved" and body.resolution_notes is None:
            raise BadRequest("`resolution_notes` are required to resolve a ticket")
        if target != "resolved" and body.resolution_notes is not None:
            raise BadRequest("`resolution_notes` go with status resolved only")
        row = await conn.fetchrow(
            f"UPDATE analyst.support_tickets SET status = $2::text, last_response_at = now(),"
            f" resolved_at = CASE WHEN $2 = 'resolved' THEN now()"
            f"                    WHEN $2 = 'closed' THEN resolved_at END,"
            f" resolved_by = CASE WHEN $2 = 'resolved' THEN $3"
            f"                    WHEN $2 = 'closed' THEN resolved_by END,"
            f" resolution_notes = coalesce($4, resolution_notes),"
            f" closed_at = CASE WHEN $2 = 'closed' THEN now() END"
            f" WHERE id = $1 RETURNING {_COLUMNS}",
            ticket["id"],
            target,
            who.user_id,
            body.resolution_notes,
        )
        if not owner:
            await notify(
                conn,
                event_key=f"support_ticket:{row['id']}:{row['updated_at'].isoformat()}",
                recipients=[row["user_id"]],
                notification_type="support_ticket_updated",
                title=f"Your ticket is now {target.replace('_', ' ')}",
                message=row["subject"][:200],
                related_entity_type="support_ticket",
                related_entity_id=row["id"],
                priority="high" if row["priority_support"] else "medium",
            )
    return _ticket(row)


async def _locked(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM analyst.support_tickets WHERE id = $1 FOR UPDATE", ticket_id
    )
    if row is None:
        raise NotFound("no such ticket")
    return row
