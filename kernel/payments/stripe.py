"""Stripe's HTTP API as Switchboard's payment-provider port: settings from the environment,
a client for payment intents and refunds (form-encoded POSTs with an Idempotency-Key; card
declines, refusals and outages mapped onto kernel.errors), and webhook signature checks.

Errors a caller sees (all SwitchboardErrors, so an uncaught one is still a clear answer):
    PaymentDeclined       BadRequest 400   the card was declined (HTTP 402 card_error)
    PaymentRequestInvalid BadRequest 400   Stripe refused the request's values (e.g. an
                                           unknown payment method id)
    IdempotencyConflict   Conflict 409     a key reused with other values
    StripeUnavailable     Unavailable 503  429, 5xx, timeouts, unreachable, our key refused;
                                           carries retry_after_ms
    WebhookSignatureInvalid Unauthorized 401
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec

from kernel.config import ConfigError
from kernel.errors import BadRequest, Conflict, Unauthorized, Unavailable

DEFAULT_BASE_URL = "https://api.stripe.com"
DEFAULT_TIMEOUT_S = 20.0
# Stripe's documented default tolerance between a webhook's signed timestamp and now.
WEBHOOK_TOLERANCE_S = 300
# How long a caller should wait after a refusal that is worth retrying, when Stripe gives no
# Retry-After.
DEFAULT_RETRY_AFTER_MS = 2000
MAX_ERROR_TEXT = 300

# Currencies whose amounts Stripe takes in whole units (docs.stripe.com/currencies).
ZERO_DECIMAL = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND",
        "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip
# Currencies with three decimals: Stripe takes thousandths, in multiples of ten.
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def minor_units(amount: Decimal, currency: str) -> int:
    """`amount` (major units) in the smallest unit Stripe charges `currency` in."""
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if code in THREE_DECIMAL:
        return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * 10
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# -- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StripeSettings:
    """Where Stripe is and the secrets to use it; the key and the webhook secret never
    appear in a repr or a log."""

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    webhook_secret: str | None = field(default=None, repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StripeSettings | None:
        """STRIPE_API_KEY, STRIPE_BASE_URL (default https://api.stripe.com) and
        STRIPE_WEBHOOK_SECRET; None when no key is set (card payments are then off, and a
        realm says so or uses its labelled offline stand-in)."""
        env = os.environ if environ is None else environ
        key = env.get("STRIPE_API_KEY", "").strip()
        if not key:
            return None
        base = env.get("STRIPE_BASE_URL", "").strip() or DEFAULT_BASE_URL
        if not base.startswith(("http://", "https://")):
            raise ConfigError("STRIPE_BASE_URL must start with http:// or https://")
        return cls(
            api_key=key,
            base_url=base.rstrip("/"),
            webhook_secret=env.get("STRIPE_WEBHOOK_SECRET", "").strip() or None,
        )


# -- what Stripe answers ------------------------------------------------------------------------


class PaymentError(msgspec.Struct, kw_only=True):
    """A payment intent's last_payment_error (only the fields read here)."""

    type: str | None = None
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None


class PaymentIntent(msgspec.Struct, kw_only=True):
    """A Stripe PaymentIntent (only the fields read here; others are ignored). `status` is
    one of requires_payment_method, requires_confirmation, requires_action, processing,
    requires_capture, canceled, succeeded."""

    id: str
    status: str
    amount: int
    currency: str
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    last_payment_error: PaymentError | None = None
    customer: str | None = None
    latest_charge: str | None = None


class Refund(msgspec.Struct, kw_only=True):
    """A Stripe Refund: `status` is pending, requires_action, succeeded, failed or canceled."""

    id: str
    status: str
    amount: int
    currency: str
    payment_intent: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


# -- errors -------------------------------------------------------------------------------------


class PaymentDeclined(BadRequest):
    """The card was declined (HTTP 402, type card_error). `failure_code` is Stripe's error
    code (card_declined, expired_card, ...), `decline_code` the issuer's reason when given
    (insufficient_funds, generic_decline, ...). The wire code stays `bad_request`."""

    def __init__(
        self,
        code: str,
        message: str,
        payment_intent_id: str | None,
        *,
        decline_code: str | None = None,
    ) -> None:
        super().__init__(
            f"payment failed: {message} ({decline_code or code})",
            details={
                "failure_code": code,
                "decline_code": decline_code,
                "payment_intent_id": payment_intent_id,
            },
        )
        self.failure_code = code
        self.decline_code = decline_code
        self.provider_message = message
        self.payment_intent_id = payment_intent_id


class PaymentRequestInvalid(BadRequest):
    """Stripe refused the request's values (HTTP 400/404 invalid_request_error), e.g. a
    payment method id that does not exist."""


class IdempotencyConflict(Conflict):
    """An Idempotency-Key was reused with different values (HTTP 400 idempotency_error)."""


class StripeUnavailable(Unavailable):
    """Stripe cannot be used now: rate limited (429), failing (5xx), unreachable, too slow,
    or refusing our credentials. `retry_after_ms` says when to try again."""

    def __init__(self, message: str, *, retry_after_ms: int = DEFAULT_RETRY_AFTER_MS) -> None:
        super().__init__(message, details={"retry_after_ms": retry_after_ms})
        self.retry_after_ms = retry_after_ms


class WebhookSignatureInvalid(Unauthorized):
    """A webhook's Stripe-Signature is missing, malformed, too old or does not match."""


# -- the client ---------------------------------------------------------------------------------


def _form(prefix: str, values: Mapping[str, str] | None) -> list[tuple[str, str]]:
    return [(f"{prefix}[{key}]", value) for key, value in (values or {}).items()]


def _retry_after_ms(header: str | None) -> int:
    try:
        return max(1, int(float(header or "") * 1000))
    except ValueError:
        return DEFAULT_RETRY_AFTER_MS


class StripeClient:
    """Stripe's payment intents and refunds over `session` (the caller opens and closes
    it). Every method either returns what Stripe answered or raises one of this module's
    errors; a caller that retries after StripeUnavailable must reuse its idempotency key."""

    def __init__(self, settings: StripeSettings, session: aiohttp.ClientSession) -> None:
        self.settings = settings
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout_s)

    async def create_payment_intent(
        self,
        *,
        amount_minor: int,
        currency: str,
        payment_method: str,
        idempotency_key: str,
        customer: str | None = None,
        metadata: dict[str, str] | None = None,
        confirm: bool = True,
    ) -> PaymentIntent:
        """POST /v1/payment_intents. With `confirm`, Stripe charges at once and answers
        `succeeded` (or `processing`/`requires_action`: settle those from the webhook);
        redirect-based methods are refused (there is no page to come back to).
        A decline raises PaymentDeclined, whose payment_intent_id names the failed intent."""
        form: list[tuple[str, str]] = [
            ("amount", str(amount_minor)),
            ("currency", currency.lower()),
            ("payment_method", payment_method),
            ("confirm", "true" if confirm else "false"),
        ]
        if confirm:
            form += [
                ("automatic_payment_methods[enabled]", "true"),
                ("automatic_payment_methods[allow_redirects]", "never"),
            ]
        if customer is not None:
            form.append(("customer", customer))
        form += _form("metadata", metadata)
        body = await self.request("POST", "/v1/payment_intents", form, idempotency_key)
        return msgspec.convert(body, PaymentIntent)

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntent:
        """GET /v1/payment_intents/{id}."""
        path = f"/v1/payment_intents/{quote(payment_intent_id, safe='')}"
        body = await self.request("GET", path)
        return msgspec.convert(body, PaymentIntent)

    async def create_refund(
        self,
        *,
        payment_intent: str,
        idempotency_key: str,
        amount_minor: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Refund:
        """POST /v1/refunds: the whole payment, or `amount_minor` of it."""
        form = [("payment_intent", payment_intent)]
        if amount_minor is not None:
            form.append(("amount", str(amount_minor)))
        form += _form("metadata", metadata)
        body = await self.request("POST", "/v1/refunds", form, idempotency_key)
        return msgspec.convert(body, Refund)

    async def request(
        self,
        method: str,
        path: str,
        form: list[tuple[str, str]] | None = None,
        idempotency_key: str | None = None,
        *,
        params: list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        """One call to Stripe: `form` is the POST body, `params` the query string (what GET
        and DELETE carry); the decoded JSON object answered, or one of this module's errors."""
        headers = {"Authorization": f"Bearer {self.settings.api_key}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        try:
            async with self._session.request(
                method,
                self.settings.base_url + path,
                data=form,
                params=params,
                headers=headers,
                timeout=self._timeout,
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                text = await response.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise StripeUnavailable(
                f"the payment provider is unreachable ({type(exc).__name__})"
            ) from exc
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise StripeUnavailable(f"the payment provider answered {status} without a JSON object")
        if status < 300:
            return body
        raise _refusal(status, body, retry_after)


def _refusal(status: int, body: dict[str, Any], retry_after: str | None) -> Exception:
    error = body.get("error")
    error = error if isinstance(error, dict) else {}
    kind = str(error.get("type") or "")
    code = str(error.get("code") or kind or "error")
    message = str(error.get("message") or f"HTTP {status}")[:MAX_ERROR_TEXT]
    if status == 402 or kind == "card_error":
        intent = error.get("payment_intent")
        intent_id = intent.get("id") if isinstance(intent, dict) else None
        decline = error.get("decline_code")
        return PaymentDeclined(
            code, message, intent_id, decline_code=str(decline) if decline else None
        )
    if status == 429 or status >= 500:
        return StripeUnavailable(
            f"the payment provider answered {status}: {message}",
            retry_after_ms=_retry_after_ms(retry_after),
        )
    if status in (401, 403):
        # Our key is wrong or lacks a permission: the caller cannot fix that.
        return StripeUnavailable(f"the payment provider refused our credentials ({status})")
    if kind == "idempotency_error":
        return IdempotencyConflict(f"payment request replayed with other values: {message}")
    return PaymentRequestInvalid(
        f"the payment provider refused the request: {message}",
        details={"provider_code": code, "param": error.get("param")},
    )


# -- webhooks -----------------------------------------------------------------------------------


def webhook_signature(payload: bytes, secret: str, timestamp: int) -> str:
    """The hex HMAC-SHA256 Stripe puts in `v1`: of "<timestamp>.<payload>" with the
    endpoint's signing secret."""
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    """A Stripe-Signature header value for `payload` (what Stripe sends; for stand-ins)."""
    return f"t={timestamp},v1={webhook_signature(payload, secret, timestamp)}"


def verify_webhook(
    payload: bytes,
    signature_header: str,
    secret: str,
    *,
    now: float,
    tolerance_s: int = WEBHOOK_TOLERANCE_S,
) -> dict[str, Any]:
    """The event of a webhook delivery whose Stripe-Signature (`t=<ts>,v1=<hex>[,v1=...]`)
    matches `payload` under `secret` and was signed at most `tolerance_s` before `now`.
    WebhookSignatureInvalid otherwise; BadRequest when a signed payload is not a JSON
    object. Verify the raw bytes received, before any parsing."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in signature_header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise WebhookSignatureInvalid("Stripe-Signature has no valid timestamp") from None
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookSignatureInvalid("Stripe-Signature needs t= and v1=")
    expected = webhook_signature(payload, secret, timestamp)
    if not any(hmac.compare_digest(expected, given) for given in signatures):
        raise WebhookSignatureInvalid("Stripe-Signature does not match the payload")
    if timestamp < now - tolerance_s:
        raise WebhookSignatureInvalid(
            f"Stripe-Signature is older than {tolerance_s} s: a replay is refused"
        )
    try:
        event = json.loads(payload)
    except ValueError:
        raise BadRequest("the webhook's payload is not JSON") from None
    if not isinstance(event, dict):
        raise BadRequest("the webhook's payload is not a JSON object")
    return event
