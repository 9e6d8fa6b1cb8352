"""The market realm's scheduled jobs, as data: JOBS (issue 17, item 7). Each runs inside the
transaction the scheduler opened for its attempt, as the owner, reads the time from `clock`,
and returns the number of rows it touched. Running one twice for the same time changes
nothing more."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from kernel.jobs import Clock, Daily, Hourly, Job
from realms.market import events, money
from realms.market.payments import refunds

# A pending order nobody confirmed (or paid) for this long is abandoned: cancelled, its stock
# and flash-sale stock released and its wallet payment refunded.
ABANDONED_AFTER = timedelta(hours=24)
ABANDONED_REASON = "abandoned: not confirmed within 24 hours"


async def expire_stories(conn: asyncpg.Connection, clock: Clock) -> int:
    """Stories past their expires_at (24 h after posting by default) stop being active."""
    count: int = await conn.fetchval("SELECT market.deactivate_expired_stories($1)", clock.now())
    return count


async def end_flash_sales(conn: asyncpg.Connection, clock: Clock) -> int:
    """Flash sales whose ends_at has passed are switched off (checkout already stops pricing
    them at ends_at; this makes the end visible in is_active)."""
    status = await conn.execute(
        "UPDATE market.flash_sales SET is_active = false WHERE is_active AND ends_at <= $1",
        clock.now(),
    )
    return int(status.split()[-1])


async def announce_flash_sales(conn: asyncpg.Connection, clock: Clock) -> int:
    """A flash sale that started within the last hour is announced (category promotion) to
    the subscribers of its sellers, except those who opted out of promotions
    (notification_settings.promotions); the event key makes a second run tell nobody."""
    now = clock.now()
    sales = await conn.fetch(
        "SELECT s.id, s.name, s.discount_percentage,"
        "  array(SELECT DISTINCT sub.subscriber_id FROM market.flash_sale_products e"
        "    JOIN market.products p ON p.id = e.product_id"
        "    JOIN market.subscriptions sub ON sub.subscribed_to_id = p.seller_id"
        "    LEFT JOIN market.notification_settings ns ON ns.user_id = sub.subscriber_id"
        "   WHERE e.flash_sale_id = s.id AND coalesce(ns.promotions, true)) AS audience"
        "  FROM market.flash_sales s"
        " WHERE s.is_active AND s.starts_at <= $1 AND s.starts_at > $1 - interval '1 hour'"
        "   AND s.ends_at > $1",
        now,
    )
    told = 0
    for sale in sales:
        result = await events.tell(
            conn,
            event_key=f"flash_sale:{sale['id']}:started",
            users=list(sale["audience"]),
            kind="promotion",
            title=f"Flash sale: {sale['name']}",
            message=f"{sale['discount_percentage']}% off, while stock lasts.",
            action_url=f"/flash-sales/{sale['id']}",
        )
        told += result.created
    return told


async def refresh_statistics(conn: asyncpg.Connection, clock: Clock) -> int:
    """The seller_statistics rollup for every live seller (market.refresh_seller_statistics)."""
    count: int = await conn.fetchval("SELECT market.refresh_seller_statistics(NULL)")
    return count


async def refresh_analytics(conn: asyncpg.Connection, clock: Clock) -> int:
    """The analytics materialized views (daily sales, product popularity, seller performance)."""
    await conn.execute("SELECT market.refresh_analytics_views()")
    return 3


async def apply_retention(conn: asyncpg.Connection, clock: Clock) -> int:
    """The seed's hard deletes: stories 90 days after they expired, analytics events after
    1 year, audit logs after 2 years (market.apply_retention)."""
    count: int = await conn.fetchval(
        "SELECT coalesce(sum(deleted), 0)::int FROM market.apply_retention($1)", clock.now()
    )
    return count


async def cancel_abandoned_orders(conn: asyncpg.Connection, clock: Clock) -> int:
    """Pending orders older than ABANDONED_AFTER are cancelled (the status trigger writes
    their history with the reason and tells their parties), then released
    (money.release_cancelled). Orders locked by a status change in flight are left for the
    next run."""
    rows = await conn.fetch(
        "WITH due AS (SELECT id FROM market.orders"
        "  WHERE status = 'pending' AND deleted_at IS NULL AND created_at <= $1"
        "  ORDER BY id FOR NO KEY UPDATE SKIP LOCKED)"
        " UPDATE market.orders o SET status = 'cancelled', cancellation_reason = $2"
        "  FROM due WHERE o.id = due.id RETURNING o.id, o.order_number, o.buyer_id",
        clock.now() - ABANDONED_AFTER,
        ABANDONED_REASON,
    )
    ids = [r["id"] for r in rows]
    await money.release_cancelled(conn, ids)
    for r in rows:
        await events.order_status(conn, r["id"], r["order_number"], r["buyer_id"], "cancelled")
    return len(ids)


JOBS: list[Job] = [
    Job(
        name="market_expire_stories",
        schedule=Hourly(minute=0),
        run=expire_stories,
        summary="switch off market stories past their lifetime",
    ),
    Job(
        name="market_end_flash_sales",
        schedule=Hourly(minute=1),
        run=end_flash_sales,
        summary="switch off market flash sales that have ended",
    ),
    Job(
        name="market_announce_flash_sales",
        schedule=Hourly(minute=2),
        run=announce_flash_sales,
        summary="announce market flash sales that started to their sellers' subscribers",
    ),
    Job(
        name="market_seller_statistics",
        schedule=Hourly(minute=20),
        run=refresh_statistics,
        summary="roll up market seller_statistics",
    ),
    Job(
        name="market_analytics_views",
        schedule=Daily(hour=2, minute=0),
        run=refresh_analytics,
        summary="refresh the market's analytics materialized views",
    ),
    Job(
        name="market_retention",
        schedule=Daily(hour=3, minute=0),
        run=apply_retention,
        summary="hard-delete expired market stories, old analytics events and audit logs",
    ),
    Job(
        name="market_abandoned_orders",
        schedule=Hourly(minute=10),
        run=cancel_abandoned_orders,
        summary="cancel market orders left pending for 24 hours and release their stock",
    ),
    Job(
        name="market_card_refunds",
        schedule=Hourly(minute=15),
        run=refunds.refund_card_payments,
        summary="send Stripe the refunds of cancelled and refunded market card orders",
    ),
]
