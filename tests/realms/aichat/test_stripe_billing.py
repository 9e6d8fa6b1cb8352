"""Payments and invoices of the aichat realm: Stripe webhooks (signed by the Stripe stand-in,
delivered over HTTP to the api) record payments once each, make a subscription past_due on a
failure and active again on payment, and notify `payment_failed` once; the month-end job
issues one invoice per billable subscription and month and notifies `invoice_issued`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from kernel.config import load_settings
from kernel.db import connect
from kernel.realms import enabled_realms
from realms.aichat.billing import AICHAT_BILLING, BillingConfig
from realms.aichat.jobs import month_end_invoices
from tests.api.conftest import SmtpSink
from tests.payments.stripe_standin import StripeStandin, running_standin
from tests.realms.aichat.world import make_user

WEBHOOK = "/v1/aichat/billing/stripe/webhook"


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        self._now = max(self._now, when)


@pytest.fixture
async def stripe() -> AsyncIterator[StripeStandin]:
    async with running_standin() as standin:
        yield standin


@pytest.fixture
async def billing_api(
    dsn: str, aiohttp_client: Any, secret: str, smtp_sink: SmtpSink, stripe: StripeStandin
) -> AsyncIterator[TestClient]:
    """The api with Stripe aimed at the stand-in (its webhook secret)."""
    settings = load_settings(
        {
            "DATABASE_URL": dsn,
            "SWITCHBOARD_SECRET": secret,
            "BCRYPT_ROUNDS": "4",
            "SMTP_URL": smtp_sink.url,
            "SWITCHBOARD_REALMS": "aichat",
        }
    )
    app = create_app(settings, realms=enabled_realms({"SWITCHBOARD_REALMS": "aichat"}))
    app[AICHAT_BILLING] = BillingConfig(stripe.settings())
    client: TestClient = await aiohttp_client(app)
    yield client
    await client.close()


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection that keeps the reference plans (unlike `db` here)."""
    connection = await connect(dsn)
    yield connection
    await connection.close()


async def _subscribe(
    conn: asyncpg.Connection,
    user: uuid.UUID,
    plan: str = "Plus",
    *,
    status: str = "active",
    start: datetime = datetime(2026, 11, 20),
    end: datetime = datetime(2026, 12, 20),
) -> tuple[uuid.UUID, str, str]:
    """A subscription: (its id, Stripe subscription id, Stripe customer id)."""
    tag = uuid.uuid4().hex[:10]
    sub = await conn.fetchval(
        "INSERT INTO aichat.subscriptions (user_id, plan_id, stripe_subscription_id,"
        " stripe_customer_id, status, current_period_start, current_period_end)"
        " SELECT $1, id, $3, $4, $5, $6, $7 FROM aichat.plans WHERE name = $2 RETURNING id",
        user,
        plan,
        f"sub_{tag}",
        f"cus_{tag}",
        status,
        start,
        end,
    )
    assert isinstance(sub, uuid.UUID)
    return sub, f"sub_{tag}", f"cus_{tag}"


def _invoice(stripe_sub: str, customer: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": "in_1Q0test",
        "object": "invoice",
        "customer": customer,
        "subscription": stripe_sub,
        "payment_intent": "pi_3Q0test",
        "amount_due": 2000,
        "amount_paid": 0,
        "currency": "usd",
        "status": "open",
        "metadata": {},
        **fields,
    }


async def _post(stripe: StripeStandin, api: TestClient, kind: str, obj: dict[str, Any]) -> Any:
    status, body = await stripe.send_webhook(str(api.make_url(WEBHOOK)), kind, obj)
    assert status == 200, body
    return body["status"]


async def _notifications(conn: asyncpg.Connection, user: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT notification_type, title, message, related_entity_id, idempotency_key"
        " FROM gateway.notifications WHERE realm = 'aichat' AND user_id = $1"
        " ORDER BY created_at",
        str(user),
    )


