"""/v1/market/stories, /reels, /subscriptions and /sellers/{id}/subscription: sellers post
24-hour stories and reels; signed-in users see the stories of the sellers they subscribe to,
view stories (each viewer counted once), like reels and comment on them (replies, pages), and
subscribe to sellers. The rules are realms/market/social.py's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import asyncpg
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import Forbidden, NotFound
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from realms.market import social
from realms.market.routes.access import Me, has_role, me, path_id

routes = web.RouteTableDef()

Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]
Url = Annotated[str, Meta(min_length=8, max_length=2000, pattern=r"^https?://\S+$")]
TAG = "market social"
# Who may take down others' stories, reels and comments (the role that moderates reviews).
MODERATOR = "technical_access"


# -- stories ------------------------------------------------------------------------------------


class StoryBody(Struct, forbid_unknown_fields=True, kw_only=True):
    type: Literal["image", "video"]
    media_url: Url
    thumbnail_url: Url | None = None
    duration: Annotated[int, Meta(ge=1, le=60)] = 5  # seconds on screen; the seed's default
    caption: Annotated[str, Meta(max_length=2200)] | None = None


class StoryOut(Struct):
    id: int
    user_id: int
    type: str
    media_url: str
    thumbnail_url: str | None
    duration: int
    caption: str | None
    view_count: int
    expires_at: datetime
    created_at: datetime
    viewed: bool  # by the caller


class StoriesQuery(PageQuery, kw_only=True):
    seller_id: Id | None = None


class StoryViewOut(Struct):
    story_id: int
    view_count: int
    counted: bool  # false: the caller had seen it already, or is its author


class ViewerOut(Struct):
    viewer_id: int
    first_name: str
    last_name: str
    avatar_url: str | None
    viewed_at: datetime


_STORY = (
    "SELECT s.id, s.user_id, s.type::text AS type, s.media_url, s.thumbnail_url, s.duration,"
    " s.caption, s.view_count, s.expires_at, s.created_at,"
    " EXISTS (SELECT 1 FROM market.story_views v WHERE v.story_id = s.id AND v.viewer_id = $1)"
    " AS viewed FROM market.stories s"
)


def _author_or_moderator(who: Me, author: int, moderator: bool, what: str) -> None:
    if who.id != author and not moderator:
        raise Forbidden(f"only its author (or {MODERATOR} staff) deletes a {what}")


@endpoint(
    routes,
    "POST",
    "/v1/stories",
    summary="A seller posts a story; it expires 24 hours later",
    tag=TAG,
    body=StoryBody,
    response=StoryOut,
    status=201,
    errors=(400, 401, 403),
)
async def create_story(request: web.Request, body: StoryBody) -> StoryOut:
    who = await me(request)
    social.require_seller(who.role)
    pool = request.app[POOL]
    story = await pool.fetchval(
        "INSERT INTO market.stories (user_id, type, media_url, thumbnail_url, duration, caption,"
        " expires_at) VALUES ($1, $2, $3, $4, $5, $6, now() + $7::interval) RETURNING id",
        who.id,
        body.type,
        body.media_url,
        body.thumbnail_url,
        body.duration,
        body.caption,
        social.STORY_LIFETIME,
    )
    return StoryOut(**dict(await pool.fetchrow(_STORY + " WHERE s.id = $2", who.id, story)))


@endpoint(
    routes,
    "GET",
    "/v1/stories",
    summary="Active stories, newest first: of the sellers the caller subscribes to, or of one"
    " seller (`seller_id`)",
    tag=TAG,
    query=StoriesQuery,
    response=Page[StoryOut],
    errors=(400, 401),
)
async def list_stories(request: web.Request, query: StoriesQuery) -> Page[StoryOut]:
    who = await me(request)
    after = decode_cursor(query.cursor, int)
    rows = await request.app[POOL].fetch(
        _STORY + f" WHERE {social.LIVE_STORY}"
        "   AND CASE WHEN $2::bigint IS NULL"
        "       THEN s.user_id IN (SELECT subscribed_to_id FROM market.subscriptions"
        "                           WHERE subscriber_id = $1)"
        "       ELSE s.user_id = $2 END"
        "   AND ($3::bigint IS NULL OR s.id < $3)"
        " ORDER BY s.id DESC LIMIT $4",
        who.id,
        query.seller_id,
        after[0] if after else None,
        query.limit + 1,
    )
    return page_of([StoryOut(**dict(r)) for r in rows], query.limit, lambda s: (s.id,))


@endpoint(
    routes,
    "GET",
    "/v1/stories/{story_id}",
    summary="One active story (its author also sees it once expired)",
    tag=TAG,
    response=StoryOut,
    errors=(400, 401, 404),
)
async def get_story(request: web.Request) -> StoryOut:
    who = await me(request)
    story_id = path_id(request, "story_id")
    row = await request.app[POOL].fetchrow(
        _STORY + f" WHERE s.id = $2 AND s.deleted_at IS NULL AND (s.user_id = $1"
        f" OR ({social.LIVE_STORY}))",
        who.id,
        story_id,
    )
    if row is None:
        raise NotFound(f"story {story_id} does not exist")
    return StoryOut(**dict(row))


@endpoint(
    routes,
    "POST",
    "/v1/stories/{story_id}/views",
    summary="The caller viewed a story: counted once per viewer (409 once it expired)",
    tag=TAG,
    response=StoryViewOut,
    errors=(400, 401, 404, 409),
)
async def view_story(request: web.Request) -> StoryViewOut:
    who = await me(request)
    story_id = path_id(request, "story_id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        count, counted = await social.view_story(conn, story_id, who.id)
    return StoryViewOut(story_id, count, counted)


@endpoint(
    routes,
    "GET",
    "/v1/stories/{story_id}/views",
    summary="Who viewed one's story, latest first (its author only)",
    tag=TAG,
    query=PageQuery,
    response=Page[ViewerOut],
    errors=(400, 401, 403, 404),
)
async def story_viewers(request: web.Request, query: PageQuery) -> Page[ViewerOut]:
    who = await me(request)
    story_id = path_id(request, "story_id")
    pool = request.app[POOL]
    author = await pool.fetchval(
        "SELECT user_id FROM market.stories WHERE id = $1 AND deleted_at IS NULL", story_id
    )
    if author is None:
        raise NotFound(f"story {story_id} does not exist")
    if author != who.id:
        raise Forbidden("only its author sees who viewed a story")
    after = decode_cursor(query.cursor, int)
    rows = await pool.fetch(
        "SELECT v.id, v.viewer_id, u.first_name, u.last_name, u.avatar_url, v.viewed_at"
        "  FROM market.story_views v JOIN market.users u ON u.id = v.viewer_id"
        " WHERE v.story_id = $1 AND ($2::bigint IS NULL OR v.id < $2)"
        " ORDER BY v.id DESC LIMIT $3",
        story_id,
        after[0] if after else None,
        query.limit + 1,
    )
    page = page_of(rows, query.limit, lambda r: (r["id"],))
    viewers = [ViewerOut(**{k: v for k, v in r.items() if k != "id"}) for r in page.items]
    return Page(items=viewers, next_cursor=page.next_cursor)


@endpoint(
    routes,
    "DELETE",
    "/v1/stories/{story_id}",
    summary="Delete a story (its author, or technical_access staff)",
    tag=TAG,
    errors=(400, 401, 403, 404),
    status=204,
)
async def delete_story(request: web.Request) -> None:
    who = await me(request)
    story_id = path_id(request, "story_id")
    pool = request.app[POOL]
    author = await pool.fetchval(
        "SELECT user_id FROM market.stories WHERE id = $1 AND deleted_at IS NULL", story_id
    )
    if author is None:
        raise NotFound(f"story {story_id} does not exist")
    _author_or_moderator(who, author, await has_role(request, who.id, MODERATOR), "story")
    await pool.execute(
        "UPDATE market.stories SET deleted_at = now(), is_active = false"
        " WHERE id = $1 AND deleted_at IS NULL",
        story_id,
    )


# -- reels --------------------------------------------------------------------------------------


class ReelBody(Struct, forbid_unknown_fields=True, kw_only=True):
    video_url: Url
    thumbnail_url: Url
    duration: Annotated[int, Meta(ge=1, le=600)]  # seconds
    title: Annotated[str, Meta(max_length=255)] | None = None
    description: Annotated[str, Meta(max_length=5000)] | None = None


class ReelOut(Struct):
    id: int
    user_id: int
    video_url: str
    thumbnail_url: str
    title: str | None
    description: str | None
    duration: int
    view_count: int
    like_count: int
    comment_count: int
    share_count: int
    created_at: datetime
    liked: bool  # by the caller


class ReelsQuery(PageQuery, kw_only=True):
    seller_id: Id | None = None


class LikeOut(Struct):
    reel_id: int
    liked: bool
    like_count: int


class CommentBody(Struct, forbid_unknown_fields=True, kw_only=True):
    content: Annotated[str, Meta(min_length=1, max_length=2000, pattern=r"\S")]
    parent_id: Id | None = None


class CommentOut(Struct):
    id: int
    reel_id: int
    user_id: int
    parent_id: int | None
    content: str
    like_count: int
    reply_count: int
    created_at: datetime


class CommentsQuery(PageQuery, kw_only=True):
    parent_id: Id | None = None  # replies of this comment; top-level comments without it


_REEL = (
    "SELECT r.id, r.user_id, r.video_url, r.thumbnail_url, r.title, r.description, r.duration,"
    " r.view_count, r.like_count, r.comment_count, r.share_count, r.created_at,"
    " EXISTS (SELECT 1 FROM market.reel_likes l WHERE l.reel_id = r.id AND l.user_id = $1)"
    " AS liked FROM market.reels r"
)
_COMMENT = (
    "SELECT c.id, c.reel_id, c.user_id, c.parent_id, c.content, c.like_count, c.created_at,"
    " (SELECT count(*) FROM market.reel_comments x"
    "   WHERE x.parent_id = c.id AND x.deleted_at IS NULL)::int AS reply_count"
    " FROM market.reel_comments c"
)


async def _reel(pool: asyncpg.Pool, user: int, reel_id: int) -> ReelOut:
    row = await pool.fetchrow(_REEL + f" WHERE r.id = $2 AND {social.LIVE_REEL}", user, reel_id)
    if row is None:
        raise NotFound(f"reel {reel_id} does not exist")
    return ReelOut(**dict(row))


@endpoint(
    routes,
    "POST",
    "/v1/reels",
    summary="A seller posts a reel",
    tag=TAG,
    body=ReelBody,
    response=ReelOut,
    status=201,
    errors=(400, 401, 403),
)
async def create_reel(request: web.Request, body: ReelBody) -> ReelOut:
    who = await me(request)
    social.require_seller(who.role)
    pool = request.app[POOL]
    reel = await pool.fetchval(
        "INSERT INTO market.reels (user_id, video_url, thumbnail_url, duration, title,"
        " description) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        who.id,
        body.video_url,
        body.thumbnail_url,
        body.duration,
        body.title,
        body.description,
    )
    return await _reel(pool, who.id, reel)


@endpoint(
    routes,
    "GET",
    "/v1/reels",
    summary="Live reels, newest first, optionally of one seller",
    tag=TAG,
    query=ReelsQuery,
    response=Page[ReelOut],
    errors=(400, 401),
)
async def list_reels(request: web.Request, query: ReelsQuery) -> Page[ReelOut]:
    who = await me(request)
    after = decode_cursor(query.cursor, int)
    rows = await request.app[POOL].fetch(
        _REEL + f" WHERE {social.LIVE_REEL} AND ($2::bigint IS NULL OR r.user_id = $2)"
        " AND ($3::bigint IS NULL OR r.id < $3) ORDER BY r.id DESC LIMIT $4",
        who.id,
        query.seller_id,
        after[0] if after else None,
        query.limit + 1,
    )
    return page_of([ReelOut(**dict(r)) for r in rows], query.limit, lambda r: (r.id,))


@endpoint(
    routes,
    "GET",
    "/v1/reels/{reel_id}",
    summary="One live reel",
    tag=TAG,
    response=ReelOut,
    errors=(400, 401, 404),
)
async def get_reel(request: web.Request) -> ReelOut:
    who = await me(request)
    return await _reel(request.app[POOL], who.id, path_id(request, "reel_id"))


@endpoint(
    routes,
    "DELETE",
    "/v1/reels/{reel_id}",
    summary="Delete a reel (its author, or technical_access staff)",
    tag=TAG,
    errors=(400, 401, 403, 404),
    status=204,
)
async def delete_reel(request: web.Request) -> None:
    who = await me(request)
    reel_id = path_id(request, "reel_id")
    pool = request.app[POOL]
    author = await pool.fetchval(
        "SELECT user_id FROM market.reels WHERE id = $1 AND deleted_at IS NULL", reel_id
    )
    if author is None:
        raise NotFound(f"reel {reel_id} does not exist")
    _author_or_moderator(who, author, await has_role(request, who.id, MODERATOR), "reel")
    await pool.execute(
        "UPDATE market.reels SET deleted_at = now(), is_active = false"
        " WHERE id = $1 AND deleted_at IS NULL",
        reel_id,
    )


async def _like(request: web.Request, liked: bool) -> LikeOut:
    who = await me(request)
    reel_id = path_id(request, "reel_id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        count = await social.set_like(conn, reel_id, who.id, liked)
    return LikeOut(reel_id, liked, count)


@endpoint(
    routes,
    "PUT",
    "/v1/reels/{reel_id}/like",
    summary="Like a reel (idempotent)",
    tag=TAG,
    response=LikeOut,
    errors=(400, 401, 404),
)
async def like(request: web.Request) -> LikeOut:
    return await _like(request, True)


@endpoint(
    routes,
    "DELETE",
    "/v1/reels/{reel_id}/like",
    summary="Take one's like back (idempotent)",
    tag=TAG,
    response=LikeOut,
    errors=(400, 401, 404),
)
async def unlike(request: web.Request) -> LikeOut:
    return await _like(request, False)


@endpoint(
    routes,
    "POST",
    "/v1/reels/{reel_id}/comments",
    summary="Comment on a live reel, or reply to one of its comments (`parent_id`)",
    tag=TAG,
    body=CommentBody,
    response=CommentOut,
    status=201,
    errors=(400, 401, 404),
)
async def comment(request: web.Request, body: CommentBody) -> CommentOut:
    who = await me(request)
    reel_id = path_id(request, "reel_id")
    pool = request.app[POOL]
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM market.reels r WHERE r.id = $1 AND {social.LIVE_REEL})",
            reel_id,
        ):
            raise NotFound(f"reel {reel_id} does not exist")
        if body.parent_id is not None and not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM market.reel_comments"
            " WHERE id = $1 AND reel_id = $2 AND deleted_at IS NULL)",
            body.parent_id,
            reel_id,
        ):
            raise NotFound(f"reel {reel_id} has no comment {body.parent_id}")
        try:
            made = await conn.fetchval(
                "INSERT INTO market.reel_comments (reel_id, user_id, parent_id, content)"
                " VALUES ($1, $2, $3, $4) RETURNING id",
                reel_id,
                who.id,
                body.parent_id,
                body.content,
            )
        except asyncpg.ForeignKeyViolationError:  # the parent was deleted meanwhile
            raise NotFound(f"reel {reel_id} has no comment {body.parent_id}") from None
        row = await conn.fetchrow(_COMMENT + " WHERE c.id = $1", made)
    return CommentOut(**dict(row))


@endpoint(
    routes,
    "GET",
    "/v1/reels/{reel_id}/comments",
    summary="A live reel's comments, oldest first: top-level ones, or the replies of `parent_id`",
    tag=TAG,
    query=CommentsQuery,
    response=Page[CommentOut],
    errors=(400, 401, 404),
)
async def comments(request: web.Request, query: CommentsQuery) -> Page[CommentOut]:
    await me(request)
    reel_id = path_id(request, "reel_id")
    pool = request.app[POOL]
    if not await pool.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM market.reels r WHERE r.id = $1 AND {social.LIVE_REEL})",
        reel_id,
    ):
        raise NotFound(f"reel {reel_id} does not exist")
    after = decode_cursor(query.cursor, int)
    rows = await pool.fetch(
        _COMMENT + " WHERE c.reel_id = $1 AND c.deleted_at IS NULL"
        " AND c.parent_id IS NOT DISTINCT FROM $2::bigint"
        " AND ($3::bigint IS NULL OR c.id > $3) ORDER BY c.id LIMIT $4",
        reel_id,
        query.parent_id,
        after[0] if after else None,
        query.limit + 1,
    )
    return page_of([CommentOut(**dict(r)) for r in rows], query.limit, lambda c: (c.id,))


@endpoint(
    routes,
    "DELETE",
    "/v1/reels/{reel_id}/comments/{comment_id}",
    summary="Delete a comment (its author, the reel's author, or technical_access staff)",
    tag=TAG,
    errors=(400, 401, 403, 404),
    status=204,
)
async def delete_comment(request: web.Request) -> None:
    who = await me(request)
    reel_id, comment_id = path_id(request, "reel_id"), path_id(request, "comment_id")
    pool = request.app[POOL]
    row = await pool.fetchrow(
        "SELECT c.user_id, r.user_id AS reel_author FROM market.reel_comments c"
        "  JOIN market.reels r ON r.id = c.reel_id"
        " WHERE c.id = $1 AND c.reel_id = $2 AND c.deleted_at IS NULL",
        comment_id,
        reel_id,
    )
    if row is None:
        raise NotFound(f"reel {reel_id} has no comment {comment_id}")
    if who.id not in (row["user_id"], row["reel_author"]) and not await has_role(
        request, who.id, MODERATOR
    ):
        raise Forbidden("only its author, the reel's author or staff delete a comment")
    # comment_count follows through the statement trigger (a soft delete takes one off).
    await pool.execute(
        "UPDATE market.reel_comments SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL",
        comment_id,
    )


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
