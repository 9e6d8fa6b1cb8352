"""/v1/creator follows, likes and comments: follow / unfollow a creator (an unfollow keeps the
row with `unfollowed_at`, as the seed tracks it), like / unlike content the caller can open,
comment and reply on it (authors edit and delete their own; the content's creator pins and
deletes any on their content; staff delete any). Counts are counted from the rows, under the
tables' unique keys, so they are exact under concurrent requests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import asyncpg
from aiohttp import web
from msgspec import UNSET, Meta, Struct, UnsetType

from kernel.errors import BadRequest, Forbidden, NotFound
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid
from realms.creator import content as posts
from realms.creator.accounts import current_account, verified_account

routes = web.RouteTableDef()

CommentText = Annotated[str, Meta(min_length=1, max_length=2000, pattern=r"^[^\x00]*\S[^\x00]*$")]


class FollowBody(Struct, forbid_unknown_fields=True, kw_only=True):
    notify_on_new_content: bool = True
    notify_on_live: bool = True


class FollowOut(Struct, kw_only=True):
    creator_id: uuid.UUID
    following: bool
    notify_on_new_content: bool
    notify_on_live: bool
    follower_count: int


class FollowedUser(Struct, kw_only=True):
    user_id: uuid.UUID
    username: str
    display_name: str | None
    followed_at: datetime


class LikeOut(Struct, kw_only=True):
    content_id: uuid.UUID
    liked: bool
    like_count: int


class CommentBody(Struct, forbid_unknown_fields=True, kw_only=True):
    body: CommentText
    parent_id: uuid.UUID | None = None


class CommentEdit(Struct, forbid_unknown_fields=True, kw_only=True):
    """`body`: the author's; `is_pinned`: the content's creator's."""

    body: CommentText | UnsetType = UNSET
    is_pinned: bool | UnsetType = UNSET


class CommentsQuery(PageQuery, kw_only=True):
    parent_id: uuid.UUID | None = None


class CommentOut(Struct, kw_only=True):
    """A comment; a deleted or removed one that has replies stays as a tombstone (`deleted`,
    no author, no body)."""

    id: uuid.UUID
    content_id: uuid.UUID
    parent_id: uuid.UUID | None
    user_id: uuid.UUID | None
    username: str | None
    body: str | None
    is_by_creator: bool
    is_pinned: bool
    deleted: bool
    reply_count: int
    edited_at: datetime | None
    created_at: datetime


_LIVE = "{c}.deleted_at IS NULL AND {c}.moderation_status <> 'removed'"
_COMMENT = f"""
SELECT m.id, m.content_id, m.parent_comment_id AS parent_id, m.user_id, u.username, m.body,
       m.is_by_creator, m.is_pinned, m.edited_at, m.created_at,
       NOT ({_LIVE.format(c="m")}) AS deleted,
       (SELECT count(*) FROM creator.comments r
         WHERE r.parent_comment_id = m.id AND {_LIVE.format(c="r")}) AS reply_count
  FROM creator.comments m JOIN creator.users u ON u.id = m.user_id
"""


def _comment(row: asyncpg.Record) -> CommentOut:
    gone = row["deleted"]
    return CommentOut(
        id=row["id"],
        content_id=row["content_id"],
        parent_id=row["parent_id"],
        user_id=None if gone else row["user_id"],
        username=None if gone else row["username"],
        body=None if gone else row["body"],
        is_by_creator=row["is_by_creator"],
        is_pinned=row["is_pinned"],
        deleted=gone,
        reply_count=row["reply_count"],
        edited_at=row["edited_at"],
        created_at=row["created_at"],
    )


async def _followable(pool: asyncpg.Pool, me: uuid.UUID, creator_id: uuid.UUID) -> None:
    if creator_id == me:
        raise BadRequest("you cannot follow yourself")
    kind = await pool.fetchval(
        "SELECT account_type FROM creator.users WHERE id = $1 AND account_status = 'active'"
        " AND deleted_at IS NULL",
        creator_id,
    )
    if kind is None:
        raise NotFound(f"no creator {creator_id}")
    if kind != "creator":
        raise BadRequest("only creators are followed")


