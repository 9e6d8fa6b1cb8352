"""Flash sales (4005): a flash-sale product's stock is never oversold, even when 100 buyers
race for 10 items."""

from __future__ import annotations

import asyncio

import asyncpg

from kernel.db import connect
from tests.realms.market.world import World, rejected

SELL_ONE = "UPDATE market.flash_sale_products SET sold_count = sold_count + 1 WHERE id = $1"


async def test_selling_past_the_stock_limit_is_refused(txworld: World) -> None:
    entry = await txworld.flash_sale_product(stock_limit=2)
    await txworld.db.execute(SELL_ONE, entry)
    await txworld.db.execute(SELL_ONE, entry)
    await rejected(
        txworld.db,
        txworld.db.execute(SELL_ONE, entry),
        asyncpg.CheckViolationError,
        "flash_sale_products_not_oversold",
    )
    assert await txworld.value("flash_sale_products", "sold_count", entry) == 2


async def test_100_concurrent_buyers_of_10_items_get_exactly_10(world: World, dsn: str) -> None:
    entry = await world.flash_sale_product(stock_limit=10)

    async def buy() -> bool:
        conn = await connect(dsn)
        try:
            await conn.execute(SELL_ONE, entry)
            return True
        except asyncpg.CheckViolationError as exc:
            assert exc.constraint_name == "flash_sale_products_not_oversold"
            return False
        finally:
            await conn.close()

    assert sum(await asyncio.gather(*(buy() for _ in range(100)))) == 10
    assert await world.value("flash_sale_products", "sold_count", entry) == 10


async def test_conditional_sale_matches_no_row_once_sold_out(txworld: World) -> None:
    entry = await txworld.flash_sale_product(stock_limit=1)
    sell = (
        "UPDATE market.flash_sale_products SET sold_count = sold_count + 1"
        " WHERE id = $1 AND (stock_limit IS NULL OR sold_count + 1 <= stock_limit)"
    )
    assert await txworld.db.execute(sell, entry) == "UPDATE 1"
    assert await txworld.db.execute(sell, entry) == "UPDATE 0"
