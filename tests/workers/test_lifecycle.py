"""workers/lifecycle.py and its jobs: expiry notices, renewal orders, suspension after the grace
period; and the whole story on a manual clock, from a billing date to a member removed from a
gated channel of a real gateway process.

Times are a ManualClock's (2031, so never the database's now()): the jobs read the clock, and
the failure path (`_fail`, the webhook's handler of payment.failed) is given the same time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from kernel.config import ConfigError, load_settings
from kernel.db import connect, create_pool
from kernel.jobs import Daily, Hourly, next_after
from realms.analyst.jobs import JOBS, job_named, notify_expiring_subscriptions
from realms.analyst.lifecycle import (
    expiring_event_key,
    notify_expiring,
    open_renewals,
    suspend_lapsed_subscriptions,
)
from realms.analyst.razorpay import create_order
from realms.analyst.routes.payments import PaymentEntity, _capture, _fail
from realms.analyst.routes.subscriptions import GRACE_PERIOD, RETRY_SPACING, cancel
from tests.factories import make_analyst, make_subscription, make_tier, make_user
from tests.gateway import conftest as gateway_fixtures
from tests.gateway.harness import Frame, WsClient
from tests.workers.test_scheduler import ManualClock, utc
from workers.scheduler import Scheduler

# The gateway fixtures (a populated world, real gateway processes on this test's database).
world = gateway_fixtures.world
start_gateway = gateway_fixtures.start_gateway
gw = gateway_fixtures.gw
connect_as = gateway_fixtures.connect_as

DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)
PRICE = 99900
T0 = utc(2031, 3, 3, 14, 2)  # a renew_subscriptions time (hourly at :02)


async def priced(
    db: asyncpg.Connection, tier: uuid.UUID, user: uuid.UUID | None = None, **fields: Any
) -> uuid.UUID:
    """A paid, active, auto-renewing subscription of a new user (one per user and analyst)."""
    values: dict[str, Any] = {"price_paid": PRICE, "final_price": PRICE, **fields}
    return await make_subscription(db, user or await make_user(db), tier, **values)


async def due_at(db: asyncpg.Connection, tier: uuid.UUID, at: datetime, **fields: Any) -> uuid.UUID:
    """An auto-renewing subscription whose period (and billing date) ends at `at`."""
    return await priced(db, tier, expires_at=at, next_billing_date=at, **fields)


async def subscription(db: asyncpg.Connection, subscription_id: uuid.UUID) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM analyst.subscriptions WHERE id = $1", subscription_id)
    assert row is not None
    return row


async def renewal_orders(
    db: asyncpg.Connection, subscription_id: uuid.UUID
) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            "SELECT * FROM analyst.payment_transactions"
            " WHERE subscription_id = $1 AND transaction_type = 'renewal'"
            " ORDER BY created_at, id",
            subscription_id,
        )
    )


async def pending_order(db: asyncpg.Connection, subscription_id: uuid.UUID) -> asyncpg.Record:
    [order] = [o for o in await renewal_orders(db, subscription_id) if o["status"] == "pending"]
    return order


async def payment_fails(db: asyncpg.Connection, subscription_id: uuid.UUID, at: datetime) -> None:
    """Razorpay's payment.failed for the open renewal order, through the webhook's handler."""
    async with db.transaction():
        order = await pending_order(db, subscription_id)
        payment = await db.fetchrow(
            "SELECT * FROM analyst.payment_transactions WHERE id = $1 FOR UPDATE", order["id"]
        )
        entity = PaymentEntity(
            id=f"pay_{uuid.uuid4().hex[:14]}",
            order_id=order["razorpay_order_id"],
            error_code="BAD_REQUEST_ERROR",
            error_description="card declined",
        )
        await _fail(db, payment, entity, at)


async def payment_captured(
    db: asyncpg.Connection, subscription_id: uuid.UUID, at: datetime
) -> None:
    """Razorpay's payment.captured for the open renewal order, through the webhook's handler."""
    async with db.transaction():
        order = await pending_order(db, subscription_id)
        payment = await db.fetchrow(
            "SELECT * FROM analyst.payment_transactions WHERE id = $1 FOR UPDATE", order["id"]
        )
        assert await _capture(db, payment, f"pay_{uuid.uuid4().hex[:14]}", None, "card", at)


# --- the declared jobs -------------------------------------------------------------------------


def test_the_lifecycle_jobs_and_their_schedules() -> None:
    schedules = {
        name: job.schedule
        for name in (
            "suspend_lapsed_subscriptions",
            "renew_subscriptions",
            "notify_expiring_subscriptions",
        )
        if (job := job_named(name)) is not None
    }
    assert schedules == {
        "suspend_lapsed_subscriptions": Hourly(minute=0),
        "renew_subscriptions": Hourly(minute=2),
        "notify_expiring_subscriptions": Daily(hour=3, minute=30),
    }


def test_each_night_suspension_and_renewals_run_before_expiry() -> None:
    """expire_old_subscriptions() ignores grace periods: a lapsed subscription must be
    suspended (and a due one charged) before it runs, or it would be called expired."""
    before_midnight = utc(2031, 3, 3) - timedelta(microseconds=1)
    first = {job.name: next_after(job.schedule, before_midnight) for job in JOBS}
    assert (
        first["suspend_lapsed_subscriptions"]
        < first["renew_subscriptions"]
        < first["expire_subscriptions"]
    )


# --- expiry notices ----------------------------------------------------------------------------


async def test_expiring_notices_go_to_subscriptions_that_will_not_renew_once(
    db: asyncpg.Connection,
) -> None:
    now = utc(2031, 3, 3, 3, 30)
    analyst = await make_analyst(db, display_name="Alpha Desk")
    tier = await make_tier(db, analyst)
    retired = await make_tier(db, analyst, is_active=False)
    in_2_days = await priced(db, tier, auto_renewal=False, expires_at=now + 2 * DAY)
    at_the_edge = await priced(db, tier, auto_renewal=False, expires_at=now + 3 * DAY)
    # auto-renewing, but renewal_due would never charge them: the tier is no longer sold, or
    # there is nothing to charge
    tier_retired = await due_at(db, retired, now + DAY)
    nothing_to_pay = await due_at(db, tier, now + DAY, price_paid=0, final_price=0)
    later = await priced(db, tier, auto_renewal=False, expires_at=now + 3 * DAY + MINUTE)
    untold = [
        await due_at(db, tier, now + DAY),  # will renew
        await priced(db, tier, status="cancelled", auto_renewal=False, expires_at=now + DAY),
        await priced(db, tier, auto_renewal=False, expires_at=now - MINUTE),  # already ended
        await priced(db, tier, auto_renewal=False, expires_at=None),  # never ends
        await priced(db, tier, auto_renewal=False, expires_at=now + DAY, deleted_at=now),
    ]

    assert await notify_expiring(db, now, days=3) == 4
    rows = await db.fetch(
        "SELECT n.*, s.expires_at AS ends, s.user_id AS subscriber FROM analyst.notifications n"
        " JOIN analyst.subscriptions s ON s.id = n.related_entity_id"
    )
    assert {r["related_entity_id"] for r in rows} == {
        in_2_days,
        at_the_edge,
        tier_retired,
        nothing_to_pay,
    }
    assert not {r["related_entity_id"] for r in rows} & {later, *untold}
    for r in rows:
        assert r["user_id"] == r["subscriber"]
        assert r["notification_type"] == "subscription_expiring"
        assert r["related_entity_type"] == "subscription"
        assert r["action_url"] == f"/subscriptions/{r['related_entity_id']}"
        assert r["idempotency_key"] == (
            expiring_event_key(r["related_entity_id"], r["ends"]) + f":{r['user_id']}"
        )
    told = {r["related_entity_id"]: r for r in rows}
    assert told[in_2_days]["title"] == "Subscription to Alpha Desk ends 05 Mar 2031"
    assert told[in_2_days]["message"].startswith(
        "Your subscription to Alpha Desk ends on 05 Mar 2031 at 03:30 UTC and will not renew."
    )

    # Re-runs (and retries) tell nobody twice; the next day, only the newcomer to the window.
    assert await notify_expiring(db, now, days=3) == 0
    assert await notify_expiring(db, now + DAY, days=3) == 1
    assert await notify_expiring(db, now + DAY, days=3) == 0

    # A new period (expires_at moved on) is a new notice, once.
    await db.execute(
        "UPDATE analyst.subscriptions SET expires_at = expires_at + interval '1 month'"
        " WHERE id = $1",
        in_2_days,
    )
    assert await notify_expiring(db, now + 30 * DAY, days=3) == 1
    assert await notify_expiring(db, now + 31 * DAY, days=3) == 0
    assert await db.fetchval("SELECT count(*) FROM analyst.notifications") == 6


async def test_the_notice_window_follows_subscription_expiring_days(
    db: asyncpg.Connection, dsn: str, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = utc(2031, 3, 3, 3, 30)
    tier = await make_tier(db, await make_analyst(db))
    await priced(db, tier, auto_renewal=False, expires_at=now + 4 * DAY)
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("SWITCHBOARD_SECRET", secret)
    monkeypatch.delenv("SUBSCRIPTION_EXPIRING_DAYS", raising=False)
    assert await notify_expiring_subscriptions(db, ManualClock(now)) == 0  # default: 3 days
    monkeypatch.setenv("SUBSCRIPTION_EXPIRING_DAYS", "5")
    assert await notify_expiring_subscriptions(db, ManualClock(now)) == 1
    with pytest.raises(ValueError, match="days"):
        await notify_expiring(db, now, days=0)


def test_subscription_expiring_days_setting(secret: str) -> None:
    base = {"DATABASE_URL": "postgresql://db/x", "SWITCHBOARD_SECRET": secret}
    assert load_settings(base).subscription_expiring_days == 3
    assert (
        load_settings({**base, "SUBSCRIPTION_EXPIRING_DAYS": "7"}).subscription_expiring_days == 7
    )
    for bad in ("0", "-2", "three"):
        with pytest.raises(ConfigError, match="SUBSCRIPTION_EXPIRING_DAYS"):
            load_settings({**base, "SUBSCRIPTION_EXPIRING_DAYS": bad})


# --- renewal orders ----------------------------------------------------------------------------


async def test_renewal_orders_open_for_subscriptions_due_and_only_once(
    db: asyncpg.Connection,
) -> None:
    analyst = await make_analyst(db)
    tier = await make_tier(db, analyst)
    retired = await make_tier(db, analyst, is_active=False)
    due = await due_at(db, tier, T0 - MINUTE, final_price=49900)  # first period discounted
    not_yet = await due_at(db, tier, T0 + MINUTE)
    not_due = [
        await due_at(db, tier, T0 - DAY, auto_renewal=False),
        await due_at(db, retired, T0 - DAY),
        await due_at(db, tier, T0 - DAY, status="cancelled"),
    ]
    already = await due_at(db, tier, T0 - DAY)
    await create_order(db, already, "renewal", PRICE)

    assert await open_renewals(db, T0) == 1
    [order] = await renewal_orders(db, due)
    sub = await subscription(db, due)
    assert (order["status"], order["amount"], order["currency"]) == ("pending", PRICE, "INR")
    assert (order["user_id"], order["analyst_id"]) == (sub["user_id"], sub["analyst_id"])
    assert order["razorpay_order_id"].startswith("order_")
    assert sub["status"] == "active"  # nothing changes until the payment's outcome arrives
    for other in not_due:
        assert await renewal_orders(db, other) == []
    assert len(await renewal_orders(db, already)) == 1

    assert await open_renewals(db, T0) == 0  # the open order makes it not due
    assert await open_renewals(db, T0 + MINUTE) == 1  # `not_yet` now is
    assert len(await renewal_orders(db, not_yet)) == 1


async def test_renewals_are_opened_batch_after_batch_until_none_is_due(
    db: asyncpg.Connection,
) -> None:
    tier = await make_tier(db, await make_analyst(db))
    subs = [await due_at(db, tier, T0 - n * MINUTE) for n in range(5)]
    assert await open_renewals(db, T0, batch=2) == 5
    assert [len(await renewal_orders(db, s)) for s in subs] == [1] * 5


async def waits_on_a_lock(db: asyncpg.Connection, other: asyncpg.Connection) -> None:
    """Until `other`'s statement waits on a row lock (nothing to await: pg_stat_activity)."""
    pid = other.get_server_pid()
    async with asyncio.timeout(10):
        while not await db.fetchval(  # noqa: ASYNC110 - no event to await
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        ):
            await asyncio.sleep(0.01)


