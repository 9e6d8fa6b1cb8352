"""/v1/academy/plans and /v1/academy/subscriptions: subscription plans (active ones public,
admins manage them) and a user's subscriptions. There is no payment provider here: a
subscription starts `trialing` (plans with trial days) or `active`, and the lifecycle job
moves it on (realms/academy/jobs.py); Stripe ids stay empty."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from realms.academy.rls import as_user, trusted

routes = web.RouteTableDef()

PlanType = Literal["monthly", "yearly", "lifetime"]


class PlanIn(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    price: Decimal  # 0 to 99,999,999.99 (decimal(10,2)), checked by _check_price
    features: dict[str, Any]
    description: Annotated[str, Meta(max_length=5000)] | None = None
    plan_type: PlanType = "monthly"
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}\Z")] = "USD"
    is_active: bool = True
    trial_days: Annotated[int, Meta(ge=0, le=365)] = 0
    max_users: Annotated[int, Meta(ge=1)] | None = None
    level_access_limit: Annotated[int, Meta(ge=0, le=99)] = 99


class PlanPatch(Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    description: Annotated[str, Meta(max_length=5000)] | None = None
    price: Decimal | None = None
    features: dict[str, Any] | None = None
    is_active: bool | None = None
    trial_days: Annotated[int, Meta(ge=0, le=365)] | None = None
    level_access_limit: Annotated[int, Meta(ge=0, le=99)] | None = None


class PlanOut(Struct):
    id: uuid.UUID
    name: str
    description: str | None
    plan_type: str | None
    price: Decimal
    currency: str | None
    features: dict[str, Any]
    is_active: bool | None
    trial_days: int | None
    max_users: int | None
    level_access_limit: int | None


class SubscribeIn(Struct, forbid_unknown_fields=True):
    plan_id: uuid.UUID


class SubscriptionOut(Struct):
    id: uuid.UUID
    plan_id: uuid.UUID
    status: str | None
    current_period_start: datetime | None
    current_period_end: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool | None
    created_at: datetime


_PLAN = (
    "id, name, description, plan_type, price, currency, features, is_active, trial_days,"
    " max_users, level_access_limit"
)
_SUB = (
    "id, plan_id, status, current_period_start, current_period_end, trial_end,"
    " cancel_at_period_end, created_at"
)
# The end of a period that starts at $x for a plan type (NULL: a lifetime plan never ends).
PERIOD_END = (
    "CASE {t} WHEN 'yearly' THEN {x} + interval '1 year'"
    " WHEN 'lifetime' THEN NULL ELSE {x} + interval '1 month' END"
)


def _check_price(price: Decimal | None) -> None:
    if price is not None and not (0 <= price < Decimal("100000000") and price == round(price, 2)):
        raise BadRequest("price must be 0 to 99999999.99, with at most two decimals")


def _plan_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["plan_id"])
    except ValueError:
        raise BadRequest("plan_id is not a UUID") from None


@endpoint(
    routes,
    "GET",
    "/v1/plans",
    summary="Subscription plans (active ones; admins: all)",
    tag="academy",
    response=list[PlanOut],
    errors=(401,),
)
async def list_plans(request: web.Request) -> list[PlanOut]:
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        rows = await conn.fetch(
            f"SELECT {_PLAN} FROM academy.subscription_plans ORDER BY price, name"
        )
    return [PlanOut(**dict(r)) for r in rows]


@endpoint(
    routes,
    "POST",
    "/v1/plans",
    summary="Create a plan (admins)",
    tag="academy",
    body=PlanIn,
    response=PlanOut,
    status=201,
    errors=(400, 401, 403),
)
async def create_plan(request: web.Request, body: PlanIn) -> PlanOut:
    who = await caller(request)
    _check_price(body.price)
    fields = msgspec.structs.asdict(body)
    params = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
    async with as_user(request.app[POOL], who.user_id) as conn:
        try:
            row = await conn.fetchrow(
                f"INSERT INTO academy.subscription_plans ({', '.join(fields)}) VALUES ({params})"
                f" RETURNING {_PLAN}",
                *fields.values(),
            )
        except asyncpg.InsufficientPrivilegeError:
            raise Forbidden("only admins manage plans") from None
    return PlanOut(**dict(row))


@endpoint(
    routes,
    "PATCH",
    "/v1/plans/{plan_id}",
    summary="Edit a plan (admins)",
    tag="academy",
    body=PlanPatch,
    response=PlanOut,
    errors=(400, 401, 403, 404),
)
async def edit_plan(request: web.Request, body: PlanPatch) -> PlanOut:
    who = await caller(request)
    _check_price(body.price)
    changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
    if not changes:
        raise BadRequest("nothing to change")
    sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(changes, start=2))
    async with as_user(request.app[POOL], who.user_id) as conn:
        if not await conn.fetchval("SELECT academy.is_admin()"):
            raise Forbidden("only admins manage plans")
        row = await conn.fetchrow(
            f"UPDATE academy.subscription_plans SET {sets} WHERE id = $1 RETURNING {_PLAN}",
            _plan_id(request),
            *changes.values(),
        )
    if row is None:
        raise NotFound("no such plan")
    return PlanOut(**dict(row))


@endpoint(
    routes,
    "POST",
    "/v1/subscriptions",
    summary="Subscribe to a plan",
    tag="academy",
    body=SubscribeIn,
    response=SubscriptionOut,
    status=201,
    errors=(400, 401, 404, 409),
)
async def subscribe(request: web.Request, body: SubscribeIn) -> SubscriptionOut:
    """`trialing` until trial_end when the plan has trial days, else `active` for one period
    (none for lifetime plans). One live subscription per user at a time."""
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        plan = await conn.fetchrow(
            "SELECT id, plan_type, coalesce(trial_days, 0) AS trial_days"
            " FROM academy.subscription_plans WHERE id = $1 AND is_active IS TRUE",
            body.plan_id,
        )
        if plan is None:
            raise NotFound("no such active plan")
        async with trusted(conn):
            # one at a time per user: concurrent subscribes of a user queue here
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 14))", str(who.user_id)
            )
            if await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM academy.user_subscriptions WHERE user_id = $1"
                " AND status IN ('active', 'trialing', 'past_due'))",
                who.user_id,
            ):
                raise Conflict("you already have a subscription; cancel it first")
            end = PERIOD_END.format(t="$3::text", x="now()")
            row = await conn.fetchrow(
                "INSERT INTO academy.user_subscriptions (user_id, plan_id, status,"
                " current_period_start, current_period_end, trial_end)"
                " VALUES ($1, $2, CASE WHEN $4 > 0 THEN 'trialing' ELSE 'active' END, now(),"
                f" CASE WHEN $4 > 0 THEN now() + make_interval(days => $4) ELSE {end} END,"
                " CASE WHEN $4 > 0 THEN now() + make_interval(days => $4) END)"
                f" RETURNING {_SUB}",
                who.user_id,
                plan["id"],
                plan["plan_type"],
                plan["trial_days"],
            )
    return SubscriptionOut(**dict(row))


@endpoint(
    routes,
    "GET",
    "/v1/subscriptions",
    summary="The caller's subscriptions",
    tag="academy",
    response=list[SubscriptionOut],
    errors=(401,),
)
async def my_subscriptions(request: web.Request) -> list[SubscriptionOut]:
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        rows = await conn.fetch(
            f"SELECT {_SUB} FROM academy.user_subscriptions ORDER BY created_at DESC LIMIT 100"
        )
    return [SubscriptionOut(**dict(r)) for r in rows]


@endpoint(
    routes,
    "POST",
    "/v1/subscriptions/{subscription_id}/cancel",
    summary="Cancel at the end of the current period",
    tag="academy",
    response=SubscriptionOut,
    errors=(400, 401, 404, 409),
)
async def cancel(request: web.Request) -> SubscriptionOut:
    who = await caller(request)
    try:
        subscription_id = uuid.UUID(request.match_info["subscription_id"])
    except ValueError:
        raise BadRequest("subscription_id is not a UUID") from None
    async with as_user(request.app[POOL], who.user_id) as conn:
        if not await conn.fetchval(  # RLS: only one's own is visible
            "SELECT EXISTS (SELECT 1 FROM academy.user_subscriptions WHERE id = $1)",
            subscription_id,
        ):
            raise NotFound("no such subscription of yours")
        async with trusted(conn):
            row = await conn.fetchrow(
                "UPDATE academy.user_subscriptions SET cancel_at_period_end = true,"
                " status = CASE WHEN status = 'trialing' OR current_period_end IS NULL"
                "               THEN 'canceled' ELSE status END"
                " WHERE id = $1 AND user_id = $2"
                "   AND status IN ('active', 'trialing', 'past_due')"
                f" RETURNING {_SUB}",
                subscription_id,
                who.user_id,
            )
    if row is None:
        raise Conflict("this subscription has ended already")
    return SubscriptionOut(**dict(row))
