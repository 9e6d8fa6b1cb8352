"""Subscription tiers: an analyst's own pricing plans (create, edit, deactivate, soft delete)
and every user's view of an analyst's active tiers. Prices are integer paise (INR)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import asyncpg
from aiohttp import web
from msgspec import UNSET, Meta, Struct, UnsetType

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.web.auth import Caller, caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid

routes = web.RouteTableDef()

TierName = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"\S")]
Description = Annotated[str, Meta(max_length=5000, description="Markdown")]
Paise = Annotated[int, Meta(ge=0, le=2_147_483_647, description="integer paise (INR)")]
Order = Annotated[int, Meta(ge=0, le=10_000)]
Features = Annotated[list[Annotated[str, Meta(min_length=1, max_length=200)]], Meta(max_length=50)]
PostsPerDay = Annotated[int, Meta(ge=0, le=10_000, description="null = unlimited")]


class TierCreate(Struct, forbid_unknown_fields=True):
    """A tier priced at 0 a month is the analyst's free tier (`is_free_tier` follows the
    price); each analyst has at most one."""

    # a free tier has no yearly price but 0 (_check_prices; `price_yearly` under 12 months'
    # price relates two fields, which JSON Schema cannot)
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "anyOf": [
                {"properties": {"price_monthly": {"minimum": 1}}},
                {"properties": {"price_yearly": {"enum": [0, None]}}},
            ]
        },
    )
    tier_name: TierName
    price_monthly: Paise
    price_yearly: Paise | None = None
    tier_description: Description | None = None
    tier_order: Order = 0
    currency: Literal["INR"] = "INR"
    features: Features | None = None
    posts_per_day: PostsPerDay | None = None
    chat_access: bool = False
    priority_support: bool = False
    is_active: bool = True


class TierEdit(Struct, forbid_unknown_fields=True):
    """Only the fields present change; null clears a nullable field. Prices apply to new
    subscriptions: existing ones keep the price they paid (subscriptions.price_paid)."""

    tier_name: TierName | UnsetType = UNSET
    price_monthly: Paise | UnsetType = UNSET
    price_yearly: Paise | UnsetType | None = UNSET
    tier_description: Description | UnsetType | None = UNSET
    tier_order: Order | UnsetType = UNSET
    features: Features | UnsetType | None = UNSET
    posts_per_day: PostsPerDay | UnsetType | None = UNSET
    chat_access: bool | UnsetType = UNSET
    priority_support: bool | UnsetType = UNSET
    is_active: bool | UnsetType = UNSET


class TierListQuery(PageQuery, kw_only=True):
    pass


class SubscriptionTier(Struct):
    id: uuid.UUID
    analyst_id: uuid.UUID
    tier_name: str
    tier_description: str | None
    tier_order: int
    price_monthly: int
    price_yearly: int | None
    currency: str
    features: list[str] | None
    posts_per_day: int | None
    chat_access: bool
    priority_support: bool
    is_active: bool
    is_free_tier: bool
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


_COLUMNS = (
    "t.id, t.analyst_id, t.tier_name, t.tier_description, t.tier_order, t.price_monthly,"
    " t.price_yearly, t.currency, t.features, t.posts_per_day, t.chat_access,"
    " t.priority_support, t.is_active, t.is_free_tier, t.created_at, t.updated_at, t.deleted_at"
)
# An analyst whose tiers every user may see: approved, non-deleted profile of a live user.
_PUBLIC_ANALYST = (
    "EXISTS (SELECT 1 FROM analyst.analyst_profiles p JOIN analyst.users u ON u.id = p.user_id"
    " WHERE p.user_id = {id} AND p.verification_status = 'approved' AND p.deleted_at IS NULL"
    " AND u.deleted_at IS NULL AND u.is_active)"
)
# Subscriptions that have not ended: a tier under them cannot switch between free and paid.
_LIVE_SUBSCRIPTION = (
    "EXISTS (SELECT 1 FROM analyst.subscriptions s WHERE s.tier_id = $1"
    " AND s.status IN ('active', 'pending_payment', 'suspended') AND s.deleted_at IS NULL)"
)
_UNIQUE_MESSAGES = {
    "subscription_tiers_unique_name_per_analyst": "you already have a tier with this name",
    "subscription_tiers_one_free_tier_per_analyst": "you already have a free tier (price 0)",
}


def _tier(row: asyncpg.Record) -> SubscriptionTier:
    return SubscriptionTier(**{name: row[name] for name in SubscriptionTier.__struct_fields__})


def _check_prices(monthly: int, yearly: int | None) -> None:
    """The seed's price rules, with messages naming the fields (the schema checks them too)."""
    if monthly == 0 and yearly not in (None, 0):
        raise BadRequest("`price_yearly` of a free tier (`price_monthly` 0) must be 0 or null")
    if monthly > 0 and yearly is not None and not 0 < yearly < monthly * 12:
        raise BadRequest(
            f"`price_yearly` must be above 0 and below 12 x `price_monthly` ({monthly * 12})"
        )