async def test_two_runs_at_once_open_one_order_per_subscription(
    dsn: str, db: asyncpg.Connection
) -> None:
    """A run by hand racing the scheduled one: the second saw the subscriptions due before the
    first committed, waits on its locks, looks again and opens nothing."""
    tier = await make_tier(db, await make_analyst(db))
    subs = [await due_at(db, tier, T0 - DAY) for _ in range(3)]
    first, second = await connect(dsn), await connect(dsn)
    try:
        scheduled = first.transaction()
        await scheduled.start()
        assert await open_renewals(first, T0) == 3
        by_hand = second.transaction()
        await by_hand.start()
        racing = asyncio.create_task(open_renewals(second, T0))
        await waits_on_a_lock(db, second)
        await scheduled.commit()
        assert await racing == 0
        await by_hand.commit()
    finally:
        await first.close()
        await second.close()
    assert [len(await renewal_orders(db, s)) for s in subs] == [1] * 3


async def test_no_order_is_opened_for_a_subscription_cancelled_meanwhile(
    dsn: str, db: asyncpg.Connection
) -> None:
    tier = await make_tier(db, await make_analyst(db))
    sub = await due_at(db, tier, T0 - DAY)
    user, job = await connect(dsn), await connect(dsn)
    try:
        cancelling = user.transaction()
        await cancelling.start()
        await user.execute("SELECT 1 FROM analyst.subscriptions WHERE id = $1 FOR UPDATE", sub)
        await cancel(user, sub, T0)
        renewing = job.transaction()
        await renewing.start()
        run = asyncio.create_task(open_renewals(job, T0))  # sees it due: not yet committed
        await waits_on_a_lock(db, job)
        await cancelling.commit()
        assert await run == 0
        await renewing.commit()
    finally:
        await user.close()
        await job.close()
    assert await renewal_orders(db, sub) == []
    assert (await subscription(db, sub))["status"] == "cancelled"


