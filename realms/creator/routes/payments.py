"""/v1/creator/messages/{id}/purchase and /v1/creator/tips: buying a premium message (its
content then reaches the fan's sockets live, once) and tipping a creator, optionally
anonymously (the creator never learns who: tips are served to creators from the
tips_received view only)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from realms.creator import billing
from realms.creator.accounts import current_account, verified_account

routes = web.RouteTableDef()

Token = Annotated[
    str, Meta(min_length=1, max_length=200, description="the processor's payment token")
]


class PurchaseBody(Struct, forbid_unknown_fields=True, kw_only=True):
    payment_method: billing.PaymentMethod = "card"
    payment_token: Token


class PurchaseOut(Struct, kw_only=True):
    payment: billing.Payment
    charged: bool


class TipBody(Struct, forbid_unknown_fields=True, kw_only=True):
    creator_id: uuid.UUID
    amount: Annotated[int, Meta(gt=0, description="minor units (cents), above zero")]
    message: Annotated[str, Meta(min_length=1, max_length=500, pattern=r"^[^\x00]*$")] | None = None
    is_anonymous: bool = False
    content_id: uuid.UUID | None = None
    message_id: uuid.UUID | None = None
    live_stream_id: uuid.UUID | None = None
    payment_method: billing.PaymentMethod = "card"
    payment_token: Token
    idempotency_key: Annotated[str, Meta(min_length=1, max_length=100)] | None = None


class TipOut(Struct, kw_only=True):
    payment: billing.Payment
    tip_id: uuid.UUID | None


class TipReceived(Struct, kw_only=True):
    """A tip as its creator sees it: `tipper_id` is null for an anonymous tip."""

    id: uuid.UUID
    tipper_id: uuid.UUID | None
    amount: int
    currency: str
    message: str | None
    is_anonymous: bool
    content_id: uuid.UUID | None
    message_id: uuid.UUID | None
    live_stream_id: uuid.UUID | None
    created_at: datetime


def _message_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise BadRequest("message id is not a UUID") from None


@endpoint(
    routes,
    "POST",
    "/v1/messages/{id}/purchase",
    summary="Buy a premium message (idempotent: a bought message is never charged again)",
    tag="creator payments",
    body=PurchaseBody,
    response=PurchaseOut,
    errors=(400, 403, 404, 409),
)
async def purchase(request: web.Request, body: PurchaseBody) -> PurchaseOut:
    buyer = await verified_account(request, "buying")
    payment, charged = await billing.purchase_message(
        request.app[POOL],
        request.app[billing.PROCESSOR],
        buyer=buyer.id,
        message_id=_message_id(request),
        method=body.payment_method,
        token=body.payment_token,
    )
    if payment.status == "failed":
        raise billing.payment_failed(payment)
    return PurchaseOut(payment=payment, charged=charged)


@endpoint(
    routes,
    "POST",
    "/v1/tips",
    summary="Tip a creator (optionally anonymous, on their content, a message or a stream)",
    tag="creator payments",
    body=TipBody,
    response=TipOut,
    status=201,
    errors=(400, 403, 404),
)
async def tip(request: web.Request, body: TipBody) -> TipOut:
    if body.amount <= 0:
        raise BadRequest("a tip's amount is above zero")
    if sum(x is not None for x in (body.content_id, body.message_id, body.live_stream_id)) > 1:
        raise BadRequest("a tip has at most one context: content_id, message_id or live_stream_id")
    tipper = await verified_account(request, "tipping")
    payment, tip_id = await billing.send_tip(
        request.app[POOL],
        request.app[billing.PROCESSOR],
        tipper=tipper.id,
        creator_id=body.creator_id,
        amount=body.amount,
        message=body.message,
        anonymous=body.is_anonymous,
        content_id=body.content_id,
        message_id=body.message_id,
        live_stream_id=body.live_stream_id,
        method=body.payment_method,
        token=body.payment_token,
        idempotency_key=body.idempotency_key,
    )
    if payment.status == "failed":
        raise billing.payment_failed(payment)
    return TipOut(payment=payment, tip_id=tip_id)


@endpoint(
    routes,
    "GET",
    "/v1/tips/received",
    summary="The caller's (a creator's) tips, newest first; anonymous tippers are never named",
    tag="creator payments",
    query=PageQuery,
    response=Page[TipReceived],
    errors=(400,),
)
async def tips_received(request: web.Request, query: PageQuery) -> Page[TipReceived]:
    me = await current_account(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        "SELECT id, tipper_id, amount, currency, message, is_anonymous, content_id, message_id,"
        " live_stream_id, created_at FROM creator.tips_received"
        " WHERE creator_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))"
        " ORDER BY created_at DESC, id DESC LIMIT $4",
        me.id,
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
    )
    items = [TipReceived(**dict(r)) for r in rows]
    return page_of(items, query.limit, lambda t: (t.created_at.isoformat(), str(t.id)))
