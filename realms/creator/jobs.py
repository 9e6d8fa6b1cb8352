"""The creator realm's scheduled jobs, as data: JOBS (issue 16, item 7). Each runs inside the
transaction the scheduler opened for its attempt, reads the time from `clock` where it
matters, returns the rows it touched, and is idempotent (a second run for the same time
changes nothing more).

Subscriptions (seed: monthly / yearly / lifetime; statuses active, cancelled, expired,
pending, failed). Reading: workers hold no payment token, so renewal is two steps. A day
before an auto-renewing period ends, the job queues the renewal payment: one `subscription`
transaction per subscription and period (`pending`, idempotency key
`renewal:<subscription>:<period end>`, gross/fee/net), for the payment processor to settle.
Once that payment is `completed`, the next run moves the period on (monthly +1 month, yearly
+1 year). A period that ends without a completed renewal (no auto-renew, cancelled, a failed or
unsettled payment) expires (creator.expire_subscriptions()). Lifetime subscriptions never end.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from kernel.jobs import Clock, Daily, Hourly, Job
from realms.creator.billing import PLATFORM_FEE_BPS
from realms.creator.streams import REMINDER_JOBS

RENEW_AHEAD = timedelta(days=1)

_QUEUE_RENEWALS = """
INSERT INTO creator.transactions (user_id, creator_id, transaction_type, subscription_id,
                                  gross_amount, platform_fee, net_amount, currency,
                                  idempotency_key, payment_method)
SELECT s.subscriber_id, s.creator_id, 'subscription', s.id,
       s.price, (s.price * $3 + 5000) / 10000, s.price - (s.price * $3 + 5000) / 10000,
       s.currency, 'renewal:' || s.id || ':' || extract(epoch FROM s.expires_at)::bigint, 'card'
  FROM creator.subscriptions s
 WHERE s.status = 'active' AND s.auto_renew AND s.subscription_type IN ('monthly', 'yearly')
   AND s.price > 0 AND s.expires_at > $1 AND s.expires_at <= $1 + $2::interval
ON CONFLICT (idempotency_key) DO NOTHING
"""

# Subscriptions whose renewal payment for the period ending at expires_at has completed.
_RENEW_PAID = """
UPDATE creator.subscriptions s
   SET current_period_start = s.expires_at,
       expires_at = s.expires_at + CASE s.subscription_type WHEN 'yearly' THEN interval '1 year'
                                                         ELSE interval '1 month' END
  FROM creator.transactions t
 WHERE t.idempotency_key = 'renewal:' || s.id || ':' || extract(epoch FROM s.expires_at)::bigint
   AND t.status = 'completed' AND s.status = 'active' AND s.auto_renew
"""


def _count(status: str) -> int:
    return int(status.split()[-1])


async def move_subscriptions(conn: asyncpg.Connection, clock: Clock) -> int:
    """Queue due renewal payments, renew the paid periods, expire the ended ones."""
    now = clock.now()
    queued = _count(await conn.execute(_QUEUE_RENEWALS, now, RENEW_AHEAD, PLATFORM_FEE_BPS))
    renewed = _count(await conn.execute(_RENEW_PAID))
    expired = int(await conn.fetchval("SELECT creator.expire_subscriptions()"))
    return queued + renewed + expired


async def lift_suspensions(conn: asyncpg.Connection, clock: Clock) -> int:
    return int(await conn.fetchval("SELECT creator.lift_expired_suspensions()"))


async def publish_scheduled_content(conn: asyncpg.Connection, clock: Clock) -> int:
    return int(await conn.fetchval("SELECT creator.publish_scheduled_content()"))


async def revenue_rollup(conn: asyncpg.Connection, clock: Clock) -> int:
    """Hourly and daily revenue rows of the last two hours (a late payment lands too)."""
    now = clock.now()
    hours = await conn.fetchval(
        "SELECT creator.refresh_revenue_analytics('hour', $1, $2)", now - timedelta(hours=2), now
    )
    days = await conn.fetchval(
        "SELECT creator.refresh_revenue_analytics('day', $1, $2)", now - timedelta(hours=2), now
    )
    return int(hours) + int(days)


async def purge_live_claims(conn: asyncpg.Connection, clock: Clock) -> int:
    """The relay's outbox keeps a day (realms/creator/relay.py)."""
    return int(await conn.fetchval("SELECT creator.purge_live_claims()"))


async def apply_retention(conn: asyncpg.Connection, clock: Clock) -> int:
    """The seed's retention policy (creator.apply_retention_policies(), docs/schema-notes.md)."""
    rows = await conn.fetch("SELECT policy, affected FROM creator.apply_retention_policies()")
    return sum(int(r["affected"]) for r in rows)


JOBS: tuple[Job, ...] = (
    Job(
        name="creator_subscription_transitions",
        schedule=Hourly(minute=7),
        run=move_subscriptions,
        summary="queue creator subscription renewals, renew paid periods, expire ended ones",
    ),
    Job(
        name="creator_lift_suspensions",
        schedule=Hourly(minute=12),
        run=lift_suspensions,
        summary="reactivate creator accounts whose suspension ended",
    ),
    Job(
        name="creator_publish_scheduled",
        schedule=Hourly(minute=2),
        run=publish_scheduled_content,
        summary="publish creator content whose scheduled time came",
    ),
    Job(
        name="creator_revenue_rollup",
        schedule=Hourly(minute=17),
        run=revenue_rollup,
        summary="refresh the creator realm's hourly and daily revenue analytics",
    ),
    Job(
        name="creator_purge_live_claims",
        schedule=Daily(hour=3, minute=40),
        run=purge_live_claims,
        summary="forget the creator relay's live events older than a day",
    ),
    Job(
        name="creator_retention",
        schedule=Daily(hour=3, minute=50),
        run=apply_retention,
        summary="apply the creator seed's retention policy (archive, purge, scrub)",
    ),
    *REMINDER_JOBS,
)
