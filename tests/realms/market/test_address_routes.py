"""The caller's addresses over REST on real Postgres: each type keeps exactly one default (also
under concurrent changes), bad coordinates are 400 and store nothing, the delivery zone that
covers an address comes with the tariff checkout charges by, and checkout takes an address
made here."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.realms.market.conftest import bearer
from tests.realms.market.world import D, World

HOME = {
    "full_name": "Aziz Karimov",
    "phone": "+998901234567",
    "country": "Uzbekistan",
    "city": "Tashkent",
    "street": "Amir Temur 1",
}
INSIDE = {"latitude": 41.311081, "longitude": 69.279737}  # in world.TASHKENT


async def call(
    api: TestClient, secret: str, user: int, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    resp = await api.request(method, "/v1/market" + path, json=body, headers=bearer(secret, user))
    return resp.status, (await resp.json()) if resp.status != 204 else None


async def defaults(db: asyncpg.Connection, user: int, kind: str = "delivery") -> list[int]:
    rows = await db.fetch(
        "SELECT id FROM market.user_addresses WHERE user_id = $1 AND type = $2"
        " AND is_default AND deleted_at IS NULL",
        user,
        kind,
    )
    return [r["id"] for r in rows]


async def test_addresses_keep_one_default_per_type(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    buyer, stranger = await world.buyer(), await world.buyer()
    made = []
    for extra in ({}, {"label": "work"}, {"is_default": True, **INSIDE}):
        status, a = await call(market_api, secret, buyer, "POST", "/addresses", {**HOME, **extra})
        assert status == 201, a
        made.append(a)
    first, second, third = made
    assert [a["is_default"] for a in made] == [True, False, True]  # the first, then as asked
    assert (third["latitude"], third["longitude"]) == (41.311081, 69.279737)
    assert await defaults(db, buyer) == [third["id"]]
    _, bill = await call(
        market_api, secret, buyer, "POST", "/addresses", {**HOME, "type": "billing"}
    )
    assert bill["is_default"] is True and await defaults(db, buyer, "billing") == [bill["id"]]
    _, listed = await call(market_api, secret, buyer, "GET", "/addresses?type=delivery")
    assert [a["id"] for a in listed] == [third["id"], second["id"], first["id"]]
    # moving the default
    status, moved = await call(
        market_api,
        secret,
        buyer,
        "PATCH",
        f"/addresses/{second['id']}",
        {"is_default": True, "label": None, "city": "Samarkand"},
    )
    assert status == 200 and moved["is_default"] and moved["label"] is None
    assert moved["city"] == "Samarkand" and moved["street"] == HOME["street"]
    assert await defaults(db, buyer) == [second["id"]]
    status, refused = await call(
        market_api, secret, buyer, "PATCH", f"/addresses/{second['id']}", {"is_default": False}
    )
    assert status == 409 and refused["error"]["details"]["reason"] == "default_required"
    # deleting the default passes it to the newest remaining address of its type
    assert (await call(market_api, secret, buyer, "DELETE", f"/addresses/{second['id']}"))[0] == 204
    assert await defaults(db, buyer) == [third["id"]]
    assert (await call(market_api, secret, buyer, "GET", f"/addresses/{second['id']}"))[0] == 404
    # a billing address moved to delivery joins it as a non-default; billing is left empty
    status, joined = await call(
        market_api, secret, buyer, "PATCH", f"/addresses/{bill['id']}", {"type": "delivery"}
    )
    assert status == 200 and joined["is_default"] is False
    assert await defaults(db, buyer) == [third["id"]] and await defaults(db, buyer, "billing") == []
    # someone else's address does not exist for the caller
    for method, body in (("GET", None), ("PATCH", {"city": "Bukhara"}), ("DELETE", None)):
        status, _ = await call(
            market_api, secret, stranger, method, f"/addresses/{first['id']}", body
        )
        assert status == 404
    assert (await call(market_api, secret, stranger, "GET", "/addresses"))[1] == []


async def test_invalid_coordinates_are_400_and_nothing_is_stored(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    buyer = await world.buyer()
    _, kept = await call(market_api, secret, buyer, "POST", "/addresses", {**HOME, **INSIDE})
    for bad in (
        {"latitude": 90.5, "longitude": 69.0},
        {"latitude": 41.0, "longitude": -180.01},
        {"latitude": 41.0},
        {"longitude": 69.0},
        {"latitude": "41", "longitude": 69},
        {"latitude": None, "longitude": 69.0},
    ):
        status, body = await call(market_api, secret, buyer, "POST", "/addresses", {**HOME, **bad})
        assert status == 400, (bad, body)
        status, body = await call(
            market_api, secret, buyer, "PATCH", f"/addresses/{kept['id']}", bad
        )
        assert status == 400, (bad, body)
    row = await db.fetchrow(
        "SELECT count(*) AS n, max(latitude) AS lat FROM market.user_addresses WHERE user_id = $1",
        buyer,
    )
    assert (row["n"], row["lat"]) == (1, Decimal("41.31108100"))
    for query in (
        "latitude=91&longitude=0",
        "latitude=0&longitude=181",
        "latitude=1",
        "",
        "latitude=north&longitude=0",
    ):
        assert (await call(market_api, secret, buyer, "GET", f"/delivery-zones?{query}"))[0] == 400
    # both cleared at once is fine
    status, cleared = await call(
        market_api,
        secret,
        buyer,
        "PATCH",
        f"/addresses/{kept['id']}",
        {"latitude": None, "longitude": None},
    )
    assert status == 200 and (cleared["latitude"], cleared["longitude"]) == (None, None)


async def test_concurrent_default_changes_leave_exactly_one_default(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    buyer = await world.buyer()
    existing = []
    for _ in range(6):
        _, a = await call(market_api, secret, buyer, "POST", "/addresses", HOME)
        existing.append(a["id"])
    results = await asyncio.gather(
        *(
            call(market_api, secret, buyer, "POST", "/addresses", {**HOME, "is_default": True})
            for _ in range(10)
        ),
        *(
            call(market_api, secret, buyer, "PATCH", f"/addresses/{a}", {"is_default": True})
            for a in existing[1:4]
        ),
        *(call(market_api, secret, buyer, "DELETE", f"/addresses/{a}") for a in existing[:1]),
        *(call(market_api, secret, buyer, "DELETE", f"/addresses/{a}") for a in existing[4:]),
    )
    assert [status for status, _ in results] == [201] * 10 + [200] * 3 + [204] * 3
    assert len(await defaults(db, buyer)) == 1
    live = await db.fetchval(
        "SELECT count(*) FROM market.user_addresses WHERE user_id = $1 AND deleted_at IS NULL",
        buyer,
    )
    assert live == 6 + 10 - 3


async def test_the_zone_covering_an_address_comes_with_the_tariff_checkout_uses(
    market_api: TestClient, world: World, secret: str
) -> None:
    buyer = await world.buyer()
    zone = await world.zone()
    await world.tariff(zone_id=zone, name="Express", base_cost=D("30000"), estimated_hours=2)
    cheap = await world.tariff(
        zone_id=zone, name="Standard", base_cost=D("15000"), estimated_hours=24
    )
    await world.tariff(zone_id=zone, name="Old", base_cost=D("1000"), is_active=False)
    bare = await world.zone(
        name="No tariffs yet",
        polygon=asyncpg.Polygon((60.0, 40.0), (61.0, 40.0), (61.0, 41.0), (60.0, 41.0)),
    )
    _, inside = await call(market_api, secret, buyer, "POST", "/addresses", {**HOME, **INSIDE})
    _, far = await call(
        market_api,
        secret,
        buyer,
        "POST",
        "/addresses",
        {**HOME, "latitude": 10.0, "longitude": 10.0},
    )
    _, untariffed = await call(
        market_api,
        secret,
        buyer,
        "POST",
        "/addresses",
        {**HOME, "latitude": 40.5, "longitude": 60.5},
    )
    _, nowhere = await call(market_api, secret, buyer, "POST", "/addresses", HOME)
    status, covered = await call(
        market_api, secret, buyer, "GET", f"/addresses/{inside['id']}/delivery"
    )
    assert status == 200 and covered["covered"] and covered["zone"]["id"] == zone
    assert covered["tariff"]["id"] == cheap and Decimal(covered["tariff"]["base_cost"]) == 15000
    assert [t["name"] for t in covered["zone"]["tariffs"]] == ["Standard", "Express"]
    _, out = await call(market_api, secret, buyer, "GET", f"/addresses/{far['id']}/delivery")
    _, no_tariff = await call(
        market_api, secret, buyer, "GET", f"/addresses/{untariffed['id']}/delivery"
    )
    _, unknown = await call(
        market_api, secret, buyer, "GET", f"/addresses/{nowhere['id']}/delivery"
    )
    assert (out["covered"], out["zone"]) == (False, None)
    assert no_tariff["zone"]["id"] == bare and no_tariff["tariff"] is None
    assert (unknown["covered"], unknown["zone"]) == (False, None)
    _, zones = await call(
        market_api, secret, buyer, "GET", "/delivery-zones?latitude=41.5&longitude=69.5"
    )
    assert [z["id"] for z in zones] == [zone]
    _, none = await call(
        market_api, secret, buyer, "GET", "/delivery-zones?latitude=-41.5&longitude=-69.5"
    )
    assert none == []


async def test_checkout_takes_an_address_made_over_rest_and_refuses_a_deleted_one(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    seller, buyer = await world.seller(), await world.buyer()
    zone = await world.zone()
    await world.tariff(zone_id=zone, base_cost=D("15000"))
    product = await world.product(
        seller_id=seller, status="active", stock_quantity=10, base_price=D("100000")
    )
    _, address = await call(market_api, secret, buyer, "POST", "/addresses", {**HOME, **INSIDE})
    cart = {
        "items": [{"product_id": product, "quantity": 1}],
        "delivery_address_id": address["id"],
        "payment_method": "cash",
    }
    status, order = await call(market_api, secret, buyer, "POST", "/checkout", cart)
    assert status == 201, order
    assert Decimal(order["shipping_cost"]) == Decimal("15000.00")
    assert await world.value("orders", "delivery_zone_id", order["id"]) == zone
    assert (await call(market_api, secret, buyer, "DELETE", f"/addresses/{address['id']}"))[
        0
    ] == 204
    # the order keeps its address; a new checkout cannot use it
    assert await world.value("orders", "delivery_address_id", order["id"]) == address["id"]
    status, refused = await call(market_api, secret, buyer, "POST", "/checkout", cart)
    assert status == 404, refused


async def test_the_address_routes_are_in_the_openapi_document(market_api: TestClient) -> None:
    paths = (await (await market_api.get("/openapi.json")).json())["paths"]
    for path in (
        "/addresses",
        "/addresses/{address_id}",
        "/addresses/{address_id}/delivery",
        "/delivery-zones",
    ):
        assert "/v1/market" + path in paths, path
