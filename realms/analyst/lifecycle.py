"""The subscription lifecycle the scheduled jobs run (workers/jobs.py declares when):

- `notify_expiring`: a `subscription_expiring` notice some days before a subscription that will
  not renew runs out, once per subscription and period;
- `open_renewals`: a renewal order for each auto-renewing subscription that is due (its billing
  date, or a retry during the grace period), to be completed by the payment's webhook;
- `suspend_lapsed_subscriptions`: grace period over without a payment -> suspended.

The billing rules themselves (what is due, what a failure does, when access ends) live in
api/routes/subscriptions.py and are only called from here; docs/api-notes-billing.md states
them and docs/jobs.md tells the whole story. Every function runs in the caller's transaction
(the scheduler's), takes the time as `now`, and returns the rows it touched.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from kernel.notify import notify
from realms.analyst.razorpay import create_order
from realms.analyst.routes.subscriptions import renewal_due, suspend_lapsed

# Renewal orders are opened in batches of this many subscriptions (each batch: one query for
# what is due, one lock, one re-check), until fewer than a batch is left.
RENEWAL_BATCH = 500

# Active subscriptions with a set end that no renewal will extend: auto-renewal is off, or the
# renewal job would never charge them (see renewal_due: a tier deactivated or deleted, or
# nothing to charge). Free tiers (expires_at NULL) never end and are not listed.
_EXPIRING = """
SELECT s.id, s.user_id, s.analyst_id, s.expires_at,
       coalesce(p.display_name, 'your analyst') AS analyst_name
  FROM analyst.subscriptions s
  JOIN analyst.subscription_tiers t ON t.id = s.tier_id
  LEFT JOIN analyst.analyst_profiles p ON p.user_id = s.analyst_id
 WHERE s.status = 'active' AND s.deleted_at IS NULL
   AND s.expires_at > $1 AND s.expires_at <= $1 + $2::interval
   AND (NOT s.auto_renewal OR NOT t.is_active OR t.deleted_at IS NOT NULL
        OR coalesce(s.price_paid, s.final_price, 0) <= 0)
 ORDER BY s.expires_at, s.id
"""


def expiring_event_key(subscription_id: uuid.UUID, expires_at: datetime) -> str:
    """One notice per subscription and period: a renewal (or any change of expires_at) makes
    a new key, a re-run of the job the same one."""
    end = expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"subscription:{subscription_id}:expiring:{end}"


async def notify_expiring(conn: asyncpg.Connection, now: datetime, days: int) -> int:
    """Notify the subscriber of each active subscription that ends within `days` days of `now`
    and will not renew. Returns the notifications created; a re-run (or a retry of a failed
    run) creates none for subscriptions already told, whatever `now` is by then."""
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    created = 0
    # notify() is set-based over the recipients of one event; here each subscription is its
    # own event (its own key and text), so it is called once per subscription.
    for row in await conn.fetch(_EXPIRING, now, timedelta(days=days)):
        ends: datetime = row["expires_at"].astimezone(UTC)
        name = row["analyst_name"][:200]  # display names run to 255; titles stop at 255
        created += await notify(
            conn,
            event_key=expiring_event_key(row["id"], ends),
            recipients=[row["user_id"]],
            notification_type="subscription_expiring",
            title=f"Subscription to {name} ends {ends:%d %b %Y}",
            message=(
                f"Your subscription to {name} ends on {ends:%d %b %Y at %H:%M} UTC and will"
                " not renew. Subscribe again to keep your access."
            ),
            action_url=f"/subscriptions/{row['id']}",
            related_entity_type="subscription",
            related_entity_id=row["id"],
        )
    return created


async def open_renewals(conn: asyncpg.Connection, now: datetime, batch: int = RENEWAL_BATCH) -> int:
    """Open a renewal order (`create_order(..., "renewal", amount)`) for every subscription
    `renewal_due` says is due at `now`: the first charge at the billing date, and each retry
    of the grace period (at most 3, 2 days apart, before the grace period ends). Returns the
    orders opened. The payment's webhook completes each one: a capture extends the
    subscription (`activate_paid`), a failure applies the billing rules
    (`record_payment_failure`), which decides when the next retry is due.

    Idempotent: an open (`pending`) renewal order makes a subscription not due. Each batch is
    locked and checked again before its orders are opened, so a run by hand racing the
    scheduled one, or a user cancelling meanwhile, cannot get a second order or an order on a
    cancelled subscription."""
    opened = 0
    while True:
        due = await renewal_due(conn, now, batch)
        if not due:
            return opened
        ids = [d.subscription_id for d in due]
        await conn.execute(
            "SELECT 1 FROM analyst.subscriptions WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
            ids,
        )
        # Under the locks, a fresh look (READ COMMITTED: each statement sees what was committed
        # before it): an order opened, a cancellation, auto-renewal switched off meanwhile.
        still = {d.subscription_id for d in await renewal_due(conn, now, len(due) + batch)}
        fresh = [item for item in due if item.subscription_id in still]
        for item in fresh:
            await create_order(conn, item.subscription_id, "renewal", item.amount)
        opened += len(fresh)
        if len(due) < batch or not fresh:
            return opened


async def suspend_lapsed_subscriptions(conn: asyncpg.Connection, now: datetime) -> int:
    """Suspend every active subscription whose grace period ended at or before `now` without
    a payment (`suspend_lapsed`: status 'suspended', suspended_at, expires_at capped at now).
    The trigger on analyst.subscriptions then tells every gateway, which removes the member
    from the analyst's gated channels at once. Returns how many were suspended."""
    return await suspend_lapsed(conn, now)
