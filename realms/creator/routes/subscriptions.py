"""/v1/creator/subscriptions and /v1/creator/me/subscribers: a fan subscribes to a creator
(monthly, yearly or lifetime at the creator's prices, paid through the payment flow: a failed
payment gives no access), lists and cancels theirs (at period end); a creator lists their
subscribers. realms/creator/subscriptions.py holds the rules."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import Forbidden, NotFound
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid
from realms.creator import billing
from realms.creator import subscriptions as plans
from realms.creator.accounts import current_account, verified_account

routes = web.RouteTableDef()

Token = Annotated[
    str, Meta(min_length=1, max_length=200, description="the processor's payment token")
]


class SubscribeBody(Struct, forbid_unknown_fields=True, kw_only=True):
    creator_id: uuid.UUID
    plan: plans.Plan = "monthly"
    auto_renew: bool = True
    payment_method: billing.PaymentMethod = "card"
    payment_token: Token
    idempotency_key: Annotated[str, Meta(min_length=1, max_length=100)] | None = None


class Subscribed(Struct, kw_only=True):
    subscription: plans.SubscriptionOut
    payment: billing.Payment | None
    charged: bool


class CancelBody(Struct, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=500, pattern=r"^[^\x00]*$")] | None = None


class MineQuery(PageQuery, kw_only=True):
    status: Literal["active", "cancelled", "expired", "pending", "failed"] | None = None


class SubscribersQuery(PageQuery, kw_only=True):
    include_ended: bool = False


class Subscriber(Struct, kw_only=True):
    subscription: plans.SubscriptionOut
    username: str
    display_name: str | None


def _page(rows: list[plans.SubscriptionOut], limit: int) -> Page[plans.SubscriptionOut]:
    return page_of(rows, limit, lambda s: (s.created_at.isoformat(), str(s.id)))


@endpoint(
    routes,
    "POST",
    "/v1/subscriptions",
    summary="Subscribe to a creator (monthly, yearly or lifetime) through the payment flow",
    tag="creator subscriptions",
    body=SubscribeBody,
    response=Subscribed,
    status=201,
    errors=(400, 403, 404, 409),
)
async def subscribe(request: web.Request, body: SubscribeBody) -> Subscribed:
    fan = await verified_account(request, "subscribing")
    subscription_id, payment, charged = await plans.subscribe(
        request.app[POOL],
        request.app[billing.PROCESSOR],
        fan=fan.id,
        creator_id=body.creator_id,
        plan=body.plan,
        auto_renew=body.auto_renew,
        method=body.payment_method,
        token=body.payment_token,
        idempotency_key=body.idempotency_key,
    )
    if payment is not None and payment.status == "failed":
        raise billing.payment_failed(payment)
    return Subscribed(
        subscription=await _one(request, subscription_id, fan.id), payment=payment, charged=charged
    )


async def _one(
    request: web.Request, subscription_id: uuid.UUID, me: uuid.UUID
) -> plans.SubscriptionOut:
    row = await request.app[POOL].fetchrow(
        f"SELECT {plans.COLUMNS} FROM creator.subscriptions s"
        " WHERE s.id = $1 AND $2 IN (s.subscriber_id, s.creator_id)",
        subscription_id,
        me,
    )
    if row is None:
        raise NotFound(f"no subscription {subscription_id}")
    return plans.subscription(row)


@endpoint(
    routes,
    "GET",
    "/v1/subscriptions",
    summary="The caller's subscriptions (as a fan), newest first",
    tag="creator subscriptions",
    query=MineQuery,
    response=Page[plans.SubscriptionOut],
    errors=(400,),
)
async def mine(request: web.Request, query: MineQuery) -> Page[plans.SubscriptionOut]:
    me = await current_account(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        f"SELECT {plans.COLUMNS} FROM creator.subscriptions s WHERE s.subscriber_id = $1"
        " AND ($2::text IS NULL OR s.status = $2)"
        " AND ($3::timestamptz IS NULL OR (s.created_at, s.id) < ($3, $4::uuid))"
        " ORDER BY s.created_at DESC, s.id DESC LIMIT $5",
        me.id,
        query.status,
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
    )
    return _page([plans.subscription(r) for r in rows], query.limit)


@endpoint(
    routes,
    "GET",
    "/v1/subscriptions/{id}",
    summary="One subscription the caller is a party to",
    tag="creator subscriptions",
    response=plans.SubscriptionOut,
    errors=(400, 404),
)
async def get_subscription(request: web.Request) -> plans.SubscriptionOut:
    me = await current_account(request)
    return await _one(request, path_uuid(request), me.id)


@endpoint(
    routes,
    "POST",
    "/v1/subscriptions/{id}/cancel",
    summary="Cancel at period end: access stays until expires_at, nothing renews",
    tag="creator subscriptions",
    body=CancelBody,
    response=plans.SubscriptionOut,
    errors=(400, 404, 409),
)
async def cancel(request: web.Request, body: CancelBody) -> plans.SubscriptionOut:
    me = await current_account(request)
    subscription_id = path_uuid(request)
    await plans.cancel(
        request.app[POOL], subscriber=me.id, subscription_id=subscription_id, reason=body.reason
    )
    return await _one(request, subscription_id, me.id)


@endpoint(
    routes,
    "GET",
    "/v1/me/subscribers",
    summary="The calling creator's subscribers with access now (all with include_ended)",
    tag="creator subscriptions",
    query=SubscribersQuery,
    response=Page[Subscriber],
    errors=(400, 403),
)
async def subscribers(request: web.Request, query: SubscribersQuery) -> Page[Subscriber]:
    me = await current_account(request)
    if not me.is_creator:
        raise Forbidden("only creators have subscribers")
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        f"SELECT {plans.COLUMNS}, u.username, u.display_name FROM creator.subscriptions s"
        " JOIN creator.users u ON u.id = s.subscriber_id WHERE s.creator_id = $1"
        " AND s.status NOT IN ('pending', 'failed') AND ($2 OR (s.status IN ('active', 'cancelled')"
        "             AND (s.expires_at IS NULL OR s.expires_at > now())))"
        " AND ($3::timestamptz IS NULL OR (s.created_at, s.id) < ($3, $4::uuid))"
        " ORDER BY s.created_at DESC, s.id DESC LIMIT $5",
        me.id,
        query.include_ended,
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
    )
    items = [
        Subscriber(
            subscription=plans.subscription(r),
            username=r["username"],
            display_name=r["display_name"],
        )
        for r in rows
    ]
    return page_of(
        items,
        query.limit,
        lambda s: (s.subscription.created_at.isoformat(), str(s.subscription.id)),
    )