def _constraint_error(exc: asyncpg.IntegrityConstraintViolationError) -> Exception:
    name = getattr(exc, "constraint_name", None) or ""
    if isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict(_UNIQUE_MESSAGES.get(name, "this tier conflicts with another one"))
    return BadRequest(f"the tier breaks the rule `{name}`")


async def _analyst(request: web.Request) -> Caller:
    who = await caller(request)
    if who.user_type != "analyst":
        raise Forbidden("only analysts have subscription tiers")
    return who


async def _page(
    request: web.Request, query: TierListQuery, analyst_id: uuid.UUID, *, only_active: bool
) -> Page[SubscriptionTier]:
    """The analyst's non-deleted tiers in display order (tier_order, then id)."""
    after = decode_cursor(query.cursor, int, uuid.UUID)
    rows = await request.app[POOL].fetch(
        f"SELECT {_COLUMNS} FROM analyst.subscription_tiers t"
        " WHERE t.analyst_id = $1 AND t.deleted_at IS NULL AND (t.is_active OR NOT $2)"
        " AND ($3::int IS NULL OR (t.tier_order, t.id) > ($3::int, $4::uuid))"
        " ORDER BY t.tier_order, t.id LIMIT $5",
        analyst_id,
        only_active,
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
    )
    return page_of([_tier(row) for row in rows], query.limit, lambda t: (t.tier_order, t.id))


@endpoint(
    routes,
    "GET",
    "/v1/analysts/{analyst_id}/tiers",
    summary="An analyst's active tiers, in display order",
    tag="tiers",
    query=TierListQuery,
    response=Page[SubscriptionTier],
    errors=(404,),
)
async def analyst_tiers(request: web.Request, query: TierListQuery) -> Page[SubscriptionTier]:
    """Every user sees the active tiers of an approved analyst; the analyst and admins see
    them whatever the profile's state. 404 for an analyst the caller may not see."""
    who = await caller(request)
    analyst_id = path_uuid(request, "analyst_id")
    if not (who.is_admin or who.user_id == analyst_id):
        visible = await request.app[POOL].fetchval(
            "SELECT " + _PUBLIC_ANALYST.format(id="$1"), analyst_id
        )
        if not visible:
            raise NotFound("no such analyst")
    return await _page(request, query, analyst_id, only_active=True)


@endpoint(
    routes,
    "GET",
    "/v1/me/tiers",
    summary="The caller's own tiers, active and inactive",
    tag="tiers",
    query=TierListQuery,
    response=Page[SubscriptionTier],
    errors=(403,),
)
async def own_tiers(request: web.Request, query: TierListQuery) -> Page[SubscriptionTier]:
    who = await _analyst(request)
    return await _page(request, query, who.user_id, only_active=False)


@endpoint(
    routes,
    "GET",
    "/v1/tiers/{tier_id}",
    summary="One tier",
    tag="tiers",
    response=SubscriptionTier,
    errors=(404,),
)
async def get_tier(request: web.Request) -> SubscriptionTier:
    """Visible to every user while active and its analyst is approved; always to its analyst,
    admins and users with a subscription to it (whose tier may since be retired)."""
    who = await caller(request)
    row = await request.app[POOL].fetchrow(
        f"SELECT {_COLUMNS},"
        " (t.is_active AND t.deleted_at IS NULL AND "
        + _PUBLIC_ANALYST.format(id="t.analyst_id")
        + ") AS public,"
        " EXISTS (SELECT 1 FROM analyst.subscriptions s WHERE s.tier_id = t.id"
        " AND s.user_id = $2 AND s.deleted_at IS NULL) AS subscribed"
        " FROM analyst.subscription_tiers t WHERE t.id = $1",
        path_uuid(request, "tier_id"),
        who.user_id,
    )
    if row is None or not (
        row["public"] or row["subscribed"] or who.is_admin or row["analyst_id"] == who.user_id
    ):
        raise NotFound("no such tier")
    return _tier(row)


