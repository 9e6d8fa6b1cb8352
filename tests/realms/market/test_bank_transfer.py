"""Bank-transfer payments of market orders over the real api app and real Postgres: the order
waits `pending` until staff with the accounting role confirm the transfer, which pays it
through the realm's money path (settled to the seller at once when already delivered),
audited with who confirmed it; nobody else may, nothing is paid twice, and the
abandoned-orders job still cancels orders whose transfer never came."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from realms.market import jobs
from tests.realms.market.test_card_payments import Market, audit, order_row, told_paid, wallet
from tests.realms.market.test_jobs import FixedClock
from tests.realms.market.world import D, World


async def transfer_order(m: Market) -> tuple[int, int, int]:
    """(order, buyer, seller) of a bank-transfer order of one 150.00 product."""
    seller, product = await m.shop("150.00")
    buyer, address = await m.buyer()
    status, body = await m.checkout(buyer, address, product, payment_method="bank_transfer")
    assert status == 201, body
    assert (body["status"], body["payment_status"]) == ("pending", "pending")
    return int(body["id"]), buyer, seller


async def confirm(
    m: Market, order: int, user: int, reference: str = "BANK-REF-1"
) -> tuple[int, dict[str, Any]]:
    return await m.call("POST", f"/orders/{order}/payment/confirm", user, {"reference": reference})


async def test_accounting_confirms_a_transfer_once_and_the_order_is_paid_and_audited(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    m = Market(market_api, world, secret)
    order, buyer, seller = await transfer_order(m)
    accountant = await world.admin("accounting")
    status, body = await confirm(m, order, accountant, "  TRX-2024-0001 ")
    assert status == 200, body
    assert body == {
        "order_id": order,
        "order_number": body["order_number"],
        "status": "pending",
        "payment_status": "paid",
        "reference": "TRX-2024-0001",
    }
    assert (await order_row(db, order))["paid"] == "paid"
    row = await db.fetchrow(
        "SELECT user_id, action, old_values, new_values FROM market.audit_logs"
        " WHERE entity_type = 'order' AND entity_id = $1",
        order,
    )
    assert (row["user_id"], row["action"]) == (accountant, "payment.bank_transfer_confirmed")
    assert row["old_values"] == {"payment_status": "pending"}
    assert row["new_values"] == {
        "reference": "TRX-2024-0001",
        "amount": "150.00",
        "currency": "UZS",
        "payment_status": "paid",
    }
    assert await told_paid(db, order) == sorted([buyer, seller])
    # Confirmed once: a second confirmation is refused and audits nothing.
    status, body = await confirm(m, order, accountant, "TRX-2024-0002")
    assert status == 409 and body["error"]["details"]["reason"] == "already_paid"
    assert len(await audit(db, order)) == 1
    # Paid like any other order: delivery settles the seller, less 10% commission.
    await m.deliver(order, seller)
    assert await wallet(db, seller) == D("135.00")


async def test_only_accounting_confirms_transfers(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    m = Market(market_api, world, secret)
    order, buyer, seller = await transfer_order(m)
    support = await world.admin("technical_access")
    expired = await world.admin()
    await world.admin_role(
        user_id=expired,
        role_type="accounting",
        granted_at=datetime.now(UTC) - timedelta(days=2),
        expires_at=datetime.now(UTC) - timedelta(days=1),
    )
    for user in (buyer, seller, support, expired):
        status, body = await confirm(m, order, user)
        assert status == 403, (user, body)
    assert (await order_row(db, order))["paid"] == "pending"
    assert await audit(db, order) == []


async def test_a_transfer_confirmed_after_delivery_settles_the_seller_at_once(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    m = Market(market_api, world, secret)
    order, _, seller = await transfer_order(m)
    await m.deliver(order, seller)
    # Delivered but unpaid: the seller is not credited, commissions wait.
    assert await wallet(db, seller) in (None, D("0.00"))
    assert (await order_row(db, order))["paid"] == "pending"
    status, body = await confirm(m, order, await world.admin("accounting"))
    assert status == 200, body
    assert body["status"] == "delivered"
    assert await wallet(db, seller) == D("135.00")
    assert await db.fetchval(
        "SELECT array_agg(DISTINCT status::text) FROM market.commissions WHERE order_id = $1",
        order,
    ) == ["paid"]


async def test_confirming_refuses_other_methods_cancelled_orders_and_unknown_ones(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    m = Market(market_api, world, secret)
    accountant = await world.admin("accounting")
    _, product = await m.shop()
    buyer, address = await m.buyer()
    status, cash = await m.checkout(buyer, address, product, payment_method="cash")
    assert status == 201, cash
    status, body = await confirm(m, cash["id"], accountant)
    assert status == 409 and body["error"]["details"]["reason"] == "not_bank_transfer"
    order, buyer, _ = await transfer_order(m)
    assert (await m.call("POST", f"/orders/{order}/status", buyer, {"status": "cancelled"}))[
        0
    ] == 200
    status, body = await confirm(m, order, accountant)
    assert status == 409 and body["error"]["details"]["reason"] == "order_cancelled"
    assert (await confirm(m, 9_999_999, accountant))[0] == 404
    status, body = await m.call(
        "POST", f"/orders/{order}/payment/confirm", accountant, {"reference": "   "}
    )
    assert status == 400, body
    assert await audit(db, order) == []


async def test_concurrent_confirmations_pay_the_order_once(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    m = Market(market_api, world, secret)
    order, _, seller = await transfer_order(m)
    await m.deliver(order, seller)
    accountants = [await world.admin("accounting") for _ in range(2)]
    results = await asyncio.gather(
        *(confirm(m, order, accountants[i % 2], f"REF-{i}") for i in range(8))
    )
    assert sorted(status for status, _ in results) == [200] + [409] * 7
    assert len(await audit(db, order)) == 1
    assert await wallet(db, seller) == D("135.00")  # one settlement


async def test_the_abandoned_orders_job_still_cancels_an_unconfirmed_transfer(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    m = Market(market_api, world, secret)
    waiting, _, _ = await transfer_order(m)
    paid, _, _ = await transfer_order(m)
    accountant = await world.admin("accounting")
    assert (await confirm(m, paid, accountant))[0] == 200
    later = FixedClock(datetime.now(UTC) + jobs.ABANDONED_AFTER + timedelta(minutes=1))
    async with db.transaction():
        cancelled = await jobs.cancel_abandoned_orders(db, later)
    assert cancelled == 2  # both were still `pending` orders: nobody confirmed them
    assert tuple(await order_row(db, waiting))[:2] == ("cancelled", "pending")
    # The paid transfer is marked for return (the bank returns it, outside the platform).
    assert tuple(await order_row(db, paid))[:2] == ("cancelled", "refunded")
    status, body = await confirm(m, waiting, accountant)
    assert status == 409 and body["error"]["details"]["reason"] == "order_cancelled"
