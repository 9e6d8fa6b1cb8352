"""The declared jobs, as data: JOBS. The maintenance jobs of seed 000 ("Backup &
Maintenance"), and the subscription lifecycle (workers/lifecycle.py): expiry notices, renewal
orders, suspension after the grace period.

Each function runs inside the transaction the scheduler opened for its attempt and returns the
number of rows it touched. Schedules are spread over the small hours (UTC) so that expiry runs
before the revenue it changes is recomputed, and the hourly lifecycle jobs run at :00
(suspension) and :02 (renewals), so that each night both come before expiry at 00:05 (the
seed's expire_old_subscriptions() ignores grace periods). docs/jobs.md describes each job.
"""

from __future__ import annotations

import calendar

import asyncpg

from kernel.config import load_settings
from kernel.jobs import Clock, Daily, Hourly, Job, Monthly, Weekly
from realms.analyst import lifecycle, payouts

# Tables ANALYZE refreshes weekly: the ones written most, whose plans drift with their size.
ANALYZED_TABLES = (
    "analyst.chat_messages",
    "analyst.notifications",
    "analyst.subscriptions",
    "analyst.payment_transactions",
    "analyst.posts",
    "analyst.otp_verifications",
    "analyst.users",
)


async def expire_subscriptions(conn: asyncpg.Connection, clock: Clock) -> int:
    """Active subscriptions past expires_at become expired (the seed's function, which reads the
    database's now(), not `clock`)."""
    return int(await conn.fetchval("SELECT analyst.expire_old_subscriptions()"))


async def cleanup_otps(conn: asyncpg.Connection, clock: Clock) -> int:
    """OTPs that expired more than 24 hours ago are deleted (database now(), as above)."""
    return int(await conn.fetchval("SELECT analyst.cleanup_expired_otps()"))


async def archive_read_notifications(conn: asyncpg.Connection, clock: Clock) -> int:
    """Read notifications created more than 30 days ago move to notifications_archive."""
    return int(await conn.fetchval("SELECT analyst.archive_read_notifications($1)", clock.now()))


async def archive_closed_tickets(conn: asyncpg.Connection, clock: Clock) -> int:
    """Tickets closed more than 60 days ago move to support_tickets_archive."""
    return int(await conn.fetchval("SELECT analyst.archive_closed_tickets($1)", clock.now()))


async def recompute_monthly_revenue(conn: asyncpg.Connection, clock: Clock) -> int:
    """Every analyst profile's monthly_revenue := calculate_analyst_monthly_revenue(user_id);
    only profiles whose figure changes are written (and counted)."""
    status = await conn.execute(
        """
        UPDATE analyst.analyst_profiles p
           SET monthly_revenue = r.revenue
          FROM (SELECT user_id, analyst.calculate_analyst_monthly_revenue(user_id) AS revenue
                  FROM analyst.analyst_profiles) r
         WHERE p.user_id = r.user_id AND p.monthly_revenue <> r.revenue
        """
    )
    return int(status.split()[-1])


async def analyze_tables(conn: asyncpg.Connection, clock: Clock) -> int:
    """ANALYZE of ANALYZED_TABLES (allowed in a transaction, unlike VACUUM); returns how many
    tables were analyzed."""
    await conn.execute("ANALYZE " + ", ".join(ANALYZED_TABLES))
    return len(ANALYZED_TABLES)


async def notify_expiring_subscriptions(conn: asyncpg.Connection, clock: Clock) -> int:
    """`subscription_expiring` notices SUBSCRIPTION_EXPIRING_DAYS days (default 3) before an
    active subscription that will not renew ends; once per subscription and period."""
    days = load_settings().subscription_expiring_days  # checked when the worker started
    return await lifecycle.notify_expiring(conn, clock.now(), days)


async def renew_subscriptions(conn: asyncpg.Connection, clock: Clock) -> int:
    """A renewal order for each auto-renewing subscription due now (billing date, or a retry
    in the grace period); the payment's webhook completes it."""
    return await lifecycle.open_renewals(conn, clock.now())


async def suspend_lapsed_subscriptions(conn: asyncpg.Connection, clock: Clock) -> int:
    """Active subscriptions whose grace period is over without a payment become suspended."""
    return await lifecycle.suspend_lapsed_subscriptions(conn, clock.now())


async def queue_payouts(conn: asyncpg.Connection, clock: Clock) -> int:
    """One payout per analyst of their captured shares not yet paid out (active accounts with
    a payout account, at least 100 paise due); no network: `send_payouts` sends them."""
    return len(await payouts.queue_payouts(conn))


async def send_payouts(conn: asyncpg.Connection, clock: Clock) -> int:
    """Send each payout not yet accepted by the payouts API (idempotently: its id is the
    key) and record the answers; returns how many were accepted or refused. Fails (and is
    retried) when the API cannot be reached, or when payouts wait and none are configured."""
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM analyst.payment_transactions"
        " WHERE transaction_type = 'payout' AND payout_status = 'created')"
    ):
        return 0
    config = payouts.payouts_config(load_settings())
    async with payouts.PayoutsClient(config) as client:
        return await payouts.send_created(conn, client, clock.now())


JOBS: tuple[Job, ...] = (
    Job(
        name="expire_subscriptions",
        schedule=Daily(hour=0, minute=5),
        run=expire_subscriptions,
        summary="mark active subscriptions past expires_at as expired",
    ),
    Job(
        name="cleanup_otps",
        schedule=Daily(hour=0, minute=20),
        run=cleanup_otps,
        summary="delete OTPs that expired more than 24 hours ago",
    ),
    Job(
        name="recompute_monthly_revenue",
        schedule=Monthly(day=1, hour=0, minute=35),
        run=recompute_monthly_revenue,
        summary="rewrite analyst_profiles.monthly_revenue from active subscriptions",
    ),
    Job(
        name="archive_read_notifications",
        schedule=Monthly(day=1, hour=1, minute=0),
        run=archive_read_notifications,
        summary="move read notifications older than 30 days to notifications_archive",
    ),
    Job(
        name="archive_closed_tickets",
        schedule=Monthly(day=1, hour=1, minute=30),
        run=archive_closed_tickets,
        summary="move tickets closed more than 60 days ago to support_tickets_archive",
    ),
    Job(
        name="analyze_tables",
        schedule=Weekly(weekday=calendar.SUNDAY, hour=2, minute=0),
        run=analyze_tables,
        summary="refresh planner statistics of the busiest tables",
    ),
    Job(
        name="suspend_lapsed_subscriptions",
        schedule=Hourly(minute=0),
        run=suspend_lapsed_subscriptions,
        summary="suspend active subscriptions whose grace period ended without a payment",
    ),
    Job(
        name="renew_subscriptions",
        schedule=Hourly(minute=2),
        run=renew_subscriptions,
        summary="open renewal orders for auto-renewing subscriptions due (billing date, retries)",
    ),
    Job(
        name="notify_expiring_subscriptions",
        schedule=Daily(hour=3, minute=30),
        run=notify_expiring_subscriptions,
        summary="tell subscribers a few days ahead that a subscription will end, not renew",
    ),
    Job(
        name="queue_payouts",
        schedule=Daily(hour=4, minute=0),
        run=queue_payouts,
        summary="gather each analyst's captured, unpaid share into one payout (no network)",
    ),
    Job(
        name="send_payouts",
        schedule=Hourly(minute=10),
        run=send_payouts,
        summary="send queued payouts to the payouts API (idempotent) and record its answers",
    ),
)


def job_named(name: str) -> Job | None:
    """The declared job called `name`, if any."""
    return next((job for job in JOBS if job.name == name), None)
