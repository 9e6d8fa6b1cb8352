"""POST /v1/aichat/billing/stripe/webhook: Stripe's events about aichat subscriptions, invoices
and payments, verified by their Stripe-Signature (no user token), each applied once
(realms/aichat/billing.py). The raw body is verified before anything of it is parsed, as
Stripe asks."""

from __future__ import annotations

import time
from typing import Any, Literal

import msgspec
from aiohttp import web
from msgspec import Struct

from kernel.errors import BadRequest, TooLarge, Unauthorized
from kernel.payments.billing import StripeBilling
from kernel.payments.stripe import verify_webhook
from kernel.web.endpoints import MAX_BODY, endpoint
from kernel.web.keys import POOL
from realms.aichat.billing import (
    AICHAT_STRIPE,
    StripeEvent,
    record_event,
    with_current_subscription,
)

routes = web.RouteTableDef()
_TEXT = {"type": "string", "pattern": "^[^\\u0000]*$"}
# The body as OpenAPI states it (it is read by hand: the signature is checked on its bytes).
EVENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "a Stripe event, as Stripe signs and sends it",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["id", "type", "data"],
                    "properties": {
                        "id": _TEXT,
                        "type": _TEXT,
                        "data": {
                            "type": "object",
                            "properties": {"object": {"type": "object"}},
                        },
                    },
                }
            }
        },
    }
}
_event = msgspec.json.Decoder(StripeEvent)


class WebhookOut(Struct):
    status: Literal["processed", "duplicate", "ignored"]


@endpoint(
    routes,
    "POST",
    "/v1/billing/stripe/webhook",
    summary="Stripe webhook (signed with Stripe-Signature): customer.subscription.*, invoice.*"
    " and payment_intent.* events update subscriptions, invoices and payments, once each",
    tag="aichat billing",
    response=WebhookOut,
    auth=False,
    errors=(400, 401, 413, 503),
    extra=EVENT_BODY,
)
async def stripe_webhook(request: web.Request) -> WebhookOut:
    stripe = request.app[AICHAT_STRIPE].settings
    if stripe is None or not stripe.webhook_secret:
        # Nothing to verify a signature with: no delivery can be authentic (Stripe retries).
        raise Unauthorized(
            "Stripe webhooks are not configured (STRIPE_API_KEY, STRIPE_WEBHOOK_SECRET):"
            " no signature can be verified"
        )
    if request.content_length and request.content_length > MAX_BODY:
        raise TooLarge(f"body is over {MAX_BODY} bytes")
    raw = await request.read()
    verify_webhook(
        raw, request.headers.get("Stripe-Signature", ""), stripe.webhook_secret, now=time.time()
    )
    if b"\\u0000" in raw:  # Postgres text cannot hold NUL
        raise BadRequest("text may not contain NUL (\\u0000) characters")
    try:
        event = _event.decode(raw)
    except msgspec.DecodeError as exc:  # ValidationError is one
        raise BadRequest(f"invalid Stripe event: {exc}") from None
    # Read outside the transaction: a Stripe outage is a 503, and Stripe delivers again.
    event = await with_current_subscription(event, StripeBilling(request.app[AICHAT_STRIPE].client))
    async with request.app[POOL].acquire() as conn, conn.transaction():
        return WebhookOut(await record_event(conn, event))
