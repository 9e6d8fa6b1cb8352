"""aichat subscriptions through Stripe Billing (ADR 0007), over REST on the real api app with
Stripe aimed at the local stand-in: subscribe with a card (the first month prorated up to the
1st), declines, refusals, plan changes charged at once, cancel at period end / now / resume,
resubscribe, renewals and their failures through webhooks, events out of order, and two
subscribes racing. Stripe and our side share one clock (`clock`), fixed mid-March 2026."""

# The fixtures (stand-in, api, clock, connection) come from test_stripe_billing; the tests
# name them as parameters, which ruff takes for redefinitions of the imports.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import asyncpg
import pytest

from kernel.payments.billing import StripeBilling
from kernel.payments.connection import StripeConnection
from tests.api.conftest import SmtpSink
from tests.payments.stripe_standin import StripeStandin
from tests.realms.aichat.test_stripe_billing import (  # noqa: F401 - fixtures
    NOW,
    Api,
    StandinClock,
    api_with,
    at,
    bearer,
    billing_api,
    clock,
    conn,
    deliver,
    notifications,
    on_sale,
    stripe,
    tier,
    webhook_url,
)
from tests.realms.aichat.world import make_user

pytestmark = pytest.mark.usefixtures("on_sale")

SUBSCRIPTION = "/v1/aichat/subscription"
MARCH, APRIL = at(2026, 3, 1), at(2026, 4, 1)


async def free_user(dsn: str) -> uuid.UUID:
    return await make_user(dsn, plan_tier="FREE")


async def call(
    api: Api,
    secret: str,
    user: uuid.UUID,
    method: str,
    path: str = "",
    body: Any = None,
) -> tuple[int, Any]:
    """One authenticated call to /v1/aichat/subscription<path>: (status, JSON body)."""
    r = await api.request(method, SUBSCRIPTION + path, json=body, headers=bearer(secret, user))
    return r.status, await r.json()


async def subscribe(
    api: Api, secret: str, user: uuid.UUID, plan: str = "Plus", card: str = "pm_card_visa"
) -> tuple[int, Any]:
    return await call(api, secret, user, "POST", body={"plan": plan, "payment_method": card})


async def subscription_row(conn: asyncpg.Connection, user: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT s.*, p.name AS plan FROM aichat.subscriptions s"
        " JOIN aichat.plans p ON p.id = s.plan_id WHERE s.user_id = $1",
        user,
    )


async def count(conn: asyncpg.Connection, table: str, user: uuid.UUID) -> int:
    assert table in ("invoices", "payments", "subscriptions")
    return int(await conn.fetchval(f"SELECT count(*) FROM aichat.{table} WHERE user_id = $1", user))


def prorated(amount: int, now: int, end: int, start: int) -> int:
    """Stripe's proration by seconds: the part of [start, end) still to come at `now`."""
    return round(Fraction(amount * (end - now), end - start))


# --- subscribe -------------------------------------------------------------------------------


