"""Card payments of market orders over the real api app, real Postgres and the local Stripe
stand-in (tests/payments/stripe_standin.py): checkout charges a committed pending order once
(its PaymentIntent keyed by the order), a success pays it through the realm's money path, a
decline is a clear 400 that keeps the order with its payment failed, the signed webhook
settles intents that finish later exactly once, and without Stripe card checkout is 503."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from kernel.config import load_settings
from kernel.db import create_pool
from kernel.payments.connection import StripeConnection
from kernel.payments.stripe import signature_header
from kernel.realms import enabled_realms
from realms.market.payments import card, refunds
from realms.market.payments.provider import CARD_PAYMENTS
from tests.payments.stripe_standin import StripeStandin, running_standin
from tests.realms.market.conftest import bearer
from tests.realms.market.test_jobs import FixedClock
from tests.realms.market.world import D, World

WEBHOOK = "/v1/market/payments/stripe/webhook"


def market_app(dsn: str, secret: str, card: StripeConnection) -> Any:
    settings = load_settings(
        {"DATABASE_URL": dsn, "SWITCHBOARD_SECRET": secret, "BCRYPT_ROUNDS": "4"}
    )
    realms = enabled_realms({"SWITCHBOARD_REALMS": "market"})
    return create_app(settings, realms=realms, resources={CARD_PAYMENTS: card})


@pytest.fixture
async def standin() -> AsyncIterator[StripeStandin]:
    async with running_standin() as running:
        yield running


@pytest.fixture
async def card_api(
    dsn: str, aiohttp_client: Any, secret: str, standin: StripeStandin
) -> AsyncIterator[TestClient]:
    """The market's routes with card payments aimed at the stand-in."""
    client: TestClient = await aiohttp_client(
        market_app(dsn, secret, StripeConnection(standin.settings()))
    )
    yield client
    await client.close()


class Market:
    """A seller's shop, buyers, staff, and the REST calls the tests make."""

    def __init__(self, api: TestClient, world: World, secret: str) -> None:
        self.api, self.world, self.secret = api, world, secret

    async def shop(self, price: str = "150.00", stock: int = 10) -> tuple[int, int]:
        seller = await self.world.seller()
        product = await self.world.product(
            seller_id=seller, status="active", stock_quantity=stock, base_price=D(price)
        )
        return seller, product

    async def buyer(self) -> tuple[int, int]:
        buyer = await self.world.buyer()
        return buyer, await self.world.address(buyer)

    async def call(
        self, method: str, path: str, user: int, body: Any = None
    ) -> tuple[int, dict[str, Any]]:
        resp = await self.api.request(
            method, "/v1/market" + path, json=body, headers=bearer(self.secret, user)
        )
        return resp.status, (await resp.json()) if resp.status != 204 else {}

    async def checkout(
        self, buyer: int, address: int, product: int, quantity: int = 1, **body: Any
    ) -> tuple[int, dict[str, Any]]:
        return await self.call(
            "POST",
            "/checkout",
            buyer,
            {
                "items": [{"product_id": product, "quantity": quantity}],
                "delivery_address_id": address,
                **body,
            },
        )

    async def deliver(self, order: int, seller: int) -> None:
        courier = await self.world.courier()
        for step in ("confirmed", "processing", "ready_for_pickup"):
            status, body = await self.call(
                "POST", f"/orders/{order}/status", seller, {"status": step}
            )
            assert status == 200, body
        status, body = await self.call(
            "PUT", f"/orders/{order}/courier", seller, {"courier_id": courier}
        )
        assert status == 204, body
        for step in ("picked_up", "in_transit", "delivered"):
            status, body = await self.call(
                "POST", f"/orders/{order}/status", courier, {"status": step}
            )
            assert status == 200, body


async def order_row(db: asyncpg.Connection, order: int) -> asyncpg.Record:
    row: asyncpg.Record = await db.fetchrow(
        "SELECT status::text AS status, payment_status::text AS paid, total_amount"
        " FROM market.orders WHERE id = $1",
        order,
    )
    return row


async def audit(db: asyncpg.Connection, order: int) -> list[tuple[str, dict[str, Any]]]:
    rows = await db.fetch(
        "SELECT action, new_values FROM market.audit_logs WHERE entity_type = 'order'"
        " AND entity_id = $1 ORDER BY id",
        order,
    )
    return [(r["action"], r["new_values"]) for r in rows]


