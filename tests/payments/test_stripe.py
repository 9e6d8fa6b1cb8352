"""The Stripe port (kernel/payments/stripe.py) against the local stand-in: what it sends,
how it reads answers, declines and outages, and webhook signatures."""

from __future__ import annotations

import time
from decimal import Decimal

import aiohttp
import pytest

from kernel.config import ConfigError
from kernel.payments.stripe import (
    IdempotencyConflict,
    PaymentDeclined,
    PaymentRequestInvalid,
    StripeClient,
    StripeSettings,
    StripeUnavailable,
    WebhookSignatureInvalid,
    minor_units,
    signature_header,
    verify_webhook,
)
from tests.conftest import free_port
from tests.payments.stripe_standin import StripeStandin

SECRET = "whsec_test_secret"


async def test_a_succeeding_card_creates_a_confirmed_intent_sent_as_stripe_expects(
    stripe: StripeClient, stripe_standin: StripeStandin
) -> None:
    intent = await stripe.create_payment_intent(
        amount_minor=12_345,
        currency="UZS",
        payment_method="pm_card_visa",
        idempotency_key="order-1",
        customer="cus_1",
        metadata={"order_id": "1", "realm": "market"},
    )
    assert (intent.status, intent.amount, intent.currency) == ("succeeded", 12_345, "uzs")
    assert intent.metadata == {"order_id": "1", "realm": "market"}
    assert intent.last_payment_error is None
    (sent,) = stripe_standin.calls("POST", "/v1/payment_intents")
    assert sent.headers["Authorization"] == f"Bearer {stripe_standin.api_key}"
    assert sent.headers["Idempotency-Key"] == "order-1"
    assert sent.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert sent.form == {
        "amount": "12345",
        "currency": "uzs",
        "payment_method": "pm_card_visa",
        "confirm": "true",
        "automatic_payment_methods[enabled]": "true",
        "automatic_payment_methods[allow_redirects]": "never",
        "customer": "cus_1",
        "metadata[order_id]": "1",
        "metadata[realm]": "market",
    }
    fetched = await stripe.retrieve_payment_intent(intent.id)
    assert (fetched.id, fetched.status) == (intent.id, "succeeded")