async def test_a_subscribe_charges_the_prorated_first_month_and_mirrors_stripe(
    billing_api: Api,
    stripe: StripeStandin,
    conn: asyncpg.Connection,
    dsn: str,
    secret: str,
) -> None:
    user = await free_user(dsn)
    status, body = await subscribe(billing_api, secret, user)
    assert status == 201, body
    assert (body["plan"], body["status"], body["cancel_at_period_end"]) == ("Plus", "active", False)
    assert body["current_period_start"] == "2026-03-10T12:00:00"
    assert body["current_period_end"] == "2026-04-01T00:00:00"  # the 1st of next month, UTC

    # what Stripe was asked
    (customer_call,) = stripe.calls("POST", "/v1/customers")
    assert customer_call.form["metadata[user_id]"] == str(user)
    assert customer_call.form["metadata[realm]"] == "aichat"
    assert customer_call.form["name"] == "Ada"
    (sent,) = stripe.calls("POST", "/v1/subscriptions")
    assert sent.form["payment_behavior"] == "error_if_incomplete"
    assert sent.form["billing_cycle_anchor"] == str(APRIL)
    assert sent.form["items[0][price]"] == "price_plus"
    assert (sent.form["metadata[user_id]"], sent.form["metadata[plan]"]) == (str(user), "Plus")

    # the row mirrors Stripe's subscription
    (stripe_sub,) = stripe.subscriptions.values()
    row = await subscription_row(conn, user)
    assert row is not None and str(row["id"]) == body["id"]
    assert (row["stripe_subscription_id"], row["stripe_customer_id"]) == (
        stripe_sub["id"],
        stripe_sub["customer"],
    )
    assert (row["status"], row["plan"]) == ("active", "Plus")
    assert (row["current_period_start"], row["current_period_end"]) == (
        datetime(2026, 3, 10, 12),
        datetime(2026, 4, 1),
    )
    assert await tier(conn, user) == "PLUS"

    # one invoice: Stripe's, the rest of March charged now
    (stripe_invoice,) = stripe.invoices.values()
    first_month = prorated(2000, NOW, APRIL, MARCH)
    assert stripe_invoice["total"] == first_month == 1387
    invoice = await conn.fetchrow("SELECT * FROM aichat.invoices WHERE user_id = $1", user)
    assert (invoice["stripe_invoice_id"], invoice["invoice_number"]) == (
        stripe_invoice["id"],
        stripe_invoice["number"],
    )
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == (
        Decimal("13.87"),
        Decimal("0.00"),
        Decimal("13.87"),
    )
    assert (invoice["status"], invoice["paid_at"], invoice["due_date"]) == (
        "paid",
        datetime(2026, 3, 10, 12),
        None,
    )
    assert invoice["pdf_url"] == stripe_invoice["invoice_pdf"]
    assert invoice["subscription_id"] == row["id"]
    payment = await conn.fetchrow("SELECT * FROM aichat.payments WHERE user_id = $1", user)
    assert (payment["status"], payment["amount"], payment["currency"]) == (
        "succeeded",
        Decimal("13.87"),
        "USD",
    )
    assert payment["stripe_payment_intent_id"] == stripe_invoice["payment_intent"]
    assert payment["stripe_invoice_id"] == stripe_invoice["id"]
    assert await count(conn, "payments", user) == 1
    notes = await notifications(conn, user)
    assert [(n["notification_type"], n["related_entity_id"]) for n in notes] == [
        ("invoice_issued", invoice["id"])
    ]
    assert notes[0]["title"] == "Your invoice for March 2026"

    # Stripe's webhooks about all this come afterwards: they change nothing
    answers = await deliver(stripe, billing_api)
    assert answers == [
        ("customer.subscription.created", "duplicate"),
        ("invoice.finalized", "duplicate"),
        ("invoice.paid", "duplicate"),
    ]
    assert (await count(conn, "invoices", user), await count(conn, "payments", user)) == (1, 1)
    assert len(await notifications(conn, user)) == 1
    assert (
        await conn.fetchval("SELECT status FROM aichat.invoices WHERE user_id = $1", user) == "paid"
    )

    # the Plus quotas apply; the REST views show the rows
    r = await billing_api.get("/v1/aichat/usage", headers=bearer(secret, user))
    usage = await r.json()
    assert (usage["plan"], usage["token_quota"], usage["message_quota"]) == (
        "Plus",
        1_000_000,
        5000,
    )
    r = await billing_api.get("/v1/aichat/invoices", headers=bearer(secret, user))
    (shown,) = (await r.json())["items"]
    assert (shown["invoice_number"], Decimal(str(shown["total"])), shown["status"]) == (
        stripe_invoice["number"],
        Decimal("13.87"),
        "paid",
    )
    r = await billing_api.get(SUBSCRIPTION, headers=bearer(secret, user))
    assert (await r.json()) == body


@pytest.mark.parametrize(
    ("card", "subscription_tried"),
    [("pm_card_chargeDeclined", False), ("pm_card_chargeCustomerFail", True)],
)
async def test_a_declined_card_subscribes_nothing(
    billing_api: Api,
    stripe: StripeStandin,
    conn: asyncpg.Connection,
    dsn: str,
    secret: str,
    card: str,
    subscription_tried: bool,
) -> None:
    user = await free_user(dsn)
    status, body = await subscribe(billing_api, secret, user, card=card)
    assert status == 400, body
    assert body["error"]["code"] == "bad_request"
    assert body["error"]["details"]["failure_code"] == "card_declined"
    assert body["error"]["details"]["decline_code"] == "generic_decline"
    # pm_card_chargeDeclined is refused on attach; the other attaches, then its charge fails
    assert bool(stripe.calls("POST", "/v1/subscriptions")) is subscription_tried
    assert stripe.subscriptions == {}
    assert await subscription_row(conn, user) is None
    assert await tier(conn, user) == "FREE"
    assert (await count(conn, "invoices", user), await count(conn, "payments", user)) == (0, 0)
    assert await notifications(conn, user) == []

    # another card works: nothing of the decline is replayed
    status, body = await subscribe(billing_api, secret, user, card="pm_card_mastercard")
    assert (status, body["status"]) == (201, "active")
    assert len(stripe.customers) == 1
    assert await tier(conn, user) == "PLUS"


