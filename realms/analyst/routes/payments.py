"""Payments through Razorpay, without a network: checkout verification and the webhook, which
both capture (subscription activated, payout split, invite conversion); refunds; the payer's
history and the analyst's earnings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from kernel.logs import EventLog
from kernel.notify import notify
from kernel.web.auth import Caller, caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL, SETTINGS
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid
from realms.analyst.razorpay import (
    key_secret,
    new_refund_id,
    payment_signature,
    signature_matches,
    webhook_secret,
    webhook_signature,
)
from realms.analyst.routes.invites import record_conversion
from realms.analyst.routes.subscriptions import activate_paid, cancel, record_payment_failure

routes = web.RouteTableDef()
log = EventLog("api.payments")

RazorpayId = Annotated[str, Meta(min_length=1, max_length=255)]
DEFAULT_COMMISSION = Decimal("0.200")


class VerifyBody(Struct, forbid_unknown_fields=True):
    """What Razorpay Checkout hands the client after a successful payment."""

    razorpay_order_id: RazorpayId
    razorpay_payment_id: RazorpayId
    razorpay_signature: Annotated[str, Meta(min_length=1, max_length=500)]


class RefundBody(Struct, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=2000)]
    amount: (
        Annotated[int, Meta(ge=1, description="paise; the whole payment if left out")] | None
    ) = None


class PaymentOut(Struct):
    """A payment; the split (commission, payout) is shown to its analyst and admins only."""

    id: uuid.UUID
    user_id: uuid.UUID | None
    analyst_id: uuid.UUID | None
    subscription_id: uuid.UUID | None
    razorpay_order_id: str | None
    razorpay_payment_id: str | None
    transaction_type: str
    amount: int
    currency: str
    status: str
    payment_method: str | None
    failure_code: str | None
    failure_reason: str | None
    refund_amount: int | None
    refund_reason: str | None
    refunded_at: datetime | None
    created_at: datetime
    updated_at: datetime
    platform_commission: int | None = None
    payout_amount: int | None = None
    payout_status: str | None = None
    paid_out_at: datetime | None = None  # the analyst's share was paid out (routes/payouts.py)


class PaymentEntity(Struct):
    id: str
    order_id: str | None = None
    amount: int | None = None
    currency: str | None = None
    method: str | None = None
    error_code: str | None = None
    error_description: str | None = None


class PaymentEnvelope(Struct):
    entity: PaymentEntity


class WebhookPayload(Struct):
    payment: PaymentEnvelope | None = None


class WebhookEvent(Struct):
    """A Razorpay webhook (only the fields read here; others are ignored)."""

    event: Annotated[str, Meta(max_length=100)]
    payload: WebhookPayload = msgspec.field(default_factory=WebhookPayload)


class WebhookOut(Struct):
    status: Literal["processed", "duplicate", "ignored"]


_COLUMNS = (
    "id, user_id, analyst_id, subscription_id, razorpay_order_id, razorpay_payment_id,"
    " transaction_type, amount, currency, status, payment_method, failure_code, failure_reason,"
    " refund_amount, refund_reason, refunded_at, created_at, updated_at, platform_commission,"
    " payout_amount, payout_status, paid_out_at, metadata"
)
_SPLIT = ("platform_commission", "payout_amount", "payout_status", "paid_out_at")


def payout_split(amount: int, commission_rate: Decimal) -> tuple[int, int]:
    """(platform_commission, payout_amount) of `amount` paise: the commission is rounded half
    up to the paisa and the analyst gets the rest, so the two always sum to the amount."""
    commission = int((Decimal(amount) * commission_rate).quantize(Decimal(1), ROUND_HALF_UP))
    return commission, amount - commission


def _out(row: asyncpg.Record, who: Caller | None = None) -> PaymentOut:
    values = dict(row)
    values.pop("metadata", None)
    if who is not None and not (who.is_admin or values["analyst_id"] == who.user_id):
        for key in _SPLIT:
            values[key] = None
    return msgspec.convert(values, PaymentOut)


async def _capture(
    conn: asyncpg.Connection,
    payment: asyncpg.Record,
    razorpay_payment_id: str,
    signature: str | None,
    method: str | None,
    now: datetime,
) -> bool:
    """Record the payment as captured with its payout split, then activate or extend its
    subscription and credit the invite link it came through. False when the subscription
    could not be made active (the payment stays captured)."""
    rate = await conn.fetchval(
        "SELECT commission_rate FROM analyst.analyst_profiles WHERE user_id = $1",
        payment["analyst_id"],
    )
    commission, payout = payout_split(payment["amount"], rate or DEFAULT_COMMISSION)
    try:
        async with conn.transaction():
            await conn.execute(
                "UPDATE analyst.payment_transactions SET status = 'captured',"
                " razorpay_payment_id = $2, razorpay_signature = $3,"
                " payment_method = coalesce($4, payment_method), platform_commission = $5,"
                " payout_amount = $6, payout_status = 'pending', failure_code = NULL,"
                " failure_reason = NULL WHERE id = $1",
                payment["id"],
                razorpay_payment_id,
                signature,
                method,
                commission,
                payout,
            )
    except asyncpg.UniqueViolationError:
        raise Conflict("razorpay_payment_id: that payment is recorded on another order") from None
    if payment["subscription_id"] is None:
        return True
    subscription = await activate_paid(conn, payment["subscription_id"], now)
    if subscription is None:
        return False
    if subscription["referred_by_invite_link"] is not None:
        await record_conversion(
            conn,
            subscription["referred_by_invite_link"],
            payment["amount"],
            first_payment=payment["transaction_type"] == "subscription_payment",
        )
    await notify(
        conn,
        event_key=f"payment:{payment['id']}:captured",
        recipients=[payment["user_id"]],
        notification_type="payment_success",
        title="Payment received",
        message=f"Your subscription is active until {subscription['expires_at']:%d %b %Y}.",
        action_url=f"/subscriptions/{payment['subscription_id']}",
        related_entity_type="payment",
        related_entity_id=payment["id"],
        priority="high",
        bypass_preferences=True,
    )
    return True


async def _fail(
    conn: asyncpg.Connection, payment: asyncpg.Record, entity: PaymentEntity, now: datetime
) -> None:
    """A payment attempt on the order failed: the order is marked failed (it can still be paid)
    and the subscription's billing rules run."""
    await conn.execute(
        "UPDATE analyst.payment_transactions SET status = 'failed', failure_code = $2,"
        " failure_reason = $3, retry_count = retry_count + 1,"
        " payment_method = coalesce($4, payment_method),"
        " metadata = jsonb_set(coalesce(metadata, '{}'), '{failed_payment_ids}',"
        "   coalesce(metadata -> 'failed_payment_ids', '[]') || to_jsonb($5::text))"
        " WHERE id = $1",
        payment["id"],
        (entity.error_code or "")[:100] or None,
        entity.error_description,
        entity.method,
        entity.id,
    )
    if payment["subscription_id"] is not None:
        await record_payment_failure(conn, payment["subscription_id"], now)
    await notify(
        conn,
        event_key=f"payment:{entity.id}:failed",
        recipients=[payment["user_id"]],
        notification_type="payment_failed",
        title="Payment failed",
        message=entity.error_description or "Your payment did not go through; please retry.",
        action_url=f"/subscriptions/{payment['subscription_id']}",
        related_entity_type="payment",
        related_entity_id=payment["id"],
        priority="high",
        bypass_preferences=True,
    )


