"""The shared part of the local Stripe stand-in for tests: Stripe's test payment methods,
the HTTP plumbing every endpoint goes through, errors, and events and signed webhooks.

Speaks the shapes of api.stripe.com: form-encoded requests, `Authorization: Bearer <key>`,
`Idempotency-Key` replaying the first answer, errors as `{"error": {...}}`. `fail_next(status)`
makes the next calls answer an outage (429, 500 ...). `requests` records every call;
`send_webhook` posts a correctly signed event (`payment_intent.succeeded`,
`payment_intent.payment_failed`, `invoice.paid`, `invoice.payment_failed`, or any type) to a URL.
`events` lists every event Stripe would send, in order, each with a copy of its object then;
`deliver(url)` posts the undelivered ones, signed.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from collections.abc import Callable
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
# Stripe's test card that attaches fine and then declines every charge.
CHARGE_FAILS = "pm_card_chargeCustomerFail"
# Brand and last four digits of the cards the attach endpoint takes.
CARDS = {
    "pm_card_visa": ("visa", "4242"),
    "pm_card_mastercard": ("mastercard", "4444"),
    CHARGE_FAILS: ("visa", "0341"),
}
GENERIC_DECLINE = {
    "type": "card_error",
    "code": "card_declined",
    "decline_code": "generic_decline",
    "message": "Your card was declined.",
}


@dataclass(frozen=True)
class Recorded:
    """One request the stand-in received."""

    method: str
    path: str
    form: dict[str, str]
    headers: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)


IDEMPOTENCY_WINDOW_S = 24 * 3600


def _wall_clock() -> int:
    return int(time.time())


@dataclass
class StandinBase:
    """The state every part of the stand-in shares; `url` is its base URL once started.
    `intents` holds payment intents, made directly or by charging an invoice."""

    api_key: str = API_KEY
    webhook_secret: str = WEBHOOK_SECRET
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    now: Callable[[], int] = field(default=_wall_clock)
    events: list[dict[str, Any]] = field(default_factory=list)
    _delivered: int = 0
    # Idempotency-Key -> (the request it answered, when, status, body); Stripe forgets a key
    # after 24 hours, and so does the stand-in (by `now`).
    _replies: dict[str, tuple[str, int, int, dict[str, Any]]] = field(default_factory=dict)
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

    # -- the HTTP plumbing ------------------------------------------------------------------

    async def _admit(self, request: web.Request) -> tuple[dict[str, str], web.Response | None]:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                form,
                dict(request.headers.items()),
                dict(request.query.items()),
            )
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
        params, at, status, body = self._replies[key]
        if self.now() - at >= IDEMPOTENCY_WINDOW_S:
            del self._replies[key]
            return None
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
            request_text = json.dumps(form, sort_keys=True) + request.path
            self._replies[key] = (request_text, self.now(), status, body)
        return web.json_response(body, status=status)

    async def _start(self, request: web.Request) -> tuple[dict[str, str], web.Response | None]:
        form, refused = await self._admit(request)
        if refused is not None:
            return form, refused
        return form, self._replayed(request, form)

    # -- events and webhooks ----------------------------------------------------------------

    def _emit(self, event_type: str, obj: dict[str, Any]) -> None:
        self.events.append(self.event(event_type, copy.deepcopy(obj)))

    def event(self, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"evt_{secrets.token_hex(12)}",
            "object": "event",
            "type": event_type,
            "api_version": "2024-06-20",
            "created": self.now(),
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

    async def deliver(self, url: str) -> list[tuple[int, Any]]:
        """POST every event not delivered yet to `url`, in order and signed, as Stripe does;
        each (status, answer). They count as delivered whatever the answer."""
        answers: list[tuple[int, Any]] = []
        while self._delivered < len(self.events):
            event = self.events[self._delivered]
            self._delivered += 1
            answers.append(
                await self.send_webhook(url, event["type"], event["data"]["object"], event=event)
            )
        return answers


def _nested(form: dict[str, str], prefix: str) -> dict[str, str]:
    start = prefix + "["
    return {k[len(start) : -1]: v for k, v in form.items() if k.startswith(start) and k[-1] == "]"}


def _missing(what: str, given: str, param: str, *, status: int = 400) -> web.Response:
    return _error(
        status,
        "invalid_request_error",
        "resource_missing",
        f"No such {what}: '{given}'",
        param=param,
    )


def _invalid(message: str) -> web.Response:
    return _error(400, "invalid_request_error", None, message)


def _error(
    status: int, kind: str, code: str | None, message: str, *, param: str | None = None
) -> web.Response:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code is not None:
        error["code"] = code
    if param is not None:
        error["param"] = param
    return web.json_response({"error": error}, status=status)