async def test_a_retry_days_after_a_declined_first_subscribe_reuses_its_stripe_customer(
    billing_api: Api,
    stripe: StripeStandin,
    conn: asyncpg.Connection,
    dsn: str,
    secret: str,
    clock: StandinClock,
) -> None:
    user = await free_user(dsn)
    status, body = await subscribe(billing_api, secret, user, card="pm_card_chargeCustomerFail")
    assert status == 400, body
    assert await subscription_row(conn, user) is None
    (customer,) = stripe.customers
    kept = "SELECT stripe_customer_id FROM aichat.billing_customers WHERE user_id = $1"
    assert await conn.fetchval(kept, user) == customer

    clock.now += 3 * 24 * 3600  # Stripe has forgotten the idempotency keys of the first try
    status, body = await subscribe(billing_api, secret, user, card="pm_card_mastercard")
    assert (status, body["status"]) == (201, "active")
    assert list(stripe.customers) == [customer]
    assert len(stripe.calls("POST", "/v1/customers")) == 1
    row = await subscription_row(conn, user)
    assert row is not None and row["stripe_customer_id"] == customer


async def test_a_subscribe_is_refused_for_what_cannot_be_sold(
    billing_api: Api,
    stripe: StripeStandin,
    conn: asyncpg.Connection,
    dsn: str,
    secret: str,
) -> None:
    user = await free_user(dsn)
    status, body = await subscribe(billing_api, secret, user, plan="Free")
    assert (status, body["error"]["code"]) == (400, "bad_request")
    assert "free" in body["error"]["message"]
    status, body = await subscribe(billing_api, secret, user, plan="Gold")
    assert status == 400
    assert "Free, Plus, Pro" in body["error"]["message"]
    await conn.execute("UPDATE aichat.plans SET stripe_price_id = NULL WHERE name = 'Pro'")
    status, body = await subscribe(billing_api, secret, user, plan="Pro")
    assert status == 503
    assert body["error"]["details"]["reason"] == "plan_not_for_sale"

    # requests the schema refuses
    for bad in (
        {"plan": "Plus", "payment_method": "card_visa"},
        {"plan": "Plus", "payment_method": "pm_card visa"},
        {"plan": "Plus", "payment_method": "pm_card_visa", "coupon": "FREE"},
        {"plan": "Pl\x00us", "payment_method": "pm_card_visa"},
        {"plan": "Plus"},
    ):
        status, body = await call(billing_api, secret, user, "POST", body=bad)
        assert (status, body["error"]["code"]) == (400, "bad_request"), bad
    r = await billing_api.post(
        SUBSCRIPTION, json={"plan": "Plus", "payment_method": "pm_card_visa"}
    )
    assert r.status == 401

    assert stripe.requests == []  # Stripe was never asked
    assert await subscription_row(conn, user) is None
    assert await tier(conn, user) == "FREE"


async def test_without_stripe_subscriptions_are_unavailable(
    dsn: str, aiohttp_client: Any, secret: str, smtp_sink: SmtpSink, conn: asyncpg.Connection
) -> None:
    api = await api_with(StripeConnection(None), dsn, secret, smtp_sink, aiohttp_client)
    user = await free_user(dsn)
    status, body = await subscribe(api, secret, user)
    assert status == 503
    assert body["error"]["details"]["reason"] == "card_payments_off"
    status, _ = await call(api, secret, user, "PATCH", body={"plan": "Pro"})
    assert status == 503
    assert await subscription_row(conn, user) is None
    await api.close()


