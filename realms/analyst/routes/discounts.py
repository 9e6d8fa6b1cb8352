"""Discount codes: an analyst's own codes (create, list, edit, deactivate), the public preview
of a code's discount on a tier, and the rules a code must pass when a subscription uses it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import UNSET, Meta, Struct, UnsetType

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.web.auth import Caller, caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid

routes = web.RouteTableDef()

CodeText = Annotated[str, Meta(min_length=3, max_length=50, pattern=r"^[A-Za-z0-9_-]+\Z")]
Cycle = Literal["monthly", "yearly"]
Restriction = Literal["monthly", "yearly", "both"]
Instant = Annotated[datetime, Meta(tz=True)]
Name = Annotated[str, Meta(max_length=255)]
Description = Annotated[str, Meta(max_length=2000)]
_INT_MAX = 2**31 - 1  # the counts and amounts are integer (int4) columns
TierIds = Annotated[list[uuid.UUID], Meta(min_length=1, max_length=100)]


class DiscountCodeBody(Struct, forbid_unknown_fields=True):
    # _validated's rules on one value: a percentage is at most 100 and only it has a cap
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "anyOf": [
                {
                    "properties": {
                        "discount_type": {"const": "percentage"},
                        "discount_value": {"maximum": 100},
                    }
                },
                {
                    "properties": {
                        "discount_type": {"const": "fixed_amount"},
                        "max_discount_amount": {"type": "null"},
                    }
                },
            ]
        },
    )
    code: CodeText
    discount_type: Literal["percentage", "fixed_amount"]
    discount_value: Annotated[
        int, Meta(ge=1, le=_INT_MAX, description="1-100 (percentage) or paise")
    ]
    code_name: Name | None = None
    code_description: Description | None = None
    max_discount_amount: Annotated[int, Meta(ge=0, le=_INT_MAX)] | None = None
    applicable_tiers: TierIds | None = None
    billing_cycle_restriction: Restriction = "both"
    first_time_only: bool = False
    is_active: bool = True
    usage_limit: Annotated[int, Meta(ge=1, le=_INT_MAX)] | None = None
    per_user_limit: Annotated[int, Meta(ge=1, le=_INT_MAX)] | None = 1
    valid_from: Instant | None = None
    valid_until: Instant | None = None


class DiscountCodeEdit(Struct, forbid_unknown_fields=True):
    """Fields left out stay as they are; `code` cannot change once issued."""

    discount_type: Literal["percentage", "fixed_amount"] | UnsetType = UNSET
    discount_value: Annotated[int, Meta(ge=1, le=_INT_MAX)] | UnsetType = UNSET
    code_name: Name | UnsetType | None = UNSET
    code_description: Description | UnsetType | None = UNSET
    max_discount_amount: Annotated[int, Meta(ge=0, le=_INT_MAX)] | UnsetType | None = UNSET
    applicable_tiers: TierIds | UnsetType | None = UNSET
    billing_cycle_restriction: Restriction | UnsetType = UNSET
    first_time_only: bool | UnsetType = UNSET
    is_active: bool | UnsetType = UNSET
    usage_limit: Annotated[int, Meta(ge=1, le=_INT_MAX)] | UnsetType | None = UNSET
    per_user_limit: Annotated[int, Meta(ge=1, le=_INT_MAX)] | UnsetType | None = UNSET
    valid_from: Instant | UnsetType | None = UNSET
    valid_until: Instant | UnsetType | None = UNSET


class DiscountCodeOut(Struct):
    id: uuid.UUID
    analyst_id: uuid.UUID | None
    code: str
    code_name: str | None
    code_description: str | None
    discount_type: str
    discount_value: int
    max_discount_amount: int | None
    applicable_tiers: list[uuid.UUID] | None
    billing_cycle_restriction: str
    first_time_only: bool
    is_active: bool
    usage_limit: int | None
    usage_count: int
    per_user_limit: int | None
    valid_from: datetime | None
    valid_until: datetime | None
    created_at: datetime
    updated_at: datetime


class PreviewQuery(Struct, kw_only=True):
    tier_id: uuid.UUID
    billing_cycle: Cycle = "monthly"


class PreviewOut(Struct):
    code: str
    tier_id: uuid.UUID
    billing_cycle: str
    currency: str
    price: int
    discount: int
    final_price: int
    first_time_only: bool
    per_user_limit: int | None


class TierPrice(Struct, frozen=True):
    """What a tier open for subscription costs for one billing cycle (paise)."""

    tier_id: uuid.UUID
    analyst_id: uuid.UUID
    billing_cycle: str
    price: int
    currency: str


class AppliedDiscount(Struct, frozen=True):
    code_id: uuid.UUID
    discount: int
    final_price: int


_COLUMNS = (
    "id, analyst_id, code, code_name, code_description, discount_type, discount_value,"
    " max_discount_amount, applicable_tiers, billing_cycle_restriction, first_time_only,"
    " is_active, usage_limit, usage_count, per_user_limit, valid_from, valid_until,"
    " created_at, updated_at"
)


def discount_amount(
    discount_type: str, discount_value: int, max_discount_amount: int | None, price: int
) -> int:
    """The discount in paise on `price`: a percentage (rounded half up, then capped by
    max_discount_amount) or a fixed amount; never more than the price."""
    if discount_type == "percentage":
        amount = (price * discount_value + 50) // 100
        if max_discount_amount is not None:
            amount = min(amount, max_discount_amount)
    else:
        amount = discount_value
    return max(0, min(amount, price))


async def open_tier_price(conn: asyncpg.Connection, tier_id: uuid.UUID, cycle: str) -> TierPrice:
    """The price of a tier one may subscribe to now. NotFound when the tier, its analyst or
    the analyst's approved profile is gone (unapproved analysts sell nothing); BadRequest when
    the tier is inactive or has no such price."""
    row = await conn.fetchrow(
        "SELECT t.id, t.analyst_id, t.price_monthly, t.price_yearly, t.currency, t.is_active"
        " FROM analyst.subscription_tiers t"
        " JOIN analyst.users u ON u.id = t.analyst_id"
        " JOIN analyst.analyst_profiles p ON p.user_id = t.analyst_id"
        " WHERE t.id = $1 AND t.deleted_at IS NULL AND u.deleted_at IS NULL AND u.is_active"
        " AND p.deleted_at IS NULL AND p.verification_status = 'approved'",
        tier_id,
    )
    if row is None:
        raise NotFound("no such tier")
    if not row["is_active"]:
        raise BadRequest("tier_id: the tier is not open for subscription")
    if cycle == "monthly":
        price = row["price_monthly"]
    elif row["price_yearly"] is not None:
        price = row["price_yearly"]
    elif row["price_monthly"] == 0:
        price = 0
    else:
        raise BadRequest("billing_cycle: the tier has no yearly price")
    return TierPrice(row["id"], row["analyst_id"], cycle, price, row["currency"])


async def find_code(conn: asyncpg.Connection, code: str) -> asyncpg.Record | None:
    """A live (not deleted) code; codes are issued upper-case, so any case finds them."""
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM analyst.discount_codes"
        " WHERE code IN ($1::text, upper($1::text)) AND deleted_at IS NULL"
        " ORDER BY code = $1::text DESC LIMIT 1",
        code,
    )


def check_code(row: asyncpg.Record, tier: TierPrice, now: datetime) -> None:
    """The rules of the code itself for this tier and cycle; raises naming what failed."""
    if row["analyst_id"] is not None and row["analyst_id"] != tier.analyst_id:
        raise BadRequest("discount_code: the code is not valid for this analyst")
    if not row["is_active"]:
        raise BadRequest("discount_code: the code is not active")
    if row["valid_from"] is not None and now < row["valid_from"]:
        raise BadRequest("discount_code: the code is not valid yet")
    if row["valid_until"] is not None and now >= row["valid_until"]:
        raise BadRequest("discount_code: the code has expired")
    if row["applicable_tiers"] is not None and tier.tier_id not in row["applicable_tiers"]:
        raise BadRequest("discount_code: the code does not apply to this tier")
    if row["billing_cycle_restriction"] not in ("both", tier.billing_cycle):
        raise BadRequest(
            f"discount_code: the code is for {row['billing_cycle_restriction']} billing only"
        )
    if tier.price == 0:
        raise BadRequest("discount_code: the tier is free")
    if row["usage_limit"] is not None and row["usage_count"] >= row["usage_limit"]:
        raise Conflict("discount_code: the code has reached its usage limit")


async def check_user(
    conn: asyncpg.Connection, row: asyncpg.Record, user_id: uuid.UUID, analyst_id: uuid.UUID
) -> None:
    """The rules that depend on who uses the code: first_time_only (never had a started
    subscription with the analyst) and per_user_limit (subscriptions already using it)."""
    counts = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE analyst_id = $2 AND start_date IS NOT NULL) AS had,"
        " count(*) FILTER (WHERE discount_code_used = $3) AS used"
        " FROM analyst.subscriptions WHERE user_id = $1",
        user_id,
        analyst_id,
        row["id"],
    )
    if row["first_time_only"] and counts["had"] > 0:
        raise BadRequest("discount_code: the code is for first-time subscribers only")
    if row["per_user_limit"] is not None and counts["used"] >= row["per_user_limit"]:
        raise BadRequest("discount_code: you have already used this code")


async def apply_code(
    conn: asyncpg.Connection, code: str, tier: TierPrice, user_id: uuid.UUID, now: datetime
) -> AppliedDiscount:
    """Every rule of `code` for `user_id` subscribing to `tier` now, and the discount it gives.
    Run it in the subscribing transaction; the usage trigger is the last word on usage_limit."""
    row = await find_code(conn, code)
    if row is None:
        raise BadRequest("discount_code: no such code")
    check_code(row, tier, now)
    await check_user(conn, row, user_id, tier.analyst_id)
    discount = discount_amount(
        row["discount_type"], row["discount_value"], row["max_discount_amount"], tier.price
    )
    return AppliedDiscount(row["id"], discount, tier.price - discount)


def _validated(values: dict[str, Any]) -> dict[str, Any]:
    """Cross-field rules of a code (its columns after a create or an edit)."""
    if values["discount_type"] == "percentage" and values["discount_value"] > 100:
        raise BadRequest("discount_value: a percentage is 1-100")
    if values["discount_type"] == "fixed_amount" and values["max_discount_amount"] is not None:
        raise BadRequest("max_discount_amount: only percentage codes have a cap")
    start, end = values["valid_from"], values["valid_until"]
    if start is not None and end is not None and end <= start:
        raise BadRequest("valid_until: must be after valid_from")
    limit = values["usage_limit"]
    if limit is not None and limit < values.get("usage_count", 0):
        raise BadRequest(
            f"usage_limit: the code has already been used {values['usage_count']} times"
        )
    return values


async def _check_tiers(
    conn: asyncpg.Connection, analyst_id: uuid.UUID, tiers: list[uuid.UUID] | None
) -> None:
    if not tiers:
        return
    own = await conn.fetchval(
        "SELECT count(*) FROM analyst.subscription_tiers"
        " WHERE id = ANY($1::uuid[]) AND analyst_id = $2 AND deleted_at IS NULL",
        list(set(tiers)),
        analyst_id,
    )
    if own != len(set(tiers)):
        raise BadRequest("applicable_tiers: every tier must be one of your own tiers")


def _out(row: asyncpg.Record) -> DiscountCodeOut:
    return msgspec.convert(dict(row), DiscountCodeOut)


async def _analyst(request: web.Request) -> Caller:
    who = await caller(request)
    if who.user_type != "analyst":
        raise Forbidden("only analysts have discount codes")
    return who


async def _owned(conn: asyncpg.Connection, who: Caller, code_id: uuid.UUID) -> asyncpg.Record:
    """The code, locked, if the caller owns it (or is an admin); NotFound otherwise."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM analyst.discount_codes"
        " WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        code_id,
    )
    if row is None or not (who.is_admin or row["analyst_id"] == who.user_id):
        raise NotFound("no such discount code")
    return row


