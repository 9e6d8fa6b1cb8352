"""The Stripe Billing port (kernel/payments/billing.py) against the local stand-in: what it sends,
how it reads subscriptions of both API shapes, prorations, cancellations, renewals, invoice
pages, the events Stripe would send, declines and outages."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from aiohttp import web

from kernel.payments.billing import CancellationDetails, Invoice, StripeBilling, Subscription
from kernel.payments.stripe import (
    IdempotencyConflict,
    PaymentDeclined,
    PaymentRequestInvalid,
    StripeClient,
    StripeUnavailable,
    verify_webhook,
)
from tests.payments.stripe_standin import StripeStandin


def at(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp())


NOW = at(2026, 3, 10, 12)
A_MONTH_LATER = at(2026, 4, 10, 12)
DAY = 86_400


class Clock:
    """The stand-in's clock, moved by the test."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock(stripe_standin: StripeStandin) -> Clock:
    clock = Clock(NOW)
    stripe_standin.now = clock
    stripe_standin.add_price("price_basic", 1000)
    stripe_standin.add_price("price_pro", 3000)
    return clock


@pytest.fixture
async def billing(stripe: StripeClient, clock: Clock) -> AsyncIterator[StripeBilling]:
    yield StripeBilling(stripe)


async def subscribe(
    billing: StripeBilling,
    *,
    card: str = "pm_card_visa",
    price: str = "price_basic",
    anchor: int | None = None,
    key: str = "sub-1",
) -> Subscription:
    customer = await billing.create_customer(
        email="ada@example.com", metadata={}, idempotency_key=f"{key}-cus"
    )
    method = await billing.attach_payment_method(
        card, customer=customer.id, idempotency_key=f"{key}-pm"
    )
    return await billing.create_subscription(
        customer=customer.id,
        price=price,
        default_payment_method=method.id,
        billing_cycle_anchor=anchor,
        metadata={"account_id": "a1"},
        idempotency_key=key,
    )


def latest(subscription: Subscription) -> Invoice:
    assert isinstance(subscription.latest_invoice, Invoice)
    return subscription.latest_invoice


async def test_a_customer_a_card_and_a_subscription_are_sent_as_stripe_expects(
    billing: StripeBilling, stripe_standin: StripeStandin
) -> None:
    customer = await billing.create_customer(
        email="ada@example.com", name="Ada", metadata={"account_id": "a1"}, idempotency_key="c1"
    )
    (sent,) = stripe_standin.calls("POST", "/v1/customers")
    assert sent.form == {"email": "ada@example.com", "name": "Ada", "metadata[account_id]": "a1"}
    assert sent.headers["Idempotency-Key"] == "c1"
    assert (customer.email, customer.metadata) == ("ada@example.com", {"account_id": "a1"})

    method = await billing.attach_payment_method(
        "pm_card_visa", customer=customer.id, idempotency_key="p1"
    )
    (sent,) = stripe_standin.calls("POST", "/v1/payment_methods/pm_card_visa/attach")
    assert (sent.form, sent.headers["Idempotency-Key"]) == ({"customer": customer.id}, "p1")
    # A test shortcut comes back as a new PaymentMethod: only that id can be billed.
    assert method.id.startswith("pm_") and method.id != "pm_card_visa"
    assert (method.customer, method.type) == (customer.id, "card")

    subscription = await billing.create_subscription(
        customer=customer.id,
        price="price_basic",
        default_payment_method=method.id,
        metadata={"account_id": "a1"},
        idempotency_key="s1",
    )
    (sent,) = stripe_standin.calls("POST", "/v1/subscriptions")
    assert sent.headers["Idempotency-Key"] == "s1"
    assert sent.form == {
        "customer": customer.id,
        "items[0][price]": "price_basic",
        "default_payment_method": method.id,
        "payment_behavior": "error_if_incomplete",
        "proration_behavior": "create_prorations",
        "metadata[account_id]": "a1",
        "expand[]": "latest_invoice",
    }
    assert (subscription.status, subscription.customer) == ("active", customer.id)
    assert subscription.period() == (NOW, A_MONTH_LATER)
    assert subscription.price_id == "price_basic"
    assert subscription.item_id.startswith("si_")
    assert subscription.metadata == {"account_id": "a1"}
    invoice = latest(subscription)
    assert (invoice.status, invoice.total, invoice.amount_paid) == ("paid", 1000, 1000)
    assert (invoice.billing_reason, invoice.subscription) == (
        "subscription_create",
        subscription.id,
    )
    assert invoice.number is not None and invoice.number.endswith("-0001")
    assert invoice.payment_intent in stripe_standin.intents
    assert invoice.status_transitions is not None
    assert invoice.status_transitions.paid_at == NOW
    assert invoice.invoice_pdf is not None and invoice.invoice_pdf.endswith(".pdf")

    fetched = await billing.retrieve_subscription(subscription.id)
    (sent,) = stripe_standin.calls("GET", f"/v1/subscriptions/{subscription.id}")
    assert "Idempotency-Key" not in sent.headers
    assert fetched.latest_invoice == invoice.id  # not expanded: an id
    assert fetched.period() == subscription.period()


