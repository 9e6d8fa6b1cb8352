"""/v1/market/returns: the buyer of a delivered order asks to return items of it; the seller
or accounting staff decide and refund (realms/market/returns.py holds the rules). The seller
is told of a new return, the buyer of every move (category order)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

import asyncpg
from aiohttp import web
from msgspec import Meta, Struct

from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from realms.market import events, returns
from realms.market.routes.access import has_role, me, path_id

routes = web.RouteTableDef()

Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]
Status = Literal["requested", "approved", "rejected", "in_transit", "received", "refunded"]


class ItemBody(Struct, forbid_unknown_fields=True, kw_only=True):
    order_item_id: Id
    quantity: Annotated[int, Meta(ge=1, le=1_000_000)]
    condition: Literal["unopened", "opened", "used", "damaged"]
    reason: Annotated[str, Meta(max_length=2000)] | None = None
    images: Annotated[list[Annotated[str, Meta(max_length=2000)]], Meta(max_length=10)] = []


class ReturnBody(Struct, forbid_unknown_fields=True, kw_only=True):
    order_id: Id
    reason: Annotated[str, Meta(min_length=1, max_length=5000, pattern=r"\S")]
    refund_method: Literal["original_payment", "gogomoney", "bank_transfer"]
    items: Annotated[list[ItemBody], Meta(min_length=1, max_length=100)]


class MoveBody(Struct, forbid_unknown_fields=True, kw_only=True):
    status: Literal["approved", "rejected", "in_transit", "received", "refunded"]
    notes: Annotated[str, Meta(max_length=5000)] | None = None
    tracking_number: Annotated[str, Meta(max_length=100)] | None = None


class ItemOut(Struct):
    id: int
    order_item_id: int
    product_id: int
    product_name: str
    quantity: int
    condition: str
    reason: str | None
    images: list[str]


class ReturnOut(Struct):
    id: int
    order_id: int
    buyer_id: int
    seller_id: int
    reason: str
    status: str
    refund_amount: Decimal
    refund_method: str
    tracking_number: str | None
    notes: str | None
    approved_by: int | None
    approved_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    items: list[ItemOut]


class ReturnsQuery(PageQuery, kw_only=True):
    status: Status | None = None


_RETURN = (
    "SELECT r.id, r.order_id, r.buyer_id, o.seller_id, r.reason, r.status::text AS status,"
    " r.refund_amount, r.refund_method::text AS refund_method, r.tracking_number, r.notes,"
    " r.approved_by, r.approved_at, r.completed_at, r.created_at"
    " FROM market.returns r JOIN market.orders o ON o.id = r.order_id"
)


async def _one(pool: asyncpg.Pool, return_id: int) -> ReturnOut:
    row = await pool.fetchrow(_RETURN + " WHERE r.id = $1", return_id)
    items = await pool.fetch(
        "SELECT ri.id, ri.order_item_id, i.product_id, i.product_name, ri.quantity,"
        " ri.condition::text AS condition, ri.reason,"
        " coalesce(ri.images, '[]'::jsonb) AS images"
        " FROM market.return_items ri JOIN market.order_items i ON i.id = ri.order_item_id"
        " WHERE ri.return_id = $1 ORDER BY ri.id",
        return_id,
    )
    return ReturnOut(**dict(row), items=[ItemOut(**dict(i)) for i in items])


@endpoint(
    routes,
    "POST",
    "/v1/returns",
    summary="Ask to return items of one's delivered order within the return window (409: not"
    " delivered, window closed, more than ordered less earlier returns)",
    tag="market returns",
    body=ReturnBody,
    response=ReturnOut,
    status=201,
    errors=(400, 401, 404, 409),
)
async def request_return(request: web.Request, body: ReturnBody) -> ReturnOut:
    who = await me(request)
    pool = request.app[POOL]
    async with pool.acquire() as conn, conn.transaction():
        return_id = await returns.request_return(
            conn,
            buyer_id=who.id,
            order_id=body.order_id,
            reason=body.reason,
            refund_method=body.refund_method,
            items=[
                returns.ItemIn(i.order_item_id, i.quantity, i.condition, i.reason, i.images)
                for i in body.items
            ],
        )
        seller = await conn.fetchval(
            "SELECT seller_id FROM market.orders WHERE id = $1", body.order_id
        )
        await events.tell(
            conn,
            event_key=f"return:{return_id}:requested",
            users=[seller],
            kind="order",
            title="Return requested",
            message=body.reason[:200],
            action_url=f"/returns/{return_id}",
        )
    return await _one(pool, return_id)


@endpoint(
    routes,
    "GET",
    "/v1/returns",
    summary="Returns, newest first: one's own (buyer), of one's orders (seller), or all"
    " (accounting staff)",
    tag="market returns",
    query=ReturnsQuery,
    response=Page[ReturnOut],
    errors=(400, 401),
)
async def list_returns(request: web.Request, query: ReturnsQuery) -> Page[ReturnOut]:
    who = await me(request)
    staff = await has_role(request, who.id, returns.STAFF_ROLE)
    after = decode_cursor(query.cursor, int)
    rows = await request.app[POOL].fetch(
        _RETURN + " WHERE ($1 OR $2 IN (o.buyer_id, o.seller_id))"
        " AND ($3::market.return_status_enum IS NULL OR r.status = $3)"
        " AND ($4::bigint IS NULL OR r.id < $4) ORDER BY r.id DESC LIMIT $5",
        staff,
        who.id,
        query.status,
        after[0] if after else None,
        query.limit + 1,
    )
    items = [ReturnOut(**dict(r), items=[]) for r in rows]
    return page_of(items, query.limit, lambda r: (r.id,))


@endpoint(
    routes,
    "GET",
    "/v1/returns/{return_id}",
    summary="A return with its items (its buyer, the order's seller, accounting staff)",
    tag="market returns",
    response=ReturnOut,
    errors=(400, 401, 404),
)
async def get_return(request: web.Request) -> ReturnOut:
    who = await me(request)
    return_id = path_id(request, "return_id")
    await returns.standing(request.app[POOL], return_id, who.id)
    return await _one(request.app[POOL], return_id)


@endpoint(
    routes,
    "POST",
    "/v1/returns/{return_id}/status",
    summary="Move a return: the seller or accounting approve, reject, receive and refund; the"
    " buyer ships it (in_transit with a tracking number). 409: illegal transition or the"
    " seller's wallet cannot cover the refund",
    tag="market returns",
    body=MoveBody,
    response=ReturnOut,
    errors=(400, 401, 403, 404, 409),
)
async def move_return(request: web.Request, body: MoveBody) -> ReturnOut:
    who = await me(request)
    return_id = path_id(request, "return_id")
    pool = request.app[POOL]
    async with pool.acquire() as conn, conn.transaction():
        seen = await returns.move(
            conn,
            return_id=return_id,
            user=who.id,
            status=body.status,
            notes=body.notes,
            tracking_number=body.tracking_number,
        )
        tell = [seen.seller_id] if body.status == "in_transit" else [seen.buyer_id]
        await events.tell(
            conn,
            event_key=f"return:{return_id}:{body.status}",
            users=[u for u in tell if u != who.id],
            kind="order",
            title="Return update",
            message=f"Return {return_id} is {body.status.replace('_', ' ')}",
            action_url=f"/returns/{return_id}",
            priority="high" if body.status == "refunded" else "medium",
        )
    return await _one(pool, return_id)
