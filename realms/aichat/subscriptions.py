"""aichat subscriptions through Stripe Billing (ADR 0007): subscribe, change plan, cancel and
resume. What Stripe answers is copied into the rows by realms/aichat/mirror.py, and the invoice
a change produced (the first month, a proration) by realms/aichat/billing.py.

Stripe is the biller of record: it stores the card (on the user's Stripe customer, made once
and kept in aichat.billing_customers), invoices each calendar month in advance (subscriptions
are anchored on the 1st, UTC, so Stripe's periods are our billing months; the first month is
prorated), charges and retries. A call to Stripe comes first; the rows follow what Stripe
answered, in one transaction. Errors: PaymentDeclined (400, the card), StripeUnavailable
(503, retry), Unavailable (503, card payments or the plan's Stripe price not configured),
Conflict (409)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from kernel.errors import BadRequest, Conflict, NotFound, Unavailable
from kernel.logs import EventLog
from kernel.payments.billing import Invoice, StripeBilling, Subscription
from realms.aichat.billing import record_invoice
from realms.aichat.mirror import mirror

log = EventLog("realms.aichat.subscriptions")


@dataclass(frozen=True)
class PlanRow:
    id: uuid.UUID
    name: str
    monthly_price: Decimal
    stripe_price_id: str | None


def next_anchor(now: float) -> int:
    """The 1st of the next month, 00:00 UTC: where every subscription's billing cycle turns."""
    today = datetime.fromtimestamp(now, UTC)
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


async def find_plan(conn: asyncpg.Connection, plan: str) -> PlanRow:
    """An active plan by name (any case) or id; BadRequest naming the plans on offer."""
    rows = await conn.fetch(
        "SELECT id, name, monthly_price, stripe_price_id FROM aichat.plans WHERE is_active"
        " ORDER BY monthly_price, name"
    )
    for r in rows:
        if r["name"].lower() == plan.lower() or str(r["id"]) == plan.lower():
            return PlanRow(r["id"], r["name"], r["monthly_price"], r["stripe_price_id"])
    offered = ", ".join(r["name"] for r in rows)
    raise BadRequest(f"unknown plan {plan!r}: the plans on offer are {offered}")


def _for_sale(plan: PlanRow) -> str:
    if not plan.monthly_price:
        raise BadRequest(f"the {plan.name} plan is free: it needs no subscription")
    if not plan.stripe_price_id:
        raise Unavailable(
            f"the {plan.name} plan has no Stripe price (plans.stripe_price_id): it cannot be"
            " bought yet",
            details={"reason": "plan_not_for_sale"},
        )
    return plan.stripe_price_id


async def _current(conn: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT s.*, p.name AS plan FROM aichat.subscriptions s"
        " JOIN aichat.plans p ON p.id = s.plan_id WHERE s.user_id = $1",
        user_id,
    )