async def _follow_state(pool: asyncpg.Pool, me: uuid.UUID, creator_id: uuid.UUID) -> FollowOut:
    row = await pool.fetchrow(
        "SELECT f.id IS NOT NULL AND f.unfollowed_at IS NULL AS following,"
        " f.notify_on_new_content, f.notify_on_live,"
        " (SELECT count(*) FROM creator.follows a WHERE a.following_id = $2"
        "   AND a.unfollowed_at IS NULL) AS follower_count"
        " FROM (SELECT 1) one LEFT JOIN creator.follows f"
        "   ON f.follower_id = $1 AND f.following_id = $2",
        me,
        creator_id,
    )
    return FollowOut(
        creator_id=creator_id,
        following=bool(row["following"]),
        notify_on_new_content=bool(row["notify_on_new_content"]),
        notify_on_live=bool(row["notify_on_live"]),
        follower_count=row["follower_count"],
    )


@endpoint(
    routes,
    "POST",
    "/v1/creators/{id}/follow",
    summary="Follow a creator (again), with what to be told of; idempotent",
    tag="creator social",
    body=FollowBody,
    response=FollowOut,
    errors=(400, 404),
)
async def follow(request: web.Request, body: FollowBody) -> FollowOut:
    me = await current_account(request)
    creator_id = path_uuid(request)
    pool = request.app[POOL]
    await _followable(pool, me.id, creator_id)
    await pool.execute(
        "INSERT INTO creator.follows (follower_id, following_id, notify_on_new_content,"
        " notify_on_live) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (follower_id, following_id) DO UPDATE SET unfollowed_at = NULL,"
        " notify_on_new_content = EXCLUDED.notify_on_new_content,"
        " notify_on_live = EXCLUDED.notify_on_live",
        me.id,
        creator_id,
        body.notify_on_new_content,
        body.notify_on_live,
    )
    return await _follow_state(pool, me.id, creator_id)


@endpoint(
    routes,
    "DELETE",
    "/v1/creators/{id}/follow",
    summary="Unfollow a creator; idempotent",
    tag="creator social",
    response=FollowOut,
    errors=(400,),
)
async def unfollow(request: web.Request) -> FollowOut:
    me = await current_account(request)
    creator_id = path_uuid(request)
    pool = request.app[POOL]
    await pool.execute(
        "UPDATE creator.follows SET unfollowed_at = now()"
        " WHERE follower_id = $1 AND following_id = $2 AND unfollowed_at IS NULL",
        me.id,
        creator_id,
    )
    return await _follow_state(pool, me.id, creator_id)


async def _follow_page(
    request: web.Request, query: PageQuery, mine: str, theirs: str
) -> Page[FollowedUser]:
    """Follows where `mine` is the caller, listing the `theirs` side, newest first."""
    me = await current_account(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        f"SELECT u.id AS user_id, u.username, u.display_name, f.created_at AS followed_at"
        f" FROM creator.follows f JOIN creator.users u ON u.id = f.{theirs}"
        f" WHERE f.{mine} = $1 AND f.unfollowed_at IS NULL AND u.deleted_at IS NULL"
        f" AND ($2::timestamptz IS NULL OR (f.created_at, f.{theirs}) < ($2, $3::uuid))"
        f" ORDER BY f.created_at DESC, f.{theirs} DESC LIMIT $4",
        me.id,
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
    )
    items = [FollowedUser(**dict(r)) for r in rows]
    return page_of(items, query.limit, lambda f: (f.followed_at.isoformat(), str(f.user_id)))


@endpoint(
    routes,
    "GET",
    "/v1/me/following",
    summary="The creators the caller follows, most recently followed first",
    tag="creator social",
    query=PageQuery,
    response=Page[FollowedUser],
    errors=(400,),
)
async def following(request: web.Request, query: PageQuery) -> Page[FollowedUser]:
    return await _follow_page(request, query, "follower_id", "following_id")


@endpoint(
    routes,
    "GET",
    "/v1/me/followers",
    summary="The caller's followers, newest first",
    tag="creator social",
    query=PageQuery,
    response=Page[FollowedUser],
    errors=(400,),
)
async def followers(request: web.Request, query: PageQuery) -> Page[FollowedUser]:
    return await _follow_page(request, query, "following_id", "follower_id")