# --- failures, retries, suspension -------------------------------------------------------------


async def test_failed_renewals_are_retried_on_days_2_4_and_6_and_the_third_failure_suspends(
    db: asyncpg.Connection,
) -> None:
    tier = await make_tier(db, await make_analyst(db))
    sub = await due_at(db, tier, T0 - MINUTE)
    assert await open_renewals(db, T0) == 1
    await payment_fails(db, sub, T0)
    row = await subscription(db, sub)
    assert (row["status"], row["payment_retry_count"]) == ("active", 0)
    assert row["grace_period_ends_at"] == T0 + GRACE_PERIOD == T0 + 7 * DAY
    assert row["expires_at"] == T0 + GRACE_PERIOD  # access continues through the grace period
    assert await open_renewals(db, T0 + DAY) == 0  # the failed order is no longer open

    for retry, day in enumerate((2, 4, 6), start=1):
        at = T0 + day * DAY
        assert at == T0 + retry * RETRY_SPACING
        assert await open_renewals(db, at - MINUTE) == 0
        assert await open_renewals(db, at) == 1
        assert await open_renewals(db, at) == 0
        assert await suspend_lapsed_subscriptions(db, at) == 0  # still in grace
        await payment_fails(db, sub, at)
        assert (await subscription(db, sub))["payment_retry_count"] == retry

    row = await subscription(db, sub)
    assert (row["status"], row["suspended_at"], row["expires_at"]) == (
        "suspended",
        T0 + 6 * DAY,
        T0 + 6 * DAY,
    )
    # No fourth retry, and nothing left for the suspension job.
    assert await open_renewals(db, T0 + 8 * DAY) == 0
    assert await suspend_lapsed_subscriptions(db, T0 + 8 * DAY) == 0
    orders = await renewal_orders(db, sub)
    assert [o["status"] for o in orders] == ["failed"] * 4