async def test_a_second_subscribe_while_subscribed_is_a_conflict(
    billing_api: Api, stripe: StripeStandin, conn: asyncpg.Connection, dsn: str, secret: str
) -> None:
    user = await free_user(dsn)
    assert (await subscribe(billing_api, secret, user))[0] == 201
    status, body = await subscribe(billing_api, secret, user, plan="Pro")
    assert (status, body["error"]["code"]) == (409, "conflict")
    assert "PATCH" in body["error"]["message"]
    assert len(stripe.subscriptions) == 1
    assert len(stripe.calls("POST", "/v1/subscriptions")) == 1
    row = await subscription_row(conn, user)
    assert row is not None and row["plan"] == "Plus"


# --- change plan -----------------------------------------------------------------------------


async def test_a_plan_change_charges_the_difference_at_once(
    billing_api: Api,
    stripe: StripeStandin,
    clock: StandinClock,
    conn: asyncpg.Connection,
    dsn: str,
    secret: str,
) -> None:
    user = await free_user(dsn)
    assert (await subscribe(billing_api, secret, user))[0] == 201
    await deliver(stripe, billing_api)
    before = await subscription_row(conn, user)
    assert before is not None

    clock.now = at(2026, 3, 20)
    status, body = await call(billing_api, secret, user, "PATCH", body={"plan": "Pro"})
    assert status == 200, body
    assert (body["plan"], body["status"], body["id"]) == ("Pro", "active", str(before["id"]))
    assert body["current_period_end"] == "2026-04-01T00:00:00"  # the period does not move
    change = stripe.calls("POST", f"/v1/subscriptions/{before['stripe_subscription_id']}")[-1]
    assert change.form["proration_behavior"] == "always_invoice"
    assert change.form["payment_behavior"] == "error_if_incomplete"
    assert change.form["items[0][price]"] == "price_pro"

    # Stripe charged the rest of the period at Pro's price less Plus's
    upgrade = list(stripe.invoices.values())[-1]
    difference = prorated(5000 - 2000, at(2026, 3, 20), APRIL, NOW)
    assert upgrade["total"] == difference == 1674
    assert upgrade["status"] == "paid"
    invoice = await conn.fetchrow(
        "SELECT * FROM aichat.invoices WHERE stripe_invoice_id = $1", upgrade["id"]
    )
    assert (invoice["total"], invoice["status"], invoice["invoice_number"]) == (
        Decimal("16.74"),
        "paid",
        upgrade["number"],
    )
    payment = await conn.fetchrow(
        "SELECT * FROM aichat.payments WHERE stripe_payment_intent_id = $1",
        upgrade["payment_intent"],
    )
    assert (payment["status"], payment["amount"]) == ("succeeded", Decimal("16.74"))
    assert (await count(conn, "invoices", user), await count(conn, "payments", user)) == (2, 2)
    assert await tier(conn, user) == "PRO"
    assert [n["notification_type"] for n in await notifications(conn, user)] == [
        "invoice_issued",
        "invoice_issued",
    ]
    answers = await deliver(stripe, billing_api)
    assert answers == [
        ("customer.subscription.updated", "duplicate"),
        ("invoice.finalized", "duplicate"),
        ("invoice.paid", "duplicate"),
    ]

    # refusals
    status, body = await call(billing_api, secret, user, "PATCH", body={"plan": "Pro"})
    assert (status, body["error"]["code"]) == (409, "conflict")
    status, body = await call(billing_api, secret, user, "PATCH", body={"plan": "Free"})
    assert status == 400 and "cancel" in body["error"]["message"]
    stranger = await free_user(dsn)
    status, body = await call(billing_api, secret, stranger, "PATCH", body={"plan": "Pro"})
    assert (status, body["error"]["code"]) == (404, "not_found")

    # a downgrade is a credit: an invoice with a negative total, nothing charged
    clock.now = at(2026, 3, 25)
    status, body = await call(billing_api, secret, user, "PATCH", body={"plan": "Plus"})
    assert (status, body["plan"]) == (200, "Plus")
    credit = list(stripe.invoices.values())[-1]
    assert credit["total"] == -prorated(3000, at(2026, 3, 25), APRIL, NOW) < 0
    assert (
        await conn.fetchval(
            "SELECT total FROM aichat.invoices WHERE stripe_invoice_id = $1", credit["id"]
        )
        == Decimal(credit["total"]) / 100
    )
    assert await count(conn, "payments", user) == 2
    assert await tier(conn, user) == "PLUS"


