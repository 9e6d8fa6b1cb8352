"""Money over REST on real Postgres: checkout makes an order with its items, commissions per
item, promo discounts and shipping; stock, flash-sale stock, promo code usage and wallets hold
under concurrent buyers; cancellation, delivery and refunds move money and stock back and
forth; payouts leave and return to the seller's wallet."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.realms.market.conftest import bearer
from tests.realms.market.world import D, World


class Shop:
    """A seller with active products, and a way to check out as any buyer."""

    def __init__(self, api: TestClient, world: World, secret: str) -> None:
        self.api, self.world, self.secret = api, world, secret

    async def product(self, seller: int, **f: Any) -> int:
        f.setdefault("status", "active")
        f.setdefault("stock_quantity", 1000)
        return await self.world.product(seller_id=seller, **f)

    async def buyer(self, **address: Any) -> tuple[int, int]:
        buyer = await self.world.buyer()
        return buyer, await self.world.address(buyer, **address)

    async def checkout(
        self, buyer: int, address: int, items: list[dict[str, Any]], **body: Any
    ) -> tuple[int, dict[str, Any]]:
        body.setdefault("payment_method", "cash")
        resp = await self.api.post(
            "/v1/market/checkout",
            json={"items": items, "delivery_address_id": address, **body},
            headers=bearer(self.secret, buyer),
        )
        return resp.status, await resp.json()

    async def call(
        self, method: str, path: str, user: int, body: Any = None
    ) -> tuple[int, dict[str, Any]]:
        resp = await self.api.request(
            method, "/v1/market" + path, json=body, headers=bearer(self.secret, user)
        )
        return resp.status, (await resp.json()) if resp.status != 204 else {}

    async def credit(self, accountant: int, user: int, amount: str) -> None:
        status, body = await self.call(
            "POST", f"/wallets/{user}/credit", accountant, {"amount": amount}
        )
        assert status == 201, body

    async def status(self, user: int, order: int, status: str) -> tuple[int, dict[str, Any]]:
        return await self.call("POST", f"/orders/{order}/status", user, {"status": status})


def shop(market_api: TestClient, world: World, secret: str) -> Shop:
    return Shop(market_api, world, secret)


async def balance(db: asyncpg.Connection, user: int) -> Decimal:
    value: Decimal = await db.fetchval(
        "SELECT balance FROM market.wallets WHERE user_id = $1", user
    )
    return value


async def history_is_a_chain(db: asyncpg.Connection, user: int) -> None:
    rows = await db.fetch(
        "SELECT t.balance_before, t.balance_after FROM market.wallet_transactions t"
        " JOIN market.wallets w ON w.id = t.wallet_id WHERE w.user_id = $1 ORDER BY t.id",
        user,
    )
    for earlier, later in pairwise(rows):
        assert later["balance_before"] == earlier["balance_after"]
    assert all(r["balance_after"] >= 0 for r in rows)
    if rows:
        assert rows[-1]["balance_after"] == await balance(db, user)


# -- checkout ----------------------------------------------------------------------------------


async def test_checkout_makes_the_order_with_items_and_commissions_computed_per_item(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    s = shop(market_api, world, secret)
    seller = await world.seller()
    phones, cases = await world.category(), await world.category()
    await world.setting(key="commission.default_rate", value="10", type="number")
    await world.setting(
        key="commission.category_rates", value=json.dumps({str(cases): 7.5}), type="json"
    )
    phone = await s.product(seller, category_id=phones, base_price=D("333.33"), tax_rate=D(12))
    case = await s.product(seller, category_id=cases, base_price=D("20.00"), sale_price=D("9.99"))
    buyer, address = await s.buyer()
    status, body = await s.checkout(
        buyer, address,
        [{"product_id": phone, "quantity": 3}, {"product_id": case, "quantity": 1},
         {"product_id": case, "quantity": 2}],
    )  # fmt: skip
    assert status == 201, body
    assert body["status"] == "pending" and body["payment_status"] == "pending"
    assert body["channel"] == f"market.order:{body['id']}"
    # 3 x 333.33 + 3 x 9.99 (sale price; the two lines of one product merged)
    assert D(body["subtotal"]) == D("1029.96") == D(body["total_amount"])
    assert D(body["tax_amount"]) == D("107.14")  # 999.99 x 12 / 112, prices include tax
    order = await db.fetchrow("SELECT * FROM market.orders WHERE id = $1", body["id"])
    assert order["order_number"].startswith("GM") and order["buyer_id"] == buyer
    # per item: round(999.99 x 10%) = 100.00; round(29.97 x 7.5%) = 2.25
    assert order["commission_amount"] == D("102.25")
    commissions = await db.fetch(
        "SELECT commission_rate, commission_amount, order_amount, status::text"
        "  FROM market.commissions WHERE order_id = $1 ORDER BY commission_rate",
        body["id"],
    )
    assert [tuple(c) for c in commissions] == [
        (D("7.50"), D("2.25"), D("29.97"), "pending"),
        (D("10.00"), D("100.00"), D("999.99"), "pending"),
    ]
    items = await db.fetch(
        "SELECT product_id, quantity, unit_price, subtotal FROM market.order_items"
        " WHERE order_id = $1 ORDER BY product_id",
        body["id"],
    )
    assert [tuple(i) for i in items] == [
        (phone, 3, D("333.33"), D("999.99")),
        (case, 3, D("9.99"), D("29.97")),
    ]
    stock = dict(await db.fetch("SELECT id, stock_quantity FROM market.products WHERE id = ANY($1)",
                                [phone, case]))  # fmt: skip
    assert stock == {phone: 997, case: 997}
    history = await db.fetch(
        "SELECT status::text FROM market.order_status_history WHERE order_id = $1", body["id"]
    )
    assert [h["status"] for h in history] == ["pending"]


async def test_shipping_follows_the_zone_tariff_and_an_address_outside_every_zone_is_refused(
    market_api: TestClient, world: World, secret: str
) -> None:
    s = shop(market_api, world, secret)
    seller = await world.seller()
    zone = await world.zone()
    await world.tariff(zone_id=zone, base_cost=D("15000"), cost_per_kg=D("1000"),
                       free_delivery_threshold=D("500000"))  # fmt: skip
    cheap = await s.product(seller, base_price=D("100000"), weight=D("2.5"))
    dear = await s.product(seller, base_price=D("600000"))
    buyer, inside = await s.buyer(latitude=D("41.3"), longitude=D("69.25"))
    status, body = await s.checkout(buyer, inside, [{"product_id": cheap, "quantity": 1}])
    assert status == 201, body
    assert D(body["shipping_cost"]) == D("17500.00")  # 15000 + 2.5 kg x 1000
    assert D(body["total_amount"]) == D("117500.00")
    status, body = await s.checkout(buyer, inside, [{"product_id": dear, "quantity": 1}])
    assert D(body["shipping_cost"]) == 0  # over the free-delivery threshold
    outside = await world.address(buyer, latitude=D("10"), longitude=D("10"))
    status, body = await s.checkout(buyer, outside, [{"product_id": cheap, "quantity": 1}])
    assert status == 400 and "no delivery zone" in body["error"]["message"]


async def test_carts_that_cannot_be_checked_out_get_clear_errors_and_keep_nothing(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    s = shop(market_api, world, secret)
    seller, other = await world.seller(), await world.seller()
    mine, theirs = await s.product(seller, stock_quantity=2), await s.product(other)
    draft = await world.product(seller_id=seller)
    buyer, address = await s.buyer()
    cases = [
        ([{"product_id": mine, "quantity": 1}, {"product_id": theirs, "quantity": 1}], 400,
         "one seller"),
        ([{"product_id": 2_000_000_000, "quantity": 1}], 404, "does not exist"),
        ([{"product_id": draft, "quantity": 1}], 409, "not on sale"),
        ([{"product_id": mine, "quantity": 3}], 409, "out of stock"),
    ]  # fmt: skip
    for items, code, words in cases:
        status, body = await s.checkout(buyer, address, items)
        assert (status, words in body["error"]["message"]) == (code, True), body
    own_status, _ = await s.checkout(seller, await world.address(seller), [
        {"product_id": mine, "quantity": 1}])  # fmt: skip
    assert own_status == 400
    stranger_address = await world.address(await world.buyer())
    assert (await s.checkout(buyer, stranger_address, [{"product_id": mine, "quantity": 1}]))[
        0
    ] == 404
    admin = await world.admin("super_admin")
    assert (await s.checkout(admin, await world.address(admin), [
        {"product_id": mine, "quantity": 1}]))[0] == 403  # fmt: skip
    assert await db.fetchval("SELECT count(*) FROM market.orders") == 0
    assert await world.value("products", "stock_quantity", mine) == 2


# -- promo codes -------------------------------------------------------------------------------


async def test_a_promo_code_discounts_the_items_it_applies_to_within_its_cap(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    s = shop(market_api, world, secret)
    seller, accountant = await world.seller(), await world.admin("accounting")
    shoes = await world.category()
    shoe = await s.product(seller, category_id=shoes, base_price=D("300"))
    sock = await s.product(seller, base_price=D("100"))
    now = datetime.now(UTC)
    status, code = await s.call("POST", "/promo-codes", accountant, {
        "code": "SHOES20", "name": "Shoes", "type": "percentage", "value": "20",
        "max_discount_amount": "50", "applicable_to": "category", "applicable_ids": [shoes],
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "expires_at": (now + timedelta(days=1)).isoformat()})  # fmt: skip
    assert status == 201 and code["state"] == "valid", code
    buyer, address = await s.buyer()
    status, body = await s.checkout(
        buyer, address,
        [{"product_id": shoe, "quantity": 1}, {"product_id": sock, "quantity": 1}],
        promo_code="SHOES20",
    )  # fmt: skip
    assert status == 201, body
    # 20% of the shoe (300) is 60, capped at 50; the sock is not a shoe
    assert D(body["discount_amount"]) == D("50.00") and D(body["total_amount"]) == D("350.00")
    by_product = {i["product_id"]: D(i["discount_amount"]) for i in body["items"]}
    assert by_product == {shoe: D("50.00"), sock: D("0.00")}
    usage = await db.fetchrow("SELECT user_id, discount_amount FROM market.promo_code_usage")
    assert tuple(usage) == (buyer, D("50.00"))
    # commission is on what the item sells for after its discount: 10% of 250 and of 100
    assert await world.value("orders", "commission_amount", body["id"]) == D("35.00")
    again, body = await s.checkout(buyer, address, [{"product_id": shoe, "quantity": 1}],
                                   promo_code="SHOES20")  # fmt: skip
    assert again == 409 and "used by you" in body["error"]["message"]
    assert (await s.call("POST", "/promo-codes", buyer, {}))[0] in (400, 403)


async def test_an_expired_promo_code_is_a_clear_error_and_nothing_is_kept(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    s = shop(market_api, world, secret)
    seller = await world.seller()
    product = await s.product(seller, stock_quantity=5)
    past = datetime.now(UTC) - timedelta(days=1)
    await world.promo_code(code="OLD10", starts_at=past - timedelta(days=30), expires_at=past)
    buyer, address = await s.buyer()
    status, body = await s.checkout(buyer, address, [{"product_id": product, "quantity": 1}],
                                    promo_code="OLD10")  # fmt: skip
    assert status == 400
    assert body["error"]["message"].startswith("promo code OLD10 expired at ")
    assert body["error"]["details"]["reason"] == "promo_code_expired"
    unknown, body = await s.checkout(buyer, address, [{"product_id": product, "quantity": 1}],
                                     promo_code="NOPE")  # fmt: skip
    assert unknown == 400 and "unknown promo code" in body["error"]["message"]
    assert await db.fetchval("SELECT count(*) FROM market.orders") == 0
    assert await world.value("products", "stock_quantity", product) == 5
    checked = await s.call("GET", "/promo-codes/OLD10", buyer)
    assert checked[0] == 200 and checked[1]["state"] == "expired"


async def test_a_promo_code_usage_limit_holds_under_concurrent_checkouts(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    s = shop(market_api, world, secret)
    seller = await world.seller()
    product = await s.product(seller)
    code = await world.promo_code(code="FIRST5", usage_limit=5, type="fixed_amount", value=D(1))
    buyers = [await s.buyer() for _ in range(20)]
    results = await asyncio.gather(*(
        s.checkout(b, a, [{"product_id": product, "quantity": 1}], promo_code="FIRST5")
        for b, a in buyers))  # fmt: skip
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] * 5 + [409] * 15
    refused = [body for status, body in results if status == 409]
    assert all("used up" in body["error"]["message"] for body in refused)
    assert await world.value("promo_codes", "usage_count", code) == 5
    assert await db.fetchval("SELECT count(*) FROM market.orders") == 5
    assert await world.value("products", "stock_quantity", product) == 995


# -- flash sales -------------------------------------------------------------------------------


async def test_100_concurrent_buyers_of_a_flash_sale_product_with_stock_10_get_exactly_10(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    s = shop(market_api, world, secret)
    seller, accountant = await world.seller(), await world.admin("accounting")
    product = await s.product(seller, base_price=D("500"))
    now = datetime.now(UTC)
    status, sale = await s.call("POST", "/flash-sales", accountant, {
        "name": "Midnight", "discount_percentage": "40",
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        "products": [{"product_id": product, "stock_limit": 10}]})  # fmt: skip
    assert status == 201, sale
    assert sale["running"] and D(sale["products"][0]["sale_price"]) == D("300.00")
    buyers = [await s.buyer() for _ in range(100)]
    results = await asyncio.gather(
        *(s.checkout(b, a, [{"product_id": product, "quantity": 1}]) for b, a in buyers)
    )
    placed = [body for status, body in results if status == 201]
    refused = [body for status, body in results if status != 201]
    assert len(placed) == 10
    assert all(D(p["total_amount"]) == D("300.00") and p["items"][0]["flash_sale"] for p in placed)
    assert {r["error"]["details"].get("reason") for r in refused} == {"flash_sale_sold_out"}
    assert await db.fetchval("SELECT count(*) FROM market.orders") == 10
    assert await db.fetchval("SELECT sold_count FROM market.flash_sale_products") == 10
    assert await world.value("products", "stock_quantity", product) == 990
    running = await s.call("GET", "/flash-sales", buyers[0][0])
    assert running[1][0]["products"][0]["remaining"] == 0


# -- wallets, cancellation, delivery, refunds -------------------------------------------------


async def test_50_concurrent_wallet_purchases_never_drive_the_balance_below_zero(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    s = shop(market_api, world, secret)
    seller, accountant = await world.seller(), await world.admin("accounting")
    product = await s.product(seller, base_price=D("3"))
    buyer, address = await s.buyer()
    await s.credit(accountant, buyer, "100")
    results = await asyncio.gather(*(
        s.checkout(buyer, address, [{"product_id": product, "quantity": 1}],
                   payment_method="gogomoney") for _ in range(50)))  # fmt: skip
    placed = [body for status, body in results if status == 201]
    refused = [body for status, body in results if status != 201]
    assert len(placed) == 33 and all(p["payment_status"] == "paid" for p in placed)
    assert {r["error"]["details"]["reason"] for r in refused} == {"insufficient_funds"}
    assert await balance(db, buyer) == D("1.00")
    await history_is_a_chain(db, buyer)
    assert await db.fetchval("SELECT count(*) FROM market.orders") == 33
    assert await world.value("products", "stock_quantity", product) == 1000 - 33


async def test_cancelling_gives_back_stock_flash_stock_and_the_wallet_payment(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    s = shop(market_api, world, secret)
    seller, accountant = await world.seller(), await world.admin("accounting")
    product = await s.product(seller, base_price=D("50"), stock_quantity=10)
    entry = await world.flash_sale_product(product_id=product, original_price=D(50),
                                           sale_price=D(40), stock_limit=5)  # fmt: skip
    buyer, address = await s.buyer()
    await s.credit(accountant, buyer, "100")
    status, body = await s.checkout(buyer, address, [{"product_id": product, "quantity": 2}],
                                    payment_method="gogomoney")  # fmt: skip
    assert status == 201 and D(body["total_amount"]) == D("80.00")
    assert await balance(db, buyer) == D("20.00")
    assert await world.value("flash_sale_products", "sold_count", entry) == 2
    assert (await s.status(buyer, body["id"], "cancelled"))[0] == 200
    assert await balance(db, buyer) == D("100.00")
    assert await world.value("flash_sale_products", "sold_count", entry) == 0
    assert await world.value("products", "stock_quantity", product) == 10
    order = await db.fetchrow("SELECT payment_status::text, cancelled_by FROM market.orders")
    assert tuple(order) == ("refunded", buyer)
    assert await db.fetchval("SELECT status::text FROM market.commissions") == "cancelled"
    await history_is_a_chain(db, buyer)


async def test_delivery_pays_the_seller_and_a_refund_takes_it_back_only_if_covered(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    s = shop(market_api, world, secret)
    seller, courier = await world.seller(), await world.courier()
    accountant = await world.admin("accounting")
    product = await s.product(seller, base_price=D("200"))
    buyer, address = await s.buyer()
    await s.credit(accountant, buyer, "500")

    async def delivered() -> int:
        status, body = await s.checkout(buyer, address, [{"product_id": product, "quantity": 1}],
                                        payment_method="gogomoney")  # fmt: skip
        assert status == 201, body
        order = int(body["id"])
        for step in ("confirmed", "processing", "ready_for_pickup"):
            assert (await s.status(seller, order, step))[0] == 200
        assert (await s.call("PUT", f"/orders/{order}/courier", seller,
                             {"courier_id": courier}))[0] == 204  # fmt: skip
        for step in ("picked_up", "in_transit", "delivered"):
            assert (await s.status(courier, order, step))[0] == 200
        return order

    first = await delivered()
    assert await balance(db, seller) == D("180.00")  # 200 less 10% commission
    assert (
        await db.fetchval("SELECT status::text FROM market.commissions WHERE order_id = $1", first)
        == "paid"
    )
    assert (await s.status(accountant, first, "refunded"))[0] == 200
    assert (await balance(db, seller), await balance(db, buyer)) == (D("0.00"), D("500.00"))
    assert await world.value("orders", "payment_status", first) == "refunded"
    second = await delivered()
    status, _ = await s.call("POST", "/payouts", seller, {"amount": "150", "method": "gogomoney"})
    assert status == 201
    status, body = await s.status(accountant, second, "refunded")
    assert status == 409 and body["error"]["details"]["reason"] == "insufficient_funds"
    assert await world.value("orders", "status", second) == "delivered"
    assert (await balance(db, seller), await balance(db, buyer)) == (D("30.00"), D("300.00"))
    await history_is_a_chain(db, seller)
    await history_is_a_chain(db, buyer)


# -- payouts -----------------------------------------------------------------------------------


async def test_50_concurrent_payout_requests_never_drive_the_balance_below_zero(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    s = shop(market_api, world, secret)
    seller, accountant = await world.seller(), await world.admin("accounting")
    await s.credit(accountant, seller, "100")
    results = await asyncio.gather(*(
        s.call("POST", "/payouts", seller, {"amount": "3", "method": "gogomoney"})
        for _ in range(50)))  # fmt: skip
    assert sorted(status for status, _ in results) == [201] * 33 + [409] * 17
    assert await balance(db, seller) == D("1.00")
    assert await db.fetchval("SELECT count(*) FROM market.payouts") == 33
    await history_is_a_chain(db, seller)


async def test_payouts_move_by_accounting_and_failed_or_cancelled_ones_come_back(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    s = shop(market_api, world, secret)
    seller, accountant = await world.seller(), await world.admin("accounting")
    buyer = await world.buyer()
    await s.credit(accountant, seller, "1000")
    assert (await s.call("POST", "/payouts", buyer, {"amount": "1", "method": "cash"}))[0] == 403
    status, body = await s.call("POST", "/payouts", seller,
                                {"amount": "100", "method": "bank_transfer"})  # fmt: skip
    assert status == 400
    status, account = await s.call("POST", "/bank-accounts", seller, {
        "bank_name": "Kapitalbank", "account_holder_name": "A K",
        "account_number": "enc:20208000900100001", "is_default": True})  # fmt: skip
    assert status == 201 and account["account_last4"] == "0001"
    _, done = await s.call(
        "POST",
        "/payouts",
        seller,
        {"amount": "400", "method": "bank_transfer", "bank_account_id": account["id"]},
    )
    _, failed = await s.call("POST", "/payouts", seller, {"amount": "100", "method": "cash"})
    _, mine = await s.call("POST", "/payouts", seller, {"amount": "50", "method": "cash"})
    assert await balance(db, seller) == D("450.00")
    move = "/payouts/{}/status"
    assert (await s.call("POST", move.format(done["id"]), seller,
                         {"status": "completed"}))[0] == 403  # fmt: skip
    for step in ("processing", "completed"):
        status, body = await s.call("POST", move.format(done["id"]), accountant,
                                    {"status": step, "transaction_id": "bank-77"})  # fmt: skip
        assert status == 200 and body["status"] == step
    assert body["processed_at"] is not None
    status, body = await s.call("POST", move.format(done["id"]), accountant, {"status": "failed"})
    assert status == 409 and "completed -> failed" in body["error"]["message"]
    assert (await s.call("POST", move.format(failed["id"]), accountant,
                         {"status": "failed"}))[0] == 200  # fmt: skip
    assert (await s.call("POST", move.format(mine["id"]), seller,
                         {"status": "cancelled"}))[0] == 200  # fmt: skip
    assert await balance(db, seller) == D("600.00")
    await history_is_a_chain(db, seller)
    _, listed = await s.call("GET", "/payouts?status=completed", accountant)
    assert [p["id"] for p in listed["items"]] == [done["id"]]
    _, own = await s.call("GET", "/payouts", seller)
    assert len(own["items"]) == 3
    _, wallet = await s.call("GET", "/wallet", seller)
    assert D(wallet["balance"]) == D("600.00")
    _, txns = await s.call("GET", "/wallet/transactions?limit=2", seller)
    assert [t["type"] for t in txns["items"]] == ["refund", "refund"] and txns["next_cursor"]
    assert (await s.call("POST", f"/wallets/{seller}/credit", seller, {"amount": "1"}))[0] == 403


async def test_the_money_routes_are_in_the_openapi_document(market_api: TestClient) -> None:
    resp = await market_api.get("/openapi.json")
    paths = (await resp.json())["paths"]
    for path in ("/v1/market/checkout", "/v1/market/wallet", "/v1/market/payouts",
                 "/v1/market/flash-sales", "/v1/market/reviews", "/v1/market/disputes",
                 "/v1/market/notification-settings", "/v1/market/notifications"):  # fmt: skip
        assert path in paths, path
