"""Featuring (issue 21 item 2): admins feature analysts (analyst_profiles.is_featured, at a
homepage position, feature_position) and posts (posts.is_featured); everyone reads the
homepage listings, featured analysts in position order and featured posts newest first."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import asyncpg
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Conflict, NotFound
from kernel.web.auth import admin, caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid
from realms.analyst.routes.posts import SELECT_POSTS, PostOut, post_out, visible_post
from realms.analyst.routes.profiles import (
    PROFILE_COLUMNS,
    PUBLIC_PROFILE,
    AnalystProfile,
    profile_out,
)

routes = web.RouteTableDef()

MAX_FEATURED_ANALYSTS = 100


class FeatureBody(Struct, forbid_unknown_fields=True):
    """Where on the homepage: 1 is first. Those at that position and after move down one.
    Left out, or past the end: last."""

    position: Annotated[int, Meta(ge=1, le=MAX_FEATURED_ANALYSTS)] | None = None


# Every featured profile's order is rewritten under this lock, so two admins cannot interleave.
_ORDER_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('analyst:featured_analysts', 0))"


async def _featured_order(conn: asyncpg.Connection, exclude: uuid.UUID) -> list[uuid.UUID]:
    """User ids of the live featured profiles in homepage order, without `exclude`."""
    rows = await conn.fetch(
        "SELECT user_id FROM analyst.analyst_profiles WHERE is_featured AND deleted_at IS NULL"
        " AND user_id <> $1 ORDER BY feature_position, user_id",
        exclude,
    )
    return [r["user_id"] for r in rows]


async def _renumber(conn: asyncpg.Connection, order: list[uuid.UUID]) -> None:
    """Feature the profiles of `order` at positions 1..n. Positions may collide half-way
    through the statement: the exclusion constraint on them is checked at commit."""
    await conn.execute(
        "UPDATE analyst.analyst_profiles p SET is_featured = true, feature_position = o.position"
        " FROM unnest($1::uuid[]) WITH ORDINALITY AS o(user_id, position)"
        " WHERE p.user_id = o.user_id"
        " AND (NOT p.is_featured OR p.feature_position IS DISTINCT FROM o.position)",
        order,
    )


@endpoint(
    routes,
    "PUT",
    "/v1/admin/analysts/{analyst_id}/feature",
    summary="Feature an approved analyst on the homepage at a position, or move them (admins)",
    tag="featuring",
    body=FeatureBody,
    response=AnalystProfile,
    errors=(400, 403, 404, 409),
)
async def feature_analyst(request: web.Request, body: FeatureBody) -> AnalystProfile:
    """400 when the user is not an analyst; 404 when there is no such user or no live
    profile; 409 when the profile is not approved or its user is not active. Featuring an
    analyst who is already featured moves them to the position."""
    await admin(request)
    analyst_id = path_uuid(request, "analyst_id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        user = await conn.fetchrow(
            "SELECT user_type, is_active, deleted_at FROM analyst.users WHERE id = $1", analyst_id
        )
        if user is None:
            raise NotFound("no such user")
        if user["user_type"] != "analyst":
            raise BadRequest(
                f"analyst_id: this user is a {user['user_type']}, not an analyst;"
                " only analysts can be featured"
            )
        if user["deleted_at"] is not None or not user["is_active"]:
            raise Conflict("the analyst's account is not active")
        await conn.execute(_ORDER_LOCK)
        status = await conn.fetchval(
            "SELECT verification_status FROM analyst.analyst_profiles"
            " WHERE user_id = $1 AND deleted_at IS NULL FOR UPDATE",
            analyst_id,
        )
        if status is None:
            raise NotFound("the analyst has no profile")
        if status != "approved":
            raise Conflict(f"only approved analysts can be featured; this profile is {status}")
        order = await _featured_order(conn, analyst_id)
        if body.position is None or body.position > len(order):
            order.append(analyst_id)
        else:
            order.insert(body.position - 1, analyst_id)
        if len(order) > MAX_FEATURED_ANALYSTS:
            raise Conflict(f"at most {MAX_FEATURED_ANALYSTS} analysts can be featured at once")
        await _renumber(conn, order)
        row = await conn.fetchrow(
            f"SELECT {PROFILE_COLUMNS} FROM analyst.analyst_profiles p WHERE p.user_id = $1",
            analyst_id,
        )
    return profile_out(row, private=True)


@endpoint(
    routes,
    "DELETE",
    "/v1/admin/analysts/{analyst_id}/feature",
    summary="Take an analyst off the homepage (admins)",
    tag="featuring",
    status=204,
    errors=(403, 404, 409),
)
async def unfeature_analyst(request: web.Request) -> None:
    """409 when the analyst is not featured; those after them move up one."""
    await admin(request)
    analyst_id = path_uuid(request, "analyst_id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await conn.execute(_ORDER_LOCK)
        featured = await conn.fetchval(
            "SELECT is_featured FROM analyst.analyst_profiles WHERE user_id = $1 FOR UPDATE",
            analyst_id,
        )
        if featured is None:
            raise NotFound("no such analyst profile")
        if not featured:
            raise Conflict("the analyst is not featured")
        await conn.execute(
            "UPDATE analyst.analyst_profiles SET is_featured = false, feature_position = NULL"
            " WHERE user_id = $1",
            analyst_id,
        )
        await _renumber(conn, await _featured_order(conn, analyst_id))


@endpoint(
    routes,
    "GET",
    "/v1/featured/analysts",
    summary="The homepage's featured analysts, in position order",
    tag="featuring",
    response=list[AnalystProfile],
)
async def featured_analysts(request: web.Request) -> list[AnalystProfile]:
    """Only profiles anyone may see (approved, live, of an active user); at most 100."""
    await caller(request)
    rows = await request.app[POOL].fetch(
        f"SELECT {PROFILE_COLUMNS} FROM analyst.analyst_profiles p"
        " JOIN analyst.users u ON u.id = p.user_id"
        f" WHERE p.is_featured AND {PUBLIC_PROFILE} AND u.is_active AND u.deleted_at IS NULL"
        " ORDER BY p.feature_position, p.user_id LIMIT $1",
        MAX_FEATURED_ANALYSTS,
    )
    return [profile_out(row, private=False) for row in rows]


# --- posts ------------------------------------------------------------------------------------


async def _set_post_featured(request: web.Request, featured: bool) -> uuid.UUID:
    await admin(request)
    post_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        current = await conn.fetchval(
            "SELECT is_featured FROM analyst.posts WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
            post_id,
        )
        if current is None:
            raise NotFound("post not found")
        if current == featured:
            raise Conflict(
                "the post is already featured" if featured else "the post is not featured"
            )
        await conn.execute(
            "UPDATE analyst.posts SET is_featured = $2 WHERE id = $1", post_id, featured
        )
    return post_id


@endpoint(
    routes,
    "POST",
    "/v1/admin/posts/{id}/feature",
    summary="Feature a post on the homepage (admins)",
    tag="featuring",
    response=PostOut,
    errors=(403, 404, 409),
)
async def feature_post(request: web.Request) -> PostOut:
    """409 when the post is already featured; 404 when it is missing or deleted."""
    post_id = await _set_post_featured(request, True)
    async with request.app[POOL].acquire() as conn:
        return await visible_post(conn, await caller(request), post_id)


@endpoint(
    routes,
    "DELETE",
    "/v1/admin/posts/{id}/feature",
    summary="Take a post off the homepage (admins)",
    tag="featuring",
    status=204,
    errors=(403, 404, 409),
)
async def unfeature_post(request: web.Request) -> None:
    """409 when the post is not featured."""
    await _set_post_featured(request, False)


@endpoint(
    routes,
    "GET",
    "/v1/featured/posts",
    summary="The homepage's featured posts, newest first (locked as for any read)",
    tag="featuring",
    query=PageQuery,
    response=Page[PostOut],
)
async def featured_posts(request: web.Request, query: PageQuery) -> Page[PostOut]:
    """A paid post comes back locked to a reader without a paid subscription, as everywhere."""
    who = await caller(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID) or (None, None)
    rows = await request.app[POOL].fetch(
        f"""{SELECT_POSTS}
            WHERE p.is_featured AND p.deleted_at IS NULL
              AND ($3::timestamptz IS NULL OR (p.created_at, p.id) < ($3, $4::uuid))
            ORDER BY p.created_at DESC, p.id DESC LIMIT $5""",
        who.user_id,
        who.is_admin,
        *after,
        query.limit + 1,
    )
    return page_of([post_out(r) for r in rows], query.limit, lambda p: (p.created_at, p.id))
