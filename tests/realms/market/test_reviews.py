"""Reviews (4010): a review is of a product of the order, by the order's buyer, about its
seller; the reviewed seller alone answers; products.rating_average / rating_count follow the
approved live reviews."""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from tests.realms.market.world import D, World, insert, rejected


async def rating(w: World, product: int) -> tuple[Decimal, int]:
    row = await w.get("products", product)
    return row["rating_average"], row["rating_count"]


async def order_with(w: World, *products: int) -> int:
    seller = await w.value("products", "seller_id", products[0])
    order = await w.order(seller_id=seller)
    for product in products:
        await w.order_item(order_id=order, product_id=product)
    return order


async def test_the_reviewed_product_is_an_item_of_the_order(txworld: World) -> None:
    order = await txworld.order()
    seller = await txworld.value("orders", "seller_id", order)
    not_ordered = await txworld.product(seller)
    await txworld.order_item(order_id=order)
    row = await txworld.get("orders", order)
    await rejected(
        txworld.db,
        insert(
            txworld.db,
            "reviews",
            order_id=order,
            product_id=not_ordered,
            buyer_id=row["buyer_id"],
            seller_id=row["seller_id"],
            rating=3,
        ),
        asyncpg.CheckViolationError,
        "reviews_product_in_order",
    )


async def test_the_reviewer_is_the_orders_buyer(txworld: World) -> None:
    review = await txworld.review()
    row = await txworld.get("reviews", review)
    await rejected(
        txworld.db,
        txworld.db.execute(
            "UPDATE market.reviews SET buyer_id = $2 WHERE id = $1", review, await txworld.buyer()
        ),
        asyncpg.ForeignKeyViolationError,
        "reviews_buyer_is_order_buyer",
    )
    await rejected(
        txworld.db,
        txworld.db.execute(
            "UPDATE market.reviews SET seller_id = $2 WHERE id = $1",
            review,
            await txworld.seller(),
        ),
        asyncpg.ForeignKeyViolationError,
        "reviews_seller_is_order_seller",
    )
    assert row["buyer_id"] == await txworld.value("orders", "buyer_id", row["order_id"])


async def test_only_the_reviewed_seller_answers(txworld: World) -> None:
    review = await txworld.review()
    await rejected(
        txworld.db,
        txworld.review_response(review_id=review, seller_id=await txworld.seller()),
        asyncpg.ForeignKeyViolationError,
        "review_responses_seller_is_reviewed_seller",
    )
    await txworld.review_response(review_id=review)


async def test_a_soft_deleted_review_frees_the_slot_for_a_new_one(txworld: World) -> None:
    review = await txworld.review()
    row = await txworld.get("reviews", review)
    await txworld.db.execute("UPDATE market.reviews SET deleted_at = now() WHERE id = $1", review)
    await txworld.review(order_id=row["order_id"], product_id=row["product_id"])


async def test_product_rating_counts_approved_live_reviews_only(txworld: World) -> None:
    product = await txworld.product()
    assert await rating(txworld, product) == (D(0), 0)
    reviews = []
    for stars, approved in ((5, True), (4, True), (4, True), (1, False)):
        order = await order_with(txworld, product)
        reviews.append(await txworld.review(order_id=order, product_id=product, rating=stars,
                                            is_approved=approved))  # fmt: skip
    assert await rating(txworld, product) == (D("4.33"), 3)
    await txworld.db.execute("UPDATE market.reviews SET is_approved = true WHERE id = $1",
                             reviews[3])  # fmt: skip
    assert await rating(txworld, product) == (D("3.50"), 4)
    await txworld.db.execute("UPDATE market.reviews SET deleted_at = now() WHERE id = ANY ($1)",
                             reviews[:2])  # fmt: skip
    assert await rating(txworld, product) == (D("2.50"), 2)
    await txworld.db.execute("DELETE FROM market.reviews WHERE id = ANY ($1)", reviews)
    assert await rating(txworld, product) == (D(0), 0)


async def test_changing_a_reviews_product_recomputes_both_products(txworld: World) -> None:
    seller = await txworld.seller()
    a, b = await txworld.product(seller), await txworld.product(seller)
    order = await order_with(txworld, a, b)
    review = await txworld.review(order_id=order, product_id=a, rating=2, is_approved=True)
    assert await rating(txworld, a) == (D(2), 1)
    await txworld.db.execute("UPDATE market.reviews SET product_id = $2 WHERE id = $1", review, b)
    assert (await rating(txworld, a), await rating(txworld, b)) == ((D(0), 0), (D(2), 1))


async def test_a_helpful_vote_does_not_touch_the_product(txworld: World) -> None:
    review = await txworld.review(is_approved=True)
    product = await txworld.value("reviews", "product_id", review)
    pending = (
        "SELECT n_tup_upd FROM pg_stat_xact_user_tables"
        " WHERE schemaname = 'market' AND relname = 'products'"
    )
    before = await txworld.db.fetchval(pending)
    await txworld.db.execute(
        "UPDATE market.reviews SET helpful_count = helpful_count + 1 WHERE id = $1", review
    )
    assert await txworld.db.fetchval(pending) == before
    assert await rating(txworld, product) == (D(5), 1)
