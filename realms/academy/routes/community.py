"""/v1/academy/posts, comments and votes: the community. Users write as themselves under
RLS (a locked post takes no comments); counters, last_activity_at, pinning and locking are
kept by the server. New posts, comments and score changes go to the live feed
`academy.community:all`. One vote per user per target: a second is `conflict`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from realms.academy import events, notices
from realms.academy.progress import unlock_achievements
from realms.academy.rls import as_user, trusted

routes = web.RouteTableDef()

Title = Annotated[str, Meta(min_length=1, max_length=300)]
Body = Annotated[str, Meta(min_length=1, max_length=20000)]
Tag = Annotated[str, Meta(min_length=1, max_length=50)]
TargetType = Literal["post", "comment"]


class PostIn(Struct, forbid_unknown_fields=True):
    title: Title
    content: Body | None = None
    post_type: Literal["discussion", "question", "announcement"] = "discussion"
    category: Annotated[str, Meta(max_length=100)] | None = None
    tags: Annotated[list[Tag], Meta(max_length=20)] | None = None


class PostPatch(Struct, forbid_unknown_fields=True, omit_defaults=True):
    title: Title | None = None
    content: Body | None = None
    category: Annotated[str, Meta(max_length=100)] | None = None
    tags: Annotated[list[Tag], Meta(max_length=20)] | None = None


class ModerationIn(Struct, forbid_unknown_fields=True, omit_defaults=True):
    is_pinned: bool | None = None
    is_locked: bool | None = None


class PostOut(Struct):
    id: uuid.UUID
    author_id: uuid.UUID
    title: str
    content: str | None
    post_type: str | None
    category: str | None
    tags: list[str] | None
    is_pinned: bool | None
    is_locked: bool | None
    upvotes_count: int | None
    downvotes_count: int | None
    comments_count: int | None
    views_count: int | None
    last_activity_at: datetime | None
    created_at: datetime


class PostQuery(PageQuery, kw_only=True):
    category: Annotated[str, Meta(max_length=100)] | None = None


class CommentIn(Struct, forbid_unknown_fields=True):
    content: Body
    parent_comment_id: uuid.UUID | None = None


class CommentOut(Struct):
    id: uuid.UUID
    post_id: uuid.UUID
    author_id: uuid.UUID
    parent_comment_id: uuid.UUID | None
    content: str
    upvotes_count: int | None
    downvotes_count: int | None
    is_deleted: bool | None
    created_at: datetime


class VoteIn(Struct, forbid_unknown_fields=True):
    target_type: TargetType
    target_id: uuid.UUID
    vote_type: Literal["upvote", "downvote"]


class ScoreOut(Struct):
    target_type: str
    target_id: uuid.UUID
    upvotes: int
    downvotes: int
    score: int


_POST = (
    "id, author_id, title, content, post_type, category, tags, is_pinned, is_locked,"
    " upvotes_count, downvotes_count, comments_count, views_count, last_activity_at, created_at"
)
_COMMENT = (
    "id, post_id, author_id, parent_comment_id, content, upvotes_count, downvotes_count,"
    " is_deleted, created_at"
)
_TABLE = {"post": "academy.community_posts", "comment": "academy.community_comments"}


def _uuid(request: web.Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise BadRequest(f"{name} is not a UUID") from None


@endpoint(
    routes,
    "POST",
    "/v1/posts",
    summary="Write a community post",
    tag="academy",
    body=PostIn,
    response=PostOut,
    status=201,
    errors=(400, 401, 403),
)
async def create_post(request: web.Request, body: PostIn) -> PostOut:
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        if body.post_type == "announcement" and not await conn.fetchval(
            "SELECT academy.is_admin()"
        ):
            raise Forbidden("only admins post announcements")
        row = await conn.fetchrow(
            "INSERT INTO academy.community_posts (author_id, title, content, post_type,"
            f" category, tags) VALUES (academy.uid(), $1, $2, $3, $4, $5) RETURNING {_POST}",
            body.title,
            body.content,
            body.post_type,
            body.category,
            body.tags,
        )
        await conn.execute(
            "INSERT INTO academy.user_activity_log (user_id, activity_type, entity_type,"
            " entity_id) VALUES (academy.uid(), 'post_create', 'post', $1)",
            row["id"],
        )
        post = PostOut(**dict(row))
        await events.publish(
            conn,
            events.COMMUNITY_CHANNEL,
            "post_created",
            {
                "id": str(post.id),
                "author_id": str(post.author_id),
                "title": post.title[:300],
                "excerpt": events.excerpt(post.content),
                "post_type": post.post_type,
                "category": post.category,
            },
        )
        async with trusted(conn):
            await unlock_achievements(conn, who.user_id)
    return post


@endpoint(
    routes,
    "GET",
    "/v1/posts",
    summary="Community posts, latest activity first",
    tag="academy",
    query=PostQuery,
    response=Page[PostOut],
    errors=(400, 401),
)
async def list_posts(request: web.Request, query: PostQuery) -> Page[PostOut]:
    who = await caller(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    async with as_user(request.app[POOL], who.user_id) as conn:
        rows = await conn.fetch(
            f"SELECT {_POST} FROM academy.community_posts"
            " WHERE ($1::text IS NULL OR category = $1)"
            "   AND ($2::timestamptz IS NULL OR (last_activity_at, id) < ($2, $3::uuid))"
            " ORDER BY last_activity_at DESC, id DESC LIMIT $4",
            query.category,
            after[0] if after else None,
            after[1] if after else None,
            query.limit + 1,
        )
    posts = [PostOut(**dict(r)) for r in rows]
    return page_of(posts, query.limit, lambda p: (p.last_activity_at, str(p.id)))


@endpoint(
    routes,
    "GET",
    "/v1/posts/{post_id}",
    summary="One post (counts a view)",
    tag="academy",
    response=PostOut,
    errors=(400, 401, 404),
)
async def get_post(request: web.Request) -> PostOut:
    who = await caller(request)
    post_id = _uuid(request, "post_id")
    async with as_user(request.app[POOL], who.user_id) as conn:
        if not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM academy.community_posts WHERE id = $1)", post_id
        ):
            raise NotFound("no such post")
        async with trusted(conn):
            row = await conn.fetchrow(
                "UPDATE academy.community_posts SET views_count = coalesce(views_count, 0) + 1"
                f" WHERE id = $1 RETURNING {_POST}",
                post_id,
            )
    if row is None:
        raise NotFound("no such post")
    return PostOut(**dict(row))


@endpoint(
    routes,
    "PATCH",
    "/v1/posts/{post_id}",
    summary="Edit one's own post",
    tag="academy",
    body=PostPatch,
    response=PostOut,
    errors=(400, 401, 404),
)
async def edit_post(request: web.Request, body: PostPatch) -> PostOut:
    who = await caller(request)
    changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
    if not changes:
        raise BadRequest("nothing to change")
    sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(changes, start=2))
    async with as_user(request.app[POOL], who.user_id) as conn:
        row = await conn.fetchrow(
            f"UPDATE academy.community_posts SET {sets} WHERE id = $1 RETURNING {_POST}",
            _uuid(request, "post_id"),
            *changes.values(),
        )
    if row is None:
        raise NotFound("no such post of yours")
    return PostOut(**dict(row))


@endpoint(
    routes,
    "DELETE",
    "/v1/posts/{post_id}",
    summary="Delete one's own post",
    tag="academy",
    errors=(400, 401, 404),
)
async def delete_post(request: web.Request) -> None:
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        status = await conn.execute(
            "DELETE FROM academy.community_posts WHERE id = $1", _uuid(request, "post_id")
        )
    if status == "DELETE 0":
        raise NotFound("no such post of yours")


@endpoint(
    routes,
    "POST",
    "/v1/posts/{post_id}/moderation",
    summary="Pin or lock a post (admins)",
    tag="academy",
    body=ModerationIn,
    response=PostOut,
    errors=(400, 401, 403, 404),
)
async def moderate_post(request: web.Request, body: ModerationIn) -> PostOut:
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        if not await conn.fetchval("SELECT academy.is_admin()"):
            raise Forbidden("only admins pin or lock posts")
        async with trusted(conn):
            row = await conn.fetchrow(
                "UPDATE academy.community_posts SET is_pinned = coalesce($2, is_pinned),"
                f" is_locked = coalesce($3, is_locked) WHERE id = $1 RETURNING {_POST}",
                _uuid(request, "post_id"),
                body.is_pinned,
                body.is_locked,
            )
    if row is None:
        raise NotFound("no such post")
    return PostOut(**dict(row))


@endpoint(
    routes,
    "POST",
    "/v1/posts/{post_id}/comments",
    summary="Comment on a post",
    tag="academy",
    body=CommentIn,
    response=CommentOut,
    status=201,
    errors=(400, 401, 403, 404),
)
async def create_comment(request: web.Request, body: CommentIn) -> CommentOut:
    who = await caller(request)
    post_id = _uuid(request, "post_id")
    async with as_user(request.app[POOL], who.user_id) as conn:
        post = await conn.fetchrow(
            "SELECT author_id, title, is_locked IS TRUE AS locked FROM academy.community_posts"
            " WHERE id = $1",
            post_id,
        )
        if post is None:
            raise NotFound("no such post")
        if post["locked"]:
            raise Forbidden("this post is locked")
        parent_author = None
        if body.parent_comment_id is not None:
            parent_author = await conn.fetchval(
                "SELECT author_id FROM academy.community_comments WHERE id = $1 AND post_id = $2",
                body.parent_comment_id,
                post_id,
            )
            if parent_author is None:
                raise BadRequest("parent_comment_id is not a comment of this post")
        try:
            row = await conn.fetchrow(
                "INSERT INTO academy.community_comments (post_id, author_id, parent_comment_id,"
                f" content) VALUES ($1, academy.uid(), $2, $3) RETURNING {_COMMENT}",
                post_id,
                body.parent_comment_id,
                body.content,
            )
        except asyncpg.InsufficientPrivilegeError:  # locked meanwhile
            raise Forbidden("this post is locked") from None
        comment = CommentOut(**dict(row))
        async with trusted(conn):
            await conn.execute(
                "UPDATE academy.community_posts SET comments_count = coalesce(comments_count, 0)"
                " + 1, last_activity_at = now() WHERE id = $1",
                post_id,
            )
            await notices.reply(
                conn,
                comment_id=comment.id,
                post_id=post_id,
                post_title=post["title"],
                excerpt=events.excerpt(comment.content) or "",
                author_id=who.user_id,
                recipients=[post["author_id"], parent_author],
            )
        await events.publish(
            conn,
            events.COMMUNITY_CHANNEL,
            "comment_created",
            {
                "id": str(comment.id),
                "post_id": str(post_id),
                "author_id": str(who.user_id),
                "parent_comment_id": None
                if body.parent_comment_id is None
                else str(body.parent_comment_id),
                "excerpt": events.excerpt(comment.content),
            },
        )
    return comment


@endpoint(
    routes,
    "GET",
    "/v1/posts/{post_id}/comments",
    summary="A post's comments, oldest first",
    tag="academy",
    query=PageQuery,
    response=Page[CommentOut],
    errors=(400, 401),
)
async def list_comments(request: web.Request, query: PageQuery) -> Page[CommentOut]:
    who = await caller(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    async with as_user(request.app[POOL], who.user_id) as conn:
        rows = await conn.fetch(
            f"SELECT {_COMMENT} FROM academy.community_comments WHERE post_id = $1"
            "   AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))"
            " ORDER BY created_at, id LIMIT $4",
            _uuid(request, "post_id"),
            after[0] if after else None,
            after[1] if after else None,
            query.limit + 1,
        )
    comments = [CommentOut(**dict(r)) for r in rows]
    return page_of(comments, query.limit, lambda c: (c.created_at, str(c.id)))


async def _rescore(
    conn: asyncpg.Connection, target_type: str, target_id: uuid.UUID, vote: str, delta: int
) -> ScoreOut:
    """As the server: move the target's counter by `delta` (one atomic UPDATE: concurrent
    votes queue on the row), then tell the feed the new score."""
    column = "upvotes_count" if vote == "upvote" else "downvotes_count"
    async with trusted(conn):
        row = await conn.fetchrow(
            f"UPDATE {_TABLE[target_type]} SET {column} = greatest(coalesce({column}, 0) + $2, 0)"
            " WHERE id = $1 RETURNING coalesce(upvotes_count, 0) AS up,"
            " coalesce(downvotes_count, 0) AS down",
            target_id,
            delta,
        )
    if row is None:
        raise NotFound(f"no such {target_type}")
    score = ScoreOut(target_type, target_id, row["up"], row["down"], row["up"] - row["down"])
    await events.publish(
        conn,
        events.COMMUNITY_CHANNEL,
        "score_changed",
        {
            "target_type": target_type,
            "target_id": str(target_id),
            "upvotes": score.upvotes,
            "downvotes": score.downvotes,
            "score": score.score,
        },
    )
    return score


@endpoint(
    routes,
    "POST",
    "/v1/votes",
    summary="Vote on a post or comment (once)",
    tag="academy",
    body=VoteIn,
    response=ScoreOut,
    status=201,
    errors=(400, 401, 404, 409),
)
async def vote(request: web.Request, body: VoteIn) -> ScoreOut:
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        if not await conn.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM {_TABLE[body.target_type]} WHERE id = $1)",
            body.target_id,
        ):
            raise NotFound(f"no such {body.target_type}")
        try:
            async with conn.transaction():  # a savepoint: the refusal leaves nothing behind
                await conn.execute(
                    "INSERT INTO academy.community_votes (user_id, target_type, target_id,"
                    " vote_type) VALUES (academy.uid(), $1, $2, $3)",
                    body.target_type,
                    body.target_id,
                    body.vote_type,
                )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"you have already voted on this {body.target_type}") from None
        return await _rescore(conn, body.target_type, body.target_id, body.vote_type, 1)


@endpoint(
    routes,
    "DELETE",
    "/v1/votes/{target_type}/{target_id}",
    summary="Take back a vote",
    tag="academy",
    response=ScoreOut,
    errors=(400, 401, 404),
)
async def unvote(request: web.Request) -> ScoreOut:
    who = await caller(request)
    target_type = request.match_info["target_type"]
    if target_type not in _TABLE:
        raise BadRequest("target_type is `post` or `comment`")
    target_id = _uuid(request, "target_id")
    async with as_user(request.app[POOL], who.user_id) as conn:
        vote_type = await conn.fetchval(
            "DELETE FROM academy.community_votes WHERE user_id = academy.uid()"
            " AND target_type = $1 AND target_id = $2 RETURNING vote_type",
            target_type,
            target_id,
        )
        if vote_type is None:
            raise NotFound(f"you have not voted on this {target_type}")
        return await _rescore(conn, target_type, target_id, vote_type, -1)