async def test_a_declined_upgrade_leaves_the_plan_as_it_was(
    billing_api: Api,
    stripe: StripeStandin,
    clock: StandinClock,
    conn: asyncpg.Connection,
    dsn: str,
    secret: str,
) -> None:
    user = await free_user(dsn)
    assert (await subscribe(billing_api, secret, user))[0] == 201
    await deliver(stripe, billing_api)
    before = await subscription_row(conn, user)
    assert before is not None
    (stripe_sub,) = stripe.subscriptions.values()
    stripe.decline_charges(stripe_sub["default_payment_method"])

    clock.now = at(2026, 3, 20)
    status, body = await call(billing_api, secret, user, "PATCH", body={"plan": "Pro"})
    assert status == 400, body
    assert body["error"]["details"]["failure_code"] == "card_declined"
    assert await subscription_row(conn, user) == before
    assert await tier(conn, user) == "PLUS"
    assert stripe.subscriptions[stripe_sub["id"]]["items"]["data"][0]["price"]["id"] == (
        "price_plus"
    )
    assert (await count(conn, "invoices", user), await count(conn, "payments", user)) == (1, 1)
    assert await deliver(stripe, billing_api) == []  # Stripe changed nothing either


async def test_a_late_creation_event_does_not_undo_a_plan_change(
    billing_api: Api,
    stripe: StripeStandin,
    clock: StandinClock,
    conn: asyncpg.Connection,
    dsn: str,
    secret: str,
) -> None:
    user = await free_user(dsn)
    assert (await subscribe(billing_api, secret, user))[0] == 201
    clock.now = at(2026, 3, 20)
    assert (await call(billing_api, secret, user, "PATCH", body={"plan": "Pro"}))[0] == 200
    (created,) = [e for e in stripe.events if e["type"] == "customer.subscription.created"]
    url = webhook_url(billing_api)
    status, _ = await stripe.send_webhook(url, created["type"], {}, event=created)
    assert status == 200
    row = await subscription_row(conn, user)
    assert row is not None
    assert (row["plan"], await tier(conn, user)) == ("Pro", "PRO")


# --- cancel, resume, resubscribe -------------------------------------------------------------


async def test_a_cancel_at_period_end_keeps_the_plan_until_the_period_ends(
    billing_api: Api,
    stripe: StripeStandin,
    clock: StandinClock,
    conn: asyncpg.Connection,
    dsn: str,
    secret: str,
) -> None:
    user = await free_user(dsn)
    assert (await subscribe(billing_api, secret, user))[0] == 201
    (stripe_id,) = stripe.subscriptions

    clock.now = at(2026, 3, 15)
    status, body = await call(
        billing_api, secret, user, "POST", "/cancel", {"reason": "too expensive"}
    )
    assert status == 200, body
    assert (body["status"], body["cancel_at_period_end"]) == ("active", True)
    assert (body["cancellation_reason"], body["cancellation_date"]) == (
        "too expensive",
        "2026-03-15T00:00:00",
    )
    assert stripe.subscriptions[stripe_id]["cancel_at_period_end"] is True
    assert stripe.subscriptions[stripe_id]["cancellation_details"]["comment"] == "too expensive"
    assert await tier(conn, user) == "PLUS"  # paid until April 1st
    status, body = await call(billing_api, secret, user, "POST", "/cancel", {})
    assert (status, body["error"]["code"]) == (409, "conflict")

    status, body = await call(billing_api, secret, user, "POST", "/resume")
    assert status == 200, body
    assert (body["cancel_at_period_end"], body["cancellation_reason"]) == (False, None)
    assert body["cancellation_date"] is None
    assert stripe.subscriptions[stripe_id]["cancel_at_period_end"] is False
    status, body = await call(billing_api, secret, user, "POST", "/resume")
    assert (status, body["error"]["code"]) == (409, "conflict")

    status, body = await call(billing_api, secret, user, "POST", "/cancel", {"reason": "bye"})
    assert (status, body["cancel_at_period_end"]) == (200, True)
    await deliver(stripe, billing_api)
    clock.now = APRIL
    stripe.renew(stripe_id)  # the period ends: Stripe ends the subscription, bills nothing
    assert await deliver(stripe, billing_api) == [("customer.subscription.deleted", "processed")]
    row = await subscription_row(conn, user)
    assert row is not None
    assert (row["status"], row["cancellation_reason"]) == ("canceled", "bye")
    assert await tier(conn, user) == "FREE"
    assert await count(conn, "invoices", user) == 1

    # nothing left to change
    status, body = await call(billing_api, secret, user, "POST", "/cancel", {})
    assert (status, body["error"]["code"]) == (409, "conflict")
    assert (await call(billing_api, secret, user, "POST", "/resume"))[0] == 404
    assert (await call(billing_api, secret, user, "PATCH", body={"plan": "Pro"}))[0] == 404


