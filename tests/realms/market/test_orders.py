"""Orders (4006): the documented state order of orders.status, order_status_history written by
the trigger in the same transaction, the stamps of cancellation and delivery, the agreement of
an order with its address, items and courier, and promo code usage counted and limited (also
under concurrency)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from itertools import product

import asyncpg
import pytest

from kernel.db import connect
from tests.realms.market.world import T0, D, World, rejected

CHAIN = ["pending", "confirmed", "processing", "ready_for_pickup", "picked_up", "in_transit",
         "delivered"]  # fmt: skip
STATUSES = [*CHAIN, "cancelled", "refunded"]


def allowed(old: str, new: str) -> bool:
    """The documented state order, written independently of the SQL (SCHEMA_NOTES.md)."""
    if old == new:
        return True
    if new == "cancelled":
        return old in CHAIN[:-1]
    if new == "refunded":
        return old in ("delivered", "cancelled")
    return old in CHAIN and new in CHAIN and CHAIN.index(new) == CHAIN.index(old) + 1


PAIRS = [(a, b) for a, b in product(STATUSES, STATUSES) if a != b]


async def history(db: asyncpg.Connection, order_id: int) -> list[str]:
    rows = await db.fetch(
        "SELECT status::text FROM market.order_status_history WHERE order_id = $1 ORDER BY id",
        order_id,
    )
    return [r["status"] for r in rows]


async def set_status(db: asyncpg.Connection, order_id: int, status: str) -> None:
    await db.execute("UPDATE market.orders SET status = $1 WHERE id = $2", status, order_id)


# -- the state order --------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
async def test_status_change_follows_the_documented_state_order(
    txworld: World, old: str, new: str
) -> None:
    db = txworld.db
    verdict = await db.fetchval("SELECT market.order_status_transition_allowed($1, $2)", old, new)
    assert verdict is allowed(old, new)
    order = await txworld.order(status=old)
    change = set_status(db, order, new)
    if allowed(old, new):
        await change
        assert await txworld.value("orders", "status", order) == new
    else:
        error = await rejected(db, change, asyncpg.CheckViolationError, "orders_status_transition")
        assert f"illegal order status transition: {old} -> {new}" in str(error)
        assert await txworld.value("orders", "status", order) == old


async def test_staying_in_the_same_status_is_allowed_and_writes_no_history(
    txworld: World,
) -> None:
    order = await txworld.order()
    await set_status(txworld.db, order, "pending")
    await txworld.db.execute("UPDATE market.orders SET notes = 'ring twice' WHERE id = $1", order)
    assert await history(txworld.db, order) == ["pending"]


async def test_a_new_order_may_start_in_any_status(txworld: World) -> None:
    order = await txworld.order(status="in_transit")
    assert await history(txworld.db, order) == ["in_transit"]


# -- order_status_history ---------------------------------------------------------------------


async def test_new_order_writes_its_first_status_to_history(txworld: World) -> None:
    order = await txworld.order()
    assert await history(txworld.db, order) == ["pending"]


async def test_walking_the_chain_records_every_status_in_order(txworld: World) -> None:
    order = await txworld.order()
    for status in CHAIN[1:]:
        await set_status(txworld.db, order, status)
    await set_status(txworld.db, order, "refunded")
    assert await history(txworld.db, order) == [*CHAIN, "refunded"]


async def test_status_history_is_written_in_the_same_transaction(world: World, dsn: str) -> None:
    order = await world.order()
    other = await connect(dsn)
    try:
        async with world.db.transaction():
            await set_status(world.db, order, "confirmed")
            # Inside the transaction, the history row is already there ...
            assert await history(world.db, order) == ["pending", "confirmed"]
            # ... and another session sees neither the change nor its history yet.
            assert await history(other, order) == ["pending"]
            assert (
                await other.fetchval("SELECT status::text FROM market.orders WHERE id = $1", order)
                == "pending"
            )
        assert await history(other, order) == ["pending", "confirmed"]
    finally:
        await other.close()


async def test_a_rolled_back_status_change_leaves_no_history(world: World) -> None:
    order = await world.order()
    with pytest.raises(RuntimeError):
        async with world.db.transaction():
            await set_status(world.db, order, "confirmed")
            raise RuntimeError("abort")
    assert await world.value("orders", "status", order) == "pending"
    assert await history(world.db, order) == ["pending"]


async def test_a_refused_status_change_leaves_no_history(txworld: World) -> None:
    order = await txworld.order()
    await rejected(
        txworld.db,
        set_status(txworld.db, order, "delivered"),
        asyncpg.CheckViolationError,
        "orders_status_transition",
    )
    assert await history(txworld.db, order) == ["pending"]


async def test_one_statement_changing_many_orders_writes_one_row_each(txworld: World) -> None:
    orders = [await txworld.order() for _ in range(3)]
    await txworld.db.execute(
        "UPDATE market.orders SET status = 'confirmed' WHERE id = ANY ($1)", orders
    )
    for order in orders:
        assert await history(txworld.db, order) == ["pending", "confirmed"]


async def test_history_records_who_and_why_from_the_transaction_settings(
    txworld: World,
) -> None:
    db = txworld.db
    order = await txworld.order()
    seller = await txworld.value("orders", "seller_id", order)
    await db.execute(
        "SELECT set_config('market.actor_id', $1, true),"
        " set_config('market.status_notes', 'packed and sealed', true)",
        str(seller),
    )
    await set_status(db, order, "confirmed")
    row = await db.fetchrow(
        "SELECT changed_by, notes FROM market.order_status_history"
        " WHERE order_id = $1 AND status = 'confirmed'",
        order,
    )
    assert (row["changed_by"], row["notes"]) == (seller, "packed and sealed")


async def test_history_without_settings_records_no_actor(txworld: World) -> None:
    order = await txworld.order()
    await set_status(txworld.db, order, "confirmed")
    row = await txworld.db.fetchrow(
        "SELECT changed_by, notes FROM market.order_status_history"
        " WHERE order_id = $1 AND status = 'confirmed'",
        order,
    )
    assert (row["changed_by"], row["notes"]) == (None, None)


async def test_cancellation_history_defaults_to_cancelled_by_and_reason(txworld: World) -> None:
    order = await txworld.order()
    buyer = await txworld.value("orders", "buyer_id", order)
    await txworld.db.execute(
        "UPDATE market.orders SET status = 'cancelled', cancelled_by = $2,"
        " cancellation_reason = 'changed my mind' WHERE id = $1",
        order,
        buyer,
    )
    row = await txworld.db.fetchrow(
        "SELECT changed_by, notes FROM market.order_status_history"
        " WHERE order_id = $1 AND status = 'cancelled'",
        order,
    )
    assert (row["changed_by"], row["notes"]) == (buyer, "changed my mind")


async def test_history_rows_are_append_only(txworld: World) -> None:
    order = await txworld.order()
    row = await txworld.db.fetchval(
        "SELECT id FROM market.order_status_history WHERE order_id = $1", order
    )
    await rejected(
        txworld.db,
        txworld.db.execute(
            "UPDATE market.order_status_history SET status = 'delivered' WHERE id = $1", row
        ),
        asyncpg.CheckViolationError,
        "order_status_history_append_only",
    )


async def test_history_actor_may_only_be_cleared(txworld: World) -> None:
    actor = await txworld.buyer()
    row = await txworld.status_history(changed_by=actor)
    await rejected(
        txworld.db,
        txworld.db.execute(
            "UPDATE market.order_status_history SET changed_by = $2 WHERE id = $1",
            row,
            await txworld.buyer(),
        ),
        asyncpg.CheckViolationError,
        "order_status_history_append_only",
    )
    await txworld.db.execute(
        "UPDATE market.order_status_history SET changed_by = NULL WHERE id = $1", row
    )
    assert await txworld.value("order_status_history", "changed_by", row) is None


# -- stamps -----------------------------------------------------------------------------------


async def test_cancelling_stamps_cancelled_at(txworld: World) -> None:
    order = await txworld.order()
    await set_status(txworld.db, order, "cancelled")
    now = await txworld.db.fetchval("SELECT now()")
    assert await txworld.value("orders", "cancelled_at", order) == now


async def test_delivering_stamps_actual_delivery_date(txworld: World) -> None:
    order = await txworld.order(status="in_transit")
    assert await txworld.value("orders", "actual_delivery_date", order) is None
    await set_status(txworld.db, order, "delivered")
    now = await txworld.db.fetchval("SELECT now()")
    assert await txworld.value("orders", "actual_delivery_date", order) == now


async def test_stamps_given_by_the_caller_are_kept(txworld: World) -> None:
    order = await txworld.order(status="in_transit")
    await txworld.db.execute(
        "UPDATE market.orders SET status = 'delivered', actual_delivery_date = $2 WHERE id = $1",
        order,
        T0,
    )
    assert await txworld.value("orders", "actual_delivery_date", order) == T0


# -- what an order must agree with ------------------------------------------------------------


async def test_delivery_address_must_be_one_of_the_buyers(txworld: World) -> None:
    stranger_address = await txworld.address()
    await rejected(
        txworld.db,
        txworld.order(buyer_id=await txworld.buyer(), delivery_address_id=stranger_address),
        asyncpg.ForeignKeyViolationError,
        "orders_delivery_address_is_buyers",
    )


async def test_order_item_must_be_a_product_of_the_orders_seller(txworld: World) -> None:
    order = await txworld.order()
    foreign_product = await txworld.product()
    await rejected(
        txworld.db,
        txworld.order_item(order_id=order, product_id=foreign_product),
        asyncpg.CheckViolationError,
        "order_items_product_of_order_seller",
    )
    item = await txworld.order_item(order_id=order)
    await rejected(
        txworld.db,
        txworld.db.execute(
            "UPDATE market.order_items SET product_id = $2 WHERE id = $1", item, foreign_product
        ),
        asyncpg.CheckViolationError,
        "order_items_product_of_order_seller",
    )


async def test_order_item_variant_must_be_a_variant_of_its_product(txworld: World) -> None:
    order = await txworld.order()
    seller = await txworld.value("orders", "seller_id", order)
    phone, case = await txworld.product(seller), await txworld.product(seller)
    case_variant = await txworld.variant(case)
    await rejected(
        txworld.db,
        txworld.order_item(order_id=order, product_id=phone, variant_id=case_variant),
        asyncpg.ForeignKeyViolationError,
        "order_items_variant_of_product",
    )
    await txworld.order_item(order_id=order, product_id=case, variant_id=case_variant)


async def test_tracking_is_written_by_the_orders_courier_only(txworld: World) -> None:
    courier, stranger = await txworld.courier(), await txworld.courier()
    order = await txworld.order(courier_id=courier)
    await txworld.tracking(order_id=order, courier_id=courier)
    await rejected(
        txworld.db,
        txworld.tracking(order_id=order, courier_id=stranger),
        asyncpg.CheckViolationError,
        "order_tracking_courier_is_assigned",
    )


async def test_tracking_of_an_order_without_courier_is_refused(txworld: World) -> None:
    order = await txworld.order()
    courier = await txworld.courier()
    await rejected(
        txworld.db,
        txworld.db.execute(
            "INSERT INTO market.order_tracking (order_id, courier_id, status)"
            " VALUES ($1, $2, 'assigned')",
            order,
            courier,
        ),
        asyncpg.CheckViolationError,
        "order_tracking_courier_is_assigned",
    )


async def test_a_reassigned_order_keeps_its_old_couriers_positions(txworld: World) -> None:
    first, second = await txworld.courier(), await txworld.courier()
    order = await txworld.order(courier_id=first)
    old = await txworld.tracking(order_id=order, courier_id=first)
    await txworld.db.execute(
        "UPDATE market.orders SET courier_id = $2 WHERE id = $1", order, second
    )
    await txworld.tracking(order_id=order, courier_id=second)
    assert await txworld.value("order_tracking", "courier_id", old) == first


async def test_latest_position_of_an_order_is_one_index_probe(txworld: World) -> None:
    order = await txworld.tracking()
    order_id = await txworld.value("order_tracking", "order_id", order)
    await txworld.db.execute("SET LOCAL enable_seqscan = off")
    plan = "\n".join(
        r[0]
        for r in await txworld.db.fetch(
            "EXPLAIN SELECT latitude, longitude FROM market.order_tracking"
            f" WHERE order_id = {order_id} ORDER BY created_at DESC LIMIT 1"
        )
    )
    assert "idx_tracking_order_id" in plan
    assert "Sort" not in plan


# -- promo code usage -------------------------------------------------------------------------


async def test_using_a_promo_code_counts_the_use(txworld: World) -> None:
    code = await txworld.promo_code(usage_limit_per_user=None)
    buyer = await txworld.buyer()
    for _ in range(3):
        await txworld.promo_usage(promo_code_id=code, user_id=buyer)
    assert await txworld.value("promo_codes", "usage_count", code) == 3


@pytest.mark.parametrize(
    ("code_fields", "constraint"),
    [
        ({"is_active": False}, "promo_code_usage_code_active"),
        (
            {
                "starts_at": datetime.now(UTC) + timedelta(days=1),
                "expires_at": datetime.now(UTC) + timedelta(days=2),
            },
            "promo_code_usage_within_validity",
        ),
        (
            {
                "starts_at": datetime.now(UTC) - timedelta(days=10),
                "expires_at": datetime.now(UTC) - timedelta(seconds=1),
            },
            "promo_code_usage_within_validity",
        ),
        ({"min_order_amount": D("1000.01")}, "promo_code_usage_min_order_amount"),
        ({"max_discount_amount": D("99.99")}, "promo_code_usage_discount_within_cap"),
        ({"usage_limit": 0}, "promo_codes_usage_within_limit"),
    ],
    ids=["inactive", "not-yet-started", "expired", "under-minimum", "over-cap", "used-up"],
)
async def test_promo_code_use_is_refused(
    txworld: World, code_fields: dict[str, object], constraint: str
) -> None:
    code = await txworld.promo_code(**code_fields)
    order = await txworld.order(promo_code_id=code)  # subtotal 1000, discount 100
    await rejected(
        txworld.db,
        txworld.promo_usage(promo_code_id=code, order_id=order),
        asyncpg.CheckViolationError,
        constraint,
    )
    assert await txworld.value("promo_codes", "usage_count", code) == 0


async def test_promo_code_use_per_user_is_limited(txworld: World) -> None:
    code = await txworld.promo_code(usage_limit_per_user=2)
    buyer = await txworld.buyer()
    await txworld.promo_usage(promo_code_id=code, user_id=buyer)
    await txworld.promo_usage(promo_code_id=code, user_id=buyer)
    await rejected(
        txworld.db,
        txworld.promo_usage(promo_code_id=code, user_id=buyer),
        asyncpg.CheckViolationError,
        "promo_code_usage_per_user_limit",
    )
    await txworld.promo_usage(promo_code_id=code, user_id=await txworld.buyer())
    assert await txworld.value("promo_codes", "usage_count", code) == 3


async def test_promo_code_use_must_be_on_an_order_with_that_code(txworld: World) -> None:
    code = await txworld.promo_code()
    other_code = await txworld.promo_code()
    order = await txworld.order(promo_code_id=other_code)
    await rejected(
        txworld.db,
        txworld.promo_usage(promo_code_id=code, order_id=order),
        asyncpg.CheckViolationError,
        "promo_code_usage_matches_order",
    )


async def test_promo_code_use_is_by_the_orders_buyer(txworld: World) -> None:
    code = await txworld.promo_code()
    order = await txworld.order(promo_code_id=code)
    await rejected(
        txworld.db,
        txworld.promo_usage(promo_code_id=code, order_id=order, user_id=await txworld.buyer()),
        asyncpg.ForeignKeyViolationError,
        "promo_code_usage_user_is_order_buyer",
    )


async def test_promo_code_use_at_the_limit_and_boundaries_is_accepted(txworld: World) -> None:
    code = await txworld.promo_code(
        usage_limit=1, min_order_amount=D(1000), max_discount_amount=D(100)
    )
    await txworld.promo_usage(promo_code_id=code)
    assert await txworld.value("promo_codes", "usage_count", code) == 1


async def test_promo_code_usage_rows_are_append_only(txworld: World) -> None:
    usage = await txworld.promo_usage()
    await rejected(
        txworld.db,
        txworld.db.execute(
            "UPDATE market.promo_code_usage SET discount_amount = 1 WHERE id = $1", usage
        ),
        asyncpg.CheckViolationError,
        "promo_code_usage_append_only",
    )


async def test_promo_code_limit_holds_under_concurrent_use(world: World, dsn: str) -> None:
    code = await world.promo_code(usage_limit=5, usage_limit_per_user=None)
    orders = [await world.order(promo_code_id=code) for _ in range(20)]
    buyers = [await world.value("orders", "buyer_id", o) for o in orders]

    async def use(order: int, buyer: int) -> bool:
        conn = await connect(dsn)
        try:
            await conn.execute(
                "INSERT INTO market.promo_code_usage"
                " (promo_code_id, user_id, order_id, discount_amount) VALUES ($1, $2, $3, 10)",
                code,
                buyer,
                order,
            )
            return True
        except asyncpg.CheckViolationError as exc:
            assert exc.constraint_name == "promo_codes_usage_within_limit"
            return False
        finally:
            await conn.close()

    results = await asyncio.gather(*(use(o, b) for o, b in zip(orders, buyers, strict=True)))
    assert sum(results) == 5
    assert await world.value("promo_codes", "usage_count", code) == 5
    assert (
        await world.db.fetchval(
            "SELECT count(*) FROM market.promo_code_usage WHERE promo_code_id = $1", code
        )
        == 5
    )


async def test_per_user_limit_holds_under_concurrent_use(world: World, dsn: str) -> None:
    code = await world.promo_code(usage_limit_per_user=1)
    buyer = await world.buyer()
    orders = [await world.order(buyer_id=buyer, promo_code_id=code) for _ in range(8)]

    async def use(order: int) -> bool:
        conn = await connect(dsn)
        try:
            await conn.execute(
                "INSERT INTO market.promo_code_usage"
                " (promo_code_id, user_id, order_id, discount_amount) VALUES ($1, $2, $3, 10)",
                code,
                buyer,
                order,
            )
            return True
        except asyncpg.CheckViolationError as exc:
            assert exc.constraint_name == "promo_code_usage_per_user_limit"
            return False
        finally:
            await conn.close()

    assert sum(await asyncio.gather(*(use(o) for o in orders))) == 1
