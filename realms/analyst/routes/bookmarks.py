"""/v1/bookmarks: a user's saved posts with their notes. Bookmarks are private: another
user's bookmark answers 404. posts.bookmarks_count is kept by the database trigger."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import asyncpg
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import Conflict, Forbidden, NotFound
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid
from realms.analyst.routes.posts import POST_COLUMNS, PostOut, post_out, visible_post

routes = web.RouteTableDef()

Notes = Annotated[str, Meta(max_length=2000)]


class BookmarkCreate(Struct, forbid_unknown_fields=True):
    post_id: uuid.UUID
    notes: Notes | None = None


class BookmarkUpdate(Struct, forbid_unknown_fields=True):
    notes: Notes | None


class BookmarkOut(Struct):
    """`post` is the post as the caller may see it now (locked once a paid subscription
    lapsed), or null when the post has since been deleted."""

    id: uuid.UUID
    post_id: uuid.UUID
    notes: str | None
    created_at: datetime
    updated_at: datetime
    post: PostOut | None


# POST_COLUMNS binds $1 (viewer) and $2 (is admin).
_SELECT_BOOKMARKS = f"""SELECT {POST_COLUMNS}, b.id AS bookmark_id, b.post_id AS bookmarked_post_id,
           b.notes, b.created_at AS bookmarked_at, b.updated_at AS bookmark_updated_at,
           p.deleted_at IS NOT NULL AS post_deleted
      FROM analyst.bookmarks b JOIN analyst.posts p ON p.id = b.post_id"""


def _bookmark_out(row: asyncpg.Record) -> BookmarkOut:
    return BookmarkOut(
        id=row["bookmark_id"],
        post_id=row["bookmarked_post_id"],
        notes=row["notes"],
        created_at=row["bookmarked_at"],
        updated_at=row["bookmark_updated_at"],
        post=None if row["post_deleted"] else post_out(row),
    )


async def _own_bookmark(
    conn: asyncpg.Connection, user_id: uuid.UUID, is_admin: bool, bookmark_id: uuid.UUID
) -> BookmarkOut:
    row = await conn.fetchrow(
        f"{_SELECT_BOOKMARKS} WHERE b.id = $3 AND b.user_id = $1", user_id, is_admin, bookmark_id
    )
    if row is None:
        raise NotFound("bookmark not found")
    return _bookmark_out(row)


@endpoint(
    routes,
    "POST",
    "/v1/bookmarks",
    summary="Bookmark a post the caller may read",
    tag="bookmarks",
    body=BookmarkCreate,
    response=BookmarkOut,
    status=201,
    errors=(403, 404, 409),
)
async def create_bookmark(request: web.Request, body: BookmarkCreate) -> BookmarkOut:
    who = await caller(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        post = await visible_post(conn, who, body.post_id)
        if post.locked:
            raise Forbidden("this post is for paid subscribers of its analyst")
        try:
            bookmark_id = await conn.fetchval(
                "INSERT INTO analyst.bookmarks (user_id, post_id, notes) VALUES ($1, $2, $3)"
                " RETURNING id",
                who.user_id,
                body.post_id,
                body.notes,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict("this post is already bookmarked") from None
        except asyncpg.ForeignKeyViolationError:
            raise NotFound("post not found") from None
        return await _own_bookmark(conn, who.user_id, who.is_admin, bookmark_id)


@endpoint(
    routes,
    "GET",
    "/v1/bookmarks",
    summary="The caller's bookmarks, newest first",
    tag="bookmarks",
    query=PageQuery,
    response=Page[BookmarkOut],
)
async def list_bookmarks(request: web.Request, query: PageQuery) -> Page[BookmarkOut]:
    who = await caller(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID) or (None, None)
    rows = await request.app[POOL].fetch(
        f"""{_SELECT_BOOKMARKS}
            WHERE b.user_id = $1
              AND ($3::timestamptz IS NULL OR (b.created_at, b.id) < ($3, $4::uuid))
            ORDER BY b.created_at DESC, b.id DESC LIMIT $5""",
        who.user_id,
        who.is_admin,
        *after,
        query.limit + 1,
    )
    return page_of([_bookmark_out(r) for r in rows], query.limit, lambda b: (b.created_at, b.id))


@endpoint(
    routes,
    "PATCH",
    "/v1/bookmarks/{id}",
    summary="Change the notes of one's own bookmark",
    tag="bookmarks",
    body=BookmarkUpdate,
    response=BookmarkOut,
    errors=(404,),
)
async def update_bookmark(request: web.Request, body: BookmarkUpdate) -> BookmarkOut:
    who = await caller(request)
    bookmark_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn:
        status = await conn.execute(
            "UPDATE analyst.bookmarks SET notes = $3 WHERE id = $1 AND user_id = $2",
            bookmark_id,
            who.user_id,
            body.notes,
        )
        if status == "UPDATE 0":
            raise NotFound("bookmark not found")
        return await _own_bookmark(conn, who.user_id, who.is_admin, bookmark_id)


@endpoint(
    routes,
    "DELETE",
    "/v1/bookmarks/{id}",
    summary="Remove one's own bookmark",
    tag="bookmarks",
    status=204,
    errors=(404,),
)
async def delete_bookmark(request: web.Request) -> None:
    who = await caller(request)
    status = await request.app[POOL].execute(
        "DELETE FROM analyst.bookmarks WHERE id = $1 AND user_id = $2",
        path_uuid(request),
        who.user_id,
    )
    if status == "DELETE 0":
        raise NotFound("bookmark not found")