async def wallet(db: asyncpg.Connection, user: int) -> Decimal | None:
    value: Decimal | None = await db.fetchval(
        "SELECT balance FROM market.wallets WHERE user_id = $1", user
    )
    return value


async def told_paid(db: asyncpg.Connection, order: int) -> list[int]:
    rows = await db.fetch(
        "SELECT user_id::bigint AS u FROM gateway.notifications WHERE realm = 'market'"
        " AND notification_type = 'payment' AND idempotency_key LIKE $1 ORDER BY 1",
        f"order:{order}:paid:%",
    )
    return [r["u"] for r in rows]


# -- checkout ----------------------------------------------------------------------------------


async def test_a_card_checkout_charges_the_total_once_and_pays_the_order_like_gogomoney(
    card_api: TestClient, world: World, db: asyncpg.Connection, secret: str, standin: StripeStandin
) -> None:
    m = Market(card_api, world, secret)
    seller, product = await m.shop("150.00")
    buyer, address = await m.buyer()
    status, body = await m.checkout(
        buyer, address, product, 2, payment_method="card", payment_method_id="pm_card_visa"
    )
    assert status == 201, body
    order = int(body["id"])
    assert (body["status"], body["payment_status"]) == ("pending", "paid")
    (sent,) = standin.calls("POST", "/v1/payment_intents")
    assert sent.headers["Idempotency-Key"] == f"market-order-{order}"
    assert sent.form["amount"] == "30000"  # 300.00 UZS in minor units
    assert sent.form["currency"] == "uzs"
    assert sent.form["metadata[order_id]"] == str(order)
    assert sent.form["metadata[realm]"] == "market"
    assert body["payment_intent_id"] == standin.intents[body["payment_intent_id"]]["id"]
    assert (await order_row(db, order))["paid"] == "paid"
    assert [a for a, _ in await audit(db, order)] == [
        "payment.card_intent",
        "payment.card_succeeded",
    ]
    assert await told_paid(db, order) == sorted([buyer, seller])
    # Paid like a GoGoMoney order: delivery settles the seller (300 less 10% commission) and
    # pays the commissions; the buyer's wallet was never touched.
    await m.deliver(order, seller)
    assert await wallet(db, seller) == D("270.00")
    assert await wallet(db, buyer) is None
    assert await db.fetchval(
        "SELECT array_agg(DISTINCT status::text) FROM market.commissions WHERE order_id = $1",
        order,
    ) == ["paid"]