@endpoint(
    routes,
    "POST",
    "/v1/tiers",
    summary="Create a tier for the calling analyst",
    tag="tiers",
    body=TierCreate,
    response=SubscriptionTier,
    status=201,
    errors=(403, 409),
)
async def create_tier(request: web.Request, body: TierCreate) -> SubscriptionTier:
    who = await _analyst(request)
    _check_prices(body.price_monthly, body.price_yearly)
    try:
        row = await request.app[POOL].fetchrow(
            "INSERT INTO analyst.subscription_tiers AS t (analyst_id, tier_name,"
            " tier_description, tier_order, price_monthly, price_yearly, currency, features,"
            " posts_per_day, chat_access, priority_support, is_active, is_free_tier)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $5 = 0)"
            f" RETURNING {_COLUMNS}",
            who.user_id,
            body.tier_name.strip(),
            body.tier_description,
            body.tier_order,
            body.price_monthly,
            body.price_yearly,
            body.currency,
            body.features,
            body.posts_per_day,
            body.chat_access,
            body.priority_support,
            body.is_active,
        )
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise _constraint_error(exc) from None
    return _tier(row)


async def _own_tier_for_update(
    conn: asyncpg.Connection, tier_id: uuid.UUID, who: Caller
) -> asyncpg.Record:
    """The caller's non-deleted tier, locked; 404 if absent, 403 if another analyst's."""
    row = await conn.fetchrow(
        "SELECT analyst_id, price_monthly, price_yearly, is_free_tier"
        " FROM analyst.subscription_tiers WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        tier_id,
    )
    if row is None:
        raise NotFound("no such tier")
    if row["analyst_id"] != who.user_id:
        raise Forbidden("this tier belongs to another analyst")
    return row


@endpoint(
    routes,
    "PATCH",
    "/v1/tiers/{tier_id}",
    summary="Edit one of the caller's tiers",
    tag="tiers",
    body=TierEdit,
    response=SubscriptionTier,
    errors=(403, 404, 409),
)
async def edit_tier(request: web.Request, body: TierEdit) -> SubscriptionTier:
    """A tier with live subscriptions may change, but not between free and paid: create a
    new tier for that."""
    who = await _analyst(request)
    tier_id = path_uuid(request, "tier_id")
    changes: dict[str, Any] = {
        name: getattr(body, name)
        for name in body.__struct_fields__
        if getattr(body, name) is not UNSET
    }
    if isinstance(changes.get("tier_name"), str):
        changes["tier_name"] = changes["tier_name"].strip()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        current = await _own_tier_for_update(conn, tier_id, who)
        monthly = changes.get("price_monthly", current["price_monthly"])
        _check_prices(monthly, changes.get("price_yearly", current["price_yearly"]))
        if (monthly == 0) != current["is_free_tier"]:
            if await conn.fetchval("SELECT " + _LIVE_SUBSCRIPTION, tier_id):
                raise Conflict(
                    "the tier has subscribers, so it cannot switch between free and paid;"
                    " create a new tier instead"
                )
            changes["is_free_tier"] = monthly == 0
        assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(changes, start=2))
        statement = (
            f"UPDATE analyst.subscription_tiers AS t SET {assignments}"
            f" WHERE t.id = $1 RETURNING {_COLUMNS}"
            if changes
            else f"SELECT {_COLUMNS} FROM analyst.subscription_tiers t WHERE t.id = $1"
        )
        try:
            row = await conn.fetchrow(statement, tier_id, *changes.values())
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise _constraint_error(exc) from None
    return _tier(row)


@endpoint(
    routes,
    "DELETE",
    "/v1/tiers/{tier_id}",
    summary="Retire one of the caller's tiers (soft delete)",
    tag="tiers",
    status=204,
    errors=(403, 404),
)
async def delete_tier(request: web.Request) -> None:
    """Tiers are never hard-deleted: the tier is marked deleted and inactive, so it leaves
    every listing and frees its name (and its free slot). Its subscribers keep their
    subscription, on the terms they bought, until it ends."""
    who = await _analyst(request)
    tier_id = path_uuid(request, "tier_id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await _own_tier_for_update(conn, tier_id, who)
        await conn.execute(
            "UPDATE analyst.subscription_tiers SET deleted_at = now(), is_active = false"
            " WHERE id = $1",
            tier_id,
        )