async def _like_state(pool: asyncpg.Pool, me: uuid.UUID, content_id: uuid.UUID) -> LikeOut:
    row = await pool.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM creator.likes WHERE content_id = $2 AND user_id = $1)"
        " AS liked, (SELECT count(*) FROM creator.likes WHERE content_id = $2) AS like_count",
        me,
        content_id,
    )
    return LikeOut(content_id=content_id, liked=row["liked"], like_count=row["like_count"])


@endpoint(
    routes,
    "POST",
    "/v1/content/{id}/like",
    summary="Like content the caller can open; idempotent",
    tag="creator social",
    response=LikeOut,
    errors=(400, 403, 404),
)
async def like(request: web.Request) -> LikeOut:
    me = await current_account(request)
    content_id = path_uuid(request)
    pool = request.app[POOL]
    await posts.require_access(pool, content_id, me.id)
    async with pool.acquire() as conn, conn.transaction():
        liked = await conn.fetchval(
            "INSERT INTO creator.likes (user_id, content_id) VALUES ($1, $2)"
            " ON CONFLICT (user_id, content_id) DO NOTHING RETURNING id",
            me.id,
            content_id,
        )
        if liked is not None:
            await conn.execute(
                "INSERT INTO creator.content_analytics (content_id, user_id, event_type)"
                " VALUES ($1, $2, 'like')",
                content_id,
                me.id,
            )
    return await _like_state(pool, me.id, content_id)


@endpoint(
    routes,
    "DELETE",
    "/v1/content/{id}/like",
    summary="Take a like back; idempotent",
    tag="creator social",
    response=LikeOut,
    errors=(400, 404),
)
async def unlike(request: web.Request) -> LikeOut:
    me = await current_account(request)
    content_id = path_uuid(request)
    pool = request.app[POOL]
    await posts.read_for(pool, content_id, me.id)
    async with pool.acquire() as conn, conn.transaction():
        gone = await conn.fetchval(
            "DELETE FROM creator.likes WHERE user_id = $1 AND content_id = $2 RETURNING id",
            me.id,
            content_id,
        )
        if gone is not None:
            await conn.execute(
                "INSERT INTO creator.content_analytics (content_id, user_id, event_type)"
                " VALUES ($1, $2, 'unlike')",
                content_id,
                me.id,
            )
    return await _like_state(pool, me.id, content_id)


@endpoint(
    routes,
    "GET",
    "/v1/content/{id}/comments",
    summary="Comments on content (replies of `parent_id`): pinned, the creator's, then newest",
    tag="creator social",
    query=CommentsQuery,
    response=Page[CommentOut],
    errors=(400, 403, 404),
)
async def comments(request: web.Request, query: CommentsQuery) -> Page[CommentOut]:
    me = await current_account(request)
    content_id = path_uuid(request)
    pool = request.app[POOL]
    await posts.require_access(pool, content_id, me.id)
    after = decode_cursor(query.cursor, bool, bool, datetime, uuid.UUID)
    rows = await pool.fetch(
        f"{_COMMENT} WHERE m.content_id = $1"
        " AND m.parent_comment_id IS NOT DISTINCT FROM $2::uuid"
        f" AND ({_LIVE.format(c='m')} OR EXISTS (SELECT 1 FROM creator.comments r"
        f"      WHERE r.parent_comment_id = m.id AND {_LIVE.format(c='r')}))"
        " AND ($3::boolean IS NULL OR (m.is_pinned, m.is_by_creator, m.created_at, m.id)"
        "      < ($3, $4::boolean, $5::timestamptz, $6::uuid))"
        " ORDER BY m.is_pinned DESC, m.is_by_creator DESC, m.created_at DESC, m.id DESC"
        " LIMIT $7",
        content_id,
        query.parent_id,
        *(after or (None, None, None, None)),
        query.limit + 1,
    )
    return page_of(
        [_comment(r) for r in rows],
        query.limit,
        lambda c: (c.is_pinned, c.is_by_creator, c.created_at.isoformat(), str(c.id)),
    )


