"""Invite links: an analyst's own links (create, list, edit), the public short link that
counts a click and redirects to the analyst's profile, and the signup and conversion
attribution that subscriptions and payments record on a link."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
import msgspec
from aiohttp import web
from msgspec import UNSET, Meta, Struct, UnsetType
from yarl import URL

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.web.auth import Caller, caller
from kernel.web.endpoints import endpoint
from kernel.web.errors import error_response
from kernel.web.keys import POOL, SETTINGS
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid

routes = web.RouteTableDef()

VISITOR_COOKIE = "sb_visitor"
VISITOR_COOKIE_MAX_AGE = 365 * 24 * 3600
_INT_MAX = 2**31 - 1

InviteCode = Annotated[str, Meta(min_length=3, max_length=50, pattern=r"^[A-Za-z0-9_-]+\Z")]
Instant = Annotated[datetime, Meta(tz=True)]
Name = Annotated[str, Meta(max_length=255)]
Description = Annotated[str, Meta(max_length=2000)]
Utm = Annotated[str, Meta(max_length=100)]


class InviteBody(Struct, forbid_unknown_fields=True):
    invite_code: InviteCode
    link_name: Name | None = None
    link_description: Description | None = None
    is_active: bool = True
    expires_at: Instant | None = None
    max_uses: (
        Annotated[int, Meta(ge=1, le=_INT_MAX, description="signups the link may bring")] | None
    ) = None
    discount_code_id: uuid.UUID | None = None
    utm_source: Utm | None = None
    utm_medium: Utm | None = None
    utm_campaign: Utm | None = None


class InviteEdit(Struct, forbid_unknown_fields=True):
    """Fields left out stay as they are; `invite_code` cannot change once shared."""

    link_name: Name | UnsetType | None = UNSET
    link_description: Description | UnsetType | None = UNSET
    is_active: bool | UnsetType = UNSET
    expires_at: Instant | UnsetType | None = UNSET
    max_uses: Annotated[int, Meta(ge=1, le=_INT_MAX)] | UnsetType | None = UNSET
    discount_code_id: uuid.UUID | UnsetType | None = UNSET
    utm_source: Utm | UnsetType | None = UNSET
    utm_medium: Utm | UnsetType | None = UNSET
    utm_campaign: Utm | UnsetType | None = UNSET


class InviteOut(Struct):
    id: uuid.UUID
    analyst_id: uuid.UUID
    invite_code: str
    link_name: str | None
    link_description: str | None
    is_active: bool
    expires_at: datetime | None
    max_uses: int | None
    discount_code_id: uuid.UUID | None
    total_clicks: int
    unique_visitors: int
    signups_count: int
    conversions_count: int
    total_revenue_generated: int
    conversion_rate: float
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None


class Referral(Struct, frozen=True):
    """The link a signup came through, and the discount code the link carries (if live)."""

    link_id: uuid.UUID
    discount_code: str | None


_COLUMNS = (
    "id, analyst_id, invite_code, link_name, link_description, is_active, expires_at, max_uses,"
    " discount_code_id, total_clicks, unique_visitors, signups_count, conversions_count,"
    " total_revenue_generated, conversion_rate::float8 AS conversion_rate, utm_source,"
    " utm_medium, utm_campaign, created_at, updated_at, last_used_at"
)


def used_up(max_uses: int | None, signups_count: int) -> bool:
    """A link's uses are the signups it brought; clicks never use it up."""
    return max_uses is not None and signups_count >= max_uses