@endpoint(
    routes,
    "POST",
    "/v1/discount-codes",
    summary="Create a discount code (analysts)",
    tag="discounts",
    body=DiscountCodeBody,
    response=DiscountCodeOut,
    status=201,
    errors=(403, 409),
)
async def create_code(request: web.Request, body: DiscountCodeBody) -> DiscountCodeOut:
    who = await _analyst(request)
    values = _validated({**msgspec.structs.asdict(body), "code": body.code.upper()})
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await _check_tiers(conn, who.user_id, body.applicable_tiers)
        columns = ", ".join(values)
        params = ", ".join(f"${i}" for i in range(2, len(values) + 2))
        try:
            row = await conn.fetchrow(
                f"INSERT INTO analyst.discount_codes (analyst_id, {columns})"
                f" VALUES ($1, {params}) RETURNING {_COLUMNS}",
                who.user_id,
                *values.values(),
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"code: {values['code']} is already taken") from None
        except asyncpg.CheckViolationError as exc:
            raise BadRequest(f"the code breaks {exc.constraint_name}") from None
    return _out(row)


class CodeListQuery(PageQuery, kw_only=True):
    active: bool | None = None


@endpoint(
    routes,
    "GET",
    "/v1/discount-codes",
    summary="The caller's discount codes, newest first (analysts)",
    tag="discounts",
    query=CodeListQuery,
    response=Page[DiscountCodeOut],
    errors=(403,),
)
async def list_codes(request: web.Request, query: CodeListQuery) -> Page[DiscountCodeOut]:
    who = await _analyst(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        f"SELECT {_COLUMNS} FROM analyst.discount_codes"
        " WHERE analyst_id = $1 AND deleted_at IS NULL AND ($2::bool IS NULL OR is_active = $2)"
        " AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))"
        " ORDER BY created_at DESC, id DESC LIMIT $5",
        who.user_id,
        query.active,
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
    )
    return page_of([_out(r) for r in rows], query.limit, lambda c: (c.created_at, c.id))