async def test_a_repeated_subscription_request_subscribes_and_charges_once(
    billing: StripeBilling, stripe_standin: StripeStandin
) -> None:
    first = await subscribe(billing, key="k")
    again = await subscribe(billing, key="k")
    assert again.id == first.id and latest(again).id == latest(first).id
    assert (len(stripe_standin.subscriptions), len(stripe_standin.invoices)) == (1, 1)
    with pytest.raises(IdempotencyConflict):
        await billing.create_subscription(
            customer=first.customer,
            price="price_pro",
            default_payment_method="pm_other",
            metadata={},
            idempotency_key="k",
        )


def test_the_period_is_read_from_the_subscription_or_else_from_its_item() -> None:
    item = {"id": "si_1", "price": {"id": "price_basic"}}
    newer = msgspec.convert(
        {
            "id": "sub_1",
            "customer": "cus_1",
            "status": "active",
            "unknown_field": 1,
            "items": {"data": [{**item, "current_period_start": 10, "current_period_end": 20}]},
        },
        Subscription,
    )
    assert newer.period() == (10, 20)
    assert (newer.price_id, newer.item_id) == ("price_basic", "si_1")
    classic = msgspec.convert(
        {
            "id": "sub_2",
            "customer": "cus_1",
            "status": "active",
            "current_period_start": 30,
            "current_period_end": 40,
            "items": {"data": [item]},
        },
        Subscription,
    )
    assert classic.period() == (30, 40)
    neither = msgspec.convert(
        {"id": "sub_3", "customer": "cus_1", "status": "active", "items": {"data": [item]}},
        Subscription,
    )
    with pytest.raises(PaymentRequestInvalid, match="sub_3 has no current period"):
        neither.period()


