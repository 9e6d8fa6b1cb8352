"""Market orders: who sees an order, who may move it to which status (the schema keeps the
documented state order itself), courier assignment, and courier positions with their thinning
rule. Plain async functions over a connection, used by the REST routes and the order
namespace. Every status change writes order_status_history in its transaction (a trigger of
4006), settles, releases or refunds money and stock in it (money.after_status_change), and
reaches the order's channel and its parties' streams at commit (4016); the buyer is notified
(events.order_status)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import asyncpg

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from realms.market import events, money

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

# Who moves an order to a status (besides admins): the seller prepares it, the assigned
# courier carries it; the buyer may cancel while it is pending. Refunds are accounting's.
SELLER_STATUSES = frozenset({"confirmed", "processing", "ready_for_pickup", "cancelled"})
COURIER_STATUSES = frozenset({"picked_up", "in_transit", "delivered"})
BUYER_STATUSES = frozenset({"cancelled"})
# After pickup the goods are with the courier: the seller no longer cancels.
SELLER_CANCELS_BEFORE = frozenset({"pending", "confirmed", "processing", "ready_for_pickup"})
FINAL = frozenset({"delivered", "cancelled", "refunded"})
# The tracking status a courier's row takes in each order status (tracking_status_enum).
TRACKING_STATUS = {"picked_up": "picked_up", "in_transit": "in_transit", "delivered": "delivered"}
# Thinning: a courier's positions within this many seconds of a row's creation overwrite
# that row (its latest position); the next one after it starts a new row.
TRACK_WINDOW_S = 30.0


@dataclass(frozen=True)
class Party:
    """How a user stands to an order: buyer, seller, courier or staff."""

    order_id: int
    role: str
    status: str


async def is_staff(conn: Conn, user_id: int) -> bool:
    """An active admin holding any unexpired admin role."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM market.admin_roles r JOIN market.users u"
            "  ON u.id = r.user_id WHERE r.user_id = $1 AND u.role = 'admin'"
            "  AND u.status = 'active' AND u.deleted_at IS NULL"
            "  AND (r.expires_at IS NULL OR r.expires_at > now()))",
            user_id,
        )
    )


async def party(conn: Conn, order_id: int, user_id: int) -> Party:
    """The user's standing; Forbidden for strangers, NotFound for no such order."""
    row = await conn.fetchrow(
        "SELECT buyer_id, seller_id, courier_id, status::text AS status FROM market.orders"
        " WHERE id = $1 AND deleted_at IS NULL",
        order_id,
    )
    if row is None:
        raise NotFound(f"order {order_id} does not exist")
    for role in ("courier", "seller", "buyer"):
        if row[f"{role}_id"] == user_id:
            return Party(order_id, role, row["status"])
    if await is_staff(conn, user_id):
        return Party(order_id, "staff", row["status"])
    raise Forbidden("only the order's buyer, seller, courier and staff may see it")


def _may_set(who: Party, status: str, accounting: bool) -> None:
    if status == "refunded":
        if not accounting:
            raise Forbidden("refunds are made by accounting")
        return
    if who.role == "staff":
        return
    if who.role == "seller" and status in SELLER_STATUSES:
        if status == "cancelled" and who.status not in SELLER_CANCELS_BEFORE:
            raise Forbidden("after pickup only staff cancel an order")
        return
    if who.role == "courier" and status in COURIER_STATUSES:
        return
    if who.role == "buyer" and status in BUYER_STATUSES:
        if who.status != "pending":
            raise Forbidden("a buyer cancels an order only while it is pending")
        return
    raise Forbidden(f"the order's {who.role} does not set status {status}")


