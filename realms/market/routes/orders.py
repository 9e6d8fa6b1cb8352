"""/v1/market/orders: the caller's orders (as buyer, seller or courier), one order with its
items, status history and latest position, status changes by the documented state order and
role (seller prepares, courier carries, buyer cancels while pending, accounting refunds,
staff any legal change), and courier assignment."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from realms.market import orders

routes = web.RouteTableDef()

Status = Literal[
    "pending",
    "confirmed",
    "processing",
    "ready_for_pickup",
    "picked_up",
    "in_transit",
    "delivered",
    "cancelled",
    "refunded",
]


class OrdersQuery(PageQuery, kw_only=True):
    role: Literal["buyer", "seller", "courier"] | None = None
    status: Status | None = None


class OrderSummary(Struct):
    id: int
    order_number: str
    status: str
    buyer_id: int
    seller_id: int
    courier_id: int | None
    total_amount: Decimal
    currency: str
    created_at: datetime


class ItemOut(Struct):
    product_id: int
    product_name: str
    quantity: int
    unit_price: Decimal
    subtotal: Decimal


class HistoryOut(Struct):
    status: str
    notes: str | None
    changed_by: int | None
    created_at: datetime


class PositionOut(Struct):
    status: str
    latitude: Decimal | None
    longitude: Decimal | None
    created_at: datetime


class OrderOut(Struct):
    id: int
    order_number: str
    status: str
    payment_status: str
    buyer_id: int
    seller_id: int
    courier_id: int | None
    total_amount: Decimal
    currency: str
    created_at: datetime
    channel: str
    items: list[ItemOut]
    history: list[HistoryOut]
    position: PositionOut | None


class StatusBody(Struct, forbid_unknown_fields=True):
    status: Status
    notes: Annotated[str, Meta(max_length=1000)] | None = None


class StatusChanged(Struct):
    id: int
    previous: str
    status: str


class CourierBody(Struct, forbid_unknown_fields=True):
    courier_id: Annotated[int, Meta(ge=1, le=2**63 - 1)]


def _order_id(request: web.Request) -> int:
    raw = request.match_info["order_id"]
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise BadRequest(f"order id {raw!r} is not a positive integer")
    return int(raw)


_SUMMARY = (
    "id, order_number, status::text AS status, buyer_id, seller_id, courier_id, total_amount,"
    " currency, created_at"
)


@endpoint(
    routes,
    "GET",
    "/v1/orders",
    summary="The caller's orders as buyer, seller or courier (or in one role), newest first",
    tag="market orders",
    query=OrdersQuery,
    response=Page[OrderSummary],
    errors=(400, 401),
)
async def list_orders(request: web.Request, query: OrdersQuery) -> Page[OrderSummary]:
    me = int((await caller(request)).subject)
    after = decode_cursor(query.cursor, datetime, int)
    rows = await request.app[POOL].fetch(
        f"SELECT {_SUMMARY} FROM market.orders"
        " WHERE deleted_at IS NULL"
        "   AND CASE $2::text WHEN 'buyer' THEN buyer_id = $1 WHEN 'seller' THEN seller_id = $1"
        "       WHEN 'courier' THEN courier_id = $1"
        "       ELSE $1 IN (buyer_id, seller_id, courier_id) END"
        "   AND ($3::market.order_status_enum IS NULL OR status = $3)"
        "   AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5))"
        " ORDER BY created_at DESC, id DESC LIMIT $6",
        me,
        query.role,
        query.status,
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
    )
    items = [OrderSummary(**dict(r)) for r in rows]
    return page_of(items, query.limit, lambda o: (o.created_at.isoformat(), o.id))


@endpoint(
    routes,
    "GET",
    "/v1/orders/{order_id}",
    summary="An order with its items, status history and the courier's latest position",
    tag="market orders",
    response=OrderOut,
    errors=(400, 401, 403, 404),
)
async def get_order(request: web.Request) -> OrderOut:
    me, order_id = int((await caller(request)).subject), _order_id(request)
    pool = request.app[POOL]
    await orders.party(pool, order_id, me)
    row = await pool.fetchrow(
        f"SELECT {_SUMMARY}, payment_status::text AS payment_status FROM market.orders"
        " WHERE id = $1",
        order_id,
    )
    items = await pool.fetch(
        "SELECT product_id, product_name, quantity, unit_price, subtotal FROM market.order_items"
        " WHERE order_id = $1 ORDER BY id",
        order_id,
    )
    history = await pool.fetch(
        "SELECT status::text AS status, notes, changed_by, created_at"
        "  FROM market.order_status_history WHERE order_id = $1 ORDER BY created_at, id",
        order_id,
    )
    position = await pool.fetchrow(
        "SELECT status::text AS status, latitude, longitude, created_at"
        "  FROM market.order_tracking WHERE order_id = $1"
        " ORDER BY created_at DESC, id DESC LIMIT 1",
        order_id,
    )
    return OrderOut(
        channel=f"market.order:{order_id}",
        items=[ItemOut(**dict(i)) for i in items],
        history=[HistoryOut(**dict(h)) for h in history],
        position=PositionOut(**dict(position)) if position else None,
        **dict(row),
    )


@endpoint(
    routes,
    "POST",
    "/v1/orders/{order_id}/status",
    summary="Move an order to its next status (409: the documented state order refuses it)",
    tag="market orders",
    body=StatusBody,
    response=StatusChanged,
    errors=(400, 401, 403, 404, 409),
)
async def change_status(request: web.Request, body: StatusBody) -> StatusChanged:
    me, order_id = int((await caller(request)).subject), _order_id(request)
    async with request.app[POOL].acquire() as conn:
        previous = await orders.change_status(conn, order_id, me, body.status, body.notes)
    return StatusChanged(order_id, previous, body.status)


@endpoint(
    routes,
    "PUT",
    "/v1/orders/{order_id}/courier",
    summary="Assign the order's courier (its seller or staff, before pickup)",
    tag="market orders",
    body=CourierBody,
    status=204,
    errors=(400, 401, 403, 404, 409),
)
async def assign_courier(request: web.Request, body: CourierBody) -> None:
    me, order_id = int((await caller(request)).subject), _order_id(request)
    async with request.app[POOL].acquire() as conn:
        await orders.assign_courier(conn, order_id, me, body.courier_id)
