"""Comments on posts (issue 21 item 4): readers of a post comment on it, edit and delete their
own comments; the post's analyst and admins remove comments; moderation removes reported ones
(routes/moderation.py). posts.comments_count counts the live comments (a database trigger,
0021). A new comment notifies the post's analyst."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import asyncpg
import msgspec
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import Forbidden, NotFound
from kernel.notify import notify
from kernel.web.auth import Caller, caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid
from realms.analyst.routes.posts import visible_post

routes = web.RouteTableDef()

Text = Annotated[str, Meta(min_length=1, max_length=2000, pattern=r"\S")]
Reason = Annotated[str, Meta(min_length=1, max_length=500)]


class CommentBody(Struct, forbid_unknown_fields=True):
    content: Text


class DeleteQuery(Struct, kw_only=True):
    reason: Reason | None = None


class CommentOut(Struct):
    id: uuid.UUID
    post_id: uuid.UUID
    user_id: uuid.UUID
    content: str
    by_analyst: bool  # written by the post's analyst
    edited_at: datetime | None
    created_at: datetime
    updated_at: datetime


_COLUMNS = (
    "c.id, c.post_id, c.user_id, c.content, c.user_id = p.analyst_id AS by_analyst,"
    " c.edited_at, c.created_at, c.updated_at"
)
_FROM = "analyst.post_comments c JOIN analyst.posts p ON p.id = c.post_id"


def _comment(row: asyncpg.Record) -> CommentOut:
    return msgspec.convert(dict(row), CommentOut)


async def _readable_post(conn: asyncpg.Connection, who: Caller, post_id: uuid.UUID) -> None:
    """The post is live and `who` may read it: a locked (paid) post's thread is closed to
    those who cannot read the post (403), a missing or deleted post is 404."""
    post = await visible_post(conn, who, post_id)
    if post.locked:
        raise Forbidden("this post is for paid subscribers; its comments are too")


async def _live_comment(
    conn: asyncpg.Connection, comment_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record:
    """The comment and its post's analyst, when both are live; NotFound otherwise."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, p.analyst_id FROM {_FROM}"
        " WHERE c.id = $1 AND c.deleted_at IS NULL AND p.deleted_at IS NULL"
        + (" FOR UPDATE OF c" if lock else ""),
        comment_id,
    )
    if row is None:
        raise NotFound("comment not found")
    return row


@endpoint(
    routes,
    "POST",
    "/v1/posts/{id}/comments",
    summary="Comment on a post the caller may read",
    tag="comments",
    body=CommentBody,
    response=CommentOut,
    status=201,
    errors=(403, 404),
)
async def create_comment(request: web.Request, body: CommentBody) -> CommentOut:
    """Any reader of the post, its analyst included; a locked paid post is 403. The post's
    analyst is notified (`new_comment`) unless they wrote it."""
    who = await caller(request)
    post_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await _readable_post(conn, who, post_id)
        row = await conn.fetchrow(
            "WITH c AS (INSERT INTO analyst.post_comments (post_id, user_id, content)"
            " VALUES ($1, $2, $3) RETURNING *)"
            f" SELECT {_COLUMNS}, p.analyst_id, p.title FROM c JOIN analyst.posts p"
            " ON p.id = c.post_id",
            post_id,
            who.user_id,
            body.content,
        )
        if row["analyst_id"] != who.user_id:
            await notify(
                conn,
                event_key=f"comment:{row['id']}:created",
                recipients=[row["analyst_id"]],
                notification_type="new_comment",
                title=f"New comment on {row['title'] or 'your post'}"[:255],
                message=body.content[:200],
                action_url=f"/posts/{post_id}#comment-{row['id']}",
                related_entity_type="comment",
                related_entity_id=row["id"],
                priority="low",
            )
    return _comment(row)


@endpoint(
    routes,
    "GET",
    "/v1/posts/{id}/comments",
    summary="A post's live comments, oldest first",
    tag="comments",
    query=PageQuery,
    response=Page[CommentOut],
    errors=(403, 404),
)
async def list_comments(request: web.Request, query: PageQuery) -> Page[CommentOut]:
    who = await caller(request)
    post_id = path_uuid(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID) or (None, None)
    async with request.app[POOL].acquire() as conn:
        await _readable_post(conn, who, post_id)
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM {_FROM}"
            " WHERE c.post_id = $1 AND c.deleted_at IS NULL"
            " AND ($2::timestamptz IS NULL OR (c.created_at, c.id) > ($2, $3::uuid))"
            " ORDER BY c.created_at, c.id LIMIT $4",
            post_id,
            *after,
            query.limit + 1,
        )
    return page_of([_comment(r) for r in rows], query.limit, lambda c: (c.created_at, c.id))


@endpoint(
    routes,
    "GET",
    "/v1/comments/{id}",
    summary="One live comment (readers of its post)",
    tag="comments",
    response=CommentOut,
    errors=(403, 404),
)
async def get_comment(request: web.Request) -> CommentOut:
    who = await caller(request)
    async with request.app[POOL].acquire() as conn:
        row = await _live_comment(conn, path_uuid(request))
        await _readable_post(conn, who, row["post_id"])
    return _comment(row)


@endpoint(
    routes,
    "PATCH",
    "/v1/comments/{id}",
    summary="Edit one's own comment",
    tag="comments",
    body=CommentBody,
    response=CommentOut,
    errors=(403, 404),
)
async def edit_comment(request: web.Request, body: CommentBody) -> CommentOut:
    """Its author only (403 for anyone else, admins included); sets edited_at."""
    who = await caller(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        current = await _live_comment(conn, path_uuid(request), lock=True)
        if current["user_id"] != who.user_id:
            raise Forbidden("only its author may edit a comment")
        row = await conn.fetchrow(
            "WITH c AS (UPDATE analyst.post_comments SET content = $2, edited_at = now()"
            " WHERE id = $1 RETURNING *)"
            f" SELECT {_COLUMNS} FROM c JOIN analyst.posts p ON p.id = c.post_id",
            current["id"],
            body.content,
        )
    return _comment(row)


@endpoint(
    routes,
    "DELETE",
    "/v1/comments/{id}",
    summary="Delete a comment: its author, the post's analyst, or an admin (soft delete)",
    tag="comments",
    query=DeleteQuery,
    status=204,
    errors=(403, 404),
)
async def delete_comment(request: web.Request, query: DeleteQuery) -> None:
    """An already deleted comment is 404. The post's analyst and admins may give a `reason`
    (kept in deletion_reason); comments_count follows (trigger)."""
    who = await caller(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        current = await _live_comment(conn, path_uuid(request), lock=True)
        author = current["user_id"] == who.user_id
        if not (author or who.is_admin or current["analyst_id"] == who.user_id):
            raise Forbidden("only the author, the post's analyst or an admin may delete a comment")
        await conn.execute(
            "UPDATE analyst.post_comments SET deleted_at = now(), deleted_by = $2,"
            " deletion_reason = $3 WHERE id = $1",
            current["id"],
            who.user_id,
            query.reason if not author else None,
        )
