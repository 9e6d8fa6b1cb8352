"""Payments and invoices of aichat subscriptions, from Stripe Billing (ADR 0007). Stripe's
webhook events, and the objects Stripe answers a subscribe or a plan change with, become rows:
`customer.subscription.*` the subscription (realms/aichat/mirror.py), `invoice.*` one `invoices`
row per Stripe invoice (the user is told of it once, `invoice_issued`), and payments one
`payments` row per PaymentIntent, whatever the number of deliveries. A failure moves the
subscription to past_due and tells the user (`payment_failed`, once per payment); a payment
moves it back. The month-end job closes the month that ended: every Stripe invoice of it is
recorded even when its webhook was lost, and subscriptions whose period ended are read again.
docs/realm-aichat.md, "Payments and invoices", says which event does what."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

import asyncpg
import msgspec
from aiohttp import web

from kernel.errors import BadRequest
from kernel.logs import EventLog
from kernel.notify import notify
from kernel.payments.billing import Invoice, StripeBilling, Subscription
from kernel.payments.connection import StripeConnection, install_stripe
from kernel.payments.stripe import ZERO_DECIMAL
from realms.aichat import REALM
from realms.aichat.mirror import mirror, stamp
from realms.aichat.usage import next_month

log = EventLog("realms.aichat.billing")

Outcome = Literal["processed", "duplicate", "ignored"]
T = TypeVar("T")

# Stripe for the api process (STRIPE_API_KEY, STRIPE_BASE_URL, STRIPE_WEBHOOK_SECRET); without
# a key, subscription changes answer 503 and webhooks 401 (no signature can be verified).
AICHAT_STRIPE = web.AppKey("aichat_stripe", StripeConnection)


def install_billing(app: web.Application) -> None:
    """api_setup: Stripe from the environment, unless a test set AICHAT_STRIPE already."""
    install_stripe(app, AICHAT_STRIPE)


# --- what Stripe sends (only the fields read here) -----------------------------------------


class LastPaymentError(msgspec.Struct):
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None


class StripeObject(msgspec.Struct):
    """A PaymentIntent or an Invoice (`object` says which); every field but the id may be
    missing or null in what Stripe sends."""

    id: str
    object: str | None = None
    amount: int | None = None  # PaymentIntent
    amount_paid: int | None = None  # Invoice
    amount_due: int | None = None  # Invoice
    currency: str | None = None
    status: str | None = None
    customer: str | None = None
    subscription: str | None = None  # Invoice
    payment_intent: str | None = None  # Invoice
    invoice: str | None = None  # PaymentIntent (of an invoice)
    description: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    last_payment_error: LastPaymentError | None = None


class StripeEvent(msgspec.Struct):
    """A webhook event; `data.object` is read (as a StripeObject) only for HANDLED types."""

    id: str
    type: str
    data: dict[str, Any]


SUBSCRIPTION_EVENTS = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
)
# Events whose invoice is recorded; .paid and .payment_failed also record the payment.
INVOICE_EVENTS = (
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
)
PAYMENT_EVENTS = (
    "invoice.paid",
    "invoice.payment_failed",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.processing",
)
HANDLED = SUBSCRIPTION_EVENTS + INVOICE_EVENTS + PAYMENT_EVENTS


def major_units(amount_minor: int, currency: str) -> Decimal:
    if currency.upper() in ZERO_DECIMAL:
        return Decimal(amount_minor)
    return (Decimal(amount_minor) / 100).quantize(Decimal("0.01"))


# --- webhook events ------------------------------------------------------------------------

_SUBSCRIPTION = """
SELECT id, user_id, status FROM aichat.subscriptions
 WHERE ($1::text IS NOT NULL AND stripe_subscription_id = $1)
    OR ($1::text IS NULL AND $2::text IS NOT NULL AND stripe_customer_id = $2)
    OR ($1::text IS NULL AND $2::text IS NULL AND user_id = $3::uuid)
 ORDER BY created_at DESC LIMIT 1
"""

# Succeeded and refunded are final; a pending or failed payment may still succeed (Stripe
# retries an invoice's PaymentIntent). xmax = 0: the row was inserted by this statement.
_RECORD = """
INSERT INTO aichat.payments AS p (user_id, subscription_id, stripe_payment_intent_id,
                                  stripe_invoice_id, amount, currency, status, description,
                                  metadata)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::json)
