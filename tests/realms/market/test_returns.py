"""Returns over REST on real Postgres: only the buyer of a delivered order asks, within the
window and never for more than was ordered (also under concurrent requests); the seller or
accounting decide; the refund moves the wallets through money.py, or nothing when the
seller's wallet cannot cover it."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.realms.market.test_money import Shop, balance, history_is_a_chain, shop
from tests.realms.market.world import D, World


async def delivered(
    s: Shop, seller: int, courier: int, buyer: int, address: int, product: int, quantity: int
) -> tuple[int, int]:
    """A GoGoMoney order of `quantity` x product taken through delivery; (order, item)."""
    status, body = await s.checkout(buyer, address, [{"product_id": product, "quantity": quantity}],
                                    payment_method="gogomoney")  # fmt: skip
    assert status == 201, body
    order = int(body["id"])
    for step in ("confirmed", "processing", "ready_for_pickup"):
        assert (await s.status(seller, order, step))[0] == 200
    assert (await s.call("PUT", f"/orders/{order}/courier", seller,
                         {"courier_id": courier}))[0] == 204  # fmt: skip
    for step in ("picked_up", "in_transit", "delivered"):
        assert (await s.status(courier, order, step))[0] == 200
    item: int = await s.world.db.fetchval(
        "SELECT id FROM market.order_items WHERE order_id = $1", order
    )
    return order, item


def asking(order: int, item: int, quantity: int, **body: Any) -> dict[str, Any]:
    body.setdefault("refund_method", "gogomoney")
    items = [{"order_item_id": item, "quantity": quantity, "condition": "unopened"}]
    return {"order_id": order, "reason": "Wrong size", "items": items, **body}


async def told(db: asyncpg.Connection, user: int, title: str) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM gateway.notifications"
        " WHERE realm = 'market' AND user_id = $1 AND title = $2",
        str(user),
        title,
    )
    return count


async def test_a_buyer_returns_delivered_items_and_the_refund_moves_both_wallets(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    s = shop(market_api, world, secret)
    seller, courier, stranger = await world.seller(), await world.courier(), await world.buyer()
    accountant, support = await world.admin("accounting"), await world.admin("technical_access")
    product = await s.product(seller, base_price=D("100"))
    buyer, address = await s.buyer()
    await s.credit(accountant, buyer, "500")
    order, item = await delivered(s, seller, courier, buyer, address, product, 2)
    assert (await balance(db, seller), await balance(db, buyer)) == (D("180.00"), D("300.00"))
    pending = await world.order(buyer_id=buyer, seller_id=seller)
    pending_item = await world.order_item(order_id=pending, product_id=product)

    # who may ask, about what
    assert (await s.call("POST", "/returns", stranger, asking(order, item, 1)))[0] == 404
    assert (await s.call("POST", "/returns", seller, asking(order, item, 1)))[0] == 404
    status, body = await s.call("POST", "/returns", buyer, asking(pending, pending_item, 1))
    assert status == 409 and body["error"]["details"]["reason"] == "order_not_delivered"
    status, body = await s.call("POST", "/returns", buyer, asking(order, item, 3))
    assert status == 409 and body["error"]["details"]["reason"] == "quantity_above_ordered"
    assert (await s.call("POST", "/returns", buyer, asking(order, pending_item, 1)))[0] == 404
    status, first = await s.call("POST", "/returns", buyer, asking(order, item, 1))
    assert status == 201 and first["status"] == "requested"
    assert first["refund_amount"] == "100.00" and first["seller_id"] == seller
    assert [(i["order_item_id"], i["quantity"]) for i in first["items"]] == [(item, 1)]
    assert await told(db, seller, "Return requested") == 1
    status, body = await s.call("POST", "/returns", buyer, asking(order, item, 2))
    assert status == 409 and "1 already in returns" in body["error"]["message"]

    # who sees it, who moves it
    path = f"/returns/{first['id']}"
    assert (await s.call("GET", path, stranger))[0] == 404
    assert (await s.call("GET", path, support))[0] == 404  # not the money role
    assert (await s.call("GET", path, accountant))[0] == 200
    assert (await s.call("POST", path + "/status", buyer, {"status": "approved"}))[0] == 403
    assert (await s.call("POST", path + "/status", stranger, {"status": "approved"}))[0] == 404
    status, body = await s.call("POST", path + "/status", seller, {"status": "received"})
    assert status == 409 and "requested -> received" in body["error"]["message"]
    status, approved = await s.call("POST", path + "/status", seller, {"status": "approved"})
    assert status == 200 and approved["approved_by"] == seller and approved["approved_at"]
    assert (await s.call("POST", path + "/status", buyer, {"status": "in_transit"}))[0] == 400
    assert (await s.call("POST", path + "/status", seller,
                         {"status": "in_transit", "tracking_number": "T1"}))[0] == 403  # fmt: skip
    shipping = {"status": "in_transit", "tracking_number": "TRK-1"}
    status, shipped = await s.call("POST", path + "/status", buyer, shipping)
    assert status == 200 and shipped["tracking_number"] == "TRK-1"
    assert (await s.call("POST", path + "/status", seller, {"status": "received"}))[0] == 200
    status, refunded = await s.call("POST", path + "/status", seller, {"status": "refunded"})
    assert status == 200 and refunded["completed_at"]
    # the buyer gets 100 back; the seller gives back 100 less its 10% commission
    assert (await balance(db, seller), await balance(db, buyer)) == (D("90.00"), D("400.00"))
    assert await world.value("orders", "payment_status", order) == "partially_refunded"
    assert (await s.call("POST", path + "/status", seller, {"status": "refunded"}))[0] == 409
    assert await told(db, buyer, "Return update") == 3  # approved, received, refunded

    # the rest of the order, decided and refunded by accounting straight after approval
    status, second = await s.call("POST", "/returns", buyer, asking(order, item, 1))
    assert status == 201
    path = f"/returns/{second['id']}"
    assert (await s.call("POST", path + "/status", accountant, {"status": "approved"}))[0] == 200
    assert (await s.call("POST", path + "/status", accountant, {"status": "refunded"}))[0] == 200
    assert (await balance(db, seller), await balance(db, buyer)) == (D("0.00"), D("500.00"))
    assert await world.value("orders", "payment_status", order) == "refunded"
    assert (await s.call("POST", "/returns", buyer, asking(order, item, 1)))[0] == 409
    await history_is_a_chain(db, seller)
    await history_is_a_chain(db, buyer)

    _, mine = await s.call("GET", "/returns", buyer)
    _, theirs = await s.call("GET", "/returns", stranger)
    _, queue = await s.call("GET", "/returns?status=refunded", accountant)
    assert [len(p["items"]) for p in (mine, theirs, queue)] == [2, 0, 2]


async def test_rejection_frees_the_quantity_and_concurrent_requests_never_exceed_it(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    s = shop(market_api, world, secret)
    seller, courier, accountant = await world.seller(), await world.courier(), await world.admin()
    await world.admin_role(accountant, role_type="accounting")
    product = await s.product(seller, base_price=D("10"))
    buyer, address = await s.buyer()
    await s.credit(accountant, buyer, "100")
    order, item = await delivered(s, seller, courier, buyer, address, product, 3)
    status, rejected = await s.call("POST", "/returns", buyer, asking(order, item, 3))
    assert status == 201
    path = f"/returns/{rejected['id']}/status"
    assert (await s.call("POST", path, seller, {"status": "rejected", "notes": "Used"}))[0] == 200
    assert (await s.call("POST", path, seller, {"status": "approved"}))[0] == 409

    results = await asyncio.gather(
        *(s.call("POST", "/returns", buyer, asking(order, item, 1)) for _ in range(10))
    )
    assert sorted(status for status, _ in results) == [201] * 3 + [409] * 7
    held = await db.fetchval(
        "SELECT sum(ri.quantity) FROM market.return_items ri"
        " JOIN market.returns r ON r.id = ri.return_id WHERE r.status <> 'rejected'"
    )
    assert held == 3


async def test_a_closed_window_and_an_uncovered_refund_are_refused_and_keep_nothing(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    s = shop(market_api, world, secret)
    seller, courier = await world.seller(), await world.courier()
    accountant = await world.admin("accounting")
    product = await s.product(seller, base_price=D("200"))
    buyer, address = await s.buyer()
    await s.credit(accountant, buyer, "400")
    old, old_item = await delivered(s, seller, courier, buyer, address, product, 1)
    await db.execute(
        "UPDATE market.orders SET actual_delivery_date = now() - interval '15 days' WHERE id = $1",
        old,
    )
    status, body = await s.call("POST", "/returns", buyer, asking(old, old_item, 1))
    assert status == 409 and body["error"]["details"]["reason"] == "return_window_closed"

    order, item = await delivered(s, seller, courier, buyer, address, product, 1)
    status, ret = await s.call("POST", "/returns", buyer, asking(order, item, 1))
    assert status == 201
    path = f"/returns/{ret['id']}/status"
    assert (await s.call("POST", path, seller, {"status": "approved"}))[0] == 200
    status, _ = await s.call("POST", "/payouts", seller, {"amount": "300", "method": "gogomoney"})
    assert status == 201  # the seller had 2 x 180
    status, body = await s.call("POST", path, seller, {"status": "refunded"})
    assert status == 409 and body["error"]["details"]["reason"] == "insufficient_funds"
    assert await world.value("returns", "status", ret["id"]) == "approved"
    assert await world.value("orders", "payment_status", order) == "paid"
    assert (await balance(db, seller), await balance(db, buyer)) == (D("60.00"), D("0.00"))