@endpoint(
    routes,
    "POST",
    "/v1/payments/verify",
    summary="Confirm a Checkout payment by its signature; captures it and activates the"
    " subscription (the payer)",
    tag="payments",
    body=VerifyBody,
    response=PaymentOut,
    errors=(404, 409, 503),
)
async def verify_payment(request: web.Request, body: VerifyBody) -> PaymentOut:
    who = await caller(request)
    secret = key_secret(request.app[SETTINGS])
    async with request.app[POOL].acquire() as conn, conn.transaction():
        payment = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM analyst.payment_transactions WHERE razorpay_order_id = $1"
            " AND transaction_type IN ('subscription_payment', 'renewal')"
            " ORDER BY created_at LIMIT 1 FOR UPDATE",
            body.razorpay_order_id,
        )
        if payment is None or payment["user_id"] != who.user_id:
            raise NotFound("no such order")
        expected = payment_signature(secret, body.razorpay_order_id, body.razorpay_payment_id)
        if not signature_matches(expected, body.razorpay_signature):
            raise BadRequest("razorpay_signature: does not match the order and payment")
        if payment["status"] == "captured":
            if payment["razorpay_payment_id"] == body.razorpay_payment_id:
                return _out(payment, who)  # the same confirmation again
            raise Conflict("the order is already paid")
        if payment["status"] not in ("pending", "failed"):
            raise Conflict(f"the order is {payment['status']}")
        now = datetime.now(UTC)
        if not await _capture(
            conn, payment, body.razorpay_payment_id, body.razorpay_signature, None, now
        ):
            # Rolled back: Razorpay refunds a payment that is never captured.
            raise Conflict(
                "the subscription cannot be activated: it was cancelled, or you"
                " already have an active subscription to this analyst"
            )
        captured = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM analyst.payment_transactions WHERE id = $1", payment["id"]
        )
    return _out(captured, who)


