"""Payments over HTTP with Razorpay's signatures computed locally: checkout verification,
capture and payout split, the idempotent webhook, refunds, history and earnings."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from kernel.config import load_settings
from realms.analyst.razorpay import payment_signature, signature_matches, webhook_signature
from realms.analyst.routes.payments import payout_split
from tests.api.test_subscriptions import (
    WEBHOOK_SECRET,
    api,
    approved_analyst,
    bearer,
    call,
    pay,
    subscribe,
    subscription_row,
)
from tests.factories import make_subscription, make_tier, make_user

__all__ = ["api"]  # the fixture with Razorpay configured


@pytest.fixture
async def unconfigured(dsn: str, aiohttp_client: Any, secret: str) -> AsyncIterator[TestClient]:
    """The API without any Razorpay secret."""
    settings = load_settings({"DATABASE_URL": dsn, "SWITCHBOARD_SECRET": secret})
    client: TestClient = await aiohttp_client(create_app(settings))
    yield client
    await client.close()


async def pending(
    api: TestClient, db: asyncpg.Connection, secret: str, price: int = 99900, **profile: Any
) -> tuple[uuid.UUID, uuid.UUID, dict[str, str], Any]:
    """(analyst, trader, trader's headers, subscription waiting for payment)."""
    analyst = await approved_analyst(db, **profile)
    trader = await make_user(db)
    headers = bearer(secret, trader)
    sub = await subscribe(
        api, headers, await make_tier(db, analyst, price_monthly=price, price_yearly=price * 10)
    )
    return analyst, trader, headers, sub


async def hook(
    api: TestClient,
    event: str,
    order_id: str | None,
    payment_id: str,
    status: int = 200,
    *,
    event_id: str | None = None,
    amount: int | None = None,
    signature: str | None = None,
    **entity: Any,
) -> Any:
    body = json.dumps(
        {
            "entity": "event",
            "event": event,
            "payload": {
                "payment": {
                    "entity": {
                        "id": payment_id,
                        "entity": "payment",
                        "order_id": order_id,
                        "amount": amount,
                        "currency": "INR",
                        **entity,
                    }
                }
            },
        }
    ).encode()
    headers = {
        "X-Razorpay-Signature": signature or webhook_signature(WEBHOOK_SECRET, body),
        "Content-Type": "application/json",
    }
    if event_id:
        headers["X-Razorpay-Event-Id"] = event_id
    return await call(api, "POST", "/v1/payments/webhook", status, headers, data=body)


async def notifications(db: asyncpg.Connection, user_id: uuid.UUID, kind: str) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM analyst.notifications"
            " WHERE user_id = $1 AND notification_type = $2",
            user_id,
            kind,
        )
    )


# --- pure -----------------------------------------------------------------------------------


def test_the_split_rounds_the_commission_half_up_and_sums_to_the_amount() -> None:
    assert payout_split(99900, Decimal("0.200")) == (19980, 79920)
    assert payout_split(999, Decimal("0.125")) == (125, 874)  # 124.875
    assert payout_split(1, Decimal("0.500")) == (1, 0)
    assert payout_split(1000, Decimal("0")) == (0, 1000)


def test_signatures_are_hmac_sha256_hex() -> None:
    signature = payment_signature("s3cret", "order_A", "pay_B")
    assert len(signature) == 64 and signature_matches(signature, signature.upper())
    assert signature != payment_signature("s3cret", "order_A", "pay_C")
    assert webhook_signature("s3cret", b"{}") != webhook_signature("other", b"{}")


# --- checkout verification ------------------------------------------------------------------


