"""/v1/market/disputes: the buyer or the seller of an order opens a dispute about it; its
parties and support staff (technical_access) exchange messages until staff resolve or close
it (open -> in_progress -> resolved -> closed; open or in_progress may also close). Every
update notifies the other people of the dispute (category order)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import asyncpg
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from realms.market import events
from realms.market.routes.access import has_role, me, path_id

routes = web.RouteTableDef()

STAFF_ROLE = "technical_access"
NEXT = {
    "open": frozenset({"in_progress", "resolved", "closed"}),
    "in_progress": frozenset({"resolved", "closed"}),
    "resolved": frozenset({"closed"}),
}


class DisputeBody(Struct, forbid_unknown_fields=True, kw_only=True):
    order_id: Annotated[int, Meta(ge=1, le=2**63 - 1)]
    type: Literal["product_issue", "delivery_issue", "payment_issue", "other"]
    reason: Annotated[str, Meta(min_length=1, max_length=5000, pattern=r"\S")]


class MessageBody(Struct, forbid_unknown_fields=True, kw_only=True):
    content: Annotated[str, Meta(min_length=1, max_length=5000, pattern=r"\S")]
    attachments: Annotated[list[Annotated[str, Meta(max_length=2000)]], Meta(max_length=10)] = []


class StatusBody(Struct, forbid_unknown_fields=True, kw_only=True):
    status: Literal["in_progress", "resolved", "closed"]
    resolution: Annotated[str, Meta(max_length=5000)] | None = None


class MessageOut(Struct):
    id: int
    user_id: int
    content: str
    attachments: list[str]
    created_at: datetime


class DisputeOut(Struct):
    id: int
    order_id: int
    opened_by: int
    type: str
    reason: str
    status: str
    resolution: str | None
    resolved_by: int | None
    resolved_at: datetime | None
    created_at: datetime
    messages: list[MessageOut]


class DisputesQuery(PageQuery, kw_only=True):
    status: Literal["open", "in_progress", "resolved", "closed"] | None = None


_DISPUTE = (
    "SELECT d.id, d.order_id, d.opened_by, d.type::text AS type, d.reason,"
    " d.status::text AS status, d.resolution, d.resolved_by, d.resolved_at, d.created_at"
    " FROM market.disputes d JOIN market.orders o ON o.id = d.order_id"
)


async def _standing(
    conn: asyncpg.Connection | asyncpg.Pool, dispute_id: int, user: int
) -> list[int]:
    """The dispute's people to tell (its order's buyer and seller, and staff who wrote in it);
    NotFound unless `user` is one of the parties or support staff."""
    row = await conn.fetchrow(
        "SELECT o.buyer_id, o.seller_id,"
        " array(SELECT DISTINCT m.user_id FROM market.dispute_messages m"
        "        WHERE m.dispute_id = d.id) AS writers"
        " FROM market.disputes d JOIN market.orders o ON o.id = d.order_id WHERE d.id = $1",
        dispute_id,
    )
    if row is None:
        raise NotFound(f"dispute {dispute_id} does not exist")
    people = sorted({row["buyer_id"], row["seller_id"], *row["writers"]})
    if user not in (row["buyer_id"], row["seller_id"]) and not await conn.fetchval(
        "SELECT market.has_admin_role($1, $2)", user, STAFF_ROLE
    ):
        raise NotFound(f"dispute {dispute_id} does not exist")
    return people


async def _one(pool: asyncpg.Pool, dispute_id: int) -> DisputeOut:
    row = await pool.fetchrow(_DISPUTE + " WHERE d.id = $1", dispute_id)
    messages = await pool.fetch(
        "SELECT id, user_id, content, coalesce(attachments, '[]'::jsonb) AS attachments,"
        " created_at FROM market.dispute_messages WHERE dispute_id = $1 ORDER BY id",
        dispute_id,
    )
    return DisputeOut(**dict(row), messages=[MessageOut(**dict(m)) for m in messages])


async def _tell(
    conn: asyncpg.Connection, dispute_id: int, people: list[int], actor: int, what: str, key: str
) -> None:
    await events.tell(
        conn,
        event_key=f"dispute:{dispute_id}:{key}",
        users=[p for p in people if p != actor],
        kind="order",
        title="Dispute update",
        message=what[:200],
        action_url=f"/disputes/{dispute_id}",
    )


@endpoint(
    routes,
    "POST",
    "/v1/disputes",
    summary="Open a dispute about one's order (its buyer or seller)",
    tag="market disputes",
    body=DisputeBody,
    response=DisputeOut,
    status=201,
    errors=(400, 401, 404),
)
async def open_dispute(request: web.Request, body: DisputeBody) -> DisputeOut:
    who = await me(request)
    pool = request.app[POOL]
    async with pool.acquire() as conn, conn.transaction():
        order = await conn.fetchrow(
            "SELECT buyer_id, seller_id FROM market.orders WHERE id = $1 AND deleted_at IS NULL",
            body.order_id,
        )
        if order is None or who.id not in (order["buyer_id"], order["seller_id"]):
            raise NotFound(f"you have no order {body.order_id}")
        dispute = await conn.fetchval(
            "INSERT INTO market.disputes (order_id, opened_by, type, reason)"
            " VALUES ($1, $2, $3::market.dispute_type_enum, $4) RETURNING id",
            body.order_id,
            who.id,
            body.type,
            body.reason,
        )
        people = [order["buyer_id"], order["seller_id"]]
        await _tell(conn, dispute, people, who.id, f"A dispute was opened: {body.reason}", "open")
    return await _one(pool, dispute)


@endpoint(
    routes,
    "GET",
    "/v1/disputes",
    summary="Disputes, newest first: about one's orders, or (support staff) all",
    tag="market disputes",
    query=DisputesQuery,
    response=Page[DisputeOut],
    errors=(400, 401),
)
async def list_disputes(request: web.Request, query: DisputesQuery) -> Page[DisputeOut]:
    who = await me(request)
    staff = await has_role(request, who.id, STAFF_ROLE)
    after = decode_cursor(query.cursor, int)
    pool = request.app[POOL]
    rows = await pool.fetch(
        _DISPUTE + " WHERE ($1 OR $2 IN (o.buyer_id, o.seller_id))"
        " AND ($3::market.dispute_status_enum IS NULL OR d.status = $3)"
        " AND ($4::bigint IS NULL OR d.id < $4) ORDER BY d.id DESC LIMIT $5",
        staff,
        who.id,
        query.status,
        after[0] if after else None,
        query.limit + 1,
    )
    items = [DisputeOut(**dict(r), messages=[]) for r in rows]
    return page_of(items, query.limit, lambda d: (d.id,))


@endpoint(
    routes,
    "GET",
    "/v1/disputes/{dispute_id}",
    summary="A dispute with its messages (its parties and support staff)",
    tag="market disputes",
    response=DisputeOut,
    errors=(400, 401, 404),
)
async def get_dispute(request: web.Request) -> DisputeOut:
    who = await me(request)
    dispute = path_id(request, "dispute_id")
    await _standing(request.app[POOL], dispute, who.id)
    return await _one(request.app[POOL], dispute)


@endpoint(
    routes,
    "POST",
    "/v1/disputes/{dispute_id}/messages",
    summary="Write in a dispute that is not closed (its parties and support staff)",
    tag="market disputes",
    body=MessageBody,
    response=DisputeOut,
    status=201,
    errors=(400, 401, 404, 409),
)
async def write(request: web.Request, body: MessageBody) -> DisputeOut:
    who = await me(request)
    dispute = path_id(request, "dispute_id")
    pool = request.app[POOL]
    async with pool.acquire() as conn, conn.transaction():
        people = await _standing(conn, dispute, who.id)
        status = await conn.fetchval(
            "SELECT status::text FROM market.disputes WHERE id = $1 FOR NO KEY UPDATE", dispute
        )
        if status == "closed":
            raise Conflict("the dispute is closed")
        message = await conn.fetchval(
            "INSERT INTO market.dispute_messages (dispute_id, user_id, content, attachments)"
            " VALUES ($1, $2, $3, $4) RETURNING id",
            dispute,
            who.id,
            body.content,
            body.attachments,
        )
        await _tell(conn, dispute, people, who.id, body.content, f"message:{message}")
    return await _one(pool, dispute)


@endpoint(
    routes,
    "POST",
    "/v1/disputes/{dispute_id}/status",
    summary="Move a dispute on (support staff): in_progress, resolved (with a resolution), closed",
    tag="market disputes",
    body=StatusBody,
    response=DisputeOut,
    errors=(400, 401, 403, 404, 409),
)
async def move(request: web.Request, body: StatusBody) -> DisputeOut:
    who = await me(request)
    dispute = path_id(request, "dispute_id")
    pool = request.app[POOL]
    async with pool.acquire() as conn, conn.transaction():
        people = await _standing(conn, dispute, who.id)
        if not await has_role(request, who.id, STAFF_ROLE):
            raise Forbidden("support staff move disputes")
        current = await conn.fetchval(
            "SELECT status::text FROM market.disputes WHERE id = $1 FOR NO KEY UPDATE", dispute
        )
        if body.status not in NEXT.get(current, frozenset()):
            raise Conflict(f"illegal dispute status transition: {current} -> {body.status}")
        if body.status == "resolved" and not (body.resolution or "").strip():
            raise BadRequest("a resolved dispute needs its `resolution`")
        await conn.execute(
            "UPDATE market.disputes SET status = $2::market.dispute_status_enum,"
            " resolution = coalesce($3, resolution),"
            " resolved_by = CASE WHEN $2 = 'resolved' THEN $4 ELSE resolved_by END,"
            " resolved_at = CASE WHEN $2 = 'resolved' THEN now() ELSE resolved_at END"
            " WHERE id = $1",
            dispute,
            body.status,
            body.resolution,
            who.id,
        )
        what = f"The dispute is {body.status.replace('_', ' ')}"
        await _tell(conn, dispute, people, who.id, what, body.status)
    return await _one(pool, dispute)
