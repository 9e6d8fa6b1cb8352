"""A local stand-in for Stripe's HTTP API, for tests: payment intents, refunds and signed
webhooks, on a loopback port.

Speaks the shapes of api.stripe.com (form-encoded requests, `Authorization: Bearer <key>`,
`Idempotency-Key` replaying the first answer, errors as `{"error": {...}}`) for the test
payment methods Stripe documents:
    pm_card_visa                              succeeds
    pm_card_chargeDeclined                    402 card_declined (generic_decline)
    pm_card_chargeDeclinedInsufficientFunds   402 card_declined (insufficient_funds)
and one of its own, labelled as such:
    pm_standin_processing                     status `processing`: settle it with a webhook
Any other payment method is 400 resource_missing. `fail_next(status)` makes the next calls
answer an outage (429, 500 ...). `requests` records every call; `send_webhook` posts a
correctly signed event (`payment_intent.succeeded`, `payment_intent.payment_failed`,
`invoice.paid`, `invoice.payment_failed`, or any type) to a URL.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from kernel.payments.stripe import StripeSettings, signature_header

API_KEY = "sk_test_standin_0123456789"
WEBHOOK_SECRET = "whsec_standin_0123456789"

DECLINES = {
    "pm_card_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
}
SUCCEEDS = frozenset({"pm_card_visa", "pm_card_mastercard"})
PROCESSING = "pm_standin_processing"


@dataclass(frozen=True)
class Recorded:
    """One request the stand-in received."""

    method: str
    path: str
    form: dict[str, str]
    headers: dict[str, str]


@dataclass
class StripeStandin:
    """The stand-in's state; `url` is its base URL once started."""

    api_key: str = API_KEY
    webhook_secret: str = WEBHOOK_SECRET
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    _replies: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)
    _outages: list[int] = field(default_factory=list)

    def fail_next(self, status: int, times: int = 1) -> None:
        """The next `times` authorized calls answer `status` (an outage or a rate limit)."""
        self._outages.extend([status] * times)

    def settings(self, **overrides: Any) -> StripeSettings:
        """Settings that aim a StripeClient at this stand-in."""
        values: dict[str, Any] = {
            "api_key": self.api_key,
            "base_url": self.url,
            "webhook_secret": self.webhook_secret,
            "timeout_s": 5.0,
        }
        return StripeSettings(**{**values, **overrides})

    def calls(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # -- the app ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/payment_intents", self._create_intent)
        app.router.add_get("/v1/payment_intents/{id}", self._get_intent)
        app.router.add_post("/v1/refunds", self._create_refund)
        return app

    async def _admit(self, request: web.Request) -> tuple[dict[str, str], web.Response | None]:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(
            Recorded(request.method, request.path, form, dict(request.headers.items()))
        )
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return form, _error(401, "invalid_request_error", None, "Invalid API Key provided")
        if self._outages:
            status = self._outages.pop(0)
            return form, _error(status, "api_error", None, "the stand-in is having an outage")
        return form, None

    def _replayed(self, request: web.Request, form: dict[str, str]) -> web.Response | None:
        key = request.headers.get("Idempotency-Key")
        if key is None or key not in self._replies:
            return None
        params, status, body = self._replies[key]
        if params != json.dumps(form, sort_keys=True) + request.path:
            return _error(
                400,
                "idempotency_error",
                None,
                "Keys for idempotent requests can only be used with the same parameters",
            )
        return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})

    def _remember(
        self, request: web.Request, form: dict[str, str], status: int, body: dict[str, Any]
    ) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        if key is not None:
            self._replies[key] = (json.dumps(form, sort_keys=True) + request.path, status, body)
        return web.json_response(body, status=status)

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

    # -- webhooks ---------------------------------------------------------------------------

    def event(self, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"evt_{secrets.token_hex(12)}",
            "object": "event",
            "type": event_type,
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "livemode": False,
            "data": {"object": obj},
        }

    async def send_webhook(
        self,
        url: str,
        event_type: str,
        obj: dict[str, Any],
        *,
        event: dict[str, Any] | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> tuple[int, Any]:
        """POST a signed event (`event` as given, else a new one of `event_type` about
        `obj`) to `url`, as Stripe delivers it; (status, decoded JSON body or text)."""
        payload = json.dumps(event or self.event(event_type, obj)).encode()
        header = signature_header(
            payload,
            secret if secret is not None else self.webhook_secret,
            timestamp if timestamp is not None else int(time.time()),
        )
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                url,
                data=payload,
                headers={"Stripe-Signature": header, "Content-Type": "application/json"},
            ) as response,
        ):
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text


def _nested(form: dict[str, str], prefix: str) -> dict[str, str]:
    start = prefix + "["
    return {k[len(start) : -1]: v for k, v in form.items() if k.startswith(start) and k[-1] == "]"}


def _error(
    status: int, kind: str, code: str | None, message: str, *, param: str | None = None
) -> web.Response:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code is not None:
        error["code"] = code
    if param is not None:
        error["param"] = param
    return web.json_response({"error": error}, status=status)


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
