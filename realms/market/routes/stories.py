"""/v1/market/stories: sellers post 24-hour stories; signed-in users see the stories of the
sellers they subscribe to and view them (each viewer counted once; the author sees who). The
rules are realms/market/social.py's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import Forbidden, NotFound
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from realms.market import social
from realms.market.routes.access import has_role, me, path_id
from realms.market.routes.social import MODERATOR, TAG, Id, Url, author_or_moderator

routes = web.RouteTableDef()


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
    author_or_moderator(who, author, await has_role(request, who.id, MODERATOR), "story")
    await pool.execute(
        "UPDATE market.stories SET deleted_at = now(), is_active = false"
        " WHERE id = $1 AND deleted_at IS NULL",
        story_id,
    )
