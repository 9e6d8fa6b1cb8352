"""Card refunds at Stripe. The realm marks a paid card order `refunded` when it is cancelled
(money.release_cancelled) or refunded by accounting after delivery (money.reverse_refunded),
and a payment that arrives for an order cancelled meanwhile is recorded the same way
(record_late_payment). send_refund then asks Stripe, at once where a request has a client and
by the job `market_card_refunds` for the rest: one refund per intent, ever (the idempotency
key is the intent's), each outcome an audit row."""

from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg

from kernel.jobs import Clock
from kernel.logs import EventLog
from kernel.payments.stripe import (
    IdempotencyConflict,
    PaymentRequestInvalid,
    StripeClient,
    StripeSettings,
    StripeUnavailable,
)
from realms.market.payments import trail

log = EventLog("market.payments")

# A card order is due a refund at Stripe when the realm marked its payment refunded as a whole
# order (cancelled or refunded; a return's partial refund is not one), its payment succeeded
# (the audit row keeps the intent), and no refund outcome is recorded yet.
_DUE = """
SELECT o.id, o.status::text AS status, paid.new_values ->> 'payment_intent' AS intent
  FROM market.orders o
  JOIN LATERAL (SELECT a.new_values FROM market.audit_logs a
                 WHERE a.entity_type = 'order' AND a.entity_id = o.id
                   AND a.action = 'payment.card_succeeded'
                 ORDER BY a.id LIMIT 1) paid ON true
 WHERE o.payment_method = 'card' AND o.payment_status = 'refunded'
   AND o.status IN ('cancelled', 'refunded')
   AND NOT EXISTS (SELECT 1 FROM market.audit_logs r
                    WHERE r.entity_type = 'order' AND r.entity_id = o.id
                      AND r.action IN ('payment.card_refunded', 'payment.card_refund_refused'))
   AND ($1::bigint IS NULL OR o.id = $1)
 ORDER BY o.id
 LIMIT $2
"""
REFUNDS_PER_RUN = 200


def refund_key(payment_intent: str) -> str:
    return f"market-refund-{payment_intent}"


async def record_late_payment(
    conn: asyncpg.Connection, order_id: int, record: dict[str, Any]
) -> None:
    """A payment (`record`: its intent, event) succeeded for an order cancelled or refunded
    before it arrived: it is recorded and marked `refunded`, so send_refund (or the job)
    returns it. Run under the order's row lock."""
    await conn.execute(
        "UPDATE market.orders SET payment_status = 'refunded' WHERE id = $1", order_id
    )
    await trail.audit(conn, order_id, "payment.card_succeeded", {**record, "late": True})


async def send_refund(conn: asyncpg.Connection, stripe: StripeClient, order_id: int) -> bool:
    """Refund the order at Stripe if it is due (see _DUE), recording the outcome; True when
    Stripe refunded it. The order's row lock is held meanwhile, so two senders never record
    one refund twice. An outage is logged and leaves the order due (False). Run inside a
    transaction."""
    await conn.execute("SELECT 1 FROM market.orders WHERE id = $1 FOR NO KEY UPDATE", order_id)
    due = await conn.fetchrow(_DUE, order_id, 1)
    if due is None:
        return False
    record: dict[str, Any] = {"payment_intent": due["intent"]}
    try:
        refund = await stripe.create_refund(
            payment_intent=due["intent"],
            idempotency_key=refund_key(due["intent"]),
            metadata={
                "realm": trail.REALM_TAG,
                "order_id": str(order_id),
                "reason": f"order_{due['status']}",
            },
        )
    except StripeUnavailable as down:
        log.warning("card_refund_deferred", order=order_id, error=down.message)
        return False
    except (PaymentRequestInvalid, IdempotencyConflict) as refused:
        # Refunded outside the platform (in Stripe's dashboard, say): recorded, not retried.
        log.warning("card_refund_refused", order=order_id, error=refused.message)
        await trail.audit(
            conn, order_id, "payment.card_refund_refused", {**record, "error": refused.message}
        )
        return False
    await trail.audit(conn, order_id, "payment.card_refunded", {**record, "refund": refund.id})
    return True


async def refund_card_payments(
    conn: asyncpg.Connection, clock: Clock, *, settings: StripeSettings | None = None
) -> int:
    """Job `market_card_refunds`: send Stripe every refund still due (an outage leaves an
    order for the next run). Without Stripe settings (STRIPE_API_KEY) nothing is sent.
    Returns how many refunds Stripe made."""
    settings = settings if settings is not None else StripeSettings.from_env()
    if settings is None:
        return 0
    due = await conn.fetch(_DUE, None, REFUNDS_PER_RUN)
    if not due:
        return 0
    refunded = 0
    async with aiohttp.ClientSession() as session:
        stripe = StripeClient(settings, session)
        for order in due:
            refunded += await send_refund(conn, stripe, order["id"])
    return refunded
