"""Orders over REST and `market.order:<id>` over real sockets: status changes follow the
documented state order and the role rules, write order_status_history in their transaction
and reach the buyer and the seller live; the courier's positions reach the buyer's socket and
are stored thinned; strangers cannot join an order's tracking (socket) or read it (REST)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.realms.market.conftest import Connect, bearer, event, server_event
from tests.realms.market.world import World


async def an_order(world: World, **fields: Any) -> dict[str, int]:
    buyer, seller, courier = await world.buyer(), await world.seller(), await world.courier()
    order = await world.order(buyer_id=buyer, seller_id=seller, **fields)
    await world.order_item(order_id=order)
    return {"order": order, "buyer": buyer, "seller": seller, "courier": courier}


async def set_status(
    api: TestClient, secret: str, user: int, order: int, status: str
) -> tuple[int, dict[str, Any]]:
    resp = await api.post(f"/v1/market/orders/{order}/status", json={"status": status},
                          headers=bearer(secret, user))  # fmt: skip
    body: dict[str, Any] = await resp.json()
    return resp.status, body


async def test_status_changes_follow_the_state_order_and_roles_and_write_history(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    o = await an_order(world)
    order, buyer, seller, courier = o["order"], o["buyer"], o["seller"], o["courier"]
    assert (await set_status(market_api, secret, seller, order, "processing"))[0] == 409
    assert (await set_status(market_api, secret, buyer, order, "confirmed"))[0] == 403
    assert (await set_status(market_api, secret, seller, order, "confirmed"))[0] == 200
    status, body = await set_status(market_api, secret, seller, order, "ready_for_pickup")
    assert status == 409 and "illegal order status transition" in body["error"]["message"]
    for step in ("processing", "ready_for_pickup"):
        assert (await set_status(market_api, secret, seller, order, step))[0] == 200
    assert (await set_status(market_api, secret, seller, order, "picked_up"))[0] == 403
    assigned = await market_api.put(f"/v1/market/orders/{order}/courier",
                                    json={"courier_id": courier},
                                    headers=bearer(secret, seller))  # fmt: skip
    assert assigned.status == 204
    for step in ("picked_up", "in_transit", "delivered"):
        assert (await set_status(market_api, secret, courier, order, step))[0] == 200
    assert (await set_status(market_api, secret, seller, order, "cancelled"))[0] == 403
    history = await db.fetch(
        "SELECT status::text, changed_by FROM market.order_status_history WHERE order_id = $1"
        " ORDER BY created_at, id",
        order,
    )
    assert [tuple(h) for h in history] == [
        ("pending", None), ("confirmed", seller), ("processing", seller),
        ("ready_for_pickup", seller), ("picked_up", courier), ("in_transit", courier),
        ("delivered", courier),
    ]  # fmt: skip
    tracked = await db.fetch(
        "SELECT status::text FROM market.order_tracking WHERE order_id = $1 ORDER BY id", order
    )
    assert [t["status"] for t in tracked] == ["assigned", "picked_up", "in_transit", "delivered"]
    detail = await market_api.get(f"/v1/market/orders/{order}", headers=bearer(secret, buyer))
    body = await detail.json()
    assert body["status"] == "delivered" and len(body["history"]) == 7
    assert body["position"]["status"] == "delivered"


async def test_a_buyer_cancels_only_while_pending_and_refunds_are_accountings(
    market_api: TestClient, world: World, secret: str
) -> None:
    o = await an_order(world)
    accountant = await world.admin("accounting")
    assert (await set_status(market_api, secret, o["buyer"], o["order"], "cancelled"))[0] == 200
    assert (await set_status(market_api, secret, o["seller"], o["order"], "refunded"))[0] == 403
    assert (await set_status(market_api, secret, accountant, o["order"], "refunded"))[0] == 200
    later = await an_order(world, status="confirmed")
    status, _ = await set_status(market_api, secret, later["buyer"], later["order"], "cancelled")
    assert status == 403


async def test_status_changes_reach_the_buyer_and_the_seller_live(
    market_api: TestClient, sock: Connect, world: World, secret: str
) -> None:
    o = await an_order(world)
    buyer_sock, seller_sock = await sock(o["buyer"]), await sock(o["seller"])
    channel = f"market.order:{o['order']}"
    await buyer_sock.ok("join", channel=channel)
    assert (await set_status(market_api, secret, o["seller"], o["order"], "confirmed"))[0] == 200
    on_channel = await buyer_sock.expect(
        lambda f: f.get("channel") == channel and server_event("order_status")(f)
    )
    assert (on_channel["data"]["status"], on_channel["data"]["previous"]) == (
        "confirmed",
        "pending",
    )
    assert on_channel["data"]["changed_by"] == o["seller"]
    await buyer_sock.expect(
        lambda f: (
            f.get("channel") == f"market.user:{o['buyer']}"
            and server_event("order_status", status="confirmed")(f)
        )
    )
    await seller_sock.expect(
        lambda f: (
            f.get("channel") == f"market.user:{o['seller']}"
            and server_event("order_status", status="confirmed")(f)
        )
    )


async def test_the_couriers_positions_reach_the_buyers_socket_and_are_stored_thinned(
    sock: Connect, world: World, db: asyncpg.Connection
) -> None:
    o = await an_order(world, status="ready_for_pickup")
    await db.execute(
        "UPDATE market.orders SET courier_id = $2 WHERE id = $1", o["order"], o["courier"]
    )
    channel = f"market.order:{o['order']}"
    buyer_sock, courier_sock = await sock(o["buyer"]), await sock(o["courier"])
    assert (await buyer_sock.ok("join", channel=channel))["role"] == "buyer"
    assert (await courier_sock.ok("join", channel=channel))["role"] == "courier"
    for n in range(5):
        await courier_sock.ok("send", channel=channel, text="pos", type="location",
                              metadata={"lat": 41.3 + n / 1000, "lon": 69.2})  # fmt: skip
    for n in range(5):
        got = await buyer_sock.expect(event("position", channel=channel))
        assert got["data"]["lat"] == 41.3 + n / 1000 and got["user_id"] == str(o["courier"])
    rows = await db.fetch(
        "SELECT status::text, latitude, longitude FROM market.order_tracking WHERE order_id = $1",
        o["order"],
    )
    # one row for the window, holding the latest position
    assert [(r["status"], float(r["latitude"])) for r in rows] == [("assigned", 41.304)]
    bad = await courier_sock.call("send", channel=channel, text="pos", type="location",
                                  metadata={"lat": 95, "lon": 69.2})  # fmt: skip
    assert bad["code"] == "bad_request" and "invalid coordinates" in bad["message"]
    not_courier = await buyer_sock.call("send", channel=channel, text="pos", type="location",
                                        metadata={"lat": 41, "lon": 69})  # fmt: skip
    assert not_courier["code"] == "forbidden"


async def test_a_stranger_cannot_join_or_read_an_orders_tracking(
    market_api: TestClient, sock: Connect, world: World, secret: str
) -> None:
    o = await an_order(world)
    stranger, other_courier = await world.buyer(), await world.courier()
    staff = await world.admin("accounting")
    for user in (stranger, other_courier):
        refused = await (await sock(user)).call("join", channel=f"market.order:{o['order']}")
        assert refused["code"] == "forbidden"
        resp = await market_api.get(f"/v1/market/orders/{o['order']}",
                                    headers=bearer(secret, user))  # fmt: skip
        assert resp.status == 403
    assert (await (await sock(staff)).ok("join", channel=f"market.order:{o['order']}"))[
        "role"
    ] == "staff"


async def test_a_reassigned_courier_leaves_the_orders_channel(
    market_api: TestClient, sock: Connect, world: World, db: asyncpg.Connection, secret: str
) -> None:
    o = await an_order(world, status="confirmed")
    await db.execute(
        "UPDATE market.orders SET courier_id = $2 WHERE id = $1", o["order"], o["courier"]
    )
    first = await sock(o["courier"])
    channel = f"market.order:{o['order']}"
    await first.ok("join", channel=channel)
    replacement = await world.courier()
    moved = await market_api.put(f"/v1/market/orders/{o['order']}/courier",
                                 json={"courier_id": replacement},
                                 headers=bearer(secret, o["seller"]))  # fmt: skip
    assert moved.status == 204
    await first.expect(event("removed", channel=channel))
    refused = await first.call("send", channel=channel, text="pos", type="location",
                               metadata={"lat": 41, "lon": 69})  # fmt: skip
    assert refused["code"] == "forbidden"


async def test_catalog_search_uses_the_full_text_index_and_shows_active_products(
    market_api: TestClient, world: World, secret: str
) -> None:
    seller, buyer = await world.seller(), await world.buyer()
    phone = await world.product(seller_id=seller, name="Samsung phone", status="active",
                                description="A phone with a big screen")  # fmt: skip
    await world.product(seller_id=seller, name="Draft phone", status="draft")
    await world.product(seller_id=seller, name="Teapot", status="active",
                        description="Porcelain")  # fmt: skip
    found = await market_api.get("/v1/market/products?q=phones", headers=bearer(secret, buyer))
    assert [p["id"] for p in await found.json()] == [phone]
    one = await market_api.get(f"/v1/market/products/{phone}", headers=bearer(secret, buyer))
    assert (await one.json())["name"] == "Samsung phone"
    anonymous = await market_api.get("/v1/market/products?q=phone")
    assert anonymous.status == 401
