"""Stripe's webhook for market card payments: a signed `payment_intent.succeeded` pays its
order (money.mark_paid), `payment_intent.payment_failed` marks it failed; each event acts
once per order, and a payment that arrives for a cancelled order is refunded at once."""

from __future__ import annotations

import time
from typing import Any, Literal

import asyncpg
import msgspec

from kernel.errors import BadRequest
from kernel.logs import EventLog
from kernel.payments.connection import StripeConnection
from kernel.payments.stripe import PaymentIntent, minor_units, verify_webhook
from realms.market import money
from realms.market.payments import refunds, trail

log = EventLog("market.payments")

EventOutcome = Literal["processed", "duplicate", "ignored"]


class _EventData(msgspec.Struct):
    object: dict[str, Any]


class StripeEvent(msgspec.Struct):
    """A Stripe event (only the fields read here)."""

    id: str
    type: str
    data: _EventData


async def on_webhook(
    pool: asyncpg.Pool, payments: StripeConnection, payload: bytes, signature: str
) -> EventOutcome:
    """Settle a signed Stripe event: `payment_intent.succeeded` marks a market order paid,
    `payment_intent.payment_failed` marks a pending one failed; other events and intents of
    no market order are ignored. Each event is acted on once per order (its id is kept in the
    audit row it writes): a replay is `duplicate` and changes nothing. A success for an order
    cancelled meanwhile is recorded as refunded and refunded at Stripe (at once, else by the
    refunds job)."""
    raw = verify_webhook(payload, signature, payments.webhook_secret(), now=time.time())
    try:
        event = msgspec.convert(raw, StripeEvent)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"not a Stripe event: {exc}") from None
    if event.type not in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        return "ignored"
    try:
        intent = msgspec.convert(event.data.object, PaymentIntent)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"not a payment intent: {exc}") from None
    raw_order = intent.metadata.get("order_id", "")
    if intent.metadata.get("realm") != trail.REALM_TAG or not raw_order.isdigit():
        log.info("stripe_event_ignored", stripe_event=event.id, reason="not a market intent")
        return "ignored"
    order_id = int(raw_order)
    if order_id >= 2**63:
        return "ignored"
    async with pool.acquire() as conn, conn.transaction():
        order = await conn.fetchrow(
            "SELECT payment_method::text AS method, payment_status::text AS paid,"
            " status::text AS status, total_amount, currency FROM market.orders"
            " WHERE id = $1 FOR NO KEY UPDATE",
            order_id,
        )
        if order is None or order["method"] != "card":
            log.info(
                "stripe_event_ignored", stripe_event=event.id, order=order_id, reason="no order"
            )
            return "ignored"
        if intent.amount != minor_units(order["total_amount"], order["currency"]) or (
            intent.currency.upper() != order["currency"]
        ):
            log.warning(
                "stripe_event_ignored", stripe_event=event.id, order=order_id, reason="amount"
            )
            return "ignored"
        if await trail.seen_event(conn, order_id, event.id):
            return "duplicate"
        record = {"payment_intent": intent.id, "event_id": event.id, "source": "webhook"}
        if event.type == "payment_intent.payment_failed":
            error = intent.last_payment_error
            changed = await conn.fetchval(
                "UPDATE market.orders SET payment_status = 'failed'"
                " WHERE id = $1 AND payment_status = 'pending' RETURNING id",
                order_id,
            )
            code = (error.decline_code or error.code) if error else None
            await trail.audit(conn, order_id, "payment.card_failed", {**record, "code": code})
            return "processed" if changed else "duplicate"
        if await money.mark_paid(conn, order_id):
            await trail.audit(conn, order_id, "payment.card_succeeded", record)
            await trail.tell_paid(conn, order_id, "card")
            return "processed"
        if order["paid"] in ("paid", "refunded", "partially_refunded"):
            # Paid already (the checkout saw the success first): nothing more to do.
            await trail.audit(conn, order_id, "payment.card_succeeded_again", record)
            return "duplicate"
        # The order was cancelled (or refunded) before its payment arrived: it goes back.
        await refunds.record_late_payment(conn, order_id, record)
    async with pool.acquire() as conn, conn.transaction():
        # At once where Stripe can; else the refunds job retries it.
        await refunds.send_refund(conn, payments.client, order_id)
    return "processed"
