"""Market returns (`returns`, `return_items`): the buyer of a delivered order asks to return
some of its items within the return window; the seller or accounting staff approve or reject
it; the buyer ships it back (in_transit, with a tracking number); the seller or staff mark it
received and refund it. The refund moves money only through realms/market/money.py. Plain
async functions over a connection, run in the caller's transaction; every one locks the
order's row first (FOR NO KEY UPDATE), so requests, refunds and status changes of one order
queue there and quantities and refunds are checked against committed state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from realms.market import money

# A delivered order may be returned for this long after its actual delivery date.
RETURN_WINDOW = timedelta(days=14)
# Admin role that decides and refunds returns besides the seller (money: accounting).
STAFF_ROLE = "accounting"
# Who may move a return from which state to which (`party`: buyer, seller or staff).
MOVES: dict[str, dict[str, frozenset[str]]] = {
    "requested": {
        "approved": frozenset({"seller", "staff"}),
        "rejected": frozenset({"seller", "staff"}),
    },
    "approved": {
        "in_transit": frozenset({"buyer"}),
        "received": frozenset({"seller", "staff"}),
        "refunded": frozenset({"seller", "staff"}),
    },
    "in_transit": {
        "received": frozenset({"seller", "staff"}),
        "refunded": frozenset({"seller", "staff"}),
    },
    "received": {"refunded": frozenset({"seller", "staff"})},
}
# States whose items count as returned (a rejected return gives its quantities back).
LIVE = ("requested", "approved", "in_transit", "received", "refunded")


@dataclass(frozen=True)
class ItemIn:
    order_item_id: int
    quantity: int
    condition: str
    reason: str | None
    images: list[str]


@dataclass(frozen=True)
class Standing:
    """A return as seen by one user: its order's parties and the user's party."""

    return_id: int
    order_id: int
    buyer_id: int
    seller_id: int
    status: str
    party: str  # buyer, seller or staff


def _item_refund(net: Decimal, ordered: int, returned: int) -> Decimal:
    """The refund of `returned` of an item whose `ordered` units cost `net` after discount."""
    return money.cents(net * returned / ordered)


async def request_return(
    conn: asyncpg.Connection,
    *,
    buyer_id: int,
    order_id: int,
    reason: str,
    refund_method: str,
    items: list[ItemIn],
) -> int:
    """A new `requested` return of `items` of the buyer's delivered order; its id. The refund
    amount is each item's price after its discount for the returned share, rounded to the
    cent (shipping is not refunded). NotFound unless the order is the buyer's; Conflict when
    the order is not delivered, the window closed, or an item's quantity exceeds what was
    ordered less what live returns already hold."""
    ids = [i.order_item_id for i in items]
    if len(set(ids)) != len(ids):
        raise BadRequest("an order item appears twice in `items`")
    order = await conn.fetchrow(
        "SELECT buyer_id, status::text AS status, actual_delivery_date AS delivered_at,"
        " now() AS now FROM market.orders WHERE id = $1 AND deleted_at IS NULL"
        " FOR NO KEY UPDATE",
        order_id,
    )
    if order is None or order["buyer_id"] != buyer_id:
        raise NotFound(f"you have no order {order_id}")
    if order["status"] != "delivered":
        raise Conflict(
            f"only a delivered order can be returned; order {order_id} is {order['status']}",
            details={"reason": "order_not_delivered"},
        )
    delivered_at: datetime | None = order["delivered_at"]
    if delivered_at is not None and order["now"] > delivered_at + RETURN_WINDOW:
        raise Conflict(
            f"the return window of order {order_id} closed at"
            f" {(delivered_at + RETURN_WINDOW).isoformat()}",
            details={"reason": "return_window_closed"},
        )
    rows = await conn.fetch(
        "SELECT i.id, i.quantity, i.subtotal - i.discount_amount AS net,"
        " coalesce((SELECT sum(ri.quantity) FROM market.return_items ri"
        "   JOIN market.returns r ON r.id = ri.return_id"
        "  WHERE ri.order_item_id = i.id AND r.status::text = ANY ($3::text[])), 0) AS held"
        " FROM market.order_items i WHERE i.order_id = $1 AND i.id = ANY ($2::bigint[])",
        order_id,
        ids,
        list(LIVE),
    )
    found = {r["id"]: r for r in rows}
    refund = Decimal("0.00")
    for item in items:
        row = found.get(item.order_item_id)
        if row is None:
            raise NotFound(f"order {order_id} has no item {item.order_item_id}")
        left = row["quantity"] - row["held"]
        if item.quantity > left:
            raise Conflict(
                f"cannot return {item.quantity} of order item {item.order_item_id}:"
                f" {row['quantity']} ordered, {row['held']} already in returns",
                details={"reason": "quantity_above_ordered"},
            )
        refund += _item_refund(row["net"], row["quantity"], item.quantity)
    return_id: int = await conn.fetchval(
        "INSERT INTO market.returns (order_id, buyer_id, reason, refund_amount, refund_method)"
        " VALUES ($1, $2, $3, $4, $5::market.refund_method_enum) RETURNING id",
        order_id,
        buyer_id,
        reason,
        refund,
        refund_method,
    )
    await conn.executemany(
        "INSERT INTO market.return_items"
        " (return_id, order_item_id, quantity, reason, condition, images)"
        " VALUES ($1, $2, $3, $4, $5::market.return_condition_enum, $6::jsonb)",
        [(return_id, i.order_item_id, i.quantity, i.reason, i.condition, i.images) for i in items],
    )
    return return_id


async def standing(conn: asyncpg.Connection | asyncpg.Pool, return_id: int, user: int) -> Standing:
    """The return as `user` sees it; NotFound unless they are its buyer, its order's seller,
    or accounting staff (a party of the order counts as that party even if also staff)."""
    row = await conn.fetchrow(
        "SELECT r.order_id, o.buyer_id, o.seller_id, r.status::text AS status,"
        " market.has_admin_role($2, $3) AS staff"
        " FROM market.returns r JOIN market.orders o ON o.id = r.order_id WHERE r.id = $1",
        return_id,
        user,
        STAFF_ROLE,
    )
    if row is None:
        raise NotFound(f"return {return_id} does not exist")
    if user == row["buyer_id"]:
        party = "buyer"
    elif user == row["seller_id"]:
        party = "seller"
    elif row["staff"]:
        party = "staff"
    else:
        raise NotFound(f"return {return_id} does not exist")
    return Standing(
        return_id, row["order_id"], row["buyer_id"], row["seller_id"], row["status"], party
    )


async def move(
    conn: asyncpg.Connection,
    *,
    return_id: int,
    user: int,
    status: str,
    notes: str | None = None,
    tracking_number: str | None = None,
) -> Standing:
    """Move the return to `status` as `user`; the standing before the move. Conflict for a
    move the state order refuses, Forbidden for a party that may not make it. `approved`
    stamps approved_by/approved_at; `in_transit` needs a tracking number; `refunded` pays
    the refund (refund()) and stamps completed_at."""
    seen = await standing(conn, return_id, user)
    await conn.execute("SELECT 1 FROM market.orders WHERE id = $1 FOR NO KEY UPDATE", seen.order_id)
    current = await conn.fetchval(
        "SELECT status::text FROM market.returns WHERE id = $1 FOR NO KEY UPDATE", return_id
    )
    allowed = MOVES.get(current, {}).get(status)
    if allowed is None:
        raise Conflict(f"illegal return status transition: {current} -> {status}")
    if seen.party not in allowed:
        who = " or ".join(sorted(allowed))
        raise Forbidden(f"only the {who} may move a return to {status}")
    if status == "in_transit" and not (tracking_number or "").strip():
        raise BadRequest("a return in transit needs its `tracking_number`")
    if status == "refunded":
        await refund(conn, return_id)
    await conn.execute(
        "UPDATE market.returns SET status = $2::market.return_status_enum,"
        " notes = coalesce($3, notes), tracking_number = coalesce($4, tracking_number),"
        " approved_by = CASE WHEN $2 = 'approved' THEN $5 ELSE approved_by END,"
        " approved_at = CASE WHEN $2 = 'approved' THEN now() ELSE approved_at END,"
        " completed_at = CASE WHEN $2 IN ('refunded', 'rejected') THEN now()"
        "   ELSE completed_at END"
        " WHERE id = $1",
        return_id,
        status,
        notes,
        tracking_number,
        user,
    )
    return seen


async def refund(conn: asyncpg.Connection, return_id: int) -> None:
    """Pay an approved return's refund (the order's row is locked by the caller).

    - The seller gives back what they earned on the returned share: the refund less the
      order's commission on it (the order's commission in proportion to its items' value),
      as a `withdrawal` referencing the return, when the order was settled to them. A wallet
      that cannot cover it is Conflict (insufficient_funds) and nothing changes.
    - The buyer gets the refund in their GoGoMoney wallet (`refund`, referencing the return)
      for `gogomoney`, and for `original_payment` of a GoGoMoney order; card, cash and bank
      transfer refunds are paid outside (no payment provider is wired) and only recorded.
    - The order's payment becomes `refunded` once refunded returns cover its items' value,
      `partially_refunded` before. Conflict when the order holds no payment to refund."""
    ret = await conn.fetchrow(
        "SELECT r.refund_amount, r.refund_method::text AS method, o.id AS order_id,"
        " o.buyer_id, o.seller_id, o.order_number, o.commission_amount,"
        " o.payment_method::text AS paid_with, o.payment_status::text AS paid,"
        " (SELECT coalesce(sum(i.subtotal - i.discount_amount), 0) FROM market.order_items i"
        "   WHERE i.order_id = o.id) AS items_net,"
        " (SELECT coalesce(sum(x.refund_amount), 0) FROM market.returns x"
        "   WHERE x.order_id = o.id AND x.status = 'refunded') AS refunded_before,"
        " EXISTS (SELECT 1 FROM market.wallet_transactions t"
        "   JOIN market.wallets w ON w.id = t.wallet_id"
        "  WHERE w.user_id = o.seller_id AND t.reference_type = 'order'"
        "    AND t.reference_id = o.id AND t.type = 'deposit') AS settled"
        " FROM market.returns r JOIN market.orders o ON o.id = r.order_id WHERE r.id = $1",
        return_id,
    )
    if ret["paid"] not in ("paid", "partially_refunded"):
        raise Conflict(
            f"order {ret['order_number']} holds no payment to refund (payment {ret['paid']})",
            details={"reason": "nothing_to_refund"},
        )
    amount: Decimal = ret["refund_amount"]
    label = f"return {return_id} of order {ret['order_number']}"
    if ret["settled"] and amount > 0 and ret["items_net"] > 0:
        commission = money.cents(amount * ret["commission_amount"] / ret["items_net"])
        clawback = amount - commission
        if clawback > 0:
            seller_wallet = await money.wallet_of(conn, ret["seller_id"])
            await money.move(
                conn, seller_wallet, "withdrawal", -clawback, ("return", return_id), label
            )
    to_wallet = ret["method"] == "gogomoney" or (
        ret["method"] == "original_payment" and ret["paid_with"] == "gogomoney"
    )
    if to_wallet and amount > 0:
        buyer_wallet = await money.wallet_of(conn, ret["buyer_id"])
        await money.move(conn, buyer_wallet, "refund", amount, ("return", return_id), label)
    whole = ret["refunded_before"] + amount >= ret["items_net"]
    await conn.execute(
        "UPDATE market.orders SET payment_status = $2::market.payment_status_enum WHERE id = $1",
        ret["order_id"],
        "refunded" if whole else "partially_refunded",
    )
