"""The mirror of Stripe's subscriptions in aichat: `mirror` copies a Stripe subscription into
aichat.subscriptions and the user's plan tier (users.plan_tier, which the quotas read). The
subscription routes, Stripe's webhook and the month-end job all go through it, so the rules
live here once: Stripe's statuses mapped onto the seed's, one row per user, a canceled row
final, periods only moving forward."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from kernel.logs import EventLog
from kernel.payments.billing import Subscription

log = EventLog("realms.aichat.mirror")

# Stripe's subscription statuses as the seed's (active, canceled, past_due, unpaid, paused).
# `incomplete` is never stored: subscriptions are created with error_if_incomplete.
STATUS_OF = {
    "active": "active",
    "trialing": "active",
    "past_due": "past_due",
    "unpaid": "unpaid",
    "paused": "paused",
    "canceled": "canceled",
    "incomplete_expired": "canceled",
}
# A subscription in one of these gives the user its plan's tier; any other leaves FREE.
ENTITLED = ("active", "past_due")
MAX_REASON = 255


def stamp(unix: int | None) -> datetime | None:
    """A Stripe time (seconds since the epoch) as the seed's `timestamp` columns hold it: UTC."""
    return None if unix is None else datetime.fromtimestamp(unix, UTC).replace(tzinfo=None)


# One row per user (user_id is UNIQUE): a new Stripe subscription takes the row over only
# from a canceled one. A canceled row stays canceled (Stripe's `canceled` is final), and a
# period only moves forward, so events arriving out of order cannot turn the clock back.
_MIRROR = """
INSERT INTO aichat.subscriptions AS s (user_id, plan_id, stripe_subscription_id,
       stripe_customer_id, status, current_period_start, current_period_end,
       cancellation_date, cancellation_reason, cancel_at_period_end, trial_ends_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (user_id) DO UPDATE SET
    plan_id = EXCLUDED.plan_id,
    stripe_subscription_id = EXCLUDED.stripe_subscription_id,
    stripe_customer_id = EXCLUDED.stripe_customer_id,
    status = CASE WHEN s.stripe_subscription_id = EXCLUDED.stripe_subscription_id
                   AND s.status = 'canceled' THEN 'canceled' ELSE EXCLUDED.status END,
    current_period_start = CASE WHEN s.stripe_subscription_id = EXCLUDED.stripe_subscription_id
        THEN greatest(s.current_period_start, EXCLUDED.current_period_start)
        ELSE EXCLUDED.current_period_start END,
    current_period_end = CASE WHEN s.stripe_subscription_id = EXCLUDED.stripe_subscription_id
        THEN greatest(s.current_period_end, EXCLUDED.current_period_end)
        ELSE EXCLUDED.current_period_end END,
    cancellation_date = EXCLUDED.cancellation_date,
    cancellation_reason = CASE WHEN EXCLUDED.cancel_at_period_end OR EXCLUDED.status = 'canceled'
        THEN coalesce(EXCLUDED.cancellation_reason, s.cancellation_reason) END,
    cancel_at_period_end = EXCLUDED.cancel_at_period_end,
    trial_ends_at = EXCLUDED.trial_ends_at
 WHERE s.stripe_subscription_id = EXCLUDED.stripe_subscription_id OR s.status = 'canceled'
RETURNING id, status
"""


async def mirror(
    conn: asyncpg.Connection,
    sub: Subscription,
    *,
    user_id: uuid.UUID | None = None,
    reason: str | None = None,
) -> uuid.UUID | None:
    """Copy Stripe's `sub` into the user's subscriptions row and plan tier, in the caller's
    transaction. The user is `user_id`, else the row that has the subscription, else its
    metadata's `user_id`. Returns the row's id (left as it is when it holds this subscription
    canceled); None when the subscription is not this realm's, is still `incomplete`, or
    another live subscription holds the user's row."""
    status = STATUS_OF.get(sub.status)
    if status is None:
        return None
    held = await conn.fetchrow(
        "SELECT id, user_id, status FROM aichat.subscriptions WHERE stripe_subscription_id = $1",
        sub.id,
    )
    if held is not None and held["status"] == "canceled":
        # Stripe's canceled is final: an older event arriving late must not rewrite the row
        # (its cancellation date and reason) nor the plan tier.
        return held["id"]  # type: ignore[no-any-return]
    if user_id is None and held is not None:
        user_id = held["user_id"]
    if user_id is None and sub.metadata.get("realm") == "aichat":
        try:
            user_id = uuid.UUID(sub.metadata.get("user_id", ""))
        except ValueError:
            user_id = None
    if user_id is None or not await conn.fetchval(
        "SELECT EXISTS (SELECT FROM aichat.users WHERE id = $1)", user_id
    ):
        return None
    plan = await conn.fetchrow(
        "SELECT id, name FROM aichat.plans WHERE stripe_price_id = $1 ORDER BY is_active DESC"
        " LIMIT 1",
        sub.price_id,
    )
    if plan is None:
        log.warning("stripe_price_unknown", stripe_subscription=sub.id, price=sub.price_id)
        return None
    start, end = sub.period()
    comment = reason or (sub.cancellation_details.comment if sub.cancellation_details else None)
    row = await conn.fetchrow(
        _MIRROR,
        user_id,
        plan["id"],
        sub.id,
        sub.customer,
        status,
        stamp(start),
        stamp(end),
        stamp(sub.canceled_at),
        comment[:MAX_REASON] if comment else None,
        sub.cancel_at_period_end,
        stamp(sub.trial_end),
    )
    if row is None:
        return None
    tier = plan["name"].upper() if row["status"] in ENTITLED else "FREE"
    await conn.execute(
        "UPDATE aichat.users SET plan_tier = $2 WHERE id = $1 AND plan_tier <> $2", user_id, tier
    )
    return row["id"]  # type: ignore[no-any-return]