async def test_a_failed_payment_is_recorded_once_and_the_subscription_falls_past_due(
    billing_api: TestClient, stripe: StripeStandin, conn: asyncpg.Connection, dsn: str
) -> None:
    user = await make_user(dsn)
    sub, stripe_sub, customer = await _subscribe(conn, user)
    failed = _invoice(stripe_sub, customer)

    assert await _post(stripe, billing_api, "invoice.payment_failed", failed) == "processed"
    # the same event delivered again, and its PaymentIntent twin, change nothing more
    assert await _post(stripe, billing_api, "invoice.payment_failed", failed) == "duplicate"
    twin = {
        "id": "pi_3Q0test",
        "object": "payment_intent",
        "amount": 2000,
        "currency": "usd",
        "status": "requires_payment_method",
        "customer": customer,
        "invoice": "in_1Q0test",
        "last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds"},
    }
    assert await _post(stripe, billing_api, "payment_intent.payment_failed", twin) == "duplicate"

    payments = await conn.fetch("SELECT * FROM aichat.payments")
    assert len(payments) == 1
    payment = payments[0]
    assert (payment["user_id"], payment["subscription_id"]) == (user, sub)
    assert payment["stripe_payment_intent_id"] == "pi_3Q0test"
    assert payment["stripe_invoice_id"] == "in_1Q0test"
    assert (payment["amount"], payment["currency"], payment["status"]) == (
        Decimal("20.00"),
        "USD",
        "failed",
    )
    assert await conn.fetchval("SELECT status FROM aichat.subscriptions") == "past_due"
    notes = await _notifications(conn, user)
    assert [(n["notification_type"], n["related_entity_id"]) for n in notes] == [
        ("payment_failed", payment["id"])
    ]
    assert notes[0]["idempotency_key"] == f"payment:{payment['id']}:failed:{user}"
    assert "20.00 USD" in notes[0]["message"]

    # Stripe retries the invoice and it is paid: the same payment succeeds, the subscription
    # is active again; a late failure of that payment moves nothing back
    paid = _invoice(stripe_sub, customer, amount_paid=2000, status="paid")
    assert await _post(stripe, billing_api, "invoice.paid", paid) == "processed"
    assert await conn.fetchval("SELECT status FROM aichat.payments") == "succeeded"
    assert await conn.fetchval("SELECT status FROM aichat.subscriptions") == "active"
    assert await _post(stripe, billing_api, "invoice.payment_failed", failed) == "duplicate"
    assert await conn.fetchval("SELECT status FROM aichat.subscriptions") == "active"
    assert len(await _notifications(conn, user)) == 1

    # the user reads them over REST
    r = await billing_api.post(
        "/v1/aichat/auth/login",
        json={"email": await _email(conn, user), "password": "correct horse"},
    )
    token = (await r.json())["access_token"]
    r = await billing_api.get("/v1/aichat/payments", headers={"Authorization": f"Bearer {token}"})
    assert [(p["status"], Decimal(str(p["amount"]))) for p in (await r.json())["items"]] == [
        ("succeeded", Decimal("20.00"))
    ]


async def _email(conn: asyncpg.Connection, user: uuid.UUID) -> str:
    return str(await conn.fetchval("SELECT email FROM aichat.users WHERE id = $1", user))


async def test_a_payment_intent_of_a_user_without_subscription_is_recorded(
    billing_api: TestClient, stripe: StripeStandin, conn: asyncpg.Connection, dsn: str
) -> None:
    user = await make_user(dsn)
    intent = {
        "id": "pi_solo",
        "object": "payment_intent",
        "amount": 500,
        "currency": "usd",
        "status": "processing",
        "metadata": {"user_id": str(user)},
    }
    assert await _post(stripe, billing_api, "payment_intent.processing", intent) == "processed"
    assert await _post(stripe, billing_api, "payment_intent.succeeded", intent) == "processed"
    assert await _post(stripe, billing_api, "payment_intent.succeeded", intent) == "duplicate"
    row = await conn.fetchrow("SELECT * FROM aichat.payments")
    assert (row["user_id"], row["subscription_id"], row["status"], row["amount"]) == (
        user,
        None,
        "succeeded",
        Decimal("5.00"),
    )


async def test_events_about_nobody_here_or_of_other_types_are_ignored(
    billing_api: TestClient, stripe: StripeStandin, conn: asyncpg.Connection
) -> None:
    stranger = _invoice("sub_elsewhere", "cus_elsewhere")
    assert await _post(stripe, billing_api, "invoice.payment_failed", stranger) == "ignored"
    assert await _post(stripe, billing_api, "customer.created", {"id": "cus_1"}) == "ignored"
    assert await conn.fetchval("SELECT count(*) FROM aichat.payments") == 0


