"""Payments and invoices of the aichat realm: Stripe webhooks (signed by the Stripe stand-in,
delivered over HTTP to the api) record payments once each, make a subscription past_due on a
failure and active again on payment, and notify `payment_failed` once; an invoice.* event
upserts the invoice by Stripe's id and notifies `invoice_issued` once; the month's close
records what Stripe billed when its webhooks were lost. The fixtures here (a stand-in on a
fixed clock, the api aimed at it) serve test_subscriptions.py too."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from api.app import create_app
from kernel.config import load_settings
from kernel.db import connect
from kernel.payments.connection import StripeConnection
from kernel.realms import enabled_realms
from kernel.tokens import sign_access_token
from realms.aichat import subscriptions
from realms.aichat.billing import AICHAT_STRIPE
from realms.aichat.jobs import month_end_invoices
from tests.api.conftest import SmtpSink
from tests.payments.stripe_standin import StripeStandin, running_standin
from tests.realms.aichat.world import make_user

WEBHOOK = "/v1/aichat/billing/stripe/webhook"
Api = TestClient[web.Request, web.Application]


def at(year: int, month: int, day: int, hour: int = 0) -> int:
    """A UTC instant in Unix seconds, as Stripe writes times."""
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp())


# Mid-month, far from any month edge: a subscribe now is prorated up to April 1st.
NOW = at(2026, 3, 10, 12)
PRICES = {"Plus": ("price_plus", 2000), "Pro": ("price_pro", 5000)}


class StandinClock:
    """The time as the stand-in and the subscribe's billing anchor both see it; tests move it."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class FixedClock:
    """A kernel.jobs Clock for running a job at a chosen instant."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        self._now = max(self._now, when)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> StandinClock:
    """One clock for Stripe (the stand-in) and for our side (the anchor of a subscribe, which
    reads `clock()` for the 1st of the next month), so nothing depends on the wall clock."""
    standin_clock = StandinClock(NOW)
    defaults = subscriptions.subscribe.__kwdefaults__
    assert defaults is not None and "clock" in defaults
    monkeypatch.setitem(defaults, "clock", standin_clock)
    return standin_clock


@pytest.fixture
async def stripe(clock: StandinClock) -> AsyncIterator[StripeStandin]:
    """The Stripe stand-in on `clock`, with the monthly prices of the paid plans."""
    async with running_standin(now=clock) as standin:
        for price_id, amount in PRICES.values():
            standin.add_price(price_id, amount)
        yield standin


async def api_with(
    connection: StripeConnection, dsn: str, secret: str, smtp_sink: SmtpSink, aiohttp_client: Any
) -> Api:
    """The real api app (realm aichat) with Stripe as `connection`."""
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
    app[AICHAT_STRIPE] = connection
    client: Api = await aiohttp_client(app)
    return client


@pytest.fixture
async def billing_api(
    dsn: str, aiohttp_client: Any, secret: str, smtp_sink: SmtpSink, stripe: StripeStandin
) -> AsyncIterator[Api]:
    """The api with Stripe aimed at the stand-in (its key and webhook secret)."""
    client = await api_with(
        StripeConnection(stripe.settings()), dsn, secret, smtp_sink, aiohttp_client
    )
    yield client
    await client.close()


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection that keeps the reference plans (unlike `db` here)."""
    connection = await connect(dsn)
    yield connection
    await connection.close()


@pytest.fixture
async def on_sale(conn: asyncpg.Connection) -> None:
    """Plus and Pro have their Stripe prices (the stand-in's), as an operator sets them."""
    for plan, (price_id, _) in PRICES.items():
        await conn.execute(
            "UPDATE aichat.plans SET stripe_price_id = $2 WHERE name = $1", plan, price_id
        )


def bearer(secret: str, user: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_access_token(secret, str(user), 'aichat', 600)}"}


def webhook_url(api: Api) -> str:
    return str(api.make_url(WEBHOOK))