@pytest.mark.parametrize(
    ("method", "decline"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
async def test_a_declined_card_is_a_400_and_the_order_stays_pending_with_its_payment_failed(
    card_api: TestClient,
    world: World,
    db: asyncpg.Connection,
    secret: str,
    method: str,
    decline: str,
) -> None:
    m = Market(card_api, world, secret)
    _, product = await m.shop(stock=5)
    buyer, address = await m.buyer()
    status, body = await m.checkout(
        buyer, address, product, 2, payment_method="card", payment_method_id=method
    )
    assert status == 400, body
    error = body["error"]
    assert error["message"].startswith("payment failed: ") and decline in error["message"]
    assert (error["details"]["failure_code"], error["details"]["decline_code"]) == (
        "card_declined",
        decline,
    )
    order = int(error["details"]["order_id"])
    row = await order_row(db, order)
    assert (row["status"], row["paid"]) == ("pending", "failed")
    ((action, values),) = await audit(db, order)
    assert action == "payment.card_failed" and values["code"] == decline
    assert values["payment_intent"] == error["details"]["payment_intent_id"]
    assert await told_paid(db, order) == []
    # The buyer may cancel it at once: the stock comes back, nothing was charged.
    assert (await m.call("POST", f"/orders/{order}/status", buyer, {"status": "cancelled"}))[
        0
    ] == 200
    assert (
        await db.fetchval("SELECT stock_quantity FROM market.products WHERE id = $1", product) == 5
    )
    assert (await order_row(db, order))["paid"] == "failed"


async def test_an_unknown_payment_method_fails_the_payment_with_the_providers_reason(
    card_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    m = Market(card_api, world, secret)
    _, product = await m.shop()
    buyer, address = await m.buyer()
    status, body = await m.checkout(
        buyer, address, product, payment_method="card", payment_method_id="pm_unknown"
    )
    assert status == 400, body
    assert "No such PaymentMethod" in body["error"]["message"]
    assert (await order_row(db, body["error"]["details"]["order_id"]))["paid"] == "failed"


async def test_card_checkout_needs_a_payment_method_id_and_other_methods_refuse_one(
    card_api: TestClient, world: World, db: asyncpg.Connection, secret: str, standin: StripeStandin
) -> None:
    m = Market(card_api, world, secret)
    _, product = await m.shop()
    buyer, address = await m.buyer()
    status, body = await m.checkout(buyer, address, product, payment_method="card")
    assert status == 400 and "payment_method_id" in body["error"]["message"]
    status, body = await m.checkout(
        buyer, address, product, payment_method="cash", payment_method_id="pm_card_visa"
    )
    assert status == 400 and "card checkouts only" in body["error"]["message"]
    assert await db.fetchval("SELECT count(*) FROM market.orders") == 0
    assert standin.requests == []


async def test_a_provider_outage_is_503_with_retry_after_and_the_order_waits_pending(
    card_api: TestClient, world: World, db: asyncpg.Connection, secret: str, standin: StripeStandin
) -> None:
    m = Market(card_api, world, secret)
    _, product = await m.shop()
    buyer, address = await m.buyer()
    standin.fail_next(500)
    resp = await card_api.post(
        "/v1/market/checkout",
        json={
            "items": [{"product_id": product, "quantity": 1}],
            "delivery_address_id": address,
            "payment_method": "card",
            "payment_method_id": "pm_card_visa",
        },
        headers=bearer(secret, buyer),
    )
    assert resp.status == 503
    assert int(resp.headers["Retry-After"]) >= 1
    body = await resp.json()
    assert "stays pending" in body["error"]["message"]
    (order,) = await db.fetch("SELECT status::text, payment_status::text FROM market.orders")
    assert tuple(order) == ("pending", "pending")


async def test_a_retried_charge_of_one_order_reuses_its_intent(
    card_api: TestClient, world: World, db: asyncpg.Connection, dsn: str, secret: str,
    standin: StripeStandin,
) -> None:  # fmt: skip
    m = Market(card_api, world, secret)
    _, product = await m.shop()
    buyer, address = await m.buyer()
    status, body = await m.checkout(
        buyer, address, product, payment_method="card", payment_method_id="pm_card_visa"
    )
    assert status == 201, body
    provider = card_api.app[CARD_PAYMENTS]
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        again = card.CardOrder(body["id"], body["order_number"], D("150.00"), "UZS")
        paid, intent = await card.charge_order(pool, provider.client, again, "pm_card_visa")
    finally:
        await pool.close()
    assert (paid, intent) == ("paid", body["payment_intent_id"])
    assert len(standin.intents) == 1
    assert [a for a, _ in await audit(db, body["id"])].count("payment.card_succeeded") == 1


async def test_without_stripe_card_checkout_is_503_and_keeps_nothing(
    dsn: str, aiohttp_client: Any, secret: str, world: World, db: asyncpg.Connection
) -> None:
    api: TestClient = await aiohttp_client(market_app(dsn, secret, StripeConnection(None)))
    try:
        m = Market(api, world, secret)
        _, product = await m.shop()
        buyer, address = await m.buyer()
        status, body = await m.checkout(
            buyer, address, product, payment_method="card", payment_method_id="pm_card_visa"
        )
        assert status == 503, body
        assert body["error"]["message"] == "card payments are not configured"
        assert await db.fetchval("SELECT count(*) FROM market.orders") == 0
        # Other methods are untouched by it.
        status, body = await m.checkout(buyer, address, product, payment_method="cash")
        assert status == 201, body
        resp = await api.post(WEBHOOK, json={"id": "evt_1", "type": "x"},
                              headers={"Stripe-Signature": "t=1,v1=00"})  # fmt: skip
        assert resp.status == 503
    finally:
        await api.close()


# -- the webhook --------------------------------------------------------------------------------


async def pending_card_order(m: Market) -> tuple[int, int, int, str]:
    """(order, buyer, seller, intent id) of a card order whose intent is still processing."""
    seller, product = await m.shop()
    buyer, address = await m.buyer()
    status, body = await m.checkout(
        buyer, address, product, payment_method="card", payment_method_id="pm_standin_processing"
    )
    assert status == 201, body
    assert body["payment_status"] == "pending" and body["payment_intent_id"]
    return int(body["id"]), buyer, seller, body["payment_intent_id"]


def webhook_url(api: TestClient) -> str:
    return str(api.make_url(WEBHOOK))


async def test_the_webhook_pays_an_intent_that_succeeded_later_once_however_often_replayed(
    card_api: TestClient, world: World, db: asyncpg.Connection, secret: str, standin: StripeStandin
) -> None:
    m = Market(card_api, world, secret)
    order, buyer, seller, intent = await pending_card_order(m)
    assert (await order_row(db, order))["paid"] == "pending"
    standin.intents[intent]["status"] = "succeeded"
    event = standin.event("payment_intent.succeeded", standin.intents[intent])
    # Delivered twice at once and once more later: one payment.
    first, second = await asyncio.gather(
        standin.send_webhook(webhook_url(card_api), "", {}, event=event),
        standin.send_webhook(webhook_url(card_api), "", {}, event=event),
    )
    assert sorted(body["status"] for _, body in (first, second)) == ["duplicate", "processed"]
    assert first[0] == second[0] == 200
    assert await standin.send_webhook(webhook_url(card_api), "", {}, event=event) == (
        200,
        {"status": "duplicate"},
    )
    assert (await order_row(db, order))["paid"] == "paid"
    succeeded = [v for a, v in await audit(db, order) if a == "payment.card_succeeded"]
    assert succeeded == [{"payment_intent": intent, "event_id": event["id"], "source": "webhook"}]
    assert await told_paid(db, order) == sorted([buyer, seller])
    await m.deliver(order, seller)
    assert await wallet(db, seller) == D("135.00")


async def test_the_webhook_marks_a_failed_intent_and_a_later_success_still_pays(
    card_api: TestClient, world: World, db: asyncpg.Connection, secret: str, standin: StripeStandin
) -> None:
    m = Market(card_api, world, secret)
    order, _, _, intent = await pending_card_order(m)
    failed = dict(standin.intents[intent], status="requires_payment_method")
    failed["last_payment_error"] = {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "expired_card",
        "message": "Your card has expired.",
    }
    status, body = await standin.send_webhook(
        webhook_url(card_api), "payment_intent.payment_failed", failed
    )
    assert (status, body) == (200, {"status": "processed"})
    assert (await order_row(db, order))["paid"] == "failed"
    # The customer retried on the same intent, which then succeeded.
    status, body = await standin.send_webhook(
        webhook_url(card_api),
        "payment_intent.succeeded",
        dict(standin.intents[intent], status="succeeded"),
    )
    assert (status, body) == (200, {"status": "processed"})
    assert (await order_row(db, order))["paid"] == "paid"


async def test_a_payment_arriving_for_a_cancelled_order_is_refunded_at_the_provider(
    card_api: TestClient, world: World, db: asyncpg.Connection, secret: str, standin: StripeStandin
) -> None:
    m = Market(card_api, world, secret)
    order, buyer, _, intent = await pending_card_order(m)
    status, _ = await m.call("POST", f"/orders/{order}/status", buyer, {"status": "cancelled"})
    assert status == 200
    standin.intents[intent]["status"] = "succeeded"
    event = standin.event("payment_intent.succeeded", standin.intents[intent])
    assert await standin.send_webhook(webhook_url(card_api), "", {}, event=event) == (
        200,
        {"status": "processed"},
    )
    (refund,) = standin.refunds.values()
    assert (refund["payment_intent"], refund["amount"]) == (intent, 15_000)
    assert dict(await order_row(db, order))["paid"] == "refunded"
    assert await standin.send_webhook(webhook_url(card_api), "", {}, event=event) == (
        200,
        {"status": "duplicate"},
    )
    assert len(standin.refunds) == 1


async def test_the_webhook_ignores_what_is_not_a_market_card_order_of_that_amount(
    card_api: TestClient, world: World, db: asyncpg.Connection, secret: str, standin: StripeStandin
) -> None:
    m = Market(card_api, world, secret)
    order, _, _, intent = await pending_card_order(m)
    url = webhook_url(card_api)
    obj = dict(standin.intents[intent], status="succeeded")
    for other in (
        dict(obj, amount=obj["amount"] - 1),  # not what the order costs
        dict(obj, currency="usd"),
        dict(obj, metadata={"order_id": str(order)}),  # not tagged as the market's
        dict(obj, metadata={"realm": "market", "order_id": "999999"}),
    ):
        assert await standin.send_webhook(url, "payment_intent.succeeded", other) == (
            200,
            {"status": "ignored"},
        )
    assert await standin.send_webhook(url, "invoice.paid", {"id": "in_1"}) == (
        200,
        {"status": "ignored"},
    )
    assert (await order_row(db, order))["paid"] == "pending"


@pytest.mark.parametrize("forgery", ["no header", "wrong secret", "too old", "other body"])
async def test_an_unsigned_or_forged_webhook_is_401_and_changes_nothing(
    card_api: TestClient,
    world: World,
    db: asyncpg.Connection,
    secret: str,
    standin: StripeStandin,
    forgery: str,
) -> None:
    m = Market(card_api, world, secret)
    order, _, _, intent = await pending_card_order(m)
    event = standin.event(
        "payment_intent.succeeded", dict(standin.intents[intent], status="succeeded")
    )
    url = webhook_url(card_api)
    if forgery == "wrong secret":
        status, _ = await standin.send_webhook(url, "", {}, event=event, secret="whsec_guess")
    elif forgery == "too old":
        status, _ = await standin.send_webhook(
            url, "", {}, event=event, timestamp=int(time.time()) - 3600
        )
    else:
        payload = json.dumps(event).encode()
        headers = {"Content-Type": "application/json"}
        if forgery == "other body":
            signed = json.dumps({**event, "id": "evt_other"}).encode()
            headers["Stripe-Signature"] = signature_header(
                signed, standin.webhook_secret, int(time.time())
            )
        resp = await card_api.post(WEBHOOK, data=payload, headers=headers)
        status = resp.status
    assert status == 401
    assert (await order_row(db, order))["paid"] == "pending"


# -- refunds --------------------------------------------------------------------------------------


async def test_the_refunds_job_returns_cancelled_and_refunded_card_payments_once(
    card_api: TestClient,
    world: World,
    db: asyncpg.Connection,
    secret: str,
    standin: StripeStandin,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m = Market(card_api, world, secret)
    seller, product = await m.shop("150.00")
    buyer, address = await m.buyer()
    orders = []
    for _ in range(3):
        status, body = await m.checkout(
            buyer, address, product, payment_method="card", payment_method_id="pm_card_visa"
        )
        assert status == 201 and body["payment_status"] == "paid", body
        orders.append((int(body["id"]), body["payment_intent_id"]))
    (cancelled, cancelled_intent), (returned, returned_intent), (kept, _) = orders
    # Cancelled after payment, and refunded by accounting after delivery: both marked refunded.
    assert (await m.call("POST", f"/orders/{cancelled}/status", buyer, {"status": "cancelled"}))[
        0
    ] == 200
    await m.deliver(returned, seller)
    accountant = await world.admin("accounting")
    status, body = await m.call(
        "POST", f"/orders/{returned}/status", accountant, {"status": "refunded"}
    )
    assert status == 200, body
    now = FixedClock(datetime.now(UTC))
    standin.fail_next(503)  # the first refund meets an outage: left for the next run
    async with db.transaction():
        assert await refunds.refund_card_payments(db, now, settings=standin.settings()) == 1
    async with db.transaction():
        assert await refunds.refund_card_payments(db, now, settings=standin.settings()) == 1
    async with db.transaction():
        assert await refunds.refund_card_payments(db, now, settings=standin.settings()) == 0
    assert sorted((r["payment_intent"], r["amount"]) for r in standin.refunds.values()) == sorted(
        [(cancelled_intent, 15_000), (returned_intent, 15_000)]
    )
    for order in (cancelled, returned):
        assert [a for a, _ in await audit(db, order)][-1] == "payment.card_refunded"
    assert (await order_row(db, kept))["paid"] == "paid"
    # Without Stripe settings (STRIPE_API_KEY unset) the job sends nothing.
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    assert await refunds.refund_card_payments(db, now, settings=None) == 0