async def test_a_cancel_now_ends_the_plan_and_a_resubscribe_takes_the_row_over(
    billing_api: Api,
    stripe: StripeStandin,
    clock: StandinClock,
    conn: asyncpg.Connection,
    dsn: str,
    secret: str,
) -> None:
    user = await free_user(dsn)
    status, first = await subscribe(billing_api, secret, user)
    assert status == 201
    (first_stripe_id,) = stripe.subscriptions
    customer = stripe.subscriptions[first_stripe_id]["customer"]

    clock.now = at(2026, 3, 12)
    status, body = await call(
        billing_api, secret, user, "POST", "/cancel", {"at_period_end": False, "reason": "moving"}
    )
    assert status == 200, body
    assert (body["status"], body["cancellation_reason"]) == ("canceled", "moving")
    assert body["cancellation_date"] == "2026-03-12T00:00:00"
    assert len(stripe.calls("DELETE", f"/v1/subscriptions/{first_stripe_id}")) == 1
    assert stripe.subscriptions[first_stripe_id]["status"] == "canceled"
    assert await tier(conn, user) == "FREE"
    answers = await deliver(stripe, billing_api)
    assert answers[-1] == ("customer.subscription.deleted", "duplicate")

    # subscribe again: the same Stripe customer and the same row, a new Stripe subscription
    seen = {first_stripe_id}
    for plan, tier_now in (("Pro", "PRO"), ("Pro", "PRO")):
        status, body = await subscribe(billing_api, secret, user, plan=plan)
        assert status == 201, body
        assert (body["id"], body["plan"], body["status"]) == (first["id"], plan, "active")
        assert (body["cancellation_reason"], body["cancellation_date"]) == (None, None)
        row = await subscription_row(conn, user)
        assert row is not None and row["user_id"] == user
        assert row["stripe_subscription_id"] not in seen
        assert stripe.subscriptions[row["stripe_subscription_id"]]["status"] == "active"
        assert row["stripe_customer_id"] == customer
        assert await tier(conn, user) == tier_now
        seen.add(row["stripe_subscription_id"])
        status, body = await call(
            billing_api, secret, user, "POST", "/cancel", {"at_period_end": False}
        )
        assert (status, body["status"]) == (200, "canceled")
    assert len(stripe.calls("POST", "/v1/customers")) == 1
    assert len(stripe.customers) == 1
    assert await count(conn, "subscriptions", user) == 1
    assert await count(conn, "invoices", user) == 3


# --- renewals and events ---------------------------------------------------------------------


async def test_a_renewal_paid_through_webhooks_moves_the_period_on(
    billing_api: Api,
    stripe: StripeStandin,
    clock: StandinClock,
    conn: asyncpg.Connection,
    dsn: str,
    secret: str,
) -> None:
    user = await free_user(dsn)
    assert (await subscribe(billing_api, secret, user))[0] == 201
    await deliver(stripe, billing_api)
    (stripe_id,) = stripe.subscriptions

    clock.now = APRIL
    renewal = stripe.renew(stripe_id)
    assert await deliver(stripe, billing_api) == [
        ("customer.subscription.updated", "processed"),
        ("invoice.finalized", "processed"),
        ("invoice.paid", "processed"),
    ]
    row = await subscription_row(conn, user)
    assert row is not None
    assert (row["status"], row["current_period_start"], row["current_period_end"]) == (
        "active",
        datetime(2026, 4, 1),
        datetime(2026, 5, 1),
    )
    invoice = await conn.fetchrow(
        "SELECT * FROM aichat.invoices WHERE stripe_invoice_id = $1", renewal["id"]
    )
    assert (invoice["invoice_number"], invoice["total"], invoice["status"]) == (
        renewal["number"],
        Decimal("20.00"),
        "paid",
    )
    assert invoice["paid_at"] == datetime(2026, 4, 1)
    payment = await conn.fetchrow(
        "SELECT * FROM aichat.payments WHERE stripe_invoice_id = $1", renewal["id"]
    )
    assert (payment["status"], payment["amount"]) == ("succeeded", Decimal("20.00"))
    notes = await notifications(conn, user)
    assert [n["notification_type"] for n in notes] == ["invoice_issued", "invoice_issued"]
    assert notes[-1]["related_entity_id"] == invoice["id"]
    assert await tier(conn, user) == "PLUS"


