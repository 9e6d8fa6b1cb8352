"""Payments and invoices of aichat subscriptions. Stripe's webhook events become `payments`
rows (one per PaymentIntent, whatever the number of deliveries), move the invoice and the
subscription on (past_due after a failure, active again after a payment) and tell the user
of a failure (`payment_failed`, once per payment); the month-end job issues one `invoices`
row per subscription and month and tells the user (`invoice_issued`). docs/realm-aichat.md,
"Payments and invoices", says which event does what."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

import asyncpg
import msgspec
from aiohttp import web

from kernel.errors import BadRequest
from kernel.logs import EventLog
from kernel.notify import notify
from kernel.payments.stripe import ZERO_DECIMAL, StripeSettings
from realms.aichat import REALM
from realms.aichat.usage import next_month

log = EventLog("realms.aichat.billing")

Outcome = Literal["processed", "duplicate", "ignored"]
# Days between an invoice's issue (the 1st of the month after the one it bills) and its due date.
DUE_AFTER_DAYS = 14
# An invoice issued here waits for Stripe's invoice id under this prefix.
PENDING_PREFIX = "pending:"


@dataclass(frozen=True)
class BillingConfig:
    """Stripe as the api process sees it: None when STRIPE_API_KEY is unset (webhooks are
    then refused with 401: no signature can be verified)."""

    stripe: StripeSettings | None


AICHAT_BILLING = web.AppKey("aichat_billing", BillingConfig)


def install_billing(app: web.Application) -> None:
    """Read Stripe's settings once (a test may have set AICHAT_BILLING already)."""
    if AICHAT_BILLING not in app:
        app[AICHAT_BILLING] = BillingConfig(StripeSettings.from_env())


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


HANDLED = (
    "invoice.paid",
    "invoice.payment_failed",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.processing",
)


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

# Our invoice that a Stripe event is about: by Stripe's id, or by the number we gave it
# (metadata invoice_number) while it still waits for Stripe's id.
_INVOICE = """
SELECT id, status, stripe_invoice_id FROM aichat.invoices
 WHERE stripe_invoice_id = $1 OR ($2::text IS NOT NULL AND invoice_number = $2)
 ORDER BY (stripe_invoice_id = $1) DESC LIMIT 1 FOR UPDATE
"""


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
    try:
        obj = msgspec.convert(event.data.get("object"), StripeObject)
    except msgspec.ValidationError as exc:
        raise BadRequest(
            f"event {event.id}: data.object is not a {event.type} object: {exc}"
        ) from None
    is_invoice = event.type.startswith("invoice.")
    subscription = await conn.fetchrow(_SUBSCRIPTION, obj.subscription, obj.customer, _user_of(obj))
    user_id = subscription["user_id"] if subscription else _user_of(obj)
    if user_id is None or not await conn.fetchval(
        "SELECT EXISTS (SELECT FROM aichat.users WHERE id = $1)", user_id
    ):
        log.info("stripe_event_ignored", reason="no_user", stripe_event=event.id, type=event.type)
        return "ignored"
    succeeded = event.type in ("invoice.paid", "payment_intent.succeeded")
    failed = event.type.endswith("payment_failed")
    status = "succeeded" if succeeded else "failed" if failed else "pending"
    invoice_ref = obj.id if is_invoice else obj.invoice  # Stripe's invoice id
    invoice = None
    if invoice_ref is not None or obj.metadata.get("invoice_number"):
        invoice = await conn.fetchrow(
            _INVOICE, invoice_ref or "", obj.metadata.get("invoice_number")
        )
    changed = False
    if invoice is not None:
        changed |= await _move_invoice(conn, invoice, invoice_ref, succeeded)
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
            _stripe_invoice_id(invoice, invoice_ref),
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


def _stripe_invoice_id(invoice: asyncpg.Record | None, ref: str | None) -> str | None:
    """Stripe's id of the invoice a payment is for: the event's, else what our invoice knows
    (None while it is still pending)."""
    if ref is not None:
        return ref
    if invoice is not None and not invoice["stripe_invoice_id"].startswith(PENDING_PREFIX):
        return str(invoice["stripe_invoice_id"])
    return None


def _metadata(event: StripeEvent, obj: StripeObject) -> dict[str, Any]:
    out: dict[str, Any] = {"stripe_event": event.id, "stripe_event_type": event.type}
    if obj.last_payment_error is not None:
        out["failure_code"] = obj.last_payment_error.decline_code or obj.last_payment_error.code
        out["failure_message"] = obj.last_payment_error.message
    return out