async def claim_signup(
    conn: asyncpg.Connection, code: str, analyst_id: uuid.UUID, now: datetime
) -> Referral:
    """Count a signup on the link `code` for a subscription to `analyst_id`, or raise naming
    why the link cannot be used. Run it in the transaction that writes the subscription."""
    row = await conn.fetchrow(
        "SELECT l.id, l.analyst_id, l.is_active, l.expires_at, l.max_uses, l.signups_count,"
        " d.code AS discount_code"
        " FROM analyst.invite_links l"
        " LEFT JOIN analyst.discount_codes d ON d.id = l.discount_code_id AND d.deleted_at IS NULL"
        " WHERE l.invite_code IN ($1::text, upper($1::text)) AND l.deleted_at IS NULL"
        " ORDER BY l.invite_code = $1::text DESC LIMIT 1 FOR UPDATE OF l",
        code,
    )
    if row is None:
        raise BadRequest("invite_code: no such invite link")
    if row["analyst_id"] != analyst_id:
        raise BadRequest("invite_code: the link is for another analyst")
    if not row["is_active"]:
        raise BadRequest("invite_code: the link is not active")
    if row["expires_at"] is not None and now >= row["expires_at"]:
        raise BadRequest("invite_code: the link has expired")
    if used_up(row["max_uses"], row["signups_count"]):
        raise BadRequest("invite_code: the link has been used up")
    await conn.execute(
        "UPDATE analyst.invite_links SET signups_count = signups_count + 1 WHERE id = $1",
        row["id"],
    )
    return Referral(row["id"], row["discount_code"])


async def record_conversion(
    conn: asyncpg.Connection, link_id: uuid.UUID, amount: int, *, first_payment: bool
) -> None:
    """A captured payment of a subscription that came through `link_id`: its amount is revenue
    the link generated; its first payment is also a conversion."""
    await conn.execute(
        "UPDATE analyst.invite_links"
        " SET conversions_count = conversions_count + $2::int,"
        " total_revenue_generated = least(total_revenue_generated::bigint + $3, $4)"
        " WHERE id = $1",
        link_id,
        1 if first_payment else 0,
        amount,
        _INT_MAX,
    )


def _out(row: asyncpg.Record) -> InviteOut:
    return msgspec.convert(dict(row), InviteOut)


async def _analyst(request: web.Request) -> Caller:
    who = await caller(request)
    if who.user_type != "analyst":
        raise Forbidden("only analysts have invite links")
    return who


async def _check_discount_code(
    conn: asyncpg.Connection, analyst_id: uuid.UUID, code_id: uuid.UUID | None
) -> None:
    if code_id is None:
        return
    owner = await conn.fetchrow(
        "SELECT analyst_id FROM analyst.discount_codes WHERE id = $1 AND deleted_at IS NULL",
        code_id,
    )
    if owner is None or owner["analyst_id"] not in (None, analyst_id):
        raise BadRequest("discount_code_id: not one of your discount codes")


async def _owned(conn: asyncpg.Connection, who: Caller, link_id: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM analyst.invite_links"
        " WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        link_id,
    )
    if row is None or not (who.is_admin or row["analyst_id"] == who.user_id):
        raise NotFound("no such invite link")
    return row


@endpoint(
    routes,
    "POST",
    "/v1/invite-links",
    summary="Create an invite link (analysts)",
    tag="invites",
    body=InviteBody,
    response=InviteOut,
    status=201,
    errors=(403, 409),
)
async def create_link(request: web.Request, body: InviteBody) -> InviteOut:
    who = await _analyst(request)
    values = {**msgspec.structs.asdict(body), "invite_code": body.invite_code.upper()}
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await _check_discount_code(conn, who.user_id, body.discount_code_id)
        columns = ", ".join(values)
        params = ", ".join(f"${i}" for i in range(2, len(values) + 2))
        try:
            row = await conn.fetchrow(
                f"INSERT INTO analyst.invite_links (analyst_id, {columns})"
                f" VALUES ($1, {params}) RETURNING {_COLUMNS}",
                who.user_id,
                *values.values(),
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"invite_code: {values['invite_code']} is already taken") from None
    return _out(row)


@endpoint(
    routes,
    "GET",
    "/v1/invite-links",
    summary="The caller's invite links with their funnel, newest first (analysts)",
    tag="invites",
    query=PageQuery,
    response=Page[InviteOut],
    errors=(403,),
)
async def list_links(request: web.Request, query: PageQuery) -> Page[InviteOut]:
    who = await _analyst(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        f"SELECT {_COLUMNS} FROM analyst.invite_links"
        " WHERE analyst_id = $1 AND deleted_at IS NULL"
        " AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))"
        " ORDER BY created_at DESC, id DESC LIMIT $4",
        who.user_id,
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
    )
    return page_of([_out(r) for r in rows], query.limit, lambda link: (link.created_at, link.id))