async def deliver(stripe: StripeStandin, api: Api) -> list[tuple[str, str]]:
    """Deliver the stand-in's undelivered events: each (event type, our answer's status)."""
    answers = await stripe.deliver(webhook_url(api))
    # deliver() posts every event not posted yet: the last len(answers) of them
    types = [event["type"] for event in stripe.events[len(stripe.events) - len(answers) :]]
    assert all(status == 200 for status, _ in answers), answers
    return [(kind, body["status"]) for kind, (_, body) in zip(types, answers, strict=True)]


async def notifications(conn: asyncpg.Connection, user: uuid.UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT notification_type, title, message, related_entity_id, idempotency_key"
        " FROM gateway.notifications WHERE realm = 'aichat' AND user_id = $1"
        " ORDER BY created_at, notification_type",
        str(user),
    )
    return rows


async def tier(conn: asyncpg.Connection, user: uuid.UUID) -> str:
    return str(await conn.fetchval("SELECT plan_tier FROM aichat.users WHERE id = $1", user))


async def _subscribe(
    conn: asyncpg.Connection,
    user: uuid.UUID,
    plan: str = "Plus",
    *,
    status: str = "active",
    start: datetime = datetime(2026, 11, 20),
    end: datetime = datetime(2026, 12, 20),
) -> tuple[uuid.UUID, str, str]:
    """A subscription row written directly: (its id, Stripe subscription id, customer id)."""
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
    """A finalized Stripe invoice of 20.00 USD, charged automatically and not paid yet."""
    return {
        "id": "in_1Q0test",
        "object": "invoice",
        "number": "ABCD1234-0002",
        "customer": customer,
        "subscription": stripe_sub,
        "payment_intent": "pi_3Q0test",
        "subtotal": 2000,
        "tax": None,
        "total": 2000,
        "amount_due": 2000,
        "amount_paid": 0,
        "currency": "usd",
        "status": "open",
        "created": at(2026, 12, 1),
        "period_start": at(2026, 11, 1),
        "period_end": at(2026, 12, 1),
        "invoice_pdf": "https://pay.stripe.com/invoice/in_1Q0test/pdf",
        "status_transitions": {"finalized_at": at(2026, 12, 1), "paid_at": None},
        "metadata": {},
        **fields,
    }


async def _post(stripe: StripeStandin, api: Api, kind: str, obj: dict[str, Any]) -> Any:
    status, body = await stripe.send_webhook(webhook_url(api), kind, obj)
    assert status == 200, body
    return body["status"]


async def _email(conn: asyncpg.Connection, user: uuid.UUID) -> str:
    return str(await conn.fetchval("SELECT email FROM aichat.users WHERE id = $1", user))


# --- webhooks ------------------------------------------------------------------------------


