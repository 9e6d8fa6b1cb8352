"""Bank transfers of market orders: the order waits `pending` until staff with the accounting
role confirm the money arrived; the confirmation pays it through money.mark_paid, audited
with who confirmed it and the bank's reference."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from kernel.errors import Conflict, NotFound
from realms.market import money
from realms.market.payments import trail


@dataclass(frozen=True)
class Confirmed:
    order_id: int
    order_number: str
    payment_status: str
    status: str
    reference: str


async def confirm_bank_transfer(
    pool: asyncpg.Pool, order_id: int, staff: int, reference: str
) -> Confirmed:
    """Accounting saw the order's bank transfer arrive (`reference`: the bank's): the order
    is paid through money.mark_paid (settled to the seller at once when already delivered),
    audited with the confirming user, and its parties are told. NotFound for no such order;
    Conflict for an order not paid by bank transfer, paid already, or cancelled."""
    async with pool.acquire() as conn, conn.transaction():
        order = await conn.fetchrow(
            "SELECT order_number, payment_method::text AS method, payment_status::text AS paid,"
            " status::text AS status, total_amount, currency FROM market.orders"
            " WHERE id = $1 AND deleted_at IS NULL FOR NO KEY UPDATE",
            order_id,
        )
        if order is None:
            raise NotFound(f"order {order_id} does not exist")
        if order["method"] != "bank_transfer":
            raise Conflict(
                f"order {order_id} is paid by {order['method']}, not by bank transfer",
                details={"reason": "not_bank_transfer"},
            )
        if order["status"] in ("cancelled", "refunded"):
            raise Conflict(
                f"order {order_id} is {order['status']}: return the transfer instead",
                details={"reason": f"order_{order['status']}"},
            )
        if not await money.mark_paid(conn, order_id):
            raise Conflict(
                f"order {order_id}'s payment is {order['paid']} already",
                details={"reason": "already_paid"},
            )
        await trail.audit(
            conn,
            order_id,
            "payment.bank_transfer_confirmed",
            {
                "reference": reference,
                "amount": str(order["total_amount"]),
                "currency": order["currency"],
                "payment_status": "paid",
            },
            user=staff,
            old={"payment_status": order["paid"]},
        )
        await trail.tell_paid(conn, order_id, "bank transfer")
    return Confirmed(order_id, order["order_number"], "paid", order["status"], reference)
