"""/v1/market/reels: sellers post reels; signed-in users like them and comment on them
(replies, pages); authors and moderators take them down. The rules are
realms/market/social.py's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import asyncpg
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
    author_or_moderator(who, author, await has_role(request, who.id, MODERATOR), "reel")
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