async def _one_comment(
    pool: asyncpg.Pool | asyncpg.Connection, comment_id: uuid.UUID
) -> CommentOut:
    row = await pool.fetchrow(f"{_COMMENT} WHERE m.id = $1", comment_id)
    if row is None:
        raise NotFound(f"no comment {comment_id}")
    return _comment(row)


@endpoint(
    routes,
    "POST",
    "/v1/content/{id}/comments",
    summary="Comment on content the caller can open, or reply to a comment on it",
    tag="creator social",
    body=CommentBody,
    response=CommentOut,
    status=201,
    errors=(400, 403, 404),
)
async def comment(request: web.Request, body: CommentBody) -> CommentOut:
    me = await verified_account(request, "commenting")
    content_id = path_uuid(request)
    pool = request.app[POOL]
    if await pool.fetchval("SELECT creator.has_feature_restriction($1, 'commenting')", me.id):
        raise Forbidden("commenting is restricted on your account")
    await posts.require_access(pool, content_id, me.id)
    if body.parent_id is not None and not await pool.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM creator.comments c WHERE c.id = $1"
        f" AND c.content_id = $2 AND {_LIVE.format(c='c')})",
        body.parent_id,
        content_id,
    ):
        raise BadRequest("`parent_id` is not a comment on this content")
    async with pool.acquire() as conn, conn.transaction():
        comment_id = await conn.fetchval(
            "INSERT INTO creator.comments (content_id, user_id, parent_comment_id, body)"
            " VALUES ($1, $2, $3, $4) RETURNING id",
            content_id,
            me.id,
            body.parent_id,
            body.body,
        )
        await conn.execute(
            "INSERT INTO creator.content_analytics (content_id, user_id, event_type)"
            " VALUES ($1, $2, 'comment')",
            content_id,
            me.id,
        )
    return await _one_comment(pool, comment_id)


async def _comment_row(conn: asyncpg.Connection, comment_id: uuid.UUID) -> asyncpg.Record:
    """A live comment with its content's creator, locked for the change."""
    row = await conn.fetchrow(
        "SELECT m.user_id, c.creator_id FROM creator.comments m"
        " JOIN creator.content c ON c.id = m.content_id"
        f" WHERE m.id = $1 AND {_LIVE.format(c='m')} FOR UPDATE OF m",
        comment_id,
    )
    if row is None:
        raise NotFound(f"no comment {comment_id}")
    return row


@endpoint(
    routes,
    "PATCH",
    "/v1/comments/{id}",
    summary="Edit one's own comment, or pin/unpin a comment on one's content",
    tag="creator social",
    body=CommentEdit,
    response=CommentOut,
    errors=(400, 403, 404),
)
async def edit_comment(request: web.Request, body: CommentEdit) -> CommentOut:
    me = await current_account(request)
    comment_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _comment_row(conn, comment_id)
        if body.body is not UNSET:
            if row["user_id"] != me.id:
                raise Forbidden("only its author edits a comment")
            await conn.execute(
                "UPDATE creator.comments SET body = $2, edited_at = now()"
                " WHERE id = $1 AND body IS DISTINCT FROM $2",
                comment_id,
                body.body,
            )
        if body.is_pinned is not UNSET:
            if row["creator_id"] != me.id:
                raise Forbidden("only the content's creator pins comments")
            await conn.execute(
                "UPDATE creator.comments SET is_pinned = $2 WHERE id = $1",
                comment_id,
                body.is_pinned,
            )
        return await _one_comment(conn, comment_id)


@endpoint(
    routes,
    "DELETE",
    "/v1/comments/{id}",
    summary="Delete a comment: its author, the content's creator, or staff",
    tag="creator social",
    status=204,
    errors=(400, 403, 404),
)
async def delete_comment(request: web.Request) -> None:
    me = await current_account(request)
    comment_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _comment_row(conn, comment_id)
        if me.id not in (row["user_id"], row["creator_id"]) and not me.is_staff:
            raise Forbidden("only its author, the content's creator or staff delete a comment")
        await conn.execute(
            "UPDATE creator.comments SET deleted_at = now(), deleted_by = $2 WHERE id = $1",
            comment_id,
            me.id,
        )
