"""Reviews (with the seller's answer and approval) and disputes (with messages and staff
moves) over REST on real Postgres, with the role rules and the notifications they send."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.realms.market.conftest import bearer
from tests.realms.market.world import World


async def call(
    api: TestClient, secret: str, user: int, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    resp = await api.request(method, "/v1/market" + path, json=body, headers=bearer(secret, user))
    return resp.status, await resp.json()


async def told(db: asyncpg.Connection, user: int, kind: str) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM gateway.notifications"
        " WHERE realm = 'market' AND user_id = $1 AND notification_type = $2",
        str(user),
        kind,
    )
    return count


async def test_a_buyer_reviews_a_delivered_order_once_and_the_seller_answers_once(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    buyer, seller, stranger = await world.buyer(), await world.seller(), await world.buyer()
    moderator = await world.admin("technical_access")
    product = await world.product(seller_id=seller, status="active")
    pending = await world.order(buyer_id=buyer, seller_id=seller)
    await world.order_item(order_id=pending, product_id=product)
    order = await world.order(buyer_id=buyer, seller_id=seller, status="delivered")
    await world.order_item(order_id=order, product_id=product)
    body = {"order_id": order, "product_id": product, "rating": 4, "title": "Good",
            "images": ["https://cdn.example.com/r1.jpg"]}  # fmt: skip
    assert (await call(market_api, secret, buyer, "POST", "/reviews",
                       {**body, "order_id": pending}))[0] == 409  # fmt: skip
    assert (await call(market_api, secret, stranger, "POST", "/reviews", body))[0] == 404
    status, review = await call(market_api, secret, buyer, "POST", "/reviews", body)
    assert status == 201 and review["images"] == ["https://cdn.example.com/r1.jpg"]
    assert review["is_approved"] is False and review["response"] is None
    assert (await call(market_api, secret, buyer, "POST", "/reviews", body))[0] == 409
    assert await told(db, seller, "review") == 1
    answer = f"/reviews/{review['id']}/response"
    assert (await call(market_api, secret, buyer, "POST", answer, {"content": "Me"}))[0] == 403
    status, answered = await call(market_api, secret, seller, "POST", answer, {"content": "Ta"})
    assert status == 201 and answered["response"]["content"] == "Ta"
    assert (await call(market_api, secret, seller, "POST", answer, {"content": "Again"}))[0] == 409
    assert await told(db, buyer, "review") == 1
    listed = f"/products/{product}/reviews"
    assert (await call(market_api, secret, stranger, "GET", listed))[1]["items"] == []
    approval = f"/reviews/{review['id']}/approval"
    assert (await call(market_api, secret, seller, "POST", approval, {"approved": True}))[0] == 403
    assert (await call(market_api, secret, moderator, "POST", approval,
                       {"approved": True}))[0] == 200  # fmt: skip
    _, page = await call(market_api, secret, stranger, "GET", listed)
    assert [r["id"] for r in page["items"]] == [review["id"]]
    assert await world.value("products", "rating_count", product) == 1


async def test_disputes_are_for_the_orders_parties_and_staff_move_them(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    buyer, seller, stranger = await world.buyer(), await world.seller(), await world.buyer()
    staff, accountant = await world.admin("technical_access"), await world.admin("accounting")
    order = await world.order(buyer_id=buyer, seller_id=seller)
    opening = {"order_id": order, "type": "delivery_issue", "reason": "Box was crushed"}
    assert (await call(market_api, secret, stranger, "POST", "/disputes", opening))[0] == 404
    status, dispute = await call(market_api, secret, buyer, "POST", "/disputes", opening)
    assert status == 201 and dispute["status"] == "open"
    assert await told(db, seller, "order") == 1
    path = f"/disputes/{dispute['id']}"
    assert (await call(market_api, secret, stranger, "GET", path))[0] == 404
    assert (await call(market_api, secret, accountant, "GET", path))[0] == 404
    status, _ = await call(market_api, secret, seller, "POST", path + "/messages",
                           {"content": "Sorry, sending another"})  # fmt: skip
    assert status == 201
    status, seen = await call(market_api, secret, staff, "POST", path + "/messages",
                              {"content": "Looking into it"})  # fmt: skip
    assert status == 201 and [m["user_id"] for m in seen["messages"]] == [seller, staff]
    assert (await call(market_api, secret, buyer, "POST", path + "/status",
                       {"status": "resolved", "resolution": "x"}))[0] == 403  # fmt: skip
    assert (await call(market_api, secret, staff, "POST", path + "/status",
                       {"status": "resolved"}))[0] == 400  # fmt: skip
    status, done = await call(market_api, secret, staff, "POST", path + "/status",
                              {"status": "resolved", "resolution": "Replacement sent"})  # fmt: skip
    assert status == 200 and done["resolved_by"] == staff and done["resolved_at"]
    assert (await call(market_api, secret, staff, "POST", path + "/status",
                       {"status": "in_progress"}))[0] == 409  # fmt: skip
    assert (await call(market_api, secret, staff, "POST", path + "/status",
                       {"status": "closed"}))[0] == 200  # fmt: skip
    status, _ = await call(market_api, secret, buyer, "POST", path + "/messages",
                           {"content": "One more thing"})  # fmt: skip
    assert status == 409
    _, mine = await call(market_api, secret, buyer, "GET", "/disputes")
    _, theirs = await call(market_api, secret, stranger, "GET", "/disputes")
    _, queue = await call(market_api, secret, staff, "GET", "/disputes?status=closed")
    assert [len(p["items"]) for p in (mine, theirs, queue)] == [1, 0, 1]
    # the buyer heard: the seller's and staff's messages, resolved, closed
    assert await told(db, buyer, "order") == 4
