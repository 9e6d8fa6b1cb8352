"""/v1/market payments beyond the wallet: Stripe's webhook for card payments that finish
after checkout (signed with Stripe-Signature, no user token), and accounting's confirmation
of a bank transfer (realms/market/payments/ does the work)."""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import Unauthorized
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from realms.market.payments import transfer, webhook
from realms.market.payments.provider import CARD_PAYMENTS
from realms.market.routes.access import path_id, require_role

routes = web.RouteTableDef()


class StripeEventIn(Struct):
    """A Stripe event as delivered (only checked for shape here; the signed bytes are what
    count)."""

    id: Annotated[str, Meta(min_length=1, max_length=255)]
    type: Annotated[str, Meta(min_length=1, max_length=100)]


class WebhookOut(Struct):
    status: Literal["processed", "duplicate", "ignored"]


@endpoint(
    routes,
    "POST",
    "/v1/payments/stripe/webhook",
    summary="Stripe webhook (signed with Stripe-Signature): payment_intent.succeeded marks a"
    " card order paid, payment_intent.payment_failed marks its payment failed; each event once",
    tag="market money",
    body=StripeEventIn,
    response=WebhookOut,
    auth=False,
    errors=(400, 401, 503),
)
async def stripe_webhook(request: web.Request, body: StripeEventIn) -> WebhookOut:
    signature = request.headers.get("Stripe-Signature", "")
    if not signature:
        raise Unauthorized("a Stripe-Signature header is required")
    outcome = await webhook.on_webhook(
        request.app[POOL], request.app[CARD_PAYMENTS], await request.read(), signature
    )
    return WebhookOut(outcome)


class ConfirmBody(Struct, forbid_unknown_fields=True):
    reference: Annotated[
        str,
        Meta(min_length=1, max_length=255, pattern=r"\S", description="the bank's reference"),
    ]


class ConfirmedOut(Struct):
    order_id: int
    order_number: str
    status: str
    payment_status: str
    reference: str


@endpoint(
    routes,
    "POST",
    "/v1/orders/{id}/payment/confirm",
    summary="Confirm that a bank-transfer order's money arrived (accounting): the order is"
    " paid, settled to the seller if already delivered, and audited",
    tag="market money",
    body=ConfirmBody,
    response=ConfirmedOut,
    errors=(400, 401, 403, 404, 409),
)
async def confirm_transfer(request: web.Request, body: ConfirmBody) -> ConfirmedOut:
    who = await require_role(request, "accounting")
    order_id = path_id(request, "id")
    done = await transfer.confirm_bank_transfer(
        request.app[POOL], order_id, who.id, body.reference.strip()
    )
    return ConfirmedOut(
        order_id=done.order_id,
        order_number=done.order_number,
        status=done.status,
        payment_status=done.payment_status,
        reference=done.reference,
    )