async def _live(conn: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record:
    row = await _current(conn, user_id)
    if row is None or row["status"] == "canceled":
        raise NotFound("no subscription to change: subscribe first (POST /v1/aichat/subscription)")
    return row


async def subscribe(
    pool: asyncpg.Pool,
    billing: StripeBilling,
    user_id: uuid.UUID,
    plan_name: str,
    payment_method: str,
    *,
    clock: Callable[[], float] = time.time,
) -> uuid.UUID:
    """Subscribe the user to a paid plan, paying its first (prorated) month with
    `payment_method` (a Stripe PaymentMethod, kept on the user's Stripe customer for later
    months). Returns the subscription's id. A user with a live subscription gets Conflict."""
    async with pool.acquire() as conn:
        plan = await find_plan(conn, plan_name)
        price = _for_sale(plan)
        user = await conn.fetchrow("SELECT email, name FROM aichat.users WHERE id = $1", user_id)
        if user is None:
            raise NotFound("no such user")
        before = await _current(conn, user_id)
    if before is not None and before["status"] != "canceled":
        raise Conflict(
            f"already subscribed to {before['plan']} ({before['status']}): change the plan with"
            " PATCH /v1/aichat/subscription"
        )
    if before is not None:
        customer = before["stripe_customer_id"]
    else:
        customer = await _stripe_customer(pool, billing, user_id, user)
    card = await billing.attach_payment_method(
        payment_method,
        customer=customer,
        idempotency_key=f"aichat:attach:{customer}:{payment_method}",
    )
    # The subscription this one follows (a canceled one), so that every resubscribe is a new
    # request to Stripe and a retry of the same one replays its answer.
    generation = before["stripe_subscription_id"] if before is not None else "first"
    created = await billing.create_subscription(
        customer=customer,
        price=price,
        default_payment_method=card.id,
        billing_cycle_anchor=next_anchor(clock()),
        metadata={"realm": "aichat", "user_id": str(user_id), "plan": plan.name},
        idempotency_key=f"aichat:subscribe:{user_id}:{generation}:{plan.id}:{card.id}",
    )
    async with pool.acquire() as conn, conn.transaction():
        kept = await mirror(conn, created, user_id=user_id)
        if kept is not None:
            await _record_latest_invoice(conn, created)
    if kept is None:
        # A concurrent subscribe won the row: this Stripe subscription must not bill, and
        # what its first invoice charged goes back.
        await billing.cancel_now(created.id, comment="duplicate subscribe, undone")
        first = created.latest_invoice
        if isinstance(first, Invoice) and first.payment_intent and first.amount_paid > 0:
            await billing.refund(first.payment_intent, idempotency_key=f"aichat:undo:{created.id}")
        raise Conflict("another subscribe of this account finished first: nothing was charged")
    log.info("subscribed", user=str(user_id), plan=plan.name, stripe_subscription=created.id)
    return kept


async def _stripe_customer(
    pool: asyncpg.Pool, billing: StripeBilling, user_id: uuid.UUID, user: asyncpg.Record
) -> str:
    """The user's Stripe customer: made once and kept (aichat.billing_customers) whatever
    becomes of the subscribe that made it, so a retry days after a declined card reuses it."""
    async with pool.acquire() as conn:
        known = await conn.fetchval(
            "SELECT stripe_customer_id FROM aichat.billing_customers WHERE user_id = $1", user_id
        )
    if known is not None:
        return str(known)
    made = await billing.create_customer(
        email=user["email"],
        name=user["name"] or None,
        metadata={"realm": "aichat", "user_id": str(user_id)},
        idempotency_key=f"aichat:customer:{user_id}",
    )
    async with pool.acquire() as conn:
        # Two first subscribes at once share the customer (one idempotency key); the row
        # written first is the one kept either way.
        kept = await conn.fetchval(
            "INSERT INTO aichat.billing_customers (user_id, stripe_customer_id) VALUES ($1, $2)"
            " ON CONFLICT (user_id) DO UPDATE SET user_id = EXCLUDED.user_id"
            " RETURNING stripe_customer_id",
            user_id,
            made.id,
        )
    return str(kept)


async def change_plan(
    pool: asyncpg.Pool, billing: StripeBilling, user_id: uuid.UUID, plan_name: str
) -> uuid.UUID:
    """Move a live subscription to another paid plan now. Stripe invoices the prorated
    difference at once (a downgrade is a credit on the next invoice); a declined card leaves
    the plan as it was (PaymentDeclined). The new plan's quotas apply to the next send."""
    async with pool.acquire() as conn:
        row = await _live(conn, user_id)
        plan = await find_plan(conn, plan_name)
    if plan.id == row["plan_id"]:
        raise Conflict(f"the subscription is already on the {plan.name} plan")
    if not plan.monthly_price:
        raise BadRequest(
            f"{plan.name} is free: cancel the subscription instead"
            " (POST /v1/aichat/subscription/cancel)"
        )
    price = _for_sale(plan)
    current = await billing.retrieve_subscription(row["stripe_subscription_id"])
    changed = await billing.change_price(
        current.id,
        item_id=current.item_id,
        price=price,
        idempotency_key=f"aichat:change:{row['id']}:{current.item_id}:{row['updated_at'].isoformat()}"
        f":{plan.id}",
    )
    async with pool.acquire() as conn, conn.transaction():
        await mirror(conn, changed, user_id=user_id)
        await _record_latest_invoice(conn, changed)
    log.info("plan_changed", user=str(user_id), plan=plan.name, before=row["plan"])
    return row["id"]  # type: ignore[no-any-return]


async def cancel(
    pool: asyncpg.Pool,
    billing: StripeBilling,
    user_id: uuid.UUID,
    *,
    at_period_end: bool,
    reason: str | None,
) -> uuid.UUID:
    """Cancel at the end of the paid period (the plan stays until then; `resume` undoes it)
    or now (the account is back on FREE at once; Stripe refunds nothing)."""
    async with pool.acquire() as conn:
        row = await _current(conn, user_id)
    if row is None:
        raise NotFound("no subscription to cancel")
    if row["status"] == "canceled":
        raise Conflict("already cancelled: subscribe again with POST /v1/aichat/subscription")
    stripe_id = row["stripe_subscription_id"]
    if at_period_end:
        if row["cancel_at_period_end"]:
            raise Conflict(f"already cancelled: it ends on {row['current_period_end']:%Y-%m-%d}")
        after = await billing.set_cancel_at_period_end(
            stripe_id,
            True,
            comment=reason,
            idempotency_key=f"aichat:cancel:{row['id']}:{row['updated_at'].isoformat()}",
        )
    else:
        after = await billing.cancel_now(stripe_id, comment=reason)
    async with pool.acquire() as conn, conn.transaction():
        await mirror(conn, after, user_id=user_id, reason=reason)
    log.info("subscription_cancelled", user=str(user_id), at_period_end=at_period_end)
    return row["id"]  # type: ignore[no-any-return]


async def resume(pool: asyncpg.Pool, billing: StripeBilling, user_id: uuid.UUID) -> uuid.UUID:
    """Undo a cancellation at period end while the period lasts."""
    async with pool.acquire() as conn:
        row = await _live(conn, user_id)
    if not row["cancel_at_period_end"]:
        raise Conflict("the subscription is not cancelled: nothing to resume")
    after = await billing.set_cancel_at_period_end(
        row["stripe_subscription_id"],
        False,
        comment=None,
        idempotency_key=f"aichat:resume:{row['id']}:{row['updated_at'].isoformat()}",
    )
    async with pool.acquire() as conn, conn.transaction():
        await mirror(conn, after, user_id=user_id)
    return row["id"]  # type: ignore[no-any-return]


async def _record_latest_invoice(conn: asyncpg.Connection, sub: Subscription) -> None:
    """The invoice a create or a change produced (expanded in Stripe's answer), recorded now
    rather than when its webhook comes (which then changes nothing)."""
    if isinstance(sub.latest_invoice, Invoice):
        await record_invoice(conn, sub.latest_invoice)
