"""/v1/market/promo-codes and /v1/market/flash-sales: accounting creates promo codes and flash
sales; anyone signed in sees running and upcoming flash sales with the stock left, and checks
a promo code (valid now, or why not)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

import asyncpg
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, NotFound
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from realms.market.routes.access import amount, me, require_role

routes = web.RouteTableDef()

Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]
Money = Decimal  # range checked by access.amount


class PromoCodeBody(Struct, forbid_unknown_fields=True, kw_only=True):
    code: Annotated[str, Meta(min_length=1, max_length=50, pattern=r"^\S+$")]
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    type: Literal["percentage", "fixed_amount", "free_shipping"]
    value: Money
    starts_at: datetime
    expires_at: datetime
    description: Annotated[str, Meta(max_length=2000)] | None = None
    min_order_amount: Money = Decimal(0)
    max_discount_amount: Money | None = None
    usage_limit: Annotated[int, Meta(ge=0)] | None = None
    usage_limit_per_user: Annotated[int, Meta(ge=1)] | None = 1
    applicable_to: Literal["all", "category", "product", "seller"] = "all"
    applicable_ids: Annotated[list[Id], Meta(min_length=1, max_length=1000)] | None = None


class PromoCodeOut(Struct):
    id: int
    code: str
    name: str
    type: str
    value: Decimal
    min_order_amount: Decimal
    max_discount_amount: Decimal | None
    usage_limit: int | None
    usage_count: int
    usage_limit_per_user: int | None
    applicable_to: str
    applicable_ids: list[int] | None
    starts_at: datetime
    expires_at: datetime
    is_active: bool
    # valid | inactive | not_started | expired | used_up: whether checkout accepts it now
    state: str


class FlashProductIn(Struct, forbid_unknown_fields=True, kw_only=True):
    product_id: Id
    stock_limit: Annotated[int, Meta(ge=0)] | None = None


class FlashSaleBody(Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    discount_percentage: Decimal
    starts_at: datetime
    ends_at: datetime
    products: Annotated[list[FlashProductIn], Meta(min_length=1, max_length=500)]
    description: Annotated[str, Meta(max_length=2000)] | None = None


class FlashProductOut(Struct):
    product_id: int
    name: str
    original_price: Decimal
    sale_price: Decimal
    stock_limit: int | None
    sold_count: int
    # None for unlimited stock
    remaining: int | None


class FlashSaleOut(Struct):
    id: int
    name: str
    description: str | None
    discount_percentage: Decimal
    starts_at: datetime
    ends_at: datetime
    is_active: bool
    running: bool
    products: list[FlashProductOut]


class FlashQuery(Struct, kw_only=True):
    state: Literal["running", "upcoming"] = "running"


_CODE = (
    "SELECT id, code, name, type::text AS type, value, min_order_amount, max_discount_amount,"
    " usage_limit, usage_count, usage_limit_per_user, applicable_to::text AS applicable_to,"
    " applicable_ids, starts_at, expires_at, is_active,"
    " CASE WHEN NOT is_active THEN 'inactive' WHEN now() < starts_at THEN 'not_started'"
    "      WHEN now() >= expires_at THEN 'expired'"
    "      WHEN usage_count >= usage_limit THEN 'used_up' ELSE 'valid' END AS state"
    " FROM market.promo_codes"
)


@endpoint(
    routes,
    "POST",
    "/v1/promo-codes",
    summary="Create a promo code (accounting)",
    tag="market promotions",
    body=PromoCodeBody,
    response=PromoCodeOut,
    status=201,
    errors=(400, 401, 403, 409),
)
async def create_code(request: web.Request, body: PromoCodeBody) -> PromoCodeOut:
    who = await require_role(request, "accounting")
    amount(body.value, "value", zero=True)
    amount(body.min_order_amount, "min_order_amount", zero=True)
    if body.max_discount_amount is not None:
        amount(body.max_discount_amount, "max_discount_amount")
    if (body.applicable_to == "all") != (body.applicable_ids is None):
        raise BadRequest("`applicable_ids` names the ids for category, product or seller codes")
    if body.expires_at <= body.starts_at:
        raise BadRequest("`expires_at` must be after `starts_at`")
    if body.type == "percentage" and not 0 < body.value <= 100:
        raise BadRequest("a percentage is over 0 and at most 100")
    pool = request.app[POOL]
    code_id = await pool.fetchval(
        "INSERT INTO market.promo_codes (code, name, description, type, value,"
        " min_order_amount, max_discount_amount, usage_limit, usage_limit_per_user,"
        " applicable_to, applicable_ids, starts_at, expires_at, created_by)"
        " VALUES ($1, $2, $3, $4::market.promo_type_enum, $5, $6, $7, $8, $9,"
        " $10::market.promo_applicable_enum, $11, $12, $13, $14) RETURNING id",
        body.code,
        body.name,
        body.description,
        body.type,
        body.value,
        body.min_order_amount,
        body.max_discount_amount,
        body.usage_limit,
        body.usage_limit_per_user,
        body.applicable_to,
        body.applicable_ids,
        body.starts_at,
        body.expires_at,
        who.id,
    )
    return PromoCodeOut(**dict(await pool.fetchrow(_CODE + " WHERE id = $1", code_id)))


@endpoint(
    routes,
    "GET",
    "/v1/promo-codes/{code}",
    summary="A promo code and whether checkout accepts it now (`state`)",
    tag="market promotions",
    response=PromoCodeOut,
    errors=(401, 404),
)
async def check_code(request: web.Request) -> PromoCodeOut:
    await me(request)
    code = request.match_info["code"]
    row = await request.app[POOL].fetchrow(_CODE + " WHERE code = $1", code[:50])
    if row is None:
        raise NotFound(f"unknown promo code {code[:50]!r}")
    return PromoCodeOut(**dict(row))


async def _sales(pool: asyncpg.Pool, where: str, *args: object) -> list[FlashSaleOut]:
    sales = await pool.fetch(
        "SELECT id, name, description, discount_percentage, starts_at, ends_at, is_active,"
        " is_active AND starts_at <= now() AND now() < ends_at AS running"
        f" FROM market.flash_sales WHERE {where} ORDER BY starts_at, id LIMIT 50",
        *args,
    )
    entries = await pool.fetch(
        "SELECT e.flash_sale_id, e.product_id, p.name, e.original_price, e.sale_price,"
        " e.stock_limit, e.sold_count, e.stock_limit - e.sold_count AS remaining"
        "  FROM market.flash_sale_products e JOIN market.products p ON p.id = e.product_id"
        " WHERE e.flash_sale_id = ANY ($1::bigint[]) ORDER BY e.id",
        [s["id"] for s in sales],
    )
    by_sale: dict[int, list[FlashProductOut]] = {s["id"]: [] for s in sales}
    for e in entries:
        fields = dict(e)
        by_sale[fields.pop("flash_sale_id")].append(FlashProductOut(**fields))
    return [FlashSaleOut(products=by_sale[s["id"]], **dict(s)) for s in sales]


@endpoint(
    routes,
    "GET",
    "/v1/flash-sales",
    summary="Running (default) or upcoming flash sales with their products and stock left",
    tag="market promotions",
    query=FlashQuery,
    response=list[FlashSaleOut],
    errors=(400, 401),
)
async def list_sales(request: web.Request, query: FlashQuery) -> list[FlashSaleOut]:
    await me(request)
    if query.state == "running":
        where = "is_active AND starts_at <= now() AND now() < ends_at"
    else:
        where = "is_active AND starts_at > now()"
    return await _sales(request.app[POOL], where)


@endpoint(
    routes,
    "POST",
    "/v1/flash-sales",
    summary="Create a flash sale (accounting): each product at its current price less the"
    " sale's percentage, with an optional stock limit",
    tag="market promotions",
    body=FlashSaleBody,
    response=FlashSaleOut,
    status=201,
    errors=(400, 401, 403, 404, 409),
)
async def create_sale(request: web.Request, body: FlashSaleBody) -> FlashSaleOut:
    await require_role(request, "accounting")
    if not 0 < amount(body.discount_percentage, "discount_percentage") <= 100:
        raise BadRequest("`discount_percentage` is over 0 and at most 100")
    if body.ends_at <= body.starts_at:
        raise BadRequest("`ends_at` must be after `starts_at`")
    if body.ends_at <= datetime.now(UTC):
        raise BadRequest("the sale would be over already")
    ids = [p.product_id for p in body.products]
    if len(set(ids)) != len(ids):
        raise BadRequest("a product appears once per sale")
    pool = request.app[POOL]
    async with pool.acquire() as conn, conn.transaction():
        sale = await conn.fetchval(
            "INSERT INTO market.flash_sales (name, description, discount_percentage, starts_at,"
            " ends_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            body.name,
            body.description,
            body.discount_percentage,
            body.starts_at,
            body.ends_at,
        )
        made = await conn.fetch(
            "INSERT INTO market.flash_sale_products (flash_sale_id, product_id, original_price,"
            " sale_price, stock_limit)"
            " SELECT $1, p.id, coalesce(p.sale_price, p.base_price),"
            "   round(coalesce(p.sale_price, p.base_price) * (100 - $4) / 100, 2), x.stock_limit"
            "  FROM unnest($2::bigint[], $3::int[]) AS x(product_id, stock_limit)"
            "  JOIN market.products p ON p.id = x.product_id AND p.deleted_at IS NULL"
            " RETURNING product_id",
            sale,
            ids,
            [p.stock_limit for p in body.products],
            body.discount_percentage,
        )
        missing = set(ids) - {r["product_id"] for r in made}
        if missing:
            raise NotFound(f"no product {min(missing)}")
    (out,) = await _sales(pool, "id = $1", sale)
    return out
