"""/v1/market/subscriptions and /sellers/{id}/subscription: users subscribe to sellers (whose
stories they then see); and what the social routes share (routes/stories.py, routes/reels.py):
their id and URL types, OpenAPI tag, and who may take content down."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import Forbidden
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from realms.market import social
from realms.market.routes.access import Me, me, path_id

routes = web.RouteTableDef()

Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]
Url = Annotated[str, Meta(min_length=8, max_length=2000, pattern=r"^https?://\S+$")]
TAG = "market social"
# Who may take down others' stories, reels and comments (the role that moderates reviews).
MODERATOR = "technical_access"


def author_or_moderator(who: Me, author: int, moderator: bool, what: str) -> None:
    if who.id != author and not moderator:
        raise Forbidden(f"only its author (or {MODERATOR} staff) deletes a {what}")


# -- subscriptions ------------------------------------------------------------------------------


class SubscriptionOut(Struct):
    seller_id: int
    subscribed: bool  # the caller subscribes to the seller
    subscriber_count: int


class FollowedOut(Struct):
    seller_id: int
    first_name: str
    last_name: str
    avatar_url: str | None
    subscribed_at: datetime
    active_stories: int


@endpoint(
    routes,
    "GET",
    "/v1/sellers/{seller_id}/subscription",
    summary="A seller's subscriber count, and whether the caller subscribes",
    tag=TAG,
    response=SubscriptionOut,
    errors=(400, 401, 404),
)
async def subscription(request: web.Request) -> SubscriptionOut:
    who = await me(request)
    seller = path_id(request, "seller_id")
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        await social.live_seller(conn, seller)
        row = await conn.fetchrow(
            "SELECT count(*) AS n, coalesce(bool_or(subscriber_id = $2), false) AS mine"
            "  FROM market.subscriptions WHERE subscribed_to_id = $1",
            seller,
            who.id,
        )
    return SubscriptionOut(seller, row["mine"], row["n"])


async def _subscribe(request: web.Request, on: bool) -> SubscriptionOut:
    who = await me(request)
    seller = path_id(request, "seller_id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        subscribed, count = await social.subscribe(conn, who.id, seller, on)
    return SubscriptionOut(seller, subscribed, count)


@endpoint(
    routes,
    "PUT",
    "/v1/sellers/{seller_id}/subscription",
    summary="Subscribe to a seller (idempotent)",
    tag=TAG,
    response=SubscriptionOut,
    errors=(400, 401, 404),
)
async def subscribe(request: web.Request) -> SubscriptionOut:
    return await _subscribe(request, True)


@endpoint(
    routes,
    "DELETE",
    "/v1/sellers/{seller_id}/subscription",
    summary="Unsubscribe from a seller (idempotent)",
    tag=TAG,
    response=SubscriptionOut,
    errors=(400, 401, 404),
)
async def unsubscribe(request: web.Request) -> SubscriptionOut:
    return await _subscribe(request, False)


@endpoint(
    routes,
    "GET",
    "/v1/subscriptions",
    summary="The sellers the caller subscribes to, latest first, with their active stories",
    tag=TAG,
    query=PageQuery,
    response=Page[FollowedOut],
    errors=(400, 401),
)
async def my_subscriptions(request: web.Request, query: PageQuery) -> Page[FollowedOut]:
    who = await me(request)
    after = decode_cursor(query.cursor, int)
    rows = await request.app[POOL].fetch(
        "SELECT sub.id, u.id AS seller_id, u.first_name, u.last_name, u.avatar_url,"
        "       sub.created_at AS subscribed_at,"
        f"      (SELECT count(*) FROM market.stories s WHERE s.user_id = u.id"
        f"        AND {social.LIVE_STORY})::int AS active_stories"
        "  FROM market.subscriptions sub JOIN market.users u ON u.id = sub.subscribed_to_id"
        " WHERE sub.subscriber_id = $1 AND ($2::bigint IS NULL OR sub.id < $2)"
        " ORDER BY sub.id DESC LIMIT $3",
        who.id,
        after[0] if after else None,
        query.limit + 1,
    )
    page = page_of(rows, query.limit, lambda r: (r["id"],))
    followed = [FollowedOut(**{k: v for k, v in r.items() if k != "id"}) for r in page.items]
    return Page(items=followed, next_cursor=page.next_cursor)