@endpoint(
    routes,
    "POST",
    "/v1/payments/webhook",
    summary="Razorpay webhook (signed with X-Razorpay-Signature): payment.captured and"
    " payment.failed, each processed once",
    tag="payments",
    body=WebhookEvent,
    response=WebhookOut,
    auth=False,
    errors=(401, 503),
)
async def webhook(request: web.Request, body: WebhookEvent) -> WebhookOut:
    secret = webhook_secret(request.app[SETTINGS])
    given = request.headers.get("X-Razorpay-Signature", "")
    if not given or not signature_matches(webhook_signature(secret, await request.read()), given):
        raise Unauthorized("X-Razorpay-Signature does not match the body")
    if body.event not in ("payment.captured", "payment.failed") or body.payload.payment is None:
        return WebhookOut("ignored")
    entity = body.payload.payment.entity
    key = request.headers.get("X-Razorpay-Event-Id") or f"{body.event}:{entity.id}"
    now = datetime.now(UTC)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        payment = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM analyst.payment_transactions WHERE razorpay_order_id = $1"
            " AND transaction_type IN ('subscription_payment', 'renewal')"
            " ORDER BY created_at LIMIT 1 FOR UPDATE",
            entity.order_id,
        )
        if payment is None:
            log.info("webhook_ignored", reason="unknown_order", razorpay_event=body.event, key=key)
            return WebhookOut("ignored")
        metadata = payment["metadata"] or {}
        if key in metadata.get("webhook_events", []):
            return WebhookOut("duplicate")
        if body.event == "payment.captured":
            if payment["status"] in ("captured", "refunded"):
                outcome: Literal["processed", "duplicate", "ignored"] = "duplicate"
            elif entity.amount is not None and entity.amount != payment["amount"]:
                log.warning(
                    "webhook_ignored",
                    reason="amount_mismatch",
                    key=key,
                    payment=str(payment["id"]),
                    amount=entity.amount,
                )
                outcome = "ignored"
            else:
                if not await _capture(conn, payment, entity.id, None, entity.method, now):
                    log.warning("captured_without_subscription", payment=str(payment["id"]))
                outcome = "processed"
        elif payment["status"] in ("captured", "refunded") or entity.id in metadata.get(
            "failed_payment_ids", []
        ):
            outcome = "duplicate"
        elif payment["status"] == "cancelled":
            outcome = "ignored"
        else:
            await _fail(conn, payment, entity, now)
            outcome = "processed"
        await conn.execute(
            "UPDATE analyst.payment_transactions"
            " SET metadata = jsonb_set(coalesce(metadata, '{}'), '{webhook_events}',"
            "   coalesce(metadata -> 'webhook_events', '[]') || to_jsonb($2::text))"
            " WHERE id = $1",
            payment["id"],
            key,
        )
    return WebhookOut(outcome)


