"""Catalog (4003): category levels derived from the tree (and kept when a subtree moves),
no category under its own descendant, products.published_at, and full-text search through
idx_products_search / idx_categories_search and market.search_products()."""

from __future__ import annotations

import asyncpg

from tests.realms.market.world import T0, World, rejected


async def level(w: World, category: int) -> int:
    value: int = await w.value("categories", "level", category)
    return value


async def move(w: World, category: int, parent: int | None) -> None:
    await w.db.execute(
        "UPDATE market.categories SET parent_id = $2 WHERE id = $1", category, parent
    )


async def plan(db: asyncpg.Connection, query: str) -> str:
    await db.execute("SET LOCAL enable_seqscan = off")
    return "\n".join(r[0] for r in await db.fetch(f"EXPLAIN {query}"))


# -- categories -------------------------------------------------------------------------------


async def test_category_level_is_its_depth_in_the_tree(txworld: World) -> None:
    root = await txworld.category()
    child = await txworld.category(parent_id=root)
    grandchild = await txworld.category(parent_id=child, level=7)  # the given level is replaced
    assert [await level(txworld, c) for c in (root, child, grandchild)] == [0, 1, 2]


async def test_moving_a_subtree_relevels_every_descendant(txworld: World) -> None:
    a, b = await txworld.category(), await txworld.category()
    b1 = await txworld.category(parent_id=b)
    b11 = await txworld.category(parent_id=b1)
    await move(txworld, b, a)
    assert [await level(txworld, c) for c in (b, b1, b11)] == [1, 2, 3]
    await move(txworld, b, None)
    assert [await level(txworld, c) for c in (b, b1, b11)] == [0, 1, 2]


async def test_level_cannot_be_set_by_hand(txworld: World) -> None:
    root = await txworld.category()
    await txworld.db.execute("UPDATE market.categories SET level = 5 WHERE id = $1", root)
    assert await level(txworld, root) == 0


async def test_a_category_cannot_move_under_its_own_descendant(txworld: World) -> None:
    root = await txworld.category()
    child = await txworld.category(parent_id=root)
    grandchild = await txworld.category(parent_id=child)
    for new_parent in (grandchild, root):
        await rejected(
            txworld.db,
            move(txworld, root, new_parent),
            asyncpg.CheckViolationError,
            "categories_no_cycle",
        )
    assert await txworld.value("categories", "parent_id", root) is None


async def test_category_search_finds_categories_without_description(txworld: World) -> None:
    await txworld.category(name="Smartphones", description=None)
    await txworld.category(name="Laptops", description="Portable smartphones' big brothers")
    query = (
        "SELECT name FROM market.categories"
        " WHERE to_tsvector('english', name || ' ' || coalesce(description, ''))"
        " @@ websearch_to_tsquery('english', 'smartphone') ORDER BY name"
    )
    assert [r["name"] for r in await txworld.db.fetch(query)] == ["Laptops", "Smartphones"]
    assert "idx_categories_search" in await plan(txworld.db, query)


# -- products ---------------------------------------------------------------------------------


async def test_published_at_is_set_when_a_product_first_becomes_active(txworld: World) -> None:
    draft = await txworld.product()
    assert await txworld.value("products", "published_at", draft) is None
    await txworld.db.execute("UPDATE market.products SET status = 'active' WHERE id = $1", draft)
    now = await txworld.db.fetchval("SELECT now()")
    assert await txworld.value("products", "published_at", draft) == now
    active = await txworld.product(status="active")
    assert await txworld.value("products", "published_at", active) == now


async def test_published_at_is_kept_when_a_product_is_reactivated(txworld: World) -> None:
    product = await txworld.product(status="active", published_at=T0)
    for status in ("inactive", "active"):
        await txworld.db.execute(
            "UPDATE market.products SET status = $2 WHERE id = $1", product, status
        )
    assert await txworld.value("products", "published_at", product) == T0


async def test_product_search_matches_stemmed_words_of_name_and_description(
    txworld: World,
) -> None:
    camera = await txworld.product(name="Action camera", description="Waterproof, 4K video")
    phone = await txworld.product(
        name="Smartphone X", description="Three cameras and a big battery"
    )
    await txworld.product(name="Kettle", description="Boils water")
    hidden = await txworld.product(name="Old camera", description="Film", deleted_at=T0)
    found = [
        r["id"] for r in await txworld.db.fetch("SELECT id FROM market.search_products('cameras')")
    ]
    assert sorted(found) == sorted([camera, phone])
    assert hidden not in found
    waterproof = await txworld.db.fetch("SELECT id FROM market.search_products('waterproof')")
    assert [r["id"] for r in waterproof] == [camera]


async def test_product_search_ranks_the_better_match_first(txworld: World) -> None:
    weak = await txworld.product(name="Phone case", description="Fits a phone")
    strong = await txworld.product(name="Phone", description="A phone, the phone for phone lovers")
    found = await txworld.db.fetch("SELECT id FROM market.search_products('phone')")
    assert [r["id"] for r in found] == [strong, weak]


async def test_product_search_uses_the_full_text_index(txworld: World) -> None:
    row = await txworld.get("products", await txworld.product())
    seller, category = row["seller_id"], row["category_id"]
    await txworld.db.execute(
        "INSERT INTO market.products (seller_id, category_id, name, slug, description, base_price)"
        " SELECT $1, $2, 'Item ' || g, 'item-' || g, 'Generic item', 10"
        " FROM generate_series(1, 500) g",
        seller,
        category,
    )
    await txworld.db.execute("ANALYZE market.products")
    documented = await plan(
        txworld.db,
        "SELECT id FROM market.products WHERE to_tsvector('english', name || ' ' || description)"
        " @@ websearch_to_tsquery('english', 'camera')",
    )
    assert "idx_products_search" in documented
    assert "idx_products_search" in await plan(
        txworld.db, "SELECT id FROM market.search_products('camera')"
    )
