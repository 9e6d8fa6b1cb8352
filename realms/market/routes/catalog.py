"""/v1/market/products: the catalog's active products, searched with the seed's full-text
index (market.search_products: websearch syntax, best match first) or listed newest first,
optionally within one category; one product with its card."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, NotFound
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from realms.market.chatmessages import ProductCard, product_cards

routes = web.RouteTableDef()


class SearchQuery(Struct, kw_only=True):
    q: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    category_id: Annotated[int, Meta(ge=1, le=2**63 - 1)] | None = None
    limit: Annotated[int, Meta(ge=1, le=100)] = 20


@endpoint(
    routes,
    "GET",
    "/v1/products",
    summary="Active products: full-text search (`q`, best match first) or newest first",
    tag="market catalog",
    query=SearchQuery,
    response=list[ProductCard],
    errors=(400, 401),
)
async def search(request: web.Request, query: SearchQuery) -> list[ProductCard]:
    await caller(request)
    pool = request.app[POOL]
    if query.q is not None:
        ids = await pool.fetch(
            "SELECT id FROM market.search_products($1)"
            " WHERE status = 'active' AND ($2::bigint IS NULL OR category_id = $2) LIMIT $3",
            query.q,
            query.category_id,
            query.limit,
        )
    else:
        ids = await pool.fetch(
            "SELECT id FROM market.products WHERE status = 'active' AND deleted_at IS NULL"
            "   AND ($1::bigint IS NULL OR category_id = $1)"
            " ORDER BY created_at DESC, id DESC LIMIT $2",
            query.category_id,
            query.limit,
        )
    order = [r["id"] for r in ids]
    cards = await product_cards(pool, order)
    return [cards[i] for i in order if i in cards]


@endpoint(
    routes,
    "GET",
    "/v1/products/{product_id}",
    summary="One live product's card",
    tag="market catalog",
    response=ProductCard,
    errors=(400, 401, 404),
)
async def product(request: web.Request) -> ProductCard:
    await caller(request)
    raw = request.match_info["product_id"]
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise BadRequest(f"product id {raw!r} is not a positive integer")
    cards = await product_cards(request.app[POOL], [int(raw)])
    if int(raw) not in cards:
        raise NotFound(f"product {raw} does not exist")
    return cards[int(raw)]