@endpoint(
    routes,
    "POST",
    "/v1/payments/{id}/refund",
    summary="Refund a captured payment, wholly or in part (its analyst or an admin)",
    tag="payments",
    body=RefundBody,
    response=PaymentOut,
    errors=(403, 404, 409),
)
async def refund(request: web.Request, body: RefundBody) -> PaymentOut:
    who = await caller(request)
    now = datetime.now(UTC)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        payment = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM analyst.payment_transactions WHERE id = $1 FOR UPDATE",
            path_uuid(request),
        )
        parties = (payment["user_id"], payment["analyst_id"]) if payment else ()
        if payment is None or not (who.is_admin or who.user_id in parties):
            raise NotFound("no such payment")
        if not (who.is_admin or payment["analyst_id"] == who.user_id):
            raise Forbidden("only the analyst paid or an admin can refund")
        if payment["transaction_type"] == "payout":
            raise Conflict("a payout to an analyst is not a payment that can be refunded")
        if payment["status"] != "captured":
            raise Conflict(
                f"only a captured payment can be refunded; this one is {payment['status']}"
            )
        amount = body.amount if body.amount is not None else payment["amount"]
        if amount > payment["amount"]:
            raise BadRequest(f"amount: more than the payment ({payment['amount']} paise)")
        # A share not yet in a payout is not paid out any more; one already in a payout (or
        # paid) is the platform's to settle with the analyst (docs/api-notes-analyst-finish.md).
        refunded = await conn.fetchrow(
            "UPDATE analyst.payment_transactions SET status = 'refunded', refund_amount = $2,"
            " refund_reason = $3, refunded_at = $4, razorpay_refund_id = $5,"
            " payout_status = CASE WHEN payout_status = 'pending' THEN 'cancelled'"
            "                      ELSE payout_status END WHERE id = $1"
            f" RETURNING {_COLUMNS}",
            payment["id"],
            amount,
            body.reason,
            now,
            new_refund_id(),
        )
        if amount == payment["amount"] and payment["subscription_id"] is not None:
            status = await conn.fetchval(
                "SELECT status FROM analyst.subscriptions WHERE id = $1 FOR UPDATE",
                payment["subscription_id"],
            )
            if status in ("active", "pending_payment", "suspended"):
                await cancel(conn, payment["subscription_id"], now)
    return _out(refunded, who)


async def _page(
    request: web.Request, query: PageQuery, who: Caller, where: str, owner: uuid.UUID
) -> Page[PaymentOut]:
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        f"SELECT {_COLUMNS} FROM analyst.payment_transactions WHERE {where}"
        " AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))"
        " ORDER BY created_at DESC, id DESC LIMIT $4",
        owner,
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
    )
    return page_of([_out(r, who) for r in rows], query.limit, lambda p: (p.created_at, p.id))


@endpoint(
    routes,
    "GET",
    "/v1/payments",
    summary="The caller's payment history, newest first",
    tag="payments",
    query=PageQuery,
    response=Page[PaymentOut],
)
async def history(request: web.Request, query: PageQuery) -> Page[PaymentOut]:
    who = await caller(request)
    return await _page(request, query, who, "user_id = $1", who.user_id)


@endpoint(
    routes,
    "GET",
    "/v1/earnings",
    summary="Payments captured for the caller, with the payout split, newest first (analysts)",
    tag="payments",
    query=PageQuery,
    response=Page[PaymentOut],
    errors=(403,),
)
async def earnings(request: web.Request, query: PageQuery) -> Page[PaymentOut]:
    who = await caller(request)
    if who.user_type != "analyst":
        raise Forbidden("only analysts have earnings")
    return await _page(
        request,
        query,
        who,
        "analyst_id = $1 AND status IN ('captured', 'refunded') AND transaction_type <> 'payout'",
        who.user_id,
    )


@endpoint(
    routes,
    "GET",
    "/v1/payments/{id}",
    summary="One payment (its payer, its analyst, or an admin)",
    tag="payments",
    response=PaymentOut,
    errors=(404,),
)
async def get_payment(request: web.Request) -> PaymentOut:
    who = await caller(request)
    row = await request.app[POOL].fetchrow(
        f"SELECT {_COLUMNS} FROM analyst.payment_transactions WHERE id = $1",
        path_uuid(request),
    )
    if row is None or not (who.is_admin or who.user_id in (row["user_id"], row["analyst_id"])):
        raise NotFound("no such payment")
    return _out(row, who)
