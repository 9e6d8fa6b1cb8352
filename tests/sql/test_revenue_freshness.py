"""Issue 21 item 8: analyst_profiles.monthly_revenue follows every subscription change in the
changing transaction (trigger, sql/0020), always equal to calculate_analyst_monthly_revenue();
the monthly job only reconciles (and finds nothing to change)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from realms.analyst.jobs import recompute_monthly_revenue
from tests.factories import make_analyst, make_subscription, make_tier, make_user


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        raise AssertionError("jobs do not sleep")


async def revenue(db: asyncpg.Connection, analyst: uuid.UUID) -> tuple[int, int]:
    """(monthly_revenue, calculate_analyst_monthly_revenue) of the analyst."""
    row = await db.fetchrow(
        "SELECT monthly_revenue, analyst.calculate_analyst_monthly_revenue(user_id) AS calc"
        " FROM analyst.analyst_profiles WHERE user_id = $1",
        analyst,
    )
    return row["monthly_revenue"], row["calc"]


async def test_revenue_moves_with_each_subscription_change_in_its_transaction(
    db: asyncpg.Connection,
) -> None:
    analyst, other = await make_analyst(db), await make_analyst(db)
    tier = await make_tier(db, analyst, price_monthly=99900, price_yearly=999000)
    other_tier = await make_tier(db, other)
    monthly = await make_subscription(
        db, await make_user(db), tier, price_paid=99900, final_price=89910
    )
    assert await revenue(db, analyst) == (89910, 89910)
    yearly = await make_subscription(
        db, await make_user(db), tier, billing_cycle="yearly", price_paid=999000
    )
    assert await revenue(db, analyst) == (89910 + 83250, 89910 + 83250)
    await make_subscription(db, await make_user(db), tier, status="pending_payment", price_paid=1)
    assert (await revenue(db, analyst))[0] == 89910 + 83250  # not active: not revenue

    async with db.transaction():
        await db.execute(
            "UPDATE analyst.subscriptions SET status = 'cancelled' WHERE id = $1", monthly
        )
        assert await revenue(db, analyst) == (83250, 83250)  # before commit: same transaction
    await db.execute("UPDATE analyst.subscriptions SET final_price = 600001 WHERE id = $1", yearly)
    assert await revenue(db, analyst) == (50000, 50000)  # 600001 / 12 rounds to 50000
    await db.execute("UPDATE analyst.subscriptions SET status = 'active' WHERE id = $1", monthly)
    assert await revenue(db, analyst) == (139910, 139910)
    await db.execute("UPDATE analyst.subscriptions SET deleted_at = now() WHERE id = $1", yearly)
    assert await revenue(db, analyst) == (89910, 89910)
    await db.execute("DELETE FROM analyst.subscriptions WHERE id = $1", yearly)
    assert await revenue(db, analyst) == (89910, 89910)  # it no longer counted
    # Expiry by the seed's function moves it too.
    await db.execute(
        "UPDATE analyst.subscriptions SET expires_at = now() - interval '1 day' WHERE id = $1",
        monthly,
    )
    await db.fetchval("SELECT analyst.expire_old_subscriptions()")
    assert await revenue(db, analyst) == (0, 0)
    assert await revenue(db, other) == (0, 0)
    await make_subscription(db, await make_user(db), other_tier, price_paid=500)
    assert await revenue(db, other) == (500, 500)
    assert await recompute_monthly_revenue(db, Clock()) == 0  # nothing for the job to repair


async def test_a_bulk_insert_is_one_delta_per_analyst(db: asyncpg.Connection) -> None:
    analyst = await make_analyst(db)
    tier = await make_tier(db, analyst, price_monthly=1000)
    users = [await make_user(db) for _ in range(50)]
    await db.execute(
        "INSERT INTO analyst.subscriptions (user_id, analyst_id, tier_id, status, billing_cycle,"
        " price_paid) SELECT u, $2, $3, 'active', 'monthly', 1000 FROM unnest($1::uuid[]) u",
        users,
        analyst,
        tier,
    )
    assert await revenue(db, analyst) == (50000, 50000)


async def test_the_monthly_job_repairs_drift(db: asyncpg.Connection) -> None:
    analyst = await make_analyst(db)
    tier = await make_tier(db, analyst, price_monthly=1000)
    await make_subscription(db, await make_user(db), tier, price_paid=1000)
    await db.execute(
        "UPDATE analyst.analyst_profiles SET monthly_revenue = 3 WHERE user_id = $1", analyst
    )
    assert await recompute_monthly_revenue(db, Clock()) == 1
    assert await revenue(db, analyst) == (1000, 1000)