@pytest.mark.parametrize(
    ("method", "decline"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
async def test_a_declined_card_raises_payment_declined_naming_the_failed_intent(
    stripe: StripeClient, stripe_standin: StripeStandin, method: str, decline: str
) -> None:
    with pytest.raises(PaymentDeclined) as caught:
        await stripe.create_payment_intent(
            amount_minor=500, currency="usd", payment_method=method, idempotency_key=method
        )
    error = caught.value
    assert (error.failure_code, error.decline_code) == ("card_declined", decline)
    assert error.http_status == 400 and error.code == "bad_request"
    assert error.message.startswith("payment failed: ")
    assert error.payment_intent_id in stripe_standin.intents
    assert stripe_standin.intents[error.payment_intent_id]["status"] == "requires_payment_method"


async def test_an_idempotency_key_replays_the_first_answer_and_refuses_other_values(
    stripe: StripeClient, stripe_standin: StripeStandin
) -> None:
    first = await stripe.create_payment_intent(
        amount_minor=700, currency="usd", payment_method="pm_card_visa", idempotency_key="k1"
    )
    again = await stripe.create_payment_intent(
        amount_minor=700, currency="usd", payment_method="pm_card_visa", idempotency_key="k1"
    )
    assert again.id == first.id
    assert len(stripe_standin.intents) == 1
    with pytest.raises(IdempotencyConflict):
        await stripe.create_payment_intent(
            amount_minor=701, currency="usd", payment_method="pm_card_visa", idempotency_key="k1"
        )


async def test_an_unknown_payment_method_is_a_bad_request(stripe: StripeClient) -> None:
    with pytest.raises(PaymentRequestInvalid) as caught:
        await stripe.create_payment_intent(
            amount_minor=700, currency="usd", payment_method="pm_nope", idempotency_key="k2"
        )
    assert caught.value.http_status == 400
    assert caught.value.details["param"] == "payment_method"


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_rate_limits_and_outages_are_unavailable_with_a_retry_hint(
    stripe: StripeClient, stripe_standin: StripeStandin, status: int
) -> None:
    stripe_standin.fail_next(status)
    with pytest.raises(StripeUnavailable) as caught:
        await stripe.create_payment_intent(
            amount_minor=700, currency="usd", payment_method="pm_card_visa", idempotency_key="k3"
        )
    assert caught.value.http_status == 503
    assert caught.value.details["retry_after_ms"] > 0
    # The outage is over: the same key now charges once.
    intent = await stripe.create_payment_intent(
        amount_minor=700, currency="usd", payment_method="pm_card_visa", idempotency_key="k3"
    )
    assert intent.status == "succeeded"


async def test_a_wrong_key_and_an_unreachable_provider_are_unavailable_and_never_leak_the_key(
    stripe_standin: StripeStandin,
) -> None:
    async with aiohttp.ClientSession() as session:
        wrong = StripeClient(stripe_standin.settings(api_key="sk_test_wrong"), session)
        with pytest.raises(StripeUnavailable) as caught:
            await wrong.retrieve_payment_intent("pi_x")
        assert "sk_test_wrong" not in caught.value.message
        assert "sk_test_wrong" not in repr(wrong.settings)
        gone = StripeClient(
            StripeSettings(api_key="sk_x", base_url=f"http://127.0.0.1:{free_port()}"), session
        )
        with pytest.raises(StripeUnavailable):
            await gone.retrieve_payment_intent("pi_x")


async def test_refunds_return_the_payment_once_per_key(
    stripe: StripeClient, stripe_standin: StripeStandin
) -> None:
    intent = await stripe.create_payment_intent(
        amount_minor=900, currency="usd", payment_method="pm_card_visa", idempotency_key="k4"
    )
    refund = await stripe.create_refund(payment_intent=intent.id, idempotency_key="r1")
    replay = await stripe.create_refund(payment_intent=intent.id, idempotency_key="r1")
    assert (refund.id, refund.amount, refund.status) == (replay.id, 900, "succeeded")
    assert len(stripe_standin.refunds) == 1
    with pytest.raises(PaymentRequestInvalid):  # nothing is left to refund
        await stripe.create_refund(payment_intent=intent.id, idempotency_key="r2")


def test_minor_units_follow_stripes_currency_exponents() -> None:
    assert minor_units(Decimal("12.34"), "usd") == 1234
    assert minor_units(Decimal("150000.00"), "UZS") == 15_000_000
    assert minor_units(Decimal("1500"), "JPY") == 1500
    assert minor_units(Decimal("1.25"), "KWD") == 1250


def test_settings_come_from_the_environment_and_are_off_without_a_key() -> None:
    assert StripeSettings.from_env({}) is None
    assert StripeSettings.from_env({"STRIPE_API_KEY": "  "}) is None
    settings = StripeSettings.from_env(
        {"STRIPE_API_KEY": "sk_live_1", "STRIPE_WEBHOOK_SECRET": "whsec_1"}
    )
    assert settings is not None
    assert (settings.base_url, settings.webhook_secret) == ("https://api.stripe.com", "whsec_1")
    with pytest.raises(ConfigError, match="STRIPE_BASE_URL"):
        StripeSettings.from_env({"STRIPE_API_KEY": "sk", "STRIPE_BASE_URL": "ftp://x"})


def test_a_correctly_signed_webhook_is_verified_and_decoded() -> None:
    payload = b'{"id": "evt_1", "type": "payment_intent.succeeded"}'
    now = time.time()
    header = signature_header(payload, SECRET, int(now))
    assert verify_webhook(payload, header, SECRET, now=now)["id"] == "evt_1"
    # Stripe may list several v1 signatures (secret rotation): one match is enough.
    rotated = f"{header},v1={'0' * 64}"
    assert verify_webhook(payload, rotated, SECRET, now=now)["type"].endswith("succeeded")


@pytest.mark.parametrize(
    "tamper",
    ["other secret", "changed payload", "too old", "no v1", "no timestamp", "garbage"],
)
def test_a_webhook_is_refused_when_its_signature_does_not_hold(tamper: str) -> None:
    payload = b'{"id": "evt_1"}'
    now = time.time()
    header = {
        "other secret": signature_header(payload, "whsec_other", int(now)),
        "changed payload": signature_header(b'{"id": "evt_2"}', SECRET, int(now)),
        "too old": signature_header(payload, SECRET, int(now) - 301),
        "no v1": f"t={int(now)}",
        "no timestamp": "v1=" + "a" * 64,
        "garbage": "t=abc,v1=zz",
    }[tamper]
    with pytest.raises(WebhookSignatureInvalid):
        verify_webhook(payload, header, SECRET, now=now)


async def test_the_standin_sends_webhooks_signed_as_stripe_does(
    stripe_standin: StripeStandin, aiohttp_server: object
) -> None:
    from aiohttp import web

    received: list[dict[str, object]] = []

    async def hook(request: web.Request) -> web.Response:
        event = verify_webhook(
            await request.read(),
            request.headers["Stripe-Signature"],
            stripe_standin.webhook_secret,
            now=time.time(),
        )
        received.append(event)
        return web.json_response({"received": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)  # type: ignore[operator]
    status, body = await stripe_standin.send_webhook(
        str(server.make_url("/hook")), "invoice.paid", {"id": "in_1", "object": "invoice"}
    )
    assert (status, body) == (200, {"received": True})
    (event,) = received
    assert event["type"] == "invoice.paid"
    assert event["data"] == {"object": {"id": "in_1", "object": "invoice"}}