@endpoint(
    routes,
    "GET",
    "/v1/invite-links/{id}",
    summary="One invite link with its funnel (owner or admin)",
    tag="invites",
    response=InviteOut,
    errors=(404,),
)
async def get_link(request: web.Request) -> InviteOut:
    who = await caller(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        return _out(await _owned(conn, who, path_uuid(request)))


@endpoint(
    routes,
    "PATCH",
    "/v1/invite-links/{id}",
    summary="Edit an invite link; is_active=false switches it off (owner or admin)",
    tag="invites",
    body=InviteEdit,
    response=InviteOut,
    errors=(404,),
)
async def edit_link(request: web.Request, body: InviteEdit) -> InviteOut:
    who = await caller(request)
    changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not UNSET}
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _owned(conn, who, path_uuid(request))
        if not changes:
            return _out(row)
        if changes.get("discount_code_id") is not None:
            await _check_discount_code(conn, row["analyst_id"], changes["discount_code_id"])
        assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, start=2))
        updated = await conn.fetchrow(
            f"UPDATE analyst.invite_links SET {assignments} WHERE id = $1 RETURNING {_COLUMNS}",
            row["id"],
            *changes.values(),
        )
    return _out(updated)


@endpoint(
    routes,
    "GET",
    "/v1/i/{code}",
    summary="Follow an invite link: counts the click, redirects (302) to the analyst's profile",
    tag="invites",
    status=302,
    auth=False,
    errors=(404, 410),
)
async def follow_link(request: web.Request) -> web.Response:
    now = datetime.now(UTC)
    new_visitor = VISITOR_COOKIE not in request.cookies
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT l.id, l.analyst_id, l.invite_code, l.is_active, l.expires_at, l.max_uses,"
            " l.signups_count, l.utm_source, l.utm_medium, l.utm_campaign"
            " FROM analyst.invite_links l JOIN analyst.users u ON u.id = l.analyst_id"
            " JOIN analyst.analyst_profiles p ON p.user_id = l.analyst_id"
            " WHERE l.invite_code IN ($1::text, upper($1::text)) AND l.deleted_at IS NULL"
            " AND u.deleted_at IS NULL AND u.is_active AND p.deleted_at IS NULL"
            " AND p.verification_status = 'approved'"
            " ORDER BY l.invite_code = $1::text DESC LIMIT 1",
            request.match_info["code"][:50],
        )
        if row is None or not row["is_active"]:
            raise NotFound("no such invite link")
        if row["expires_at"] is not None and now >= row["expires_at"]:
            return error_response(410, "not_found", "the invite link has expired")
        if used_up(row["max_uses"], row["signups_count"]):
            return error_response(410, "not_found", "the invite link has been used up")
        await conn.execute(
            "UPDATE analyst.invite_links SET total_clicks = total_clicks + 1,"
            " unique_visitors = unique_visitors + $2::int, last_used_at = $3 WHERE id = $1",
            row["id"],
            1 if new_visitor else 0,
            now,
        )
    base = request.app[SETTINGS].public_base_url.rstrip("/")
    target = URL(f"{base}/analysts/{row['analyst_id']}")
    params = {"invite": row["invite_code"]}
    params.update({k: row[k] for k in ("utm_source", "utm_medium", "utm_campaign") if row[k]})
    response = web.Response(status=302, headers={"Location": str(target.with_query(params))})
    if new_visitor:
        # Scoped to this link's path, so a visitor is unique per link, not per site.
        response.set_cookie(
            VISITOR_COOKIE,
            secrets.token_urlsafe(16),
            max_age=VISITOR_COOKIE_MAX_AGE,
            path=request.rel_url.raw_path,
            httponly=True,
            samesite="Lax",
        )
    return response