@pytest.mark.parametrize(
    ("card", "decline"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
async def test_a_card_declined_on_attach_is_payment_declined(
    billing: StripeBilling, card: str, decline: str
) -> None:
    customer = await billing.create_customer(email="a@b.c", metadata={}, idempotency_key="c")
    with pytest.raises(PaymentDeclined) as caught:
        await billing.attach_payment_method(card, customer=customer.id, idempotency_key="p")
    assert (caught.value.failure_code, caught.value.decline_code) == ("card_declined", decline)


async def test_an_unknown_payment_method_or_customer_is_an_invalid_request(
    billing: StripeBilling,
) -> None:
    customer = await billing.create_customer(email="a@b.c", metadata={}, idempotency_key="c")
    with pytest.raises(PaymentRequestInvalid) as caught:
        await billing.attach_payment_method("pm_nope", customer=customer.id, idempotency_key="p")
    assert caught.value.details == {"provider_code": "resource_missing", "param": "payment_method"}
    with pytest.raises(PaymentRequestInvalid):
        await billing.retrieve_subscription("sub_nope")


async def test_a_subscription_whose_first_charge_declines_is_refused_and_not_created(
    billing: StripeBilling, stripe_standin: StripeStandin
) -> None:
    with pytest.raises(PaymentDeclined) as caught:
        await subscribe(billing, card="pm_card_chargeCustomerFail")
    assert (caught.value.failure_code, caught.value.decline_code) == (
        "card_declined",
        "generic_decline",
    )
    assert stripe_standin.subscriptions == {} and stripe_standin.invoices == {}
    assert stripe_standin.events == []


async def test_a_future_billing_cycle_anchor_prorates_the_first_invoice_by_the_second(
    billing: StripeBilling, stripe_standin: StripeStandin, clock: Clock
) -> None:
    anchor = at(2026, 4, 1)
    subscription = await subscribe(billing, anchor=anchor)
    assert stripe_standin.calls("POST", "/v1/subscriptions")[0].form["billing_cycle_anchor"] == (
        str(anchor)
    )
    assert subscription.period() == (NOW, anchor)
    # 21.5 of March's 31 days: 1000 * 21.5 / 31 = 693.5... cents.
    assert latest(subscription).total == 694
    clock.now = anchor
    renewal = stripe_standin.renew(subscription.id)
    assert renewal["total"] == 1000
    renewed = await billing.retrieve_subscription(subscription.id)
    assert renewed.period() == (anchor, at(2026, 5, 1))


async def test_an_upgrade_mid_period_charges_the_prorated_difference_at_once(
    billing: StripeBilling, stripe_standin: StripeStandin, clock: Clock
) -> None:
    subscription = await subscribe(billing)
    clock.now = NOW + (A_MONTH_LATER - NOW) // 4  # three quarters of the period are left
    upgraded = await billing.change_price(
        subscription.id, item_id=subscription.item_id, price="price_pro", idempotency_key="up"
    )
    (sent,) = stripe_standin.calls("POST", f"/v1/subscriptions/{subscription.id}")
    assert sent.headers["Idempotency-Key"] == "up"
    assert sent.form == {
        "items[0][id]": subscription.item_id,
        "items[0][price]": "price_pro",
        "proration_behavior": "always_invoice",
        "payment_behavior": "error_if_incomplete",
        "expand[]": "latest_invoice",
    }
    invoice = latest(upgraded)
    assert (invoice.total, invoice.amount_paid, invoice.status) == (1500, 1500, "paid")
    assert invoice.billing_reason == "subscription_update"
    assert invoice.number is not None and invoice.number.endswith("-0002")
    assert (upgraded.price_id, upgraded.item_id) == ("price_pro", subscription.item_id)
    assert upgraded.period() == subscription.period()


async def test_a_downgrade_gives_a_paid_credit_invoice_with_a_negative_total(
    billing: StripeBilling, clock: Clock
) -> None:
    subscription = await subscribe(billing, price="price_pro")
    clock.now = NOW + (A_MONTH_LATER - NOW) // 4
    downgraded = await billing.change_price(
        subscription.id, item_id=subscription.item_id, price="price_basic", idempotency_key="dn"
    )
    invoice = latest(downgraded)
    assert (invoice.total, invoice.amount_due, invoice.amount_paid) == (-1500, 0, 0)
    assert (invoice.status, invoice.payment_intent) == ("paid", None)
    assert downgraded.price_id == "price_basic"


async def test_an_upgrade_whose_charge_declines_changes_nothing(
    billing: StripeBilling, stripe_standin: StripeStandin, clock: Clock
) -> None:
    subscription = await subscribe(billing)
    (stored,) = stripe_standin.subscriptions.values()
    stripe_standin.decline_charges(stored["default_payment_method"])
    clock.now += DAY
    with pytest.raises(PaymentDeclined):
        await billing.change_price(
            subscription.id, item_id=subscription.item_id, price="price_pro", idempotency_key="u"
        )
    unchanged = await billing.retrieve_subscription(subscription.id)
    assert (unchanged.price_id, unchanged.status) == ("price_basic", "active")
    assert unchanged.latest_invoice == latest(subscription).id
    assert len(stripe_standin.invoices) == 1


async def test_a_cancellation_at_period_end_can_be_withdrawn(
    billing: StripeBilling, stripe_standin: StripeStandin, clock: Clock
) -> None:
    subscription = await subscribe(billing)
    clock.now += DAY
    leaving = await billing.set_cancel_at_period_end(
        subscription.id, True, comment="too dear", idempotency_key="c1"
    )
    assert (leaving.status, leaving.cancel_at_period_end) == ("active", True)
    assert (leaving.canceled_at, leaving.cancel_at) == (NOW + DAY, A_MONTH_LATER)
    assert leaving.cancellation_details == CancellationDetails(
        reason="cancellation_requested", comment="too dear"
    )
    staying = await billing.set_cancel_at_period_end(subscription.id, False, idempotency_key="c2")
    first, second = stripe_standin.calls("POST", f"/v1/subscriptions/{subscription.id}")
    assert first.form == {
        "cancel_at_period_end": "true",
        "cancellation_details[comment]": "too dear",
    }
    assert second.form == {"cancel_at_period_end": "false"}
    assert second.headers["Idempotency-Key"] == "c2"
    assert (staying.cancel_at_period_end, staying.canceled_at, staying.cancel_at) == (
        False,
        None,
        None,
    )
    assert staying.status == "active"


async def test_cancel_now_is_a_delete_without_idempotency_key_and_safe_to_repeat(
    billing: StripeBilling, stripe_standin: StripeStandin, clock: Clock
) -> None:
    subscription = await subscribe(billing)
    clock.now += DAY
    canceled = await billing.cancel_now(subscription.id, comment="fraud")
    (sent,) = stripe_standin.calls("DELETE", f"/v1/subscriptions/{subscription.id}")
    assert "Idempotency-Key" not in sent.headers
    assert sent.query == {"cancellation_details[comment]": "fraud"}
    assert canceled.status == "canceled"
    assert canceled.canceled_at == canceled.ended_at == NOW + DAY
    assert canceled.cancellation_details is not None
    assert canceled.cancellation_details.comment == "fraud"
    # Stripe answers "No such subscription" to a second DELETE: the port returns the
    # canceled subscription, so a retry after a lost answer is not an error.
    clock.now += DAY
    again = await billing.cancel_now(subscription.id)
    assert (again.status, again.canceled_at) == ("canceled", NOW + DAY)
    with pytest.raises(PaymentRequestInvalid, match="canceled subscription can only update"):
        await billing.set_cancel_at_period_end(subscription.id, True, idempotency_key="late")
    with pytest.raises(PaymentRequestInvalid):
        await billing.cancel_now("sub_nope")


async def test_a_renewal_charges_the_next_calendar_month(
    billing: StripeBilling, stripe_standin: StripeStandin, clock: Clock
) -> None:
    subscription = await subscribe(billing)
    clock.now = A_MONTH_LATER
    invoice = msgspec.convert(stripe_standin.renew(subscription.id), Invoice)
    assert (invoice.status, invoice.total, invoice.amount_paid) == ("paid", 1000, 1000)
    assert invoice.billing_reason == "subscription_cycle"
    # An invoice's own period is the usage period it looks back on, not the one it pays for.
    assert (invoice.period_start, invoice.period_end) == (NOW, A_MONTH_LATER)
    renewed = await billing.retrieve_subscription(subscription.id)
    assert renewed.status == "active"
    assert renewed.period() == (A_MONTH_LATER, at(2026, 5, 10, 12))
    assert renewed.latest_invoice == invoice.id


async def test_a_renewal_whose_charge_declines_leaves_the_invoice_open_and_past_due(
    billing: StripeBilling, stripe_standin: StripeStandin, clock: Clock
) -> None:
    subscription = await subscribe(billing)
    (stored,) = stripe_standin.subscriptions.values()
    stripe_standin.decline_charges(stored["default_payment_method"])
    clock.now = A_MONTH_LATER
    invoice = msgspec.convert(stripe_standin.renew(subscription.id), Invoice)
    assert (invoice.status, invoice.amount_due, invoice.amount_paid) == ("open", 1000, 0)
    assert invoice.payment_intent is not None
    assert stripe_standin.intents[invoice.payment_intent]["status"] == "requires_payment_method"
    renewed = await billing.retrieve_subscription(subscription.id)
    assert renewed.status == "past_due"
    assert [e["type"] for e in stripe_standin.events[-3:]] == [
        "customer.subscription.updated",
        "invoice.finalized",
        "invoice.payment_failed",
    ]
    assert stripe_standin.events[-1]["data"]["object"]["id"] == invoice.id


async def test_a_subscription_set_to_cancel_at_period_end_ends_at_renewal_unbilled(
    billing: StripeBilling, stripe_standin: StripeStandin, clock: Clock
) -> None:
    subscription = await subscribe(billing)
    await billing.set_cancel_at_period_end(subscription.id, True, idempotency_key="bye")
    clock.now = A_MONTH_LATER
    ended = stripe_standin.renew(subscription.id)
    assert (ended["status"], ended["ended_at"]) == ("canceled", A_MONTH_LATER)
    assert len(stripe_standin.invoices) == 1
    assert stripe_standin.events[-1]["type"] == "customer.subscription.deleted"
    assert (await billing.retrieve_subscription(subscription.id)).status == "canceled"


async def test_invoices_are_listed_newest_first_across_pages(
    billing: StripeBilling, stripe_standin: StripeStandin, clock: Clock
) -> None:
    subscription = await subscribe(billing)
    other = await subscribe(billing, key="other")  # another subscription's invoice is left out
    renewals = []
    for month in (4, 5, 6, 7):
        clock.now = at(2026, month, 10, 12)
        renewals.append(stripe_standin.renew(subscription.id)["id"])
    invoices = await billing.list_invoices(subscription=subscription.id, page_size=2)
    assert [i.id for i in invoices] == [*reversed(renewals), latest(subscription).id]
    assert latest(other).id not in {i.id for i in invoices}
    pages = stripe_standin.calls("GET", "/v1/invoices")
    assert [p.query for p in pages] == [
        {"subscription": subscription.id, "limit": "2"},
        {"subscription": subscription.id, "limit": "2", "starting_after": renewals[2]},
        {"subscription": subscription.id, "limit": "2", "starting_after": renewals[0]},
    ]
    assert all("Idempotency-Key" not in p.headers for p in pages)

    recent = await billing.list_invoices(
        subscription=subscription.id, created_gte=at(2026, 6, 10, 12)
    )
    assert [i.id for i in recent] == [renewals[3], renewals[2]]
    assert stripe_standin.calls("GET", "/v1/invoices")[-1].query == {
        "subscription": subscription.id,
        "limit": "100",
        "created[gte]": str(at(2026, 6, 10, 12)),
    }


async def test_the_events_stripe_would_send_are_recorded_in_order_and_delivered_signed(
    billing: StripeBilling, stripe_standin: StripeStandin, clock: Clock, aiohttp_server: Any
) -> None:
    subscription = await subscribe(billing)
    clock.now += DAY
    await billing.change_price(
        subscription.id, item_id=subscription.item_id, price="price_pro", idempotency_key="up"
    )
    await billing.set_cancel_at_period_end(subscription.id, True, idempotency_key="bye")
    clock.now = A_MONTH_LATER
    stripe_standin.renew(subscription.id)
    expected = [
        "customer.subscription.created",
        "invoice.finalized",
        "invoice.paid",
        "customer.subscription.updated",
        "invoice.finalized",
        "invoice.paid",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ]
    assert [e["type"] for e in stripe_standin.events] == expected
    objects = [e["data"]["object"] for e in stripe_standin.events]
    # Each event carries its object as it was then.
    assert objects[0]["status"] == "active" and objects[0]["items"]["data"][0]["price"]["id"] == (
        "price_basic"
    )
    assert (objects[1]["status"], objects[2]["status"]) == ("open", "paid")
    assert objects[3]["items"]["data"][0]["price"]["id"] == "price_pro"
    assert objects[3]["cancel_at_period_end"] is False
    assert objects[6]["cancel_at_period_end"] is True
    assert objects[7]["status"] == "canceled"

    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(
            verify_webhook(
                await request.read(),
                request.headers["Stripe-Signature"],
                stripe_standin.webhook_secret,
                now=time.time(),
            )
        )
        return web.json_response({"received": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    url = str(server.make_url("/hook"))
    answers = await stripe_standin.deliver(url)
    assert answers == [(200, {"received": True})] * len(expected)
    assert received == stripe_standin.events
    assert await stripe_standin.deliver(url) == []


async def test_an_outage_is_unavailable_and_a_retry_with_the_same_key_subscribes_once(
    billing: StripeBilling, stripe_standin: StripeStandin
) -> None:
    customer = await billing.create_customer(email="a@b.c", metadata={}, idempotency_key="c")
    method = await billing.attach_payment_method(
        "pm_card_visa", customer=customer.id, idempotency_key="p"
    )

    async def create() -> Subscription:
        return await billing.create_subscription(
            customer=customer.id,
            price="price_basic",
            default_payment_method=method.id,
            metadata={},
            idempotency_key="s",
        )

    stripe_standin.fail_next(503)
    with pytest.raises(StripeUnavailable) as caught:
        await create()
    assert caught.value.http_status == 503
    assert stripe_standin.subscriptions == {}
    subscription = await create()
    assert subscription.status == "active"
    assert list(stripe_standin.subscriptions) == [subscription.id]
    assert len(stripe_standin.intents) == 1