@endpoint(
    routes,
    "GET",
    "/v1/discount-codes/{id}",
    summary="One of the caller's discount codes (owner or admin)",
    tag="discounts",
    response=DiscountCodeOut,
    errors=(404,),
)
async def get_code(request: web.Request) -> DiscountCodeOut:
    who = await caller(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        return _out(await _owned(conn, who, path_uuid(request)))


@endpoint(
    routes,
    "PATCH",
    "/v1/discount-codes/{id}",
    summary="Edit a discount code; is_active=false deactivates it (owner or admin)",
    tag="discounts",
    body=DiscountCodeEdit,
    response=DiscountCodeOut,
    errors=(404,),
)
async def edit_code(request: web.Request, body: DiscountCodeEdit) -> DiscountCodeOut:
    who = await caller(request)
    changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not UNSET}
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _owned(conn, who, path_uuid(request))
        if not changes:
            return _out(row)
        _validated({**dict(row), **changes})
        if "applicable_tiers" in changes and row["analyst_id"] is not None:
            await _check_tiers(conn, row["analyst_id"], changes["applicable_tiers"])
        assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, start=2))
        try:
            updated = await conn.fetchrow(
                f"UPDATE analyst.discount_codes SET {assignments} WHERE id = $1"
                f" RETURNING {_COLUMNS}",
                row["id"],
                *changes.values(),
            )
        except asyncpg.CheckViolationError as exc:
            raise BadRequest(f"the code breaks {exc.constraint_name}") from None
    return _out(updated)