async def test_webhooks_need_a_good_recent_signature(
    billing_api: TestClient, stripe: StripeStandin, conn: asyncpg.Connection, dsn: str
) -> None:
    user = await make_user(dsn)
    _, stripe_sub, customer = await _subscribe(conn, user)
    url = str(billing_api.make_url(WEBHOOK))
    failed = _invoice(stripe_sub, customer)
    status, _ = await stripe.send_webhook(url, "invoice.payment_failed", failed, secret="whsec_x")
    assert status == 401
    status, _ = await stripe.send_webhook(url, "invoice.payment_failed", failed, timestamp=1)
    assert status == 401  # a replay of an old delivery
    r = await billing_api.post(WEBHOOK, json=stripe.event("invoice.payment_failed", failed))
    assert r.status == 401  # no Stripe-Signature at all
    assert await conn.fetchval("SELECT count(*) FROM aichat.payments") == 0
    assert await conn.fetchval("SELECT status FROM aichat.subscriptions") == "active"


async def test_without_stripe_no_webhook_is_authentic(aichat_api: TestClient, dsn: str) -> None:
    r = await aichat_api.post(WEBHOOK, json={"id": "evt_1", "type": "invoice.paid", "data": {}})
    assert r.status == 401
    assert "STRIPE_WEBHOOK_SECRET" in (await r.json())["error"]["message"]


# --- month-end invoices ----------------------------------------------------------------------


async def test_month_end_issues_one_invoice_per_billable_subscription_once(
    conn: asyncpg.Connection, dsn: str, billing_api: TestClient, stripe: StripeStandin
) -> None:
    plus, pro, canceled, free, later = [await make_user(dsn) for _ in range(5)]
    plus_sub, plus_stripe, plus_customer = await _subscribe(conn, plus, "Plus")
    await _subscribe(conn, pro, "Pro", status="past_due")
    await _subscribe(conn, canceled, "Plus", status="canceled")
    await _subscribe(conn, free, "Free")
    await _subscribe(
        conn, later, "Plus", start=datetime(2026, 12, 2), end=datetime(2027, 1, 2)
    )  # begins after November
    await conn.execute(
        "INSERT INTO aichat.token_usage (user_id, provider, model, prompt_tokens,"
        " completion_tokens, total_tokens, cost_usd, billing_month)"
        " VALUES ($1, 'openai', 'gpt-4o', 100, 23, 123, 0.001, '2026-11-01')",
        plus,
    )
    clock = FixedClock(datetime(2026, 12, 1, 0, 30, tzinfo=UTC))

    async with conn.transaction():
        assert await month_end_invoices(conn, clock) == 2
    async with conn.transaction():
        assert await month_end_invoices(conn, clock) == 0  # the same month again: nothing

    rows = await conn.fetch(
        "SELECT user_id, subscription_id, invoice_number, stripe_invoice_id, subtotal, tax,"
        " total, status, due_date FROM aichat.invoices ORDER BY total"
    )
    assert [(r["user_id"], r["total"], r["status"]) for r in rows] == [
        (plus, Decimal("20.00"), "open"),
        (pro, Decimal("50.00"), "open"),
    ]
    first = rows[0]
    number = f"AIC-202611-{plus_sub.hex.upper()}"
    assert first["invoice_number"] == number
    assert first["stripe_invoice_id"] == f"pending:{number}"
    assert (first["subtotal"], first["tax"], first["due_date"]) == (
        Decimal("20.00"),
        Decimal("0.00"),
        date(2026, 12, 15),
    )
    invoice_id = await conn.fetchval(
        "SELECT id FROM aichat.invoices WHERE invoice_number = $1", number
    )
    notes = await _notifications(conn, plus)
    assert [(n["notification_type"], n["related_entity_id"]) for n in notes] == [
        ("invoice_issued", invoice_id)
    ]
    assert notes[0]["idempotency_key"] == f"invoice:{invoice_id}:issued:{plus}"
    assert notes[0]["title"] == "Your invoice for November 2026"
    assert "123 tokens" in notes[0]["message"] and "20.00 USD" in notes[0]["message"]
    assert [n["notification_type"] for n in await _notifications(conn, canceled)] == []

    # Stripe's invoice for it is paid: it names our number; we learn its id and mark it paid
    paid = _invoice(
        plus_stripe,
        plus_customer,
        id="in_1Qpaid",
        payment_intent="pi_paid",
        amount_paid=2000,
        status="paid",
        metadata={"invoice_number": number},
    )
    assert await _post(stripe, billing_api, "invoice.paid", paid) == "processed"
    row = await conn.fetchrow("SELECT * FROM aichat.invoices WHERE id = $1", invoice_id)
    assert (row["stripe_invoice_id"], row["status"]) == ("in_1Qpaid", "paid")
    assert row["paid_at"] is not None


def test_the_invoice_job_is_declared() -> None:
    names = [job.name for _, job in enabled_realms({"SWITCHBOARD_REALMS": "aichat"}).jobs()]
    assert "aichat_month_end_invoices" in names
