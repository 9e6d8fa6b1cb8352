"""Returns (4012): a return is the order buyer's, and its items are items of that order,
returned in no greater quantity than ordered."""

from __future__ import annotations

import asyncpg

from tests.realms.market.world import World, rejected


async def test_a_return_is_made_by_the_orders_buyer(txworld: World) -> None:
    order = await txworld.order()
    await rejected(
        txworld.db,
        txworld.return_(order_id=order, buyer_id=await txworld.buyer()),
        asyncpg.ForeignKeyViolationError,
        "returns_buyer_is_order_buyer",
    )


async def test_a_returned_item_is_an_item_of_the_returns_order(txworld: World) -> None:
    ret = await txworld.return_()
    other_item = await txworld.order_item()
    await rejected(
        txworld.db,
        txworld.return_item(return_id=ret, order_item_id=other_item),
        asyncpg.CheckViolationError,
        "return_items_item_of_return_order",
    )


async def test_no_more_is_returned_than_was_ordered(txworld: World) -> None:
    ret = await txworld.return_()
    item = await txworld.order_item(order_id=await txworld.value("returns", "order_id", ret),
                                    quantity=2)  # fmt: skip
    await rejected(
        txworld.db,
        txworld.return_item(return_id=ret, order_item_id=item, quantity=3),
        asyncpg.CheckViolationError,
        "return_items_quantity_within_ordered",
    )
    line = await txworld.return_item(return_id=ret, order_item_id=item, quantity=2)
    await rejected(
        txworld.db,
        txworld.db.execute("UPDATE market.return_items SET quantity = 3 WHERE id = $1", line),
        asyncpg.CheckViolationError,
        "return_items_quantity_within_ordered",
    )