@endpoint(
    routes,
    "DELETE",
    "/v1/discount-codes/{id}",
    summary="Withdraw a discount code for good (owner or admin)",
    tag="discounts",
    status=204,
    errors=(404,),
)
async def delete_code(request: web.Request) -> None:
    who = await caller(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _owned(conn, who, path_uuid(request))
        await conn.execute(
            "UPDATE analyst.discount_codes SET is_active = false, deleted_at = now() WHERE id = $1",
            row["id"],
        )


@endpoint(
    routes,
    "GET",
    "/v1/discount-codes/{code}/preview",
    summary="What a code takes off a tier's price (public; per-user rules apply at checkout)",
    tag="discounts",
    query=PreviewQuery,
    response=PreviewOut,
    auth=False,
    errors=(404, 409),
)
async def preview_code(request: web.Request, query: PreviewQuery) -> PreviewOut:
    async with request.app[POOL].acquire() as conn:
        tier = await open_tier_price(conn, query.tier_id, query.billing_cycle)
        row = await find_code(conn, request.match_info["code"][:50])
        if row is None:
            raise NotFound("no such discount code")
        check_code(row, tier, datetime.now(UTC))
    discount = discount_amount(
        row["discount_type"], row["discount_value"], row["max_discount_amount"], tier.price
    )
    return PreviewOut(
        code=row["code"],
        tier_id=tier.tier_id,
        billing_cycle=tier.billing_cycle,
        currency=tier.currency,
        price=tier.price,
        discount=discount,
        final_price=tier.price - discount,
        first_time_only=row["first_time_only"],
        per_user_limit=row["per_user_limit"],
    )