async def test_a_paid_retry_ends_the_grace_period(db: asyncpg.Connection) -> None:
    tier = await make_tier(db, await make_analyst(db))
    billing_date = T0 - MINUTE
    sub = await due_at(db, tier, billing_date)
    assert await open_renewals(db, T0) == 1
    await payment_fails(db, sub, T0)
    assert await open_renewals(db, T0 + 2 * DAY) == 1
    await payment_captured(db, sub, T0 + 2 * DAY)
    row = await subscription(db, sub)
    assert (row["status"], row["payment_retry_count"], row["grace_period_ends_at"]) == (
        "active",
        0,
        None,
    )
    # Extended from its billing date, not from the payment: the next charge a month on.
    assert row["next_billing_date"] == row["expires_at"] == utc(2031, 4, 3, 14, 1)
    assert await suspend_lapsed_subscriptions(db, T0 + 8 * DAY) == 0
    assert await open_renewals(db, T0 + 8 * DAY) == 0


async def test_suspension_takes_only_subscriptions_whose_grace_period_is_over(
    db: asyncpg.Connection,
) -> None:
    now = utc(2031, 3, 10, 15, 0)
    tier = await make_tier(db, await make_analyst(db))

    async def in_grace(ends: datetime | None, **fields: Any) -> uuid.UUID:
        return await priced(
            db,
            tier,
            grace_period_ends_at=ends,
            expires_at=ends or now + DAY,
            payment_retry_count=2 if ends else 0,
            **fields,
        )

    lapsed = await in_grace(now - MINUTE)
    at_the_end = await in_grace(now)
    kept = {
        await in_grace(now + MINUTE): "active",
        await in_grace(None): "active",
        await in_grace(now - DAY, status="cancelled"): "cancelled",
    }
    assert await suspend_lapsed_subscriptions(db, now) == 2
    for sub, ended in ((lapsed, now - MINUTE), (at_the_end, now)):
        row = await subscription(db, sub)
        assert (row["status"], row["suspended_at"], row["expires_at"]) == ("suspended", now, ended)
    for sub, status in kept.items():
        assert (await subscription(db, sub))["status"] == status
    assert await suspend_lapsed_subscriptions(db, now) == 0


