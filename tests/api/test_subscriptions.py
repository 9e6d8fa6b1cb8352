"""Subscriptions over HTTP (subscribe, cancel, auto-renewal, lists, who sees what) and the
billing rules (retries, grace period, suspension, renewals due) as plain functions.

The helpers and the `api` fixture at the top (an app with Razorpay secrets configured) are
shared by the other billing test modules."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from kernel.config import load_settings
from kernel.tokens import sign_access_token
from realms.analyst.razorpay import payment_signature
from realms.analyst.routes.subscriptions import (
    GRACE_PERIOD,
    RETRY_LIMIT,
    BillingState,
    after_failure,
    next_charge_at,
    record_payment_failure,
    renewal_due,
    suspend_lapsed,
)
from tests.factories import make_analyst, make_subscription, make_tier, make_user

KEY_SECRET = "rzp-test-key-secret"
WEBHOOK_SECRET = "rzp-test-webhook-secret"
PUBLIC_BASE_URL = "https://switchboard.example"


@pytest.fixture
async def api(dsn: str, aiohttp_client: Any, secret: str) -> AsyncIterator[TestClient]:
    """The API on this test's database, with Razorpay's key and webhook secrets set."""
    settings = load_settings(
        {
            "DATABASE_URL": dsn,
            "SWITCHBOARD_SECRET": secret,
            "RAZORPAY_KEY_SECRET": KEY_SECRET,
            "RAZORPAY_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        }
    )
    client: TestClient = await aiohttp_client(create_app(settings))
    yield client
    await client.close()


async def approved_analyst(db: asyncpg.Connection, **profile: Any) -> uuid.UUID:
    """An analyst with an approved profile: only those sell subscriptions."""
    return await make_analyst(db, verification_status="approved", **profile)


def bearer(secret: str, user_id: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_access_token(secret, str(user_id), 'analyst', 600)}"}


async def call(
    api: TestClient,
    method: str,
    path: str,
    status: int,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> Any:
    """Send a request, check its status, return the JSON body (None for 204/302)."""
    response = await api.request(method, path, headers=headers, allow_redirects=False, **kwargs)
    assert response.status == status, await response.text()
    return None if status in (204, 302) else await response.json()


async def subscribe(
    api: TestClient, headers: dict[str, str], tier_id: uuid.UUID, status: int = 201, **body: Any
) -> Any:
    return await call(
        api, "POST", "/v1/subscriptions", status, headers, json={"tier_id": str(tier_id), **body}
    )


async def pay(
    api: TestClient,
    headers: dict[str, str],
    order_id: str,
    payment_id: str | None = None,
    status: int = 200,
) -> Any:
    """Confirm a Checkout payment of `order_id` as Razorpay would sign it."""
    payment_id = payment_id or f"pay_{uuid.uuid4().hex[:14]}"
    body = {
        "razorpay_order_id": order_id,
        "razorpay_payment_id": payment_id,
        "razorpay_signature": payment_signature(KEY_SECRET, order_id, payment_id),
    }
    return await call(api, "POST", "/v1/payments/verify", status, headers, json=body)


async def subscription_row(db: asyncpg.Connection, subscription_id: Any) -> asyncpg.Record:
    row = await db.fetchrow(
        "SELECT * FROM analyst.subscriptions WHERE id = $1", uuid.UUID(str(subscription_id))
    )
    assert row is not None
    return row


# --- subscribing ----------------------------------------------------------------------------


async def test_subscribing_to_a_paid_tier_waits_for_payment_with_an_order(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    tier = await make_tier(db, analyst, price_monthly=99900)
    trader = await make_user(db)
    sub = await subscribe(api, bearer(secret, trader), tier)
    assert sub["status"] == "pending_payment" and sub["has_access"] is False
    assert (sub["price_paid"], sub["discount_applied"], sub["final_price"]) == (99900, 0, 99900)
    assert sub["analyst_id"] == str(analyst) and sub["start_date"] is None
    order = sub["pending_order"]
    assert order["razorpay_order_id"].startswith("order_") and order["amount"] == 99900
    txn = await db.fetchrow(
        "SELECT * FROM analyst.payment_transactions WHERE id = $1::uuid", order["payment_id"]
    )
    assert txn["status"] == "pending" and txn["transaction_type"] == "subscription_payment"
    assert (txn["user_id"], txn["analyst_id"]) == (trader, analyst)
    assert str(txn["subscription_id"]) == sub["id"]


async def test_yearly_billing_charges_the_yearly_price(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    tier = await make_tier(db, await approved_analyst(db), price_monthly=1000, price_yearly=10000)
    sub = await subscribe(api, bearer(secret, await make_user(db)), tier, billing_cycle="yearly")
    assert sub["billing_cycle"] == "yearly" and sub["final_price"] == 10000


async def test_yearly_billing_is_refused_when_the_tier_has_no_yearly_price(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    tier = await make_tier(db, await approved_analyst(db), price_monthly=1000)
    error = await subscribe(
        api, bearer(secret, await make_user(db)), tier, 400, billing_cycle="yearly"
    )
    assert "billing_cycle" in error["error"]["message"]


async def test_a_free_tier_is_active_at_once_without_an_order(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    tier = await make_tier(db, analyst, price_monthly=0, is_free_tier=True)
    sub = await subscribe(api, bearer(secret, await make_user(db)), tier)
    assert sub["status"] == "active" and sub["has_access"] and sub["pending_order"] is None
    assert sub["start_date"] is not None and sub["expires_at"] is None
    assert sub["final_price"] == 0 and sub["auto_renewal"] is False
    assert await db.fetchval("SELECT count(*) FROM analyst.payment_transactions") == 0
    assert (
        await db.fetchval(
            "SELECT active_subscribers FROM analyst.analyst_profiles WHERE user_id = $1", analyst
        )
        == 1
    )


async def test_subscribing_to_yourself_is_refused(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    error = await subscribe(api, bearer(secret, analyst), await make_tier(db, analyst), 400)
    assert "yourself" in error["error"]["message"]


async def test_a_second_active_subscription_to_the_same_analyst_is_refused(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    trader = await make_user(db)
    await make_subscription(db, trader, await make_tier(db, analyst))
    error = await subscribe(api, bearer(secret, trader), await make_tier(db, analyst), 409)
    assert error["error"]["code"] == "conflict"
    assert "subscription_id" in error["error"]["details"]


async def test_an_unpaid_subscription_blocks_another_until_it_is_cancelled(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    tier = await make_tier(db, analyst)
    me = bearer(secret, await make_user(db))
    first = await subscribe(api, me, tier)
    error = await subscribe(api, me, tier, 409)
    assert error["error"]["details"]["subscription_id"] == first["id"]
    await call(api, "POST", f"/v1/subscriptions/{first['id']}/cancel", 200, me)
    await subscribe(api, me, tier)


async def test_subscribing_again_replaces_a_suspended_subscription(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    trader = await make_user(db)
    tier = await make_tier(db, analyst)
    old = await make_subscription(db, trader, tier, status="suspended")
    await subscribe(api, bearer(secret, trader), tier)
    row = await subscription_row(db, old)
    assert row["status"] == "cancelled" and row["cancelled_at"] is not None


async def test_an_inactive_tier_is_refused_and_a_deleted_one_is_not_found(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    me = bearer(secret, await make_user(db))
    inactive = await make_tier(db, analyst, is_active=False)
    deleted = await make_tier(db, analyst, deleted_at=datetime.now(UTC))
    assert "tier_id" in (await subscribe(api, me, inactive, 400))["error"]["message"]
    await subscribe(api, me, deleted, 404)
    await subscribe(api, me, uuid.uuid4(), 404)


async def test_a_tier_of_a_deactivated_analyst_is_not_found(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    tier = await make_tier(db, analyst)
    await db.execute("UPDATE analyst.users SET is_active = false WHERE id = $1", analyst)
    await subscribe(api, bearer(secret, await make_user(db)), tier, 404)


async def test_an_unapproved_analysts_tier_is_not_for_sale(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    tier = await make_tier(db, await make_analyst(db))  # verification pending
    await subscribe(api, bearer(secret, await make_user(db)), tier, 404)


async def test_subscribing_needs_a_login(api: TestClient, db: asyncpg.Connection) -> None:
    tier = await make_tier(db, await approved_analyst(db))
    await call(api, "POST", "/v1/subscriptions", 401, json={"tier_id": str(tier)})
    await call(api, "GET", "/v1/subscriptions", 401)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tier_id": "nope"}, "tier_id"),
        ({"tier_id": str(uuid.uuid4()), "billing_cycle": "weekly"}, "billing_cycle"),
        ({"tier_id": str(uuid.uuid4()), "coupon": "X"}, "coupon"),
        ({}, "tier_id"),
    ],
)
async def test_a_malformed_subscribe_body_is_refused_naming_the_field(
    api: TestClient, db: asyncpg.Connection, secret: str, body: dict[str, Any], field: str
) -> None:
    headers = bearer(secret, await make_user(db))
    error = await call(api, "POST", "/v1/subscriptions", 400, headers, json=body)
    assert field in error["error"]["message"]


# --- cancel and auto-renewal ----------------------------------------------------------------


async def test_cancelling_ends_access_at_once_and_auto_renewal_off_keeps_the_paid_period(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    trader = await make_user(db)
    analyst = await approved_analyst(db)
    sub = await make_subscription(db, trader, await make_tier(db, analyst))
    me = bearer(secret, trader)
    out = await call(api, "POST", f"/v1/subscriptions/{sub}/cancel", 200, me)
    assert out["status"] == "cancelled" and out["cancelled_at"] is not None
    assert out["has_access"] is False and out["auto_renewal"] is False
    await call(api, "POST", f"/v1/subscriptions/{sub}/cancel", 409, me)
    other = await make_subscription(db, trader, await make_tier(db, await approved_analyst(db)))
    kept = await call(
        api, "PATCH", f"/v1/subscriptions/{other}", 200, me, json={"auto_renewal": False}
    )
    assert kept["status"] == "active" and kept["has_access"] is True
    expires_at = datetime.fromisoformat(kept["expires_at"])
    assert expires_at == (await subscription_row(db, other))["expires_at"]


async def test_cancelling_an_unpaid_subscription_cancels_its_order(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    me = bearer(secret, await make_user(db))
    sub = await subscribe(api, me, await make_tier(db, await approved_analyst(db)))
    out = await call(api, "POST", f"/v1/subscriptions/{sub['id']}/cancel", 200, me)
    assert out["has_access"] is False and out["pending_order"] is None
    status = await db.fetchval(
        "SELECT status FROM analyst.payment_transactions WHERE id = $1::uuid",
        sub["pending_order"]["payment_id"],
    )
    assert status == "cancelled"


async def test_only_the_subscriber_or_an_admin_may_cancel(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    sub = await make_subscription(db, await make_user(db), await make_tier(db, analyst))
    path = f"/v1/subscriptions/{sub}/cancel"
    await call(api, "POST", path, 404, bearer(secret, await make_user(db)))
    await call(api, "POST", path, 404, bearer(secret, analyst))
    await call(api, "POST", path, 200, bearer(secret, await make_user(db, user_type="admin")))


async def test_auto_renewal_is_toggled_by_the_subscriber_only(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    trader = await make_user(db)
    sub = await make_subscription(db, trader, await make_tier(db, await approved_analyst(db)))
    path = f"/v1/subscriptions/{sub}"
    out = await call(api, "PATCH", path, 200, bearer(secret, trader), json={"auto_renewal": False})
    assert out["auto_renewal"] is False
    await call(
        api, "PATCH", path, 404, bearer(secret, await make_user(db)), json={"auto_renewal": True}
    )
    error = await call(api, "PATCH", path, 400, bearer(secret, trader), json={"auto_renewal": 1})
    assert "auto_renewal" in error["error"]["message"]
    await call(api, "POST", f"{path}/cancel", 200, bearer(secret, trader))
    await call(api, "PATCH", path, 409, bearer(secret, trader), json={"auto_renewal": True})


async def test_a_path_id_that_is_not_a_uuid_is_a_bad_request(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    error = await call(
        api, "POST", "/v1/subscriptions/xyz/cancel", 400, bearer(secret, await make_user(db))
    )
    assert "id" in error["error"]["message"]


# --- reading --------------------------------------------------------------------------------


async def test_a_subscription_is_visible_to_its_subscriber_analyst_and_admins_only(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    trader = await make_user(db)
    sub = await make_subscription(db, trader, await make_tier(db, analyst))
    path = f"/v1/subscriptions/{sub}"
    for who in (trader, analyst, await make_user(db, user_type="admin")):
        assert (await call(api, "GET", path, 200, bearer(secret, who)))["id"] == str(sub)
    await call(api, "GET", path, 404, bearer(secret, await make_user(db)))
    await call(api, "GET", path, 404, bearer(secret, await approved_analyst(db)))


async def test_own_subscriptions_come_in_stable_pages(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    trader = await make_user(db)
    made = [
        await make_subscription(db, trader, await make_tier(db, await approved_analyst(db)))
        for _ in range(3)
    ]
    await make_subscription(
        db, await make_user(db), await make_tier(db, await approved_analyst(db))
    )
    me = bearer(secret, trader)
    first = await call(api, "GET", "/v1/subscriptions", 200, me, params={"limit": 2})
    assert len(first["items"]) == 2 and first["next_cursor"]
    # A subscription made after the first page does not shift the second.
    await make_subscription(db, trader, await make_tier(db, await approved_analyst(db)))
    params = {"limit": 2, "cursor": first["next_cursor"]}
    second = await call(api, "GET", "/v1/subscriptions", 200, me, params=params)
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    seen = {s["id"] for s in first["items"] + second["items"]}
    assert seen == {str(s) for s in made}
    await call(api, "GET", "/v1/subscriptions", 400, me, params={"cursor": "garbage"})
    error = await call(api, "GET", "/v1/subscriptions", 400, me, params={"limit": 0})
    assert "limit" in error["error"]["message"]


async def test_own_subscriptions_filter_by_status(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    trader = await make_user(db)
    await make_subscription(db, trader, await make_tier(db, await approved_analyst(db)))
    cancelled = await make_subscription(
        db, trader, await make_tier(db, await approved_analyst(db)), status="cancelled"
    )
    page = await call(
        api, "GET", "/v1/subscriptions", 200, bearer(secret, trader), params={"status": "cancelled"}
    )
    assert [s["id"] for s in page["items"]] == [str(cancelled)]


async def test_an_analyst_lists_their_own_subscribers_only(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    tier = await make_tier(db, analyst)
    mine = [await make_subscription(db, await make_user(db), tier) for _ in range(3)]
    await make_subscription(
        db, await make_user(db), await make_tier(db, await approved_analyst(db))
    )
    me = bearer(secret, analyst)
    first = await call(api, "GET", "/v1/subscribers", 200, me, params={"limit": 2})
    second = await call(
        api, "GET", "/v1/subscribers", 200, me, params={"limit": 2, "cursor": first["next_cursor"]}
    )
    assert {s["id"] for s in first["items"] + second["items"]} == {str(s) for s in mine}
    other_tier = await call(
        api, "GET", "/v1/subscribers", 200, me, params={"tier_id": str(uuid.uuid4())}
    )
    assert other_tier["items"] == []
    await call(api, "GET", "/v1/subscribers", 403, bearer(secret, await make_user(db)))


async def test_admins_list_every_subscription_and_others_are_forbidden(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    subs = [
        await make_subscription(db, await make_user(db), await make_tier(db, analyst)),
        await make_subscription(
            db, await make_user(db), await make_tier(db, await approved_analyst(db))
        ),
    ]
    boss = bearer(secret, await make_user(db, user_type="admin"))
    page = await call(api, "GET", "/v1/admin/subscriptions", 200, boss)
    assert {s["id"] for s in page["items"]} == {str(s) for s in subs}
    page = await call(
        api, "GET", "/v1/admin/subscriptions", 200, boss, params={"analyst_id": str(analyst)}
    )
    assert [s["id"] for s in page["items"]] == [str(subs[0])]
    await call(api, "GET", "/v1/admin/subscriptions", 403, bearer(secret, analyst))
    await call(api, "GET", "/v1/admin/subscriptions", 401)


# --- billing rules --------------------------------------------------------------------------

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_the_first_failed_charge_opens_a_seven_day_grace_period() -> None:
    state = after_failure(BillingState("active", 0, None), NOW)
    assert state == BillingState("active", 0, NOW + timedelta(days=7))


def test_failed_retries_count_and_the_third_suspends() -> None:
    state = BillingState("active", 0, NOW + GRACE_PERIOD)
    for expected in range(1, RETRY_LIMIT):
        state = after_failure(state, NOW + timedelta(days=2 * expected))
        assert state.status == "active" and state.payment_retry_count == expected
    state = after_failure(state, NOW + timedelta(days=6))
    assert state.status == "suspended" and state.payment_retry_count == RETRY_LIMIT


def test_a_failure_after_the_grace_period_suspends() -> None:
    state = after_failure(BillingState("active", 1, NOW), NOW + timedelta(seconds=1))
    assert state.status == "suspended"


def test_a_failed_first_payment_only_notes_the_attempt() -> None:
    state = BillingState("pending_payment", 0, None)
    assert after_failure(state, NOW) == state


def test_charges_are_due_on_the_billing_date_then_every_two_days_within_grace() -> None:
    billing = NOW
    assert next_charge_at(BillingState("active", 0, None), billing, None) == billing
    grace = BillingState("active", 0, NOW + GRACE_PERIOD)
    assert next_charge_at(grace, billing, NOW) == NOW + timedelta(days=2)
    late = BillingState("active", 2, NOW + GRACE_PERIOD)
    assert next_charge_at(late, billing, NOW + timedelta(days=5, hours=1)) is None
    spent = BillingState("active", RETRY_LIMIT, NOW + GRACE_PERIOD)
    assert next_charge_at(spent, billing, NOW) is None
    assert next_charge_at(BillingState("suspended", 0, None), billing, None) is None


async def test_a_failed_renewal_keeps_access_through_grace_then_suspends(
    db: asyncpg.Connection,
) -> None:
    now = datetime.now(UTC)
    trader = await make_user(db)
    sub = await make_subscription(
        db,
        trader,
        await make_tier(db, await approved_analyst(db)),
        expires_at=now,
        next_billing_date=now,
    )
    state = await record_payment_failure(db, sub, now)
    row = await subscription_row(db, sub)
    assert state.status == "active" and row["grace_period_ends_at"] == now + GRACE_PERIOD
    assert row["expires_at"] == now + GRACE_PERIOD and row["last_payment_attempt"] == now
    for day in (2, 4):
        await record_payment_failure(db, sub, now + timedelta(days=day))
    assert (await subscription_row(db, sub))["payment_retry_count"] == 2
    state = await record_payment_failure(db, sub, now + timedelta(days=6))
    row = await subscription_row(db, sub)
    assert state.status == row["status"] == "suspended"
    assert row["suspended_at"] == now + timedelta(days=6)
    assert row["expires_at"] == now + timedelta(days=6)  # no access while suspended


async def test_a_failed_first_payment_leaves_the_subscription_waiting(
    db: asyncpg.Connection,
) -> None:
    tier = await make_tier(db, await approved_analyst(db))
    sub = await make_subscription(
        db, await make_user(db), tier, status="pending_payment", start_date=None, expires_at=None
    )
    now = datetime.now(UTC)
    await record_payment_failure(db, sub, now)
    row = await subscription_row(db, sub)
    assert row["status"] == "pending_payment" and row["grace_period_ends_at"] is None
    assert row["last_payment_attempt"] == now


async def test_renewals_are_due_on_the_billing_date_and_retries_after_two_days(
    db: asyncpg.Connection,
) -> None:
    now = datetime.now(UTC)
    analyst = await approved_analyst(db)
    tier = await make_tier(db, analyst)

    async def sub(**fields: Any) -> uuid.UUID:
        values = {"price_paid": 99900, "final_price": 49950, "next_billing_date": now, **fields}
        return await make_subscription(db, await make_user(db), tier, **values)

    due = await sub()
    retry = await sub(
        grace_period_ends_at=now + timedelta(days=5),
        last_payment_attempt=now - timedelta(days=2),
        payment_retry_count=1,
    )
    await sub(next_billing_date=now + timedelta(days=1))  # not yet
    await sub(auto_renewal=False)
    await sub(status="cancelled")
    await sub(
        grace_period_ends_at=now + timedelta(days=5), last_payment_attempt=now - timedelta(days=1)
    )  # retried yesterday
    await sub(
        grace_period_ends_at=now + timedelta(days=1),
        last_payment_attempt=now - timedelta(days=3),
        payment_retry_count=3,
    )  # spent
    ordered = await sub()
    await db.execute(
        "INSERT INTO analyst.payment_transactions (subscription_id, transaction_type, amount,"
        " status, razorpay_order_id) VALUES ($1, 'renewal', 99900, 'pending', 'order_x')",
        ordered,
    )
    found = {r.subscription_id: r for r in await renewal_due(db, now)}
    assert set(found) == {due, retry}
    assert found[due].amount == 99900 and found[due].retry is False and found[retry].retry


async def test_a_withdrawn_tier_is_not_renewed(db: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    analyst = await approved_analyst(db)
    for fields in ({"is_active": False}, {"deleted_at": now}):
        tier = await make_tier(db, analyst, **fields)
        await make_subscription(
            db, await make_user(db), tier, price_paid=1000, next_billing_date=now
        )
    assert await renewal_due(db, now) == []


async def test_lapsed_grace_periods_are_suspended(db: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    tier = await make_tier(db, await approved_analyst(db))
    lapsed = await make_subscription(
        db, await make_user(db), tier, grace_period_ends_at=now - timedelta(seconds=1)
    )
    running = await make_subscription(
        db, await make_user(db), tier, grace_period_ends_at=now + timedelta(days=1)
    )
    assert await suspend_lapsed(db, now) == 1
    assert (await subscription_row(db, lapsed))["status"] == "suspended"
    assert (await subscription_row(db, running))["status"] == "active"