async def test_a_declined_renewal_makes_the_subscription_past_due_and_tells_the_user_once(
    billing_api: Api,
    stripe: StripeStandin,
    clock: StandinClock,
    conn: asyncpg.Connection,
    dsn: str,
    secret: str,
) -> None:
    user = await free_user(dsn)
    assert (await subscribe(billing_api, secret, user))[0] == 201
    await deliver(stripe, billing_api)
    (stripe_sub,) = stripe.subscriptions.values()
    stripe.decline_charges(stripe_sub["default_payment_method"])

    clock.now = APRIL
    renewal = stripe.renew(stripe_sub["id"])
    first = len(stripe.events) - 3
    assert await deliver(stripe, billing_api) == [
        ("customer.subscription.updated", "processed"),
        ("invoice.finalized", "processed"),
        ("invoice.payment_failed", "processed"),
    ]
    row = await subscription_row(conn, user)
    assert row is not None
    assert (row["status"], row["current_period_end"]) == ("past_due", datetime(2026, 5, 1))
    assert await tier(conn, user) == "PLUS"  # past due keeps the plan while Stripe retries
    invoice = await conn.fetchrow(
        "SELECT * FROM aichat.invoices WHERE stripe_invoice_id = $1", renewal["id"]
    )
    assert (invoice["status"], invoice["paid_at"], invoice["total"]) == (
        "open",
        None,
        Decimal("20.00"),
    )
    payment = await conn.fetchrow(
        "SELECT * FROM aichat.payments WHERE stripe_invoice_id = $1", renewal["id"]
    )
    assert (payment["status"], payment["amount"]) == ("failed", Decimal("20.00"))
    notes = await notifications(conn, user)
    failed = [n for n in notes if n["notification_type"] == "payment_failed"]
    assert [n["related_entity_id"] for n in failed] == [payment["id"]]

    # Stripe delivers them all again: nothing more
    url = webhook_url(billing_api)
    for event in stripe.events[first:]:
        status, answer = await stripe.send_webhook(
            url, event["type"], event["data"]["object"], event=event
        )
        assert (status, answer) == (200, {"status": "duplicate"})
    assert len(await notifications(conn, user)) == len(notes) == 3
    assert await count(conn, "payments", user) == 2


async def test_an_older_event_cannot_bring_a_canceled_subscription_back(
    billing_api: Api,
    stripe: StripeStandin,
    clock: StandinClock,
    conn: asyncpg.Connection,
    dsn: str,
    secret: str,
) -> None:
    user = await free_user(dsn)
    assert (await subscribe(billing_api, secret, user))[0] == 201
    clock.now = at(2026, 3, 12)
    reason = {"reason": "found another"}
    assert (await call(billing_api, secret, user, "POST", "/cancel", reason))[0] == 200
    clock.now = at(2026, 3, 13)
    now = {"at_period_end": False}
    assert (await call(billing_api, secret, user, "POST", "/cancel", now))[0] == 200
    await deliver(stripe, billing_api)
    canceled = await subscription_row(conn, user)
    assert canceled is not None and canceled["status"] == "canceled"
    assert canceled["cancellation_reason"] == "found another"
    assert canceled["cancellation_date"] == datetime(2026, 3, 13)

    # Stripe's earlier states of it arrive late (a retried delivery)
    active = [
        e["data"]["object"]
        for e in stripe.events
        if e["type"].startswith("customer.subscription.")
        and e["data"]["object"]["status"] == "active"
    ]
    assert len(active) == 2  # created; cancel at period end
    url = webhook_url(billing_api)
    for obj in active:
        status, answer = await stripe.send_webhook(url, "customer.subscription.updated", obj)
        assert (status, answer) == (200, {"status": "duplicate"})
    assert await subscription_row(conn, user) == canceled
    assert await tier(conn, user) == "FREE"