async def change_status(
    conn: asyncpg.Connection, order_id: int, actor: int, status: str, notes: str | None
) -> str:
    """Move the order to `status` for `actor`; returns the previous status. Conflict for a
    change the documented state order refuses; Forbidden for one the actor may not make."""
    async with conn.transaction():
        who = await party(conn, order_id, actor)
        current = await conn.fetchrow(
            "SELECT status::text AS status, courier_id, buyer_id, order_number"
            "  FROM market.orders WHERE id = $1"
            " FOR NO KEY UPDATE",
            order_id,
        )
        who = Party(order_id, who.role, current["status"])
        accounting = await conn.fetchval("SELECT market.has_admin_role($1, 'accounting')", actor)
        _may_set(who, status, bool(accounting))
        if status == current["status"]:
            raise Conflict(f"the order is {status} already")
        if status in COURIER_STATUSES and current["courier_id"] is None:
            raise Conflict("assign a courier first")
        await conn.execute(
            "SELECT set_config('market.actor_id', $1, true),"
            " set_config('market.status_notes', coalesce($2, ''), true)",
            str(actor),
            notes,
        )
        try:
            await conn.execute(
                "UPDATE market.orders SET status = $2::market.order_status_enum,"
                " cancelled_by = CASE WHEN $2 = 'cancelled' THEN $3 ELSE cancelled_by END,"
                " cancellation_reason = CASE WHEN $2 = 'cancelled' THEN $4"
                "   ELSE cancellation_reason END"
                " WHERE id = $1",
                order_id,
                status,
                actor,
                notes,
            )
        except asyncpg.CheckViolationError as exc:
            if exc.constraint_name == "orders_status_transition":
                raise Conflict(str(exc)) from None
            raise
        await money.after_status_change(conn, order_id, current["status"], status)
        await events.order_status(
            conn, order_id, current["order_number"], current["buyer_id"], status
        )
        tracking = TRACKING_STATUS.get(status)
        if tracking is not None and current["courier_id"] is not None:
            # Every status change of a carried order is a tracking row too, at the last
            # known position.
            await conn.execute(
                "INSERT INTO market.order_tracking"
                " (order_id, courier_id, status, latitude, longitude, notes)"
                " SELECT $1, $2, $3::market.tracking_status_enum, l.latitude, l.longitude, $4"
                "   FROM (SELECT NULL) x LEFT JOIN LATERAL ("
                "     SELECT latitude, longitude FROM market.order_tracking"
                "      WHERE order_id = $1 AND latitude IS NOT NULL"
                "      ORDER BY created_at DESC, id DESC LIMIT 1) l ON true",
                order_id,
                current["courier_id"],
                tracking,
                notes,
            )
    return str(current["status"])


async def assign_courier(conn: asyncpg.Connection, order_id: int, actor: int, courier: int) -> None:
    """The seller (or staff) assigns a courier before pickup; the former courier's sockets
    leave the order's channel (4016)."""
    async with conn.transaction():
        who = await party(conn, order_id, actor)
        if who.role not in ("seller", "staff"):
            raise Forbidden("the seller or staff assign couriers")
        if who.status in FINAL or who.status in ("picked_up", "in_transit"):
            raise Conflict(f"the order is {who.status}: its courier is settled")
        role = await conn.fetchval(
            "SELECT role::text FROM market.users"
            " WHERE id = $1 AND status = 'active' AND deleted_at IS NULL",
            courier,
        )
        if role != "courier":
            raise BadRequest(f"user {courier} is not an active courier")
        await conn.execute(
            "UPDATE market.orders SET courier_id = $2 WHERE id = $1", order_id, courier
        )
        await conn.execute(
            "INSERT INTO market.order_tracking (order_id, courier_id, status)"
            " VALUES ($1, $2, 'assigned')",
            order_id,
            courier,
        )


# The courier's position: overwrite the order's latest row when it is this courier's, in the
# order's current tracking status and younger than the window; else start a new row. No row
# when the courier is not the order's or the order is final.
RECORD_POSITION = """
WITH o AS (
    SELECT CASE status WHEN 'picked_up' THEN 'picked_up' WHEN 'in_transit' THEN 'in_transit'
                       ELSE 'assigned' END::market.tracking_status_enum AS tracking
      FROM market.orders
     WHERE id = $1 AND courier_id = $2 AND deleted_at IS NULL
       AND status NOT IN ('delivered', 'cancelled', 'refunded')
),
latest AS (
    SELECT t.id, t.courier_id, t.status, t.created_at FROM market.order_tracking t
     WHERE t.order_id = $1 ORDER BY t.created_at DESC, t.id DESC LIMIT 1
),
upd AS (
    UPDATE market.order_tracking t SET latitude = $3, longitude = $4
      FROM latest l, o
     WHERE t.id = l.id AND l.courier_id = $2 AND l.status = o.tracking
       AND l.created_at > now() - make_interval(secs => $5)
    RETURNING t.id, t.status
),
ins AS (
    INSERT INTO market.order_tracking (order_id, courier_id, status, latitude, longitude)
    SELECT $1, $2, o.tracking, $3, $4 FROM o WHERE NOT EXISTS (SELECT 1 FROM upd)
    RETURNING id, status
)
SELECT $1::bigint AS order_id, id, status::text AS status FROM upd
UNION ALL SELECT $1::bigint, id, status::text FROM ins
"""