async def test_a_verified_payment_is_captured_split_and_activates_the_subscription(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, trader, me, sub = await pending(api, db, secret, commission_rate=Decimal("0.150"))
    order = sub["pending_order"]
    before = datetime.now(UTC)
    out = await pay(api, me, order["razorpay_order_id"], "pay_OK1")
    assert out["status"] == "captured" and out["razorpay_payment_id"] == "pay_OK1"
    assert out["platform_commission"] is None  # the payer does not see the split
    txn = await db.fetchrow(
        "SELECT * FROM analyst.payment_transactions WHERE id = $1::uuid", out["id"]
    )
    assert (txn["platform_commission"], txn["payout_amount"]) == (14985, 84915)
    assert txn["razorpay_signature"] and txn["payout_status"] == "pending"
    row = await subscription_row(db, sub["id"])
    assert row["status"] == "active" and row["start_date"] >= before
    assert row["expires_at"] == await db.fetchval(
        "SELECT $1::timestamptz + interval '1 month'", row["start_date"]
    )
    assert row["next_billing_date"] == row["expires_at"]
    assert await notifications(db, trader, "payment_success") == 1
    assert (
        await db.fetchval(
            "SELECT active_subscribers FROM analyst.analyst_profiles WHERE user_id = $1", analyst
        )
        == 1
    )


async def test_a_yearly_payment_runs_for_a_year(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    me = bearer(secret, await make_user(db))
    tier = await make_tier(db, analyst, price_monthly=1000, price_yearly=9000)
    sub = await subscribe(api, me, tier, billing_cycle="yearly")
    await pay(api, me, sub["pending_order"]["razorpay_order_id"])
    row = await subscription_row(db, sub["id"])
    assert row["expires_at"] == await db.fetchval(
        "SELECT $1::timestamptz + interval '1 year'", row["start_date"]
    )


async def test_a_wrong_signature_is_refused_and_nothing_changes(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    _, _, me, sub = await pending(api, db, secret)
    body = {
        "razorpay_order_id": sub["pending_order"]["razorpay_order_id"],
        "razorpay_payment_id": "pay_X",
        "razorpay_signature": "0" * 64,
    }
    error = await call(api, "POST", "/v1/payments/verify", 400, me, json=body)
    assert "razorpay_signature" in error["error"]["message"]
    assert (await subscription_row(db, sub["id"]))["status"] == "pending_payment"


async def test_only_the_payer_verifies_an_order(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, _, _, sub = await pending(api, db, secret)
    order_id = sub["pending_order"]["razorpay_order_id"]
    await pay(api, bearer(secret, await make_user(db)), order_id, status=404)
    await pay(api, bearer(secret, analyst), order_id, status=404)
    await pay(api, {}, order_id, status=401)
    await pay(api, bearer(secret, analyst), "order_unknown", status=404)


async def test_verifying_the_same_payment_twice_changes_nothing(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    _, _, me, sub = await pending(api, db, secret)
    order_id = sub["pending_order"]["razorpay_order_id"]
    first = await pay(api, me, order_id, "pay_SAME")
    expires = (await subscription_row(db, sub["id"]))["expires_at"]
    again = await pay(api, me, order_id, "pay_SAME")
    assert again["id"] == first["id"] and again["status"] == "captured"
    assert (await subscription_row(db, sub["id"]))["expires_at"] == expires
    await pay(api, me, order_id, "pay_OTHER", status=409)


async def test_a_cancelled_order_cannot_be_paid(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    _, _, me, sub = await pending(api, db, secret)
    await call(api, "POST", f"/v1/subscriptions/{sub['id']}/cancel", 200, me)
    await pay(api, me, sub["pending_order"]["razorpay_order_id"], status=409)


async def test_verification_without_a_key_secret_is_unavailable(
    unconfigured: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    error = await call(
        unconfigured,
        "POST",
        "/v1/payments/verify",
        503,
        bearer(secret, await make_user(db)),
        json={
            "razorpay_order_id": "order_A",
            "razorpay_payment_id": "pay_B",
            "razorpay_signature": "x",
        },
    )
    assert "RAZORPAY_KEY_SECRET" in error["error"]["message"]


async def test_a_malformed_verification_is_refused_naming_the_field(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    error = await call(
        api,
        "POST",
        "/v1/payments/verify",
        400,
        bearer(secret, await make_user(db)),
        json={"razorpay_order_id": "o"},
    )
    assert "razorpay_payment_id" in error["error"]["message"]


# --- webhook --------------------------------------------------------------------------------


async def test_a_captured_webhook_activates_once_and_replays_change_nothing(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    _, trader, _, sub = await pending(api, db, secret)
    order_id = sub["pending_order"]["razorpay_order_id"]
    out = await hook(
        api, "payment.captured", order_id, "pay_W1", event_id="evt_1", amount=99900, method="upi"
    )
    assert out == {"status": "processed"}
    row = await subscription_row(db, sub["id"])
    assert row["status"] == "active"
    txn = await db.fetchrow(
        "SELECT * FROM analyst.payment_transactions WHERE id = $1::uuid",
        sub["pending_order"]["payment_id"],
    )
    assert txn["status"] == "captured" and txn["payment_method"] == "upi"
    assert txn["payout_amount"] + txn["platform_commission"] == 99900
    for event_id in ("evt_1", "evt_2"):  # the same event, then the same payment again
        again = await hook(
            api, "payment.captured", order_id, "pay_W1", event_id=event_id, amount=99900
        )
        assert again == {"status": "duplicate"}
    assert (await subscription_row(db, sub["id"]))["expires_at"] == row["expires_at"]
    assert await notifications(db, trader, "payment_success") == 1


async def test_a_failed_webhook_notes_the_attempt_and_the_order_can_still_be_paid(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    _, trader, me, sub = await pending(api, db, secret)
    order_id = sub["pending_order"]["razorpay_order_id"]
    for _ in range(2):  # the second is a replay of the same payment
        await hook(
            api,
            "payment.failed",
            order_id,
            "pay_F1",
            error_code="BAD_REQUEST_ERROR",
            error_description="Card declined",
        )
    txn = await db.fetchrow(
        "SELECT * FROM analyst.payment_transactions WHERE id = $1::uuid",
        sub["pending_order"]["payment_id"],
    )
    assert txn["status"] == "failed" and txn["retry_count"] == 1
    assert txn["failure_reason"] == "Card declined"
    row = await subscription_row(db, sub["id"])
    assert row["status"] == "pending_payment" and row["last_payment_attempt"] is not None
    assert await notifications(db, trader, "payment_failed") == 1
    seen = await call(api, "GET", f"/v1/subscriptions/{sub['id']}", 200, me)
    assert seen["pending_order"]["razorpay_order_id"] == order_id
    await pay(api, me, order_id, "pay_F2")
    assert (await subscription_row(db, sub["id"]))["status"] == "active"


async def test_a_failed_renewal_opens_the_grace_period(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    trader = await make_user(db)
    now = datetime.now(UTC)
    sub = await make_subscription(
        db,
        trader,
        await make_tier(db, await approved_analyst(db)),
        price_paid=99900,
        expires_at=now,
        next_billing_date=now,
    )
    await db.execute(
        "INSERT INTO analyst.payment_transactions (user_id, subscription_id, transaction_type,"
        " amount, status, razorpay_order_id) VALUES ($1, $2, 'renewal', 99900, 'pending',"
        " 'order_RENEW')",
        trader,
        sub,
    )
    await hook(api, "payment.failed", "order_RENEW", "pay_R1", event_id="evt_r1")
    row = await subscription_row(db, sub)
    assert row["status"] == "active" and row["grace_period_ends_at"] > now + timedelta(days=6)
    assert row["expires_at"] == row["grace_period_ends_at"]
    await hook(api, "payment.captured", "order_RENEW", "pay_R2", event_id="evt_r2", amount=99900)
    row = await subscription_row(db, sub)
    assert row["grace_period_ends_at"] is None and row["payment_retry_count"] == 0
    # The new period runs from the billing date, not from the late payment.
    assert row["expires_at"] == await db.fetchval(
        "SELECT $1::timestamptz + interval '1 month'", now
    )


async def test_webhook_signatures_are_checked(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    _, _, _, sub = await pending(api, db, secret)
    order_id = sub["pending_order"]["razorpay_order_id"]
    await hook(api, "payment.captured", order_id, "pay_S", 401, signature="f" * 64)
    response = await api.post("/v1/payments/webhook", data=b'{"event": "payment.captured"}')
    assert response.status == 401
    assert (await subscription_row(db, sub["id"]))["status"] == "pending_payment"


async def test_webhooks_without_a_secret_are_unavailable(
    unconfigured: TestClient,
) -> None:
    response = await unconfigured.post("/v1/payments/webhook", json={"event": "payment.captured"})
    assert response.status == 503
    assert "RAZORPAY_WEBHOOK_SECRET" in (await response.json())["error"]["message"]


async def test_webhooks_for_other_events_or_unknown_orders_are_ignored(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    _, _, _, sub = await pending(api, db, secret)
    order_id = sub["pending_order"]["razorpay_order_id"]
    assert (await hook(api, "refund.created", order_id, "pay_I"))["status"] == "ignored"
    assert (await hook(api, "payment.captured", "order_nope", "pay_I"))["status"] == "ignored"
    out = await hook(api, "payment.captured", order_id, "pay_I", amount=1)  # wrong amount
    assert out["status"] == "ignored"
    assert (await subscription_row(db, sub["id"]))["status"] == "pending_payment"


# --- refunds --------------------------------------------------------------------------------


async def test_the_analyst_refunds_in_full_which_ends_the_subscription(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, _, me, sub = await pending(api, db, secret)
    paid = await pay(api, me, sub["pending_order"]["razorpay_order_id"])
    path = f"/v1/payments/{paid['id']}/refund"
    out = await call(api, "POST", path, 200, bearer(secret, analyst), json={"reason": "asked"})
    assert out["status"] == "refunded" and out["refund_amount"] == 99900
    assert out["refunded_at"] is not None and out["payout_amount"] is not None
    row = await subscription_row(db, sub["id"])
    assert row["status"] == "cancelled" and row["cancelled_at"] is not None
    await call(api, "POST", path, 409, bearer(secret, analyst), json={"reason": "again"})


async def test_a_partial_refund_by_an_admin_leaves_the_subscription(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    _, _, me, sub = await pending(api, db, secret)
    paid = await pay(api, me, sub["pending_order"]["razorpay_order_id"])
    boss = bearer(secret, await make_user(db, user_type="admin"))
    path = f"/v1/payments/{paid['id']}/refund"
    error = await call(api, "POST", path, 400, boss, json={"reason": "x", "amount": 100000})
    assert "amount" in error["error"]["message"]
    out = await call(api, "POST", path, 200, boss, json={"reason": "goodwill", "amount": 1000})
    assert out["refund_amount"] == 1000
    assert (await subscription_row(db, sub["id"]))["status"] == "active"


async def test_payers_and_strangers_cannot_refund(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    _, _, me, sub = await pending(api, db, secret)
    paid = await pay(api, me, sub["pending_order"]["razorpay_order_id"])
    path = f"/v1/payments/{paid['id']}/refund"
    await call(api, "POST", path, 403, me, json={"reason": "mine"})
    await call(
        api, "POST", path, 404, bearer(secret, await approved_analyst(db)), json={"reason": "x"}
    )
    await call(api, "POST", path, 400, me, json={"reason": ""})


async def test_only_captured_payments_are_refunded(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, _, _, sub = await pending(api, db, secret)
    await call(
        api,
        "POST",
        f"/v1/payments/{sub['pending_order']['payment_id']}/refund",
        409,
        bearer(secret, analyst),
        json={"reason": "x"},
    )


# --- lists ----------------------------------------------------------------------------------


async def test_the_payer_pages_through_their_history_without_the_split(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    trader = await make_user(db)
    me = bearer(secret, trader)
    for _ in range(3):
        await subscribe(api, me, await make_tier(db, await approved_analyst(db)))
    await pending(api, db, secret)  # someone else's
    first = await call(api, "GET", "/v1/payments", 200, me, params={"limit": 2})
    second = await call(
        api, "GET", "/v1/payments", 200, me, params={"limit": 2, "cursor": first["next_cursor"]}
    )
    items = first["items"] + second["items"]
    assert len(items) == 3 and {p["user_id"] for p in items} == {str(trader)}
    assert all(p["payout_amount"] is None for p in items)
    await call(api, "GET", "/v1/payments", 400, me, params={"cursor": "bad"})
    await call(api, "GET", "/v1/payments", 401)


async def test_an_analyst_sees_captured_earnings_with_the_split(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, _, me, sub = await pending(api, db, secret)
    paid = await pay(api, me, sub["pending_order"]["razorpay_order_id"])
    tier = await make_tier(db, analyst)
    await subscribe(api, bearer(secret, await make_user(db)), tier)  # unpaid: not earnings
    page = await call(api, "GET", "/v1/earnings", 200, bearer(secret, analyst))
    assert [p["id"] for p in page["items"]] == [paid["id"]]
    assert page["items"][0]["payout_amount"] == 79920
    await call(api, "GET", "/v1/earnings", 403, me)


async def test_a_payment_is_visible_to_its_payer_analyst_and_admins_only(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, _, me, sub = await pending(api, db, secret)
    path = f"/v1/payments/{sub['pending_order']['payment_id']}"
    assert (await call(api, "GET", path, 200, me))["amount"] == 99900
    await call(api, "GET", path, 200, bearer(secret, analyst))
    await call(api, "GET", path, 200, bearer(secret, await make_user(db, user_type="admin")))
    await call(api, "GET", path, 404, bearer(secret, await make_user(db)))
    await call(api, "GET", "/v1/payments/not-a-uuid", 400, me)