ON CONFLICT (stripe_payment_intent_id) DO UPDATE
   SET status = EXCLUDED.status,
       stripe_invoice_id = coalesce(p.stripe_invoice_id, EXCLUDED.stripe_invoice_id),
       metadata = EXCLUDED.metadata
 WHERE p.status IN ('pending', 'failed') AND p.status <> EXCLUDED.status
RETURNING id, (xmax = 0) AS inserted
"""

# One row per Stripe invoice. Paid and void are final; otherwise Stripe's status wins (open,
# uncollectible, paid). Only a change writes (RETURNING nothing when there was none).
_UPSERT_INVOICE = """
INSERT INTO aichat.invoices AS i (user_id, subscription_id, invoice_number, stripe_invoice_id,
                                  subtotal, tax, total, status, due_date, paid_at, pdf_url)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (stripe_invoice_id) DO UPDATE SET
    status = EXCLUDED.status,
    paid_at = coalesce(i.paid_at, EXCLUDED.paid_at),
    pdf_url = coalesce(EXCLUDED.pdf_url, i.pdf_url)
 WHERE i.status NOT IN ('paid', 'void')
   AND (i.status <> EXCLUDED.status OR i.pdf_url IS DISTINCT FROM EXCLUDED.pdf_url)
RETURNING id, (xmax = 0) AS inserted
"""


def _convert(event: StripeEvent, kind: type[T]) -> T:
    try:
        return msgspec.convert(event.data.get("object"), kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(
            f"event {event.id}: data.object is not a {event.type} object: {exc}"
        ) from None


def _user_of(obj: StripeObject) -> uuid.UUID | None:
    try:
        return uuid.UUID(obj.metadata.get("user_id", ""))
    except ValueError:
        return None


async def record_event(conn: asyncpg.Connection, event: StripeEvent) -> Outcome:
    """Apply one verified Stripe event, in the caller's transaction. Delivering it again (or
    its twin: invoice.payment_failed and payment_intent.payment_failed of one payment)
    changes nothing more and answers `duplicate`; events about no subscription or user of
    this realm, and other types, are `ignored`."""
    if event.type not in HANDLED:
        return "ignored"
    if event.type in SUBSCRIPTION_EVENTS:
        return await _record_subscription(conn, _convert(event, Subscription))
    obj = _convert(event, StripeObject)
    subscription = await conn.fetchrow(_SUBSCRIPTION, obj.subscription, obj.customer, _user_of(obj))
    user_id = subscription["user_id"] if subscription else _user_of(obj)
    if user_id is None or not await conn.fetchval(
        "SELECT EXISTS (SELECT FROM aichat.users WHERE id = $1)", user_id
    ):
        log.info("stripe_event_ignored", reason="no_user", stripe_event=event.id, type=event.type)
        return "ignored"
    changed = False
    if event.type in INVOICE_EVENTS:
        changed |= await _record_invoice_row(
            conn, _convert(event, Invoice), user_id, subscription["id"] if subscription else None
        )
    if event.type not in PAYMENT_EVENTS:
        return "processed" if changed else "duplicate"
    is_invoice = event.type.startswith("invoice.")
    succeeded = event.type in ("invoice.paid", "payment_intent.succeeded")
    failed = event.type.endswith("payment_failed")
    status = "succeeded" if succeeded else "failed" if failed else "pending"
    payment_intent = obj.payment_intent if is_invoice else obj.id
    payment: asyncpg.Record | None = None
    if payment_intent is not None:
        minor = (obj.amount_paid if succeeded else obj.amount_due) if is_invoice else obj.amount
        currency = (obj.currency or "usd").upper()
        payment = await conn.fetchrow(
            _RECORD,
            user_id,
            subscription["id"] if subscription else None,
            payment_intent,
            obj.id if is_invoice else obj.invoice,
            major_units(minor or 0, currency),
            currency,
            status,
            obj.description,
            msgspec.json.encode(_metadata(event, obj)).decode(),
        )
        changed |= payment is not None
    # A payment already settled (a late or repeated event) moves nothing.
    recorded = payment_intent is None or payment is not None
    if subscription is not None and (succeeded or failed) and recorded:
        changed |= await _move_subscription(conn, subscription, succeeded)
    if failed and payment is not None:
        await _notify_failed(conn, user_id, payment["id"], obj)
    return "processed" if changed else "duplicate"


async def record_invoice(conn: asyncpg.Connection, invoice: Invoice) -> Outcome:
    """Record an invoice Stripe answered with (a subscribe's first month, a proration) or
    listed, as its webhook would: the row, and the payment when it is paid."""
    kind = "invoice.paid" if invoice.status == "paid" else "invoice.finalized"
    event = StripeEvent(
        id=f"object:{invoice.id}", type=kind, data={"object": msgspec.to_builtins(invoice)}
    )
    return await record_event(conn, event)


async def _record_subscription(conn: asyncpg.Connection, sub: Subscription) -> Outcome:
    state = (
        "SELECT plan_id, status, current_period_start, current_period_end,"
        " cancel_at_period_end, cancellation_date, cancellation_reason, trial_ends_at"
        " FROM aichat.subscriptions WHERE stripe_subscription_id = $1"
    )
    before = await conn.fetchrow(state, sub.id)
    if await mirror(conn, sub) is None:
        return "ignored"
    after = await conn.fetchrow(state, sub.id)
    return "duplicate" if before == after else "processed"


async def _record_invoice_row(
    conn: asyncpg.Connection,
    invoice: Invoice,
    user_id: uuid.UUID,
    subscription_id: uuid.UUID | None,
) -> bool:
    """Insert or move the invoice's row; tell the user of a new one. Drafts are not kept
    (Stripe numbers an invoice when it finalizes it)."""
    if invoice.status in (None, "draft"):
        return False
    currency = invoice.currency.upper()
    paid_at = stamp(invoice.status_transitions.paid_at if invoice.status_transitions else None)
    if invoice.status == "paid" and paid_at is None:
        paid_at = datetime.now(UTC).replace(tzinfo=None)  # Stripe always says; never NULL
    row = await conn.fetchrow(
        _UPSERT_INVOICE,
        user_id,
        subscription_id,
        invoice.number or invoice.id,
        invoice.id,
        major_units(invoice.subtotal, currency),
        major_units(invoice.tax or 0, currency),
        major_units(invoice.total, currency),
        invoice.status,
        stamp(invoice.due_date).date() if invoice.due_date else None,  # type: ignore[union-attr]
        paid_at if invoice.status == "paid" else None,
        invoice.invoice_pdf,
    )
    if row is None:
        return False
    if row["inserted"]:
        await _notify_issued(conn, user_id, row["id"], invoice)
    return True


def _metadata(event: StripeEvent, obj: StripeObject) -> dict[str, Any]:
    out: dict[str, Any] = {"stripe_event": event.id, "stripe_event_type": event.type}
    if obj.last_payment_error is not None:
        out["failure_code"] = obj.last_payment_error.decline_code or obj.last_payment_error.code
        out["failure_message"] = obj.last_payment_error.message
    return out


async def _move_subscription(
    conn: asyncpg.Connection, subscription: asyncpg.Record, paid: bool
) -> bool:
    """A failed payment makes an active subscription past_due; a payment makes a past_due
    or unpaid one active again. Canceled and paused ones stay as they are."""
    before, after = ["past_due", "unpaid"], "active"
    if not paid:
        before, after = ["active"], "past_due"
    status = await conn.execute(
        "UPDATE aichat.subscriptions SET status = $2 WHERE id = $1 AND status = ANY ($3::text[])",
        subscription["id"],
        after,
        before,
    )
    return bool(status != "UPDATE 0")


async def _notify_failed(
    conn: asyncpg.Connection, user_id: uuid.UUID, payment_id: uuid.UUID, obj: StripeObject
) -> None:
    minor = obj.amount_due if obj.object == "invoice" else obj.amount
    currency = (obj.currency or "usd").upper()
    amount = major_units(minor or 0, currency)
    reason = obj.last_payment_error.message if obj.last_payment_error else None
    await notify(
        conn,
        realm=REALM,
        event_key=f"payment:{payment_id}:failed",
        recipients=[user_id],
        notification_type="payment_failed",
        title="Your payment failed",
        message=(
            f"We could not charge {amount} {currency}"
            + (f": {reason}" if reason else "")
            + ". Update your payment method to keep your plan; until then your subscription"
            " is past due."
        )[:1000],
        action_url="/v1/aichat/payments",
        related_entity_type="payment",
        related_entity_id=payment_id,
        priority="high",
        bypass_preferences=True,  # transactional: the user must learn of it
    )


async def _notify_issued(
    conn: asyncpg.Connection, user_id: uuid.UUID, invoice_id: uuid.UUID, invoice: Invoice
) -> None:
    currency = invoice.currency.upper()
    total = major_units(invoice.total, currency)
    plan = await conn.fetchval(
        "SELECT p.name FROM aichat.subscriptions s JOIN aichat.plans p ON p.id = s.plan_id"
        " WHERE s.stripe_subscription_id = $1",
        invoice.subscription,
    )
    period = stamp(invoice.period_start or invoice.created)
    when = f" for {period:%B %Y}" if period else ""
    state = {
        "paid": "credited to your balance" if invoice.total < 0 else "paid with your card",
        "open": "due now: we will charge your card",
        "void": "voided",
        "uncollectible": "not collected",
    }.get(invoice.status or "", invoice.status or "")
    await notify(
        conn,
        realm=REALM,
        event_key=f"invoice:{invoice_id}:issued",
        recipients=[user_id],
        notification_type="invoice_issued",
        title=f"Your invoice{when}",
        message=(
            f"Invoice {invoice.number or invoice.id}: {total} {currency}"
            + (f" for the {plan} plan" if plan else "")
            + f", {state}."
        ),
        action_url="/v1/aichat/invoices",
        related_entity_type="invoice",
        related_entity_id=invoice_id,
        priority="medium",
    )


# --- the month's close -----------------------------------------------------------------------

# Subscriptions that may have invoices in the month: live ones, and those that ended in it.
_BILLABLE = """
SELECT id, stripe_subscription_id, status, current_period_end FROM aichat.subscriptions
 WHERE status <> 'canceled' OR updated_at >= $1::date
 ORDER BY id
"""


async def close_month(
    conn: asyncpg.Connection, billing: StripeBilling, month: date, *, now: datetime
) -> int:
    """Make sure every Stripe invoice created in `month` (its first day) is recorded, and that
    subscriptions whose period ended before `now` (UTC) are as Stripe has them (a renewal or
    an end whose webhook was lost). In the caller's transaction; running it again changes
    nothing. Returns how many invoices were missing or out of date."""
    month = month.replace(day=1)
    start = int(datetime(month.year, month.month, 1, tzinfo=UTC).timestamp())
    end_month = next_month(month)
    end = int(datetime(end_month.year, end_month.month, 1, tzinfo=UTC).timestamp())
    naive_now = now.astimezone(UTC).replace(tzinfo=None)
    corrected = 0
    for row in await conn.fetch(_BILLABLE, month):
        stripe_id = row["stripe_subscription_id"]
        if row["status"] != "canceled" and row["current_period_end"] <= naive_now:
            await _record_subscription(conn, await billing.retrieve_subscription(stripe_id))
        for invoice in await billing.list_invoices(subscription=stripe_id, created_gte=start):
            if invoice.created is not None and invoice.created >= end:
                continue  # the next month's: its own close
            if await record_invoice(conn, invoice) == "processed":
                corrected += 1
    log.info("month_closed", month=f"{month:%Y-%m}", corrected=corrected)
    return corrected


async def with_current_subscription(event: StripeEvent, billing: StripeBilling) -> StripeEvent:
    """A customer.subscription.* event carrying the subscription as Stripe has it now, not
    the copy made when the event was: events come late and out of order, and nothing in the
    copy says which is newer (Stripe's advice: fetch the object)."""
    obj = event.data.get("object")
    subscription_id = obj.get("id") if isinstance(obj, dict) else None
    if event.type not in SUBSCRIPTION_EVENTS or not isinstance(subscription_id, str):
        return event
    current = await billing.retrieve_subscription(subscription_id)
    return StripeEvent(event.id, event.type, {"object": msgspec.to_builtins(current)})
