"""The creator realm's jobs against real Postgres: subscription renewal (queued payment, then
the period moves on once paid) and expiry, the relay outbox purge, retention, and that every
job is declared to the scheduler."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg

from kernel.realms import enabled_realms
from realms.creator import jobs
from tests.realms.creator.conftest import World, make_account


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        raise AssertionError("a job run by hand never sleeps")


async def _subscription(
    db: asyncpg.Connection, fan: uuid.UUID, creator: uuid.UUID, ends_in: str, **fields: object
) -> uuid.UUID:
    values: dict[str, object] = {
        "subscription_type": "monthly",
        "status": "active",
        "price": 1000,
        "auto_renew": True,
        **fields,
    }
    sub_id = await db.fetchval(
        "INSERT INTO creator.subscriptions (subscriber_id, creator_id, subscription_type, status,"
        " price, auto_renew, started_at, current_period_start, expires_at, cancelled_at)"
        " VALUES ($1, $2, $3, $4::varchar, $5, $6, now() - interval '40 days',"
        " now() - interval '30 days', now() + $7::text::interval,"
        " CASE WHEN $4::varchar = 'cancelled' THEN now() END) RETURNING id",
        fan,
        creator,
        values["subscription_type"],
        values["status"],
        values["price"],
        values["auto_renew"],
        ends_in,
    )
    assert isinstance(sub_id, uuid.UUID)
    return sub_id


async def test_renewal_is_queued_then_applied_once_paid_and_unpaid_periods_expire(
    world: World, db: asyncpg.Connection
) -> None:
    now = await db.fetchval("SELECT now()")
    clock = FixedClock(now)
    renewing = await _subscription(db, world.stranger, world.creator, "2 hours")
    await db.execute("DELETE FROM creator.subscriptions WHERE subscriber_id = $1", world.fan)
    no_renew = await _subscription(db, world.fan, world.creator, "-1 minute", auto_renew=False)
    other_creator = await make_account(db, account_type="creator", subscription_price=500)
    cancelled = await _subscription(db, world.fan, other_creator, "-1 minute", status="cancelled")

    async with db.transaction():
        assert await jobs.move_subscriptions(db, clock) == 3  # 1 queued, 2 expired
    payment = await db.fetchrow(
        "SELECT * FROM creator.transactions WHERE subscription_id = $1", renewing
    )
    assert payment["status"] == "pending" and payment["transaction_type"] == "subscription"
    assert (payment["gross_amount"], payment["platform_fee"], payment["net_amount"]) == (
        1000,
        200,
        800,
    )
    statuses = dict(
        await db.fetch(
            "SELECT id, status FROM creator.subscriptions WHERE id = ANY ($1::uuid[])",
            [renewing, no_renew, cancelled],
        )
    )
    assert statuses == {renewing: "active", no_renew: "expired", cancelled: "expired"}
    async with db.transaction():
        assert await jobs.move_subscriptions(db, clock) == 0  # idempotent: nothing new

    # the processor settles the renewal: the next run moves the period on by a month
    before = await db.fetchval(
        "SELECT expires_at FROM creator.subscriptions WHERE id = $1", renewing
    )
    await db.execute(
        "UPDATE creator.transactions SET status = 'completed', completed_at = now() WHERE id = $1",
        payment["id"],
    )
    async with db.transaction():
        assert await jobs.move_subscriptions(db, clock) == 1
    row = await db.fetchrow(
        "SELECT status, current_period_start, expires_at FROM creator.subscriptions WHERE id = $1",
        renewing,
    )
    assert row["status"] == "active" and row["current_period_start"] == before
    assert timedelta(days=28) <= row["expires_at"] - before <= timedelta(days=31)
    async with db.transaction():
        assert await jobs.move_subscriptions(db, clock) == 0  # renewed once


async def test_purge_retention_and_rollup_jobs_run(world: World, db: asyncpg.Connection) -> None:
    clock = FixedClock(await db.fetchval("SELECT now()"))
    await db.execute(
        "INSERT INTO creator.live_claims (key, kind, ref_id, created_at) VALUES"
        " ('old', 'tip', gen_random_uuid(), now() - interval '2 days'),"
        " ('new', 'tip', gen_random_uuid(), now())"
    )
    async with db.transaction():
        assert await jobs.purge_live_claims(db, clock) == 1
    assert await db.fetchval("SELECT array_agg(key) FROM creator.live_claims") == ["new"]
    await db.execute(
        "INSERT INTO creator.system_logs (level, message, service, created_at)"
        " VALUES ('debug', 'old', 'api', now() - interval '100 days')"
    )
    async with db.transaction():
        assert await jobs.apply_retention(db, clock) >= 1
    assert await db.fetchval("SELECT count(*) FROM creator.system_logs") == 0
    async with db.transaction():
        assert await jobs.revenue_rollup(db, clock) == 0  # no revenue yet: no rows


def test_every_job_is_declared() -> None:
    declared = {job.name for realm, job in enabled_realms({"SWITCHBOARD_REALMS": "creator"}).jobs()}
    assert declared == {job.name for job in jobs.JOBS}
    assert all(name.startswith("creator_") for name in declared)
