"""/v1/market/reviews and /v1/market/products/{id}/reviews: the buyer of a delivered order
reviews its products (one live review per order and product), the reviewed seller answers
once, staff with technical_access approve; a product's approved reviews are public to signed-in
users. The seller hears of a review, the buyer of the answer (category review)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import asyncpg
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import Conflict, Forbidden, NotFound
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from realms.market import events
from realms.market.routes.access import me, path_id, require_role

routes = web.RouteTableDef()

Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]
Url = Annotated[str, Meta(min_length=1, max_length=2000, pattern=r"^https?://")]


class ReviewBody(Struct, forbid_unknown_fields=True, kw_only=True):
    order_id: Id
    product_id: Id
    rating: Annotated[int, Meta(ge=1, le=5)]
    title: Annotated[str, Meta(max_length=255)] | None = None
    content: Annotated[str, Meta(max_length=5000)] | None = None
    pros: Annotated[str, Meta(max_length=2000)] | None = None
    cons: Annotated[str, Meta(max_length=2000)] | None = None
    images: Annotated[list[Url], Meta(max_length=10)] = []


class ResponseBody(Struct, forbid_unknown_fields=True):
    content: Annotated[str, Meta(min_length=1, max_length=5000, pattern=r"\S")]


class ApprovalBody(Struct, forbid_unknown_fields=True):
    approved: bool


class ResponseOut(Struct):
    content: str
    created_at: datetime


class ReviewOut(Struct):
    id: int
    order_id: int
    product_id: int
    seller_id: int
    buyer_id: int
    rating: int
    title: str | None
    content: str | None
    pros: str | None
    cons: str | None
    is_verified_purchase: bool
    is_approved: bool
    helpful_count: int
    created_at: datetime
    images: list[str]
    response: ResponseOut | None


_REVIEW = """
SELECT r.id, r.order_id, r.product_id, r.seller_id, r.buyer_id, r.rating, r.title, r.content,
       r.pros, r.cons, r.is_verified_purchase, r.is_approved, r.helpful_count, r.created_at,
       array(SELECT i.url FROM market.review_images i WHERE i.review_id = r.id
              ORDER BY i.sort_order, i.id) AS images,
       rr.content AS response_content, rr.created_at AS response_at
  FROM market.reviews r LEFT JOIN market.review_responses rr ON rr.review_id = r.id