# --- the whole story on a running scheduler and a real gateway ---------------------------------

ConnectAs = Callable[..., Awaitable[WsClient]]


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(dsn, min_size=1, max_size=3, application_name="test-lifecycle")
    try:
        yield pool
    finally:
        await pool.close()


def event(kind: str, channel: str, user: uuid.UUID | None = None) -> Callable[[Frame], bool]:
    return lambda f: (
        f.get("op") == "event"
        and f.get("kind") == kind
        and f.get("channel") == channel
        and (user is None or f.get("user_id") == str(user))
    )


async def test_from_a_failed_renewal_to_removal_from_the_gated_channel(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    world: gateway_fixtures.World,
    connect_as: ConnectAs,
) -> None:
    """An active, auto-renewing subscription reaches its billing date; the hourly renewal job
    opens an order; the payment fails; retries are opened 2, 4 and 6 days later (the first two
    fail, the third is never paid); the grace period ends 7 days after the first failure; the
    suspension job suspends the subscription at its next hour; and every gateway removes the
    member from the analyst's gated channel at once."""
    billing_date = T0 - 20 * MINUTE
    await db.execute(
        "UPDATE analyst.subscriptions SET auto_renewal = true, price_paid = $2,"
        " final_price = $2, start_date = $3::timestamptz - interval '1 month',"
        " expires_at = $3, next_billing_date = $3 WHERE id = $1",
        world.subscription,
        PRICE,
        billing_date,
    )
    alice = await connect_as(world.member)
    bob = await connect_as(world.other_member)
    await alice.ok("join", channel=world.room)
    await bob.ok("join", channel=world.room)

    jobs = [job_named("suspend_lapsed_subscriptions"), job_named("renew_subscriptions")]
    clock = ManualClock(T0 - 30 * MINUTE)
    scheduler = Scheduler(pool, [job for job in jobs if job is not None], clock=clock, node="w")

    async def at(when: datetime) -> None:
        """Move the clock to `when` and wait until both jobs have run what was due and sleep
        until their next hour."""
        await clock.move_to(when)
        await clock.sleeping(next_after(Hourly(minute=0), when), next_after(Hourly(minute=2), when))

    async def orders() -> list[str]:
        return [o["status"] for o in await renewal_orders(db, world.subscription)]

    def not_removed_yet() -> None:
        assert not alice.take_all(event("removed", world.room))

    stop = asyncio.Event()
    running = asyncio.create_task(scheduler.run(stop))
    try:
        # On start each job catches up on its latest hour: nothing is due before the billing date.
        await clock.sleeping(T0 - 2 * MINUTE, T0)
        assert await orders() == []

        await at(T0)  # the first hourly run after the billing date: the renewal order
        assert await orders() == ["pending"]
        await payment_fails(db, world.subscription, T0)  # Razorpay's payment.failed, at once
        grace_ends = T0 + 7 * DAY
        row = await subscription(db, world.subscription)
        assert (row["status"], row["grace_period_ends_at"]) == ("active", grace_ends)

        for day, outcome in ((2, "failed"), (4, "failed"), (6, None)):
            retry_at = T0 + day * DAY
            await at(retry_at - timedelta(hours=1))  # an hour early: nothing
            assert len(await orders()) == day // 2
            await at(retry_at)  # 2 days after the last attempt: the retry's order
            assert (await orders())[-1] == "pending"
            if outcome == "failed":
                await payment_fails(db, world.subscription, retry_at)
            not_removed_yet()
        assert await orders() == ["failed", "failed", "failed", "pending"]  # never paid

        await at(grace_ends - 2 * MINUTE)  # the hour before the grace period ends: still on
        assert (await subscription(db, world.subscription))["status"] == "active"
        not_removed_yet()
        await bob.ok("send", channel=world.room, text="alice is still here")

        suspended_at = grace_ends - 2 * MINUTE + timedelta(hours=1)  # the next :00
        await at(suspended_at)
        removed = await alice.expect(event("removed", world.room))
        assert removed.get("reason"), removed
        reply = await alice.call("send", channel=world.room, text="still here?")
        assert (reply["op"], reply["code"]) == ("error", "forbidden"), reply
        await bob.expect(event("left", world.room, world.member))
        await bob.ok("send", channel=world.room, text="bob is unaffected")
        assert (await alice.call("join", channel=world.room))["code"] == "forbidden"

        row = await subscription(db, world.subscription)
        assert (row["status"], row["suspended_at"], row["expires_at"]) == (
            "suspended",
            suspended_at,
            grace_ends,
        )
        await at(suspended_at + DAY)  # suspended: no more retries
        assert len(await orders()) == 4
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await running

    runs = await db.fetch(
        "SELECT job, scheduled_for, rows_touched FROM gateway.job_runs"
        " WHERE status = 'succeeded' AND rows_touched > 0 ORDER BY scheduled_for"
    )
    assert [(r["job"], r["scheduled_for"], r["rows_touched"]) for r in runs] == [
        ("renew_subscriptions", T0, 1),
        ("renew_subscriptions", T0 + 2 * DAY, 1),
        ("renew_subscriptions", T0 + 4 * DAY, 1),
        ("renew_subscriptions", T0 + 6 * DAY, 1),
        ("suspend_lapsed_subscriptions", suspended_at, 1),
    ]
