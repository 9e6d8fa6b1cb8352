"""Analytics and system (4013): the seller_statistics rollup, the three materialized views
(daily sales, product popularity, seller performance) and audit logs that are append-only."""

from __future__ import annotations

import asyncpg

from tests.realms.market.world import D, World, rejected


async def seller_with_history(w: World) -> int:
    """A seller with 3 live products (2 active), 4 orders (2 delivered, 1 cancelled, 1
    pending), commissions (one cancelled) and reviews (two approved: 5 and 4)."""
    seller = await w.seller()
    products = [await w.product(seller, status=s) for s in ("active", "active", "draft")]
    await w.product(seller, status="active", deleted_at=await w.db.fetchval("SELECT now()"))
    statuses = ["delivered", "delivered", "cancelled", "pending"]
    orders = [await w.order(seller_id=seller, status=s, total_amount=D(100 * (i + 1)))
              for i, s in enumerate(statuses)]  # fmt: skip
    for order in orders:
        await w.order_item(order_id=order, product_id=products[0], quantity=2)
    await w.commission(order_id=orders[0], commission_amount=D(10))
    await w.commission(order_id=orders[1], commission_amount=D(20))
    await w.commission(order_id=orders[2], commission_amount=D(30), status="cancelled")
    await w.review(order_id=orders[0], product_id=products[0], rating=5, is_approved=True)
    await w.review(order_id=orders[1], product_id=products[0], rating=4, is_approved=True)
    await w.review(order_id=orders[2], product_id=products[0], rating=1)
    return seller


async def test_seller_statistics_rollup_computes_the_documented_figures(txworld: World) -> None:
    seller = await seller_with_history(txworld)
    assert await txworld.db.fetchval("SELECT market.refresh_seller_statistics($1)", seller) == 1
    row = await txworld.db.fetchrow(
        "SELECT * FROM market.seller_statistics WHERE seller_id = $1", seller
    )
    assert (row["total_products"], row["active_products"]) == (3, 2)
    assert (row["total_orders"], row["completed_orders"], row["cancelled_orders"]) == (4, 2, 1)
    assert (row["total_revenue"], row["total_commission"]) == (D(300), D(30))
    assert (row["average_rating"], row["total_reviews"]) == (D("4.50"), 2)


async def test_seller_statistics_rollup_updates_in_place_and_keeps_response_figures(
    txworld: World,
) -> None:
    seller = await seller_with_history(txworld)
    await txworld.seller_statistics(seller, response_rate=D(97), response_time_hours=D("1.5"))
    await txworld.db.execute("SELECT market.refresh_seller_statistics()")
    rows = await txworld.db.fetch(
        "SELECT * FROM market.seller_statistics WHERE seller_id = $1", seller
    )
    assert len(rows) == 1
    assert (rows[0]["total_orders"], rows[0]["response_rate"]) == (4, D(97))
    assert rows[0]["response_time_hours"] == D("1.5")


async def test_seller_statistics_rollup_for_all_covers_every_live_seller_only(
    txworld: World,
) -> None:
    sellers = [await txworld.seller() for _ in range(3)]
    gone = await txworld.seller(deleted_at=await txworld.db.fetchval("SELECT now()"))
    await txworld.buyer()
    await txworld.db.execute("SELECT market.refresh_seller_statistics()")
    covered = {r["seller_id"] for r in await txworld.db.fetch(
        "SELECT seller_id FROM market.seller_statistics")}  # fmt: skip
    assert set(sellers) <= covered
    assert gone not in covered
    assert covered <= {r["id"] for r in await txworld.db.fetch(
        "SELECT id FROM market.users WHERE role = 'seller'")}  # fmt: skip


async def test_analytics_views_are_refreshed_and_hold_the_figures(txworld: World) -> None:
    seller = await seller_with_history(txworld)
    await txworld.db.execute("SELECT market.refresh_analytics_views()")
    await txworld.db.execute("SELECT market.refresh_analytics_views()")  # now CONCURRENTLY
    daily = await txworld.db.fetchrow(
        "SELECT orders_count, units_sold, revenue FROM market.daily_sales_summary"
        " WHERE seller_id = $1",
        seller,
    )
    # 4 orders; the cancelled one does not count as sold: 3 orders x 2 units, 100+200+400.
    assert tuple(daily) == (4, 6, D(700))
    top = await txworld.db.fetchrow(
        "SELECT units_sold, orders_count, rating_count FROM market.product_popularity"
        " WHERE seller_id = $1 ORDER BY units_sold DESC, view_count DESC LIMIT 1",
        seller,
    )
    assert tuple(top) == (6, 3, 2)
    performance = await txworld.db.fetchrow(
        "SELECT * FROM market.seller_performance WHERE seller_id = $1", seller
    )
    live = await txworld.db.fetchrow(
        "SELECT * FROM market.seller_metrics WHERE seller_id = $1", seller
    )
    assert dict(performance) == dict(live)


async def test_audit_logs_are_append_only_but_lose_a_deleted_user(txworld: World) -> None:
    user = await txworld.buyer()
    log = await txworld.audit_log(user_id=user, new_values={"price": 10})
    await rejected(
        txworld.db,
        txworld.db.execute("UPDATE market.audit_logs SET action = 'delete' WHERE id = $1", log),
        asyncpg.CheckViolationError,
        "audit_logs_append_only",
    )
    await txworld.db.execute("DELETE FROM market.users WHERE id = $1", user)
    row = await txworld.get("audit_logs", log)
    assert (row["user_id"], row["action"]) == (None, "update")
