"""A card checkout's payment: the order is committed `pending` by checkout.place_order, then
charged through Stripe (one PaymentIntent per order, keyed by the order); a success is paid
through money.mark_paid, a decline or a refused payment method marks the payment `failed`,
an intent still processing waits for the webhook."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from kernel.errors import BadRequest
from kernel.logs import EventLog
from kernel.payments.stripe import (
    PaymentDeclined,
    PaymentRequestInvalid,
    StripeClient,
    StripeUnavailable,
    minor_units,
)
from realms.market import money
from realms.market.payments import refunds, trail

log = EventLog("market.payments")


def idempotency_key(order_id: int) -> str:
    """One PaymentIntent per order, ever: a retried charge replays Stripe's first answer."""
    return f"market-order-{order_id}"


@dataclass(frozen=True)
class CardOrder:
    """What a card charge needs of a placed (committed, pending) order."""

    order_id: int
    order_number: str
    total_amount: Decimal
    currency: str


async def charge_order(
    pool: asyncpg.Pool, stripe: StripeClient, order: CardOrder, payment_method: str
) -> tuple[str, str | None]:
    """Charge a committed `pending` card order: (payment_status, payment intent id). A
    success is `paid` (money.mark_paid); an intent still processing stays `pending` for
    the webhook. A decline or a refused payment method marks the payment `failed` and raises
    BadRequest "payment failed: ..." (details: the code and the order id); an outage raises
    StripeUnavailable (503) and leaves it `pending` (the webhook settles it if Stripe did
    charge). The order itself stays `pending` either way (the buyer may cancel it; the
    abandoned-orders job cancels it after 24 hours)."""
    if order.total_amount <= 0:  # fully discounted: nothing to charge
        async with pool.acquire() as conn, conn.transaction():
            await money.mark_paid(conn, order.order_id)
        return "paid", None
    try:
        intent = await stripe.create_payment_intent(
            amount_minor=minor_units(order.total_amount, order.currency),
            currency=order.currency,
            payment_method=payment_method,
            idempotency_key=idempotency_key(order.order_id),
            metadata={
                "realm": trail.REALM_TAG,
                "order_id": str(order.order_id),
                "order_number": order.order_number,
            },
        )
    except PaymentDeclined as declined:
        await _failed(
            pool,
            order.order_id,
            declined.payment_intent_id,
            declined.decline_code or declined.failure_code,
            declined.provider_message,
        )
        raise BadRequest(
            declined.message,
            details={**declined.details, "order_id": order.order_id},
        ) from None
    except PaymentRequestInvalid as refused:
        await _failed(pool, order.order_id, None, "invalid_request", refused.message)
        raise BadRequest(
            f"payment failed: {refused.message}",
            details={**refused.details, "order_id": order.order_id},
        ) from None
    except StripeUnavailable as down:
        log.warning("card_charge_unavailable", order=order.order_id, error=down.message)
        raise StripeUnavailable(
            f"{down.message}; order {order.order_id} stays pending",
            retry_after_ms=down.retry_after_ms,
        ) from None
    async with pool.acquire() as conn, conn.transaction():
        await trail.audit(
            conn,
            order.order_id,
            "payment.card_intent",
            {"payment_intent": intent.id, "status": intent.status, "amount_minor": intent.amount},
        )
        if intent.status != "succeeded":
            return "pending", intent.id
        record = {"payment_intent": intent.id, "source": "checkout"}
        late = False
        if await money.mark_paid(conn, order.order_id):
            await trail.audit(conn, order.order_id, "payment.card_succeeded", record)
            await trail.tell_paid(conn, order.order_id, "card")
        else:
            current = await conn.fetchrow(
                "SELECT status::text AS status, payment_status::text AS paid"
                "  FROM market.orders WHERE id = $1 FOR NO KEY UPDATE",
                order.order_id,
            )
            # Cancelled while Stripe charged (a webhook may also have paid it first).
            late = current["status"] in ("cancelled", "refunded") and current["paid"] in (
                "pending",
                "failed",
            )
            if late:
                await refunds.record_late_payment(conn, order.order_id, record)
        status = await conn.fetchval(
            "SELECT payment_status::text FROM market.orders WHERE id = $1", order.order_id
        )
    if late:
        async with pool.acquire() as conn, conn.transaction():
            await refunds.send_refund(conn, stripe, order.order_id)
    return str(status), intent.id


async def _failed(
    pool: asyncpg.Pool, order_id: int, intent: str | None, code: str, message: str
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE market.orders SET payment_status = 'failed'"
            " WHERE id = $1 AND payment_status = 'pending'",
            order_id,
        )
        await trail.audit(
            conn,
            order_id,
            "payment.card_failed",
            {"payment_intent": intent, "code": code, "message": message, "source": "checkout"},
        )