async def _move_invoice(
    conn: asyncpg.Connection, invoice: asyncpg.Record, stripe_id: str | None, paid: bool
) -> bool:
    """Learn Stripe's id of an invoice issued here; mark it paid on payment."""
    status = await conn.execute(
        "UPDATE aichat.invoices SET"
        "  stripe_invoice_id = CASE WHEN $2::text IS NOT NULL"
        "       AND stripe_invoice_id LIKE 'pending:%' THEN $2 ELSE stripe_invoice_id END,"
        "  status = CASE WHEN $3 AND status IN ('draft', 'open', 'uncollectible')"
        "                THEN 'paid' ELSE status END,"
        "  paid_at = CASE WHEN $3 AND status IN ('draft', 'open', 'uncollectible')"
        "                 THEN LOCALTIMESTAMP ELSE paid_at END"
        " WHERE id = $1 AND ((($2::text IS NOT NULL AND stripe_invoice_id LIKE 'pending:%'))"
        "       OR ($3 AND status IN ('draft', 'open', 'uncollectible')))",
        invoice["id"],
        stripe_id,
        paid,
    )
    return bool(status != "UPDATE 0")


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


# --- month-end invoices --------------------------------------------------------------------

# One invoice per subscription that was billable in the month (active or past_due, its period
# overlapping the month, a paid plan), numbered after the month and the subscription: a second
# run for the same month inserts nothing.
_ISSUE = """
INSERT INTO aichat.invoices (user_id, subscription_id, invoice_number, stripe_invoice_id,
                             subtotal, tax, total, status, due_date)
SELECT s.user_id, s.id, n.number, 'pending:' || n.number, p.monthly_price, 0, p.monthly_price,
       'open', $3::date
  FROM aichat.subscriptions s
  JOIN aichat.plans p ON p.id = s.plan_id
 CROSS JOIN LATERAL (SELECT 'AIC-' || to_char($1::date, 'YYYYMM') || '-'
                            || upper(replace(s.id::text, '-', '')) AS number) n
 WHERE s.status IN ('active', 'past_due')
   AND p.monthly_price > 0
   AND s.current_period_start < $2::date
   AND s.current_period_end > $1::date
ON CONFLICT (invoice_number) DO NOTHING
RETURNING id, user_id, invoice_number, total, due_date,
          (SELECT name FROM aichat.plans WHERE id = (
               SELECT plan_id FROM aichat.subscriptions WHERE id = subscription_id)) AS plan
"""

_MONTH_USAGE = """
SELECT user_id, sum(total_tokens)::bigint AS tokens, count(*) AS replies
  FROM aichat.token_usage WHERE billing_month = $1 AND user_id = ANY ($2::uuid[])
 GROUP BY user_id
"""


async def issue_invoices(conn: asyncpg.Connection, month: date) -> int:
    """Issue the invoices of `month` (its first day) in the caller's transaction, and tell
    each user of theirs; returns how many were issued now (0 when run again)."""
    month = month.replace(day=1)
    end = next_month(month)
    due = end + timedelta(days=DUE_AFTER_DAYS)
    issued = await conn.fetch(_ISSUE, month, end, due)
    if not issued:
        return 0
    usage = {
        r["user_id"]: r
        for r in await conn.fetch(_MONTH_USAGE, month, [r["user_id"] for r in issued])
    }
    for invoice in issued:
        used = usage.get(invoice["user_id"])
        spent = (
            f" In {month:%B %Y} you used {used['tokens']:,} tokens in {used['replies']:,}"
            " replies, included in the plan."
            if used
            else ""
        )
        await notify(
            conn,
            realm=REALM,
            event_key=f"invoice:{invoice['id']}:issued",
            recipients=[invoice["user_id"]],
            notification_type="invoice_issued",
            title=f"Your invoice for {month:%B %Y}",
            message=(
                f"Invoice {invoice['invoice_number']}: {invoice['total']} USD for the"
                f" {invoice['plan']} plan, due on {invoice['due_date']:%d %B %Y}.{spent}"
            ),
            action_url="/v1/aichat/invoices",
            related_entity_type="invoice",
            related_entity_id=invoice["id"],
            priority="medium",
        )
    log.info("invoices_issued", month=f"{month:%Y-%m}", count=len(issued))
    return len(issued)
