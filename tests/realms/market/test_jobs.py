"""The market's scheduled jobs, run by hand against real Postgres at fixed times: stories
expire, flash sales end, seller statistics roll up, retention deletes what the seed says,
abandoned pending orders are cancelled with their stock and payment given back. Each is
idempotent: a second run touches nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from kernel.realms import enabled_realms
from realms.market import checkout, jobs, money
from tests.realms.market.world import D, World


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        raise AssertionError("a job run by hand never sleeps")


NOW = datetime.now(UTC)


async def test_jobs_are_declared_by_the_realm() -> None:
    names = {job.name for _, job in enabled_realms({"SWITCHBOARD_REALMS": "market"}).jobs()}
    assert names == {j.name for j in jobs.JOBS} and len(names) == 8


async def test_stories_expire_after_their_lifetime(world: World) -> None:
    old = await world.story(
        created_at=NOW - timedelta(hours=30), expires_at=NOW - timedelta(hours=6)
    )
    fresh = await world.story()
    assert await jobs.expire_stories(world.db, FixedClock(NOW)) == 1
    assert await world.value("stories", "is_active", old) is False
    assert await world.value("stories", "is_active", fresh) is True
    assert await jobs.expire_stories(world.db, FixedClock(NOW)) == 0
    # a day later the fresh one (24 h by default) has expired too
    assert await jobs.expire_stories(world.db, FixedClock(NOW + timedelta(hours=25))) == 1


async def test_flash_sales_end_when_their_time_is_over(world: World) -> None:
    over = await world.flash_sale(
        starts_at=NOW - timedelta(hours=3), ends_at=NOW - timedelta(hours=1)
    )
    running = await world.flash_sale()
    assert await jobs.end_flash_sales(world.db, FixedClock(NOW)) == 1
    assert await world.value("flash_sales", "is_active", over) is False
    assert await world.value("flash_sales", "is_active", running) is True
    assert await jobs.end_flash_sales(world.db, FixedClock(NOW)) == 0


async def test_seller_statistics_roll_up(world: World, db: asyncpg.Connection) -> None:
    seller = await world.seller()
    await world.product(seller_id=seller, status="active")
    await world.order(seller_id=seller, status="delivered", total_amount=D("250.00"))
    await world.order(seller_id=seller, status="cancelled")
    assert await jobs.refresh_statistics(db, FixedClock(NOW)) == 1
    row = await db.fetchrow(
        "SELECT total_products, active_products, total_orders, completed_orders,"
        " cancelled_orders, total_revenue FROM market.seller_statistics WHERE seller_id = $1",
        seller,
    )
    assert tuple(row) == (1, 1, 2, 1, 1, D("250.00"))
    assert await jobs.refresh_analytics(db, FixedClock(NOW)) == 3
    assert (
        await db.fetchval(
            "SELECT total_orders FROM market.seller_performance WHERE seller_id = $1", seller
        )
        == 2
    )


async def test_retention_deletes_what_the_seed_says(world: World, db: asyncpg.Connection) -> None:
    gone_story = await world.story(created_at=NOW - timedelta(days=100),
                                   expires_at=NOW - timedelta(days=99))  # fmt: skip
    kept_story = await world.story(created_at=NOW - timedelta(days=10),
                                   expires_at=NOW - timedelta(days=9))  # fmt: skip
    old_event = await world.analytics_event(created_at=NOW - timedelta(days=400))
    new_event = await world.analytics_event(created_at=NOW - timedelta(days=300))
    old_log = await world.audit_log(created_at=NOW - timedelta(days=800))
    new_log = await world.audit_log(created_at=NOW - timedelta(days=700))
    assert await jobs.apply_retention(db, FixedClock(NOW)) == 3
    for table, gone, kept in (("stories", gone_story, kept_story),
                              ("analytics_events", old_event, new_event),
                              ("audit_logs", old_log, new_log)):  # fmt: skip
        assert (await world.exists(table, gone), await world.exists(table, kept)) == (False, True)
    assert await jobs.apply_retention(db, FixedClock(NOW)) == 0


async def test_abandoned_pending_orders_are_cancelled_and_released(
    world: World, db: asyncpg.Connection
) -> None:
    seller = await world.seller()
    product = await world.product(seller_id=seller, status="active", stock_quantity=10,
                                  base_price=D("40"))  # fmt: skip
    entry = await world.flash_sale_product(product_id=product, original_price=D(40),
                                           sale_price=D(30), stock_limit=6)  # fmt: skip
    buyer = await world.buyer()
    address = await world.address(buyer)
    wallet = await money.wallet_of(db, buyer)
    async with db.transaction():
        await money.move(db, wallet, "deposit", D(200))
    cart = checkout.Cart(buyer, [checkout.Line(product, 2)], address, "gogomoney")
    old = (await checkout.place_order(db, cart)).order_id
    recent = (await checkout.place_order(db, cart)).order_id
    confirmed = (await checkout.place_order(db, cart)).order_id
    await db.execute(
        "UPDATE market.orders SET created_at = $2 WHERE id = ANY ($1::bigint[])",
        [old, confirmed],
        NOW - timedelta(hours=25),
    )
    await db.execute("UPDATE market.orders SET status = 'confirmed' WHERE id = $1", confirmed)
    assert await world.value("products", "stock_quantity", product) == 4
    assert await db.fetchval("SELECT balance FROM market.wallets WHERE id = $1", wallet) == D(20)

    assert await jobs.cancel_abandoned_orders(db, FixedClock(NOW)) == 1
    statuses = dict(await db.fetch("SELECT id, status::text FROM market.orders"))
    assert statuses == {old: "cancelled", recent: "pending", confirmed: "confirmed"}
    last = await db.fetchrow(
        "SELECT status::text, notes FROM market.order_status_history WHERE order_id = $1"
        " ORDER BY id DESC LIMIT 1",
        old,
    )
    assert tuple(last) == ("cancelled", jobs.ABANDONED_REASON)
    assert await world.value("products", "stock_quantity", product) == 6
    assert await world.value("flash_sale_products", "sold_count", entry) == 4
    assert await db.fetchval("SELECT balance FROM market.wallets WHERE id = $1", wallet) == D(80)
    assert await world.value("orders", "payment_status", old) == "refunded"
    assert await jobs.cancel_abandoned_orders(db, FixedClock(NOW)) == 0