async def test_a_failed_payment_is_recorded_once_and_the_subscription_falls_past_due(
    billing_api: Api, stripe: StripeStandin, conn: asyncpg.Connection, dsn: str
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
    # the invoice event also recorded Stripe's invoice, open
    invoice = await conn.fetchrow("SELECT * FROM aichat.invoices")
    assert (invoice["stripe_invoice_id"], invoice["invoice_number"], invoice["status"]) == (
        "in_1Q0test",
        "ABCD1234-0002",
        "open",
    )
    notes = await notifications(conn, user)
    assert sorted((n["notification_type"], n["related_entity_id"]) for n in notes) == [
        ("invoice_issued", invoice["id"]),
        ("payment_failed", payment["id"]),
    ]
    failed_note = next(n for n in notes if n["notification_type"] == "payment_failed")
    assert failed_note["idempotency_key"] == f"payment:{payment['id']}:failed:{user}"
    assert "20.00 USD" in failed_note["message"]

    # Stripe retries the invoice and it is paid: the same payment succeeds, the invoice is
    # paid, the subscription is active again; a late failure of that payment moves nothing back
    paid = _invoice(
        stripe_sub,
        customer,
        amount_paid=2000,
        status="paid",
        status_transitions={"finalized_at": at(2026, 12, 1), "paid_at": at(2026, 12, 3)},
    )
    assert await _post(stripe, billing_api, "invoice.paid", paid) == "processed"
    assert await conn.fetchval("SELECT status FROM aichat.payments") == "succeeded"
    assert await conn.fetchval("SELECT status FROM aichat.subscriptions") == "active"
    row = await conn.fetchrow("SELECT status, paid_at FROM aichat.invoices")
    assert (row["status"], row["paid_at"]) == ("paid", datetime(2026, 12, 3))
    assert await _post(stripe, billing_api, "invoice.payment_failed", failed) == "duplicate"
    assert await conn.fetchval("SELECT status FROM aichat.subscriptions") == "active"
    assert await conn.fetchval("SELECT status FROM aichat.invoices") == "paid"
    assert len(await notifications(conn, user)) == 2

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


async def test_an_invoice_event_upserts_the_row_by_stripes_id_and_notifies_once(
    billing_api: Api, stripe: StripeStandin, conn: asyncpg.Connection, dsn: str
) -> None:
    user = await make_user(dsn)
    sub, stripe_sub, customer = await _subscribe(conn, user)
    draft = _invoice(stripe_sub, customer, id="in_draft", number=None, status="draft")
    assert await _post(stripe, billing_api, "invoice.finalized", draft) != "processed"
    assert await conn.fetchval("SELECT count(*) FROM aichat.invoices") == 0  # drafts not kept

    opened = _invoice(stripe_sub, customer, tax=160, total=2160, amount_due=2160)
    assert await _post(stripe, billing_api, "invoice.finalized", opened) == "processed"
    assert await _post(stripe, billing_api, "invoice.finalized", opened) == "duplicate"
    row = await conn.fetchrow("SELECT * FROM aichat.invoices")
    assert (row["user_id"], row["subscription_id"], row["invoice_number"]) == (
        user,
        sub,
        "ABCD1234-0002",
    )
    assert (row["subtotal"], row["tax"], row["total"], row["status"]) == (
        Decimal("20.00"),
        Decimal("1.60"),
        Decimal("21.60"),
        "open",
    )
    assert (row["paid_at"], row["due_date"], row["pdf_url"]) == (
        None,
        None,
        "https://pay.stripe.com/invoice/in_1Q0test/pdf",
    )

    paid = {
        **opened,
        "status": "paid",
        "amount_paid": 2160,
        "status_transitions": {"finalized_at": at(2026, 12, 1), "paid_at": at(2026, 12, 1, 1)},
    }
    assert await _post(stripe, billing_api, "invoice.paid", paid) == "processed"
    # paid is final: a late void of it changes nothing
    voided = {**opened, "status": "void"}
    assert await _post(stripe, billing_api, "invoice.voided", voided) == "duplicate"
    rows = await conn.fetch("SELECT id, status, paid_at FROM aichat.invoices")
    assert [(r["id"], r["status"], r["paid_at"]) for r in rows] == [
        (row["id"], "paid", datetime(2026, 12, 1, 1))
    ]
    notes = await notifications(conn, user)
    assert [(n["notification_type"], n["related_entity_id"]) for n in notes] == [
        ("invoice_issued", row["id"])
    ]
    assert notes[0]["idempotency_key"] == f"invoice:{row['id']}:issued:{user}"
    assert "ABCD1234-0002: 21.60 USD for the Plus plan" in notes[0]["message"]


async def test_a_payment_intent_of_a_user_without_subscription_is_recorded(
    billing_api: Api, stripe: StripeStandin, conn: asyncpg.Connection, dsn: str
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
    billing_api: Api, stripe: StripeStandin, conn: asyncpg.Connection
) -> None:
    stranger = _invoice("sub_elsewhere", "cus_elsewhere")
    assert await _post(stripe, billing_api, "invoice.payment_failed", stranger) == "ignored"
    assert await _post(stripe, billing_api, "customer.created", {"id": "cus_1"}) == "ignored"
    assert await conn.fetchval("SELECT count(*) FROM aichat.payments") == 0
    assert await conn.fetchval("SELECT count(*) FROM aichat.invoices") == 0


async def test_webhooks_need_a_good_recent_signature(
    billing_api: Api, stripe: StripeStandin, conn: asyncpg.Connection, dsn: str
) -> None:
    user = await make_user(dsn)
    _, stripe_sub, customer = await _subscribe(conn, user)
    url = webhook_url(billing_api)
    failed = _invoice(stripe_sub, customer)
    status, _ = await stripe.send_webhook(url, "invoice.payment_failed", failed, secret="whsec_x")
    assert status == 401
    status, _ = await stripe.send_webhook(url, "invoice.payment_failed", failed, timestamp=1)
    assert status == 401  # a replay of an old delivery
    r = await billing_api.post(WEBHOOK, json=stripe.event("invoice.payment_failed", failed))
    assert r.status == 401  # no Stripe-Signature at all
    assert await conn.fetchval("SELECT count(*) FROM aichat.payments") == 0
    assert await conn.fetchval("SELECT count(*) FROM aichat.invoices") == 0
    assert await conn.fetchval("SELECT status FROM aichat.subscriptions") == "active"


async def test_without_stripe_no_webhook_is_authentic(
    dsn: str, aiohttp_client: Any, secret: str, smtp_sink: SmtpSink
) -> None:
    api = await api_with(StripeConnection(None), dsn, secret, smtp_sink, aiohttp_client)
    r = await api.post(WEBHOOK, json={"id": "evt_1", "type": "invoice.paid", "data": {}})
    assert r.status == 401
    assert "STRIPE_WEBHOOK_SECRET" in (await r.json())["error"]["message"]
    await api.close()


# --- the month's close -----------------------------------------------------------------------

SubscribeVia = Callable[[uuid.UUID, str], Awaitable[str]]


@pytest.fixture
def subscribe_via(billing_api: Api, stripe: StripeStandin, secret: str) -> SubscribeVia:
    """Subscribe a user over REST with pm_card_visa; the Stripe subscription's id."""

    async def run(user: uuid.UUID, plan: str) -> str:
        before = set(stripe.subscriptions)
        r = await billing_api.post(
            "/v1/aichat/subscription",
            json={"plan": plan, "payment_method": "pm_card_visa"},
            headers=bearer(secret, user),
        )
        assert r.status == 201, await r.text()
        (created,) = set(stripe.subscriptions) - before
        return created

    return run


@pytest.mark.usefixtures("on_sale")
async def test_the_month_close_records_what_stripe_billed_when_the_webhooks_were_lost(
    billing_api: Api,
    stripe: StripeStandin,
    clock: StandinClock,
    conn: asyncpg.Connection,
    dsn: str,
    secret: str,
    subscribe_via: SubscribeVia,
) -> None:
    renewing, leaving = (
        await make_user(dsn, plan_tier="FREE"),
        await make_user(dsn, plan_tier="FREE"),
    )
    renewing_sub = await subscribe_via(renewing, "Plus")
    leaving_sub = await subscribe_via(leaving, "Pro")
    r = await billing_api.post(
        "/v1/aichat/subscription/cancel", json={}, headers=bearer(secret, leaving)
    )
    assert r.status == 200 and (await r.json())["cancel_at_period_end"] is True
    await deliver(stripe, billing_api)
    march = await conn.fetchval("SELECT count(*) FROM aichat.invoices")
    assert march == 2  # the two first months, from the subscribes' answers

    # Stripe renews on April 1st and May 1st (the leaving one ends on April 1st); none of
    # these webhooks reaches us
    clock.now = at(2026, 4, 1)
    april = stripe.renew(renewing_sub)
    stripe.renew(leaving_sub)
    clock.now = at(2026, 5, 1)
    may = stripe.renew(renewing_sub)
    assert await conn.fetchval("SELECT count(*) FROM aichat.invoices") == 2

    # the job closes April on May 1st: April's invoice recorded (paid, with its payment),
    # May's left to May's close; both subscriptions read again
    closing = FixedClock(datetime(2026, 5, 1, 0, 30, tzinfo=UTC))
    async with conn.transaction():
        assert await month_end_invoices(conn, closing, settings=stripe.settings()) == 1
    row = await conn.fetchrow(
        "SELECT * FROM aichat.invoices WHERE stripe_invoice_id = $1", april["id"]
    )
    assert row is not None
    assert (row["user_id"], row["invoice_number"], row["total"], row["status"]) == (
        renewing,
        april["number"],
        Decimal("20.00"),
        "paid",
    )
    assert row["paid_at"] == datetime(2026, 4, 1)
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM aichat.invoices WHERE stripe_invoice_id = $1", may["id"]
        )
        == 0
    )
    payment = await conn.fetchrow(
        "SELECT * FROM aichat.payments WHERE stripe_invoice_id = $1", april["id"]
    )
    assert (payment["status"], payment["amount"]) == ("succeeded", Decimal("20.00"))
    renewed = await conn.fetchrow(
        "SELECT status, current_period_start, current_period_end FROM aichat.subscriptions"
        " WHERE user_id = $1",
        renewing,
    )
    assert tuple(renewed) == ("active", datetime(2026, 5, 1), datetime(2026, 6, 1))
    ended = await conn.fetchval(
        "SELECT status FROM aichat.subscriptions WHERE user_id = $1", leaving
    )
    assert (ended, await tier(conn, leaving), await tier(conn, renewing)) == (
        "canceled",
        "FREE",
        "PLUS",
    )
    issued = [n["related_entity_id"] for n in await notifications(conn, renewing)]
    assert row["id"] in issued and len(issued) == 2

    # the same month again changes nothing
    async with conn.transaction():
        assert await month_end_invoices(conn, closing, settings=stripe.settings()) == 0
    assert await conn.fetchval("SELECT count(*) FROM aichat.invoices") == 3

    # May's close records May's invoice; the lost webhooks, when they come, change nothing
    june = FixedClock(datetime(2026, 6, 1, 0, 30, tzinfo=UTC))
    async with conn.transaction():
        assert await month_end_invoices(conn, june, settings=stripe.settings()) == 1
    assert (
        await conn.fetchval(
            "SELECT status FROM aichat.invoices WHERE stripe_invoice_id = $1", may["id"]
        )
        == "paid"
    )
    answers = await deliver(stripe, billing_api)
    assert len(answers) == 7  # two renewals of three events each, one end
    assert {status for _, status in answers} == {"duplicate"}, answers
    assert await conn.fetchval("SELECT count(*) FROM aichat.invoices") == 4
    assert await conn.fetchval("SELECT count(*) FROM aichat.payments") == 4
    assert len(await notifications(conn, renewing)) == 3


async def test_without_stripe_the_month_close_does_nothing(
    conn: asyncpg.Connection, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    user = await make_user(dsn)
    await _subscribe(conn, user, start=datetime(2026, 3, 1), end=datetime(2026, 4, 1))
    clock = FixedClock(datetime(2026, 4, 1, 0, 30, tzinfo=UTC))
    async with conn.transaction():
        assert await month_end_invoices(conn, clock) == 0
    assert await conn.fetchval("SELECT count(*) FROM aichat.invoices") == 0
    assert await conn.fetchval("SELECT status FROM aichat.subscriptions") == "active"


def test_the_invoice_job_is_declared() -> None:
    names = [job.name for _, job in enabled_realms({"SWITCHBOARD_REALMS": "aichat"}).jobs()]
    assert "aichat_month_end_invoices" in names