async def test_a_subscription_stripe_made_without_our_row_comes_in_by_its_webhook(
    billing_api: Api, stripe: StripeStandin, conn: asyncpg.Connection, dsn: str
) -> None:
    """The crash between Stripe's answer and our commit: the metadata names the user."""
    user = await free_user(dsn)
    connection = StripeConnection(stripe.settings())
    await connection.open()
    try:
        billing = StripeBilling(connection.client)
        customer = await billing.create_customer(
            email="ada@example.com", metadata={}, idempotency_key="c"
        )
        card = await billing.attach_payment_method(
            "pm_card_visa", customer=customer.id, idempotency_key="a"
        )
        created = await billing.create_subscription(
            customer=customer.id,
            price="price_pro",
            default_payment_method=card.id,
            billing_cycle_anchor=APRIL,
            metadata={"realm": "aichat", "user_id": str(user), "plan": "Pro"},
            idempotency_key="s",
        )
    finally:
        await connection.close()
    assert [status for _, status in await deliver(stripe, billing_api)] == ["processed"] * 3
    row = await subscription_row(conn, user)
    assert row is not None
    assert (row["stripe_subscription_id"], row["plan"], row["status"]) == (
        created.id,
        "Pro",
        "active",
    )
    assert await tier(conn, user) == "PRO"
    assert (await count(conn, "invoices", user), await count(conn, "payments", user)) == (1, 1)


# --- races -----------------------------------------------------------------------------------


async def test_two_simultaneous_subscribes_keep_one_subscription(
    billing_api: Api, stripe: StripeStandin, conn: asyncpg.Connection, dsn: str, secret: str
) -> None:
    user = await free_user(dsn)
    answers = await asyncio.gather(
        subscribe(billing_api, secret, user, card="pm_card_visa"),
        subscribe(billing_api, secret, user, card="pm_card_mastercard"),
    )
    assert sorted(status for status, _ in answers) == [201, 409], answers
    assert len(stripe.customers) == 1
    # (the loser, when it got as far as Stripe, was deleted there at once and its first
    # payment refunded in full)
    live = [s for s in stripe.subscriptions.values() if s["status"] != "canceled"]
    assert len(live) == 1
    for undone in (s for s in stripe.subscriptions.values() if s["status"] == "canceled"):
        charged = stripe.invoices[undone["latest_invoice"]]
        refunds = [
            r for r in stripe.refunds.values() if r["payment_intent"] == charged["payment_intent"]
        ]
        assert [r["amount"] for r in refunds] == [charged["amount_paid"]]
    winner = next(body for status, body in answers if status == 201)
    row = await subscription_row(conn, user)
    assert row is not None and str(row["id"]) == winner["id"]
    assert (row["stripe_subscription_id"], row["status"]) == (live[0]["id"], "active")
    assert await tier(conn, user) == "PLUS"
    assert (await count(conn, "invoices", user), await count(conn, "payments", user)) == (1, 1)

    # the loser's events are not this user's subscription
    await deliver(stripe, billing_api)
    after = await subscription_row(conn, user)
    assert after is not None
    assert (after["stripe_subscription_id"], after["status"]) == (live[0]["id"], "active")
    assert await tier(conn, user) == "PLUS"
    assert (await count(conn, "invoices", user), await count(conn, "payments", user)) == (1, 1)


async def test_a_double_submitted_subscribe_is_one_subscription(
    billing_api: Api, stripe: StripeStandin, conn: asyncpg.Connection, dsn: str, secret: str
) -> None:
    user = await free_user(dsn)
    answers = await asyncio.gather(
        subscribe(billing_api, secret, user), subscribe(billing_api, secret, user)
    )
    statuses = sorted(status for status, _ in answers)
    # the same request twice: Stripe answers both with the one subscription (idempotency
    # key), or refuses the second while the first is in flight
    assert statuses in ([201, 201], [201, 409]), answers
    assert len(stripe.subscriptions) == 1
    (stripe_sub,) = stripe.subscriptions.values()
    assert stripe_sub["status"] == "active"
    row = await subscription_row(conn, user)
    assert row is not None and row["stripe_subscription_id"] == stripe_sub["id"]
    assert (await count(conn, "invoices", user), await count(conn, "payments", user)) == (1, 1)
    assert len(await notifications(conn, user)) == 1
