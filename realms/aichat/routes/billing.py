"""/v1/aichat plans, subscription, usage, invoices and payments: read views of the seed's
billing tables for the caller (the subscription is changed by routes/subscription.py; payments
and invoices are written from Stripe's answers, its webhooks and the month-end job)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import NotFound
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from realms.aichat.usage import next_month, plan_of

routes = web.RouteTableDef()


class PlanOut(Struct):
    id: uuid.UUID
    name: str
    monthly_price: Decimal
    yearly_price: Decimal | None
    monthly_token_quota: int
    monthly_message_quota: int | None
    max_conversations: int | None
    max_messages_per_conversation: int | None
    features: list[Any]


class SubscriptionOut(Struct):
    id: uuid.UUID
    plan: str
    status: str
    current_period_start: datetime
    current_period_end: datetime
    cancel_at_period_end: bool
    cancellation_date: datetime | None
    cancellation_reason: str | None
    trial_ends_at: datetime | None


class ModelUsage(Struct):
    model: str
    provider: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: Decimal


class UsageOut(Struct):
    month: date
    plan: str
    tokens_used: int
    token_quota: int
    messages_count: int
    message_quota: int | None
    cost_usd: Decimal
    resets_on: date
    by_model: list[ModelUsage]


class UsageQuery(Struct, kw_only=True):
    month: Annotated[str, Meta(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] | None = None


class InvoiceOut(Struct):
    id: uuid.UUID
    invoice_number: str
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    status: str
    due_date: date | None
    paid_at: datetime | None
    pdf_url: str | None
    created_at: datetime


class PaymentOut(Struct):
    id: uuid.UUID
    amount: Decimal
    currency: str
    status: str
    description: str | None
    created_at: datetime


@endpoint(
    routes,
    "GET",
    "/v1/plans",
    summary="The plans on offer",
    tag="aichat billing",
    response=list[PlanOut],
    auth=False,
)
async def plans(request: web.Request) -> list[PlanOut]:
    rows = await request.app[POOL].fetch(
        "SELECT * FROM aichat.plans WHERE is_active ORDER BY monthly_price, name"
    )
    return [
        PlanOut(
            id=r["id"],
            name=r["name"],
            monthly_price=r["monthly_price"],
            yearly_price=r["yearly_price"],
            monthly_token_quota=r["monthly_token_quota"],
            monthly_message_quota=r["monthly_message_quota"],
            max_conversations=r["max_conversations"],
            max_messages_per_conversation=r["max_messages_per_conversation"],
            features=list(r["features"]),
        )
        for r in rows
    ]


@endpoint(
    routes,
    "GET",
    "/v1/subscription",
    summary="The caller's subscription (404: on the free tier without one)",
    tag="aichat billing",
    response=SubscriptionOut,
    errors=(404,),
)
async def subscription(request: web.Request) -> SubscriptionOut:
    who = await caller(request)
    return await subscription_of(request.app[POOL], who.user_id)


async def subscription_of(pool: asyncpg.Pool, user_id: uuid.UUID) -> SubscriptionOut:
    """The user's subscription row as the API shows it; NotFound when there is none."""
    r = await pool.fetchrow(
        "SELECT s.*, p.name AS plan FROM aichat.subscriptions s"
        " JOIN aichat.plans p ON p.id = s.plan_id WHERE s.user_id = $1",
        user_id,
    )
    if r is None:
        raise NotFound("no subscription: the account is on its plan tier's free terms")
    return SubscriptionOut(
        id=r["id"],
        plan=r["plan"],
        status=r["status"],
        current_period_start=r["current_period_start"],
        current_period_end=r["current_period_end"],
        cancellation_reason=r["cancellation_reason"],
        cancel_at_period_end=r["cancel_at_period_end"],
        cancellation_date=r["cancellation_date"],
        trial_ends_at=r["trial_ends_at"],
    )


@endpoint(
    routes,
    "GET",
    "/v1/usage",
    summary="Token and message usage of a month (default: this one), by model",
    tag="aichat billing",
    query=UsageQuery,
    response=UsageOut,
)
async def usage(request: web.Request, query: UsageQuery) -> UsageOut:
    who = await caller(request)
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        current = await conn.fetchval("SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date")
        month = date.fromisoformat(f"{query.month}-01") if query.month else current
        plan = await plan_of(conn, who.user_id)
        rows = await conn.fetch(
            "SELECT model, provider, count(*) AS requests, sum(prompt_tokens) AS p,"
            " sum(completion_tokens) AS c, sum(total_tokens) AS t, sum(cost_usd) AS cost"
            " FROM aichat.token_usage WHERE user_id = $1 AND billing_month = $2"
            " GROUP BY model, provider ORDER BY sum(total_tokens) DESC, model",
            who.user_id,
            month,
        )
        tracked = await conn.fetchrow(
            "SELECT messages_count FROM aichat.usage_tracking"
            " WHERE user_id = $1 AND billing_month = $2",
            who.user_id,
            month,
        )
    by_model = [
        ModelUsage(r["model"], r["provider"], r["requests"], r["p"], r["c"], r["t"], r["cost"])
        for r in rows
    ]
    return UsageOut(
        month=month,
        plan=plan.name,
        tokens_used=sum(m.total_tokens for m in by_model),
        token_quota=plan.monthly_token_quota,
        messages_count=tracked["messages_count"] if tracked else 0,
        message_quota=plan.monthly_message_quota,
        cost_usd=sum((m.cost_usd for m in by_model), Decimal(0)),
        resets_on=next_month(month),
        by_model=by_model,
    )


@endpoint(
    routes,
    "GET",
    "/v1/invoices",
    summary="The caller's invoices, newest first",
    tag="aichat billing",
    query=PageQuery,
    response=Page[InvoiceOut],
)
async def invoices(request: web.Request, query: PageQuery) -> Page[InvoiceOut]:
    who = await caller(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        "SELECT * FROM aichat.invoices WHERE user_id = $1"
        " AND ($2::timestamp IS NULL OR (created_at, id) < ($2, $3))"
        " ORDER BY created_at DESC, id DESC LIMIT $4",
        who.user_id,
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
    )
    items = [
        InvoiceOut(
            r["id"],
            r["invoice_number"],
            r["subtotal"],
            r["tax"],
            r["total"],
            r["status"],
            r["due_date"],
            r["paid_at"],
            r["pdf_url"],
            r["created_at"],
        )
        for r in rows
    ]
    return page_of(items, query.limit, lambda i: (i.created_at, i.id))


@endpoint(
    routes,
    "GET",
    "/v1/payments",
    summary="The caller's payments, newest first",
    tag="aichat billing",
    query=PageQuery,
    response=Page[PaymentOut],
)
async def payments(request: web.Request, query: PageQuery) -> Page[PaymentOut]:
    who = await caller(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        "SELECT * FROM aichat.payments WHERE user_id = $1"
        " AND ($2::timestamp IS NULL OR (created_at, id) < ($2, $3))"
        " ORDER BY created_at DESC, id DESC LIMIT $4",
        who.user_id,
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
    )
    items = [
        PaymentOut(
            r["id"], r["amount"], r["currency"], r["status"], r["description"], r["created_at"]
        )
        for r in rows
    ]
    return page_of(items, query.limit, lambda p: (p.created_at, p.id))
