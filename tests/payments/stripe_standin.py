"""A local stand-in for Stripe's HTTP API, for tests, on a loopback port: payment intents and
refunds, on top of Stripe Billing (stripe_billing_standin) and the shared plumbing, errors and
signed webhooks (standin_base).

Payment intents take the test payment methods Stripe documents:
    pm_card_visa                              succeeds
    pm_card_chargeDeclined                    402 card_declined (generic_decline)
    pm_card_chargeDeclinedInsufficientFunds   402 card_declined (insufficient_funds)
and one of its own, labelled as such:
    pm_standin_processing                     status `processing`: settle it with a webhook
Any other payment method is 400 resource_missing.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.payments.standin_base import DECLINES, PROCESSING, SUCCEEDS, _error, _nested
from tests.payments.stripe_billing_standin import BillingStandin


@dataclass
class StripeStandin(BillingStandin):
    """The whole stand-in: payment intents and refunds, and Billing; `url` is its base URL
    once started."""

    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/payment_intents", self._create_intent)
        app.router.add_get("/v1/payment_intents/{id}", self._get_intent)
        app.router.add_post("/v1/refunds", self._create_refund)
        self.add_billing_routes(app)
        return app

    async def _create_intent(self, request: web.Request) -> web.Response:
        form, refused = await self._admit(request)
        if refused is not None:
            return refused
        replay = self._replayed(request, form)
        if replay is not None:
            return replay
        method = form.get("payment_method", "")
        if not form.get("amount", "").isdigit() or int(form["amount"]) < 1:
            return _error(400, "invalid_request_error", "parameter_invalid_integer", "amount")
        if method not in SUCCEEDS and method not in DECLINES and method != PROCESSING:
            return _error(
                400,
                "invalid_request_error",
                "resource_missing",
                f"No such PaymentMethod: '{method}'",
                param="payment_method",
            )
        intent: dict[str, Any] = {
            "id": f"pi_{secrets.token_hex(12)}",
            "object": "payment_intent",
            "amount": int(form["amount"]),
            "currency": form.get("currency", ""),
            "customer": form.get("customer"),
            "payment_method": method,
            "metadata": _nested(form, "metadata"),
            "last_payment_error": None,
            "latest_charge": None,
            "status": "requires_confirmation",
            "created": int(time.time()),
            "livemode": False,
        }
        status = 200
        body: dict[str, Any] = intent
        if form.get("confirm") == "true":
            if method in DECLINES:
                code, decline, message = DECLINES[method]
                error = {
                    "type": "card_error",
                    "code": code,
                    "decline_code": decline,
                    "message": message,
                }
                intent["status"] = "requires_payment_method"
                intent["last_payment_error"] = error
                status, body = 402, {"error": {**error, "payment_intent": intent}}
            elif method == PROCESSING:
                intent["status"] = "processing"
            else:
                intent["status"] = "succeeded"
                intent["latest_charge"] = f"ch_{secrets.token_hex(12)}"
        self.intents[intent["id"]] = intent
        return self._remember(request, form, status, body)

    async def _get_intent(self, request: web.Request) -> web.Response:
        _, refused = await self._admit(request)
        if refused is not None:
            return refused
        intent = self.intents.get(request.match_info["id"])
        if intent is None:
            return _error(404, "invalid_request_error", "resource_missing", "No such intent")
        return web.json_response(intent)

    async def _create_refund(self, request: web.Request) -> web.Response:
        form, refused = await self._admit(request)
        if refused is not None:
            return refused
        replay = self._replayed(request, form)
        if replay is not None:
            return replay
        intent = self.intents.get(form.get("payment_intent", ""))
        if intent is None or intent["status"] != "succeeded":
            return _error(
                400,
                "invalid_request_error",
                "charge_not_refundable" if intent else "resource_missing",
                "This PaymentIntent has no successful charge to refund",
                param="payment_intent",
            )
        refunded = sum(
            r["amount"] for r in self.refunds.values() if r["payment_intent"] == intent["id"]
        )
        amount = int(form.get("amount") or intent["amount"] - refunded)
        if amount < 1 or refunded + amount > intent["amount"]:
            return _error(
                400, "invalid_request_error", "charge_already_refunded", "Already refunded"
            )
        refund = {
            "id": f"re_{secrets.token_hex(12)}",
            "object": "refund",
            "amount": amount,
            "currency": intent["currency"],
            "payment_intent": intent["id"],
            "status": "succeeded",
            "metadata": _nested(form, "metadata"),
        }
        self.refunds[refund["id"]] = refund
        return self._remember(request, form, 200, refund)


@asynccontextmanager
async def running_standin(**options: Any) -> AsyncIterator[StripeStandin]:
    """A started stand-in on 127.0.0.1 (a free port), stopped on exit."""
    standin = StripeStandin(**options)
    runner = web.AppRunner(standin.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    standin.url = f"http://{host}:{port}"
    try:
        yield standin
    finally:
        await runner.cleanup()