"""


def _out(row: asyncpg.Record) -> ReviewOut:
    fields = dict(row)
    content, at = fields.pop("response_content"), fields.pop("response_at")
    return ReviewOut(**fields, response=ResponseOut(content, at) if content is not None else None)


async def _one(pool: asyncpg.Pool, review_id: int) -> ReviewOut:
    row = await pool.fetchrow(_REVIEW + " WHERE r.id = $1 AND r.deleted_at IS NULL", review_id)
    if row is None:
        raise NotFound(f"review {review_id} does not exist")
    return _out(row)


@endpoint(
    routes,
    "POST",
    "/v1/reviews",
    summary="Review a product of one's delivered order (awaits approval; 409: reviewed already)",
    tag="market reviews",
    body=ReviewBody,
    response=ReviewOut,
    status=201,
    errors=(400, 401, 403, 404, 409),
)
async def create_review(request: web.Request, body: ReviewBody) -> ReviewOut:
    who = await me(request)
    pool = request.app[POOL]
    async with pool.acquire() as conn, conn.transaction():
        order = await conn.fetchrow(
            "SELECT buyer_id, seller_id, status::text AS status FROM market.orders"
            " WHERE id = $1 AND deleted_at IS NULL",
            body.order_id,
        )
        if order is None or order["buyer_id"] != who.id:
            raise NotFound(f"you have no order {body.order_id}")
        if order["status"] != "delivered":
            raise Conflict("an order is reviewed once it is delivered")
        if not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM market.order_items"
            " WHERE order_id = $1 AND product_id = $2)",
            body.order_id,
            body.product_id,
        ):
            raise NotFound(f"product {body.product_id} is not in order {body.order_id}")
        try:
            review = await conn.fetchval(
                "INSERT INTO market.reviews (order_id, product_id, seller_id, buyer_id, rating,"
                " title, content, pros, cons) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " RETURNING id",
                body.order_id,
                body.product_id,
                order["seller_id"],
                who.id,
                body.rating,
                body.title,
                body.content,
                body.pros,
                body.cons,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict("you reviewed this product of this order already") from None
        await conn.executemany(
            "INSERT INTO market.review_images (review_id, url, sort_order) VALUES ($1, $2, $3)",
            [(review, url, n) for n, url in enumerate(body.images)],
        )
        await events.tell(
            conn,
            event_key=f"review:{review}:received",
            users=[order["seller_id"]],
            kind="review",
            title=f"New {body.rating}-star review",
            message=(body.title or body.content or "")[:200],
            action_url=f"/reviews/{review}",
        )
    return await _one(pool, review)


@endpoint(
    routes,
    "POST",
    "/v1/reviews/{review_id}/response",
    summary="The reviewed seller answers a review, once (409 the second time)",
    tag="market reviews",
    body=ResponseBody,
    response=ReviewOut,
    status=201,
    errors=(400, 401, 403, 404, 409),
)
async def respond(request: web.Request, body: ResponseBody) -> ReviewOut:
    who = await me(request)
    review_id = path_id(request, "review_id")
    pool = request.app[POOL]
    async with pool.acquire() as conn, conn.transaction():
        review = await conn.fetchrow(
            "SELECT seller_id, buyer_id FROM market.reviews WHERE id = $1 AND deleted_at IS NULL",
            review_id,
        )
        if review is None:
            raise NotFound(f"review {review_id} does not exist")
        if review["seller_id"] != who.id:
            raise Forbidden("only the reviewed seller answers a review")
        try:
            await conn.execute(
                "INSERT INTO market.review_responses (review_id, seller_id, content)"
                " VALUES ($1, $2, $3)",
                review_id,
                who.id,
                body.content,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict("this review has its answer already") from None
        await events.tell(
            conn,
            event_key=f"review:{review_id}:responded",
            users=[review["buyer_id"]],
            kind="review",
            title="The seller answered your review",
            message=body.content[:200],
            action_url=f"/reviews/{review_id}",
        )
    return await _one(pool, review_id)


@endpoint(
    routes,
    "POST",
    "/v1/reviews/{review_id}/approval",
    summary="Approve or withdraw a review (technical_access); approved reviews are public and"
    " count in the product's rating",
    tag="market reviews",
    body=ApprovalBody,
    response=ReviewOut,
    errors=(400, 401, 403, 404),
)
async def approve(request: web.Request, body: ApprovalBody) -> ReviewOut:
    await require_role(request, "technical_access")
    review_id = path_id(request, "review_id")
    pool = request.app[POOL]
    done = await pool.execute(
        "UPDATE market.reviews SET is_approved = $2 WHERE id = $1 AND deleted_at IS NULL",
        review_id,
        body.approved,
    )
    if done.endswith(" 0"):
        raise NotFound(f"review {review_id} does not exist")
    return await _one(pool, review_id)


@endpoint(
    routes,
    "GET",
    "/v1/products/{product_id}/reviews",
    summary="A product's approved reviews, newest first, with the seller's answers",
    tag="market reviews",
    query=PageQuery,
    response=Page[ReviewOut],
    errors=(400, 401),
)
async def product_reviews(request: web.Request, query: PageQuery) -> Page[ReviewOut]:
    await me(request)
    product = path_id(request, "product_id")
    after = decode_cursor(query.cursor, int)
    rows = await request.app[POOL].fetch(
        _REVIEW + " WHERE r.product_id = $1 AND r.is_approved AND r.deleted_at IS NULL"
        " AND ($2::bigint IS NULL OR r.id < $2) ORDER BY r.id DESC LIMIT $3",
        product,
        after[0] if after else None,
        query.limit + 1,
    )
    return page_of([_out(r) for r in rows], query.limit, lambda r: (r.id,))
