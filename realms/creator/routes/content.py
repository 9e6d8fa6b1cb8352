"""/v1/creator/content and /v1/creator/creators/{id}/content: a creator creates, edits,
publishes, schedules and deletes posts (the seed's types; free, subscribers-only or
pay-per-view); everyone lists and reads them with gating (realms/creator/content.py: locked
items show a preview only), and buys pay-per-view items through the payment flow. Scheduled
posts are published by the job `creator_publish_scheduled`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import UNSET, Meta, Struct, UnsetType

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid
from realms.creator import billing
from realms.creator import content as posts
from realms.creator.accounts import Account, current_account, verified_account
from realms.creator.wire import Preview

routes = web.RouteTableDef()

NO_NUL = r"^[^\x00]*$"
NOT_BLANK = r"^[^\x00]*\S[^\x00]*$"
Url = Annotated[str, Meta(max_length=1000, pattern=r"^https?://[^\s\x00]+$")]
Title = Annotated[str, Meta(min_length=1, max_length=255, pattern=NOT_BLANK)]
Text = Annotated[str, Meta(min_length=1, max_length=50_000, pattern=NOT_BLANK)]
ContentWarning = Annotated[str, Meta(min_length=1, max_length=255, pattern=NOT_BLANK)]
Metadata = Annotated[dict[str, Any], Meta(max_length=50)]
Price = Annotated[int, Meta(gt=0, le=10**9, description="minor units (cents), above zero")]
ContentType = Literal["image", "video", "audio", "text", "live_stream"]
MEDIA_TYPES = frozenset({"image", "video", "audio"})
Token = Annotated[
    str, Meta(min_length=1, max_length=200, description="the processor's payment token")
]


class ContentBody(Struct, forbid_unknown_fields=True, kw_only=True):
    """A new post. `status` published publishes it now; scheduled needs a future
    `scheduled_at`. `price` is given exactly when `monetization` is pay_per_view. `preview`
    is what readers without access see (never the media)."""

    content_type: ContentType
    title: Title | None = None
    body: Text | None = None
    media_url: Url | None = None
    thumbnail_url: Url | None = None
    media_metadata: Metadata | None = None
    preview: Preview | None = None
    monetization: posts.Monetization = "free"
    price: Price | None = None
    content_warning: ContentWarning | None = None
    is_age_restricted: bool = False
    status: Literal["draft", "published", "scheduled"] = "draft"
    scheduled_at: datetime | None = None


class ContentEdit(Struct, forbid_unknown_fields=True, kw_only=True):
    """Only the fields present change; null clears a nullable one. Changing what readers see
    of approved content sends it back to moderation (`pending`)."""

    title: Title | UnsetType | None = UNSET
    body: Text | UnsetType | None = UNSET
    media_url: Url | UnsetType | None = UNSET
    thumbnail_url: Url | UnsetType | None = UNSET
    media_metadata: Metadata | UnsetType | None = UNSET
    preview: Preview | UnsetType | None = UNSET
    monetization: posts.Monetization | UnsetType = UNSET
    price: Price | UnsetType | None = UNSET
    content_warning: ContentWarning | UnsetType | None = UNSET
    is_age_restricted: bool | UnsetType = UNSET


class ScheduleBody(Struct, forbid_unknown_fields=True):
    scheduled_at: datetime


class PurchaseBody(Struct, forbid_unknown_fields=True, kw_only=True):
    payment_method: billing.PaymentMethod = "card"
    payment_token: Token


class ContentPurchaseOut(Struct, kw_only=True):
    payment: billing.Payment
    charged: bool
    content: posts.ContentOut


# What readers see: changing one of these on approved content needs moderation again.
SHOWN = (
    "title",
    "body",
    "media_url",
    "thumbnail_url",
    "media_metadata",
    "content_warning",
    "is_age_restricted",
)


async def _creator(request: web.Request) -> Account:
    account = await verified_account(request, "publishing content")
    if not account.is_creator:
        raise Forbidden("only creators publish content")
    if await request.app[POOL].fetchval(
        "SELECT creator.has_feature_restriction($1, 'content_upload')", account.id
    ):
        raise Forbidden("publishing content is restricted on your account")
    return account


def _check(fields: dict[str, Any]) -> None:
    """The seed's rules of a post, with messages naming the fields (the schema checks too)."""
    if (fields["monetization"] == "pay_per_view") != (fields["price"] is not None):
        raise BadRequest("`price` is given exactly when `monetization` is pay_per_view")
    if fields["status"] != "draft":
        _check_ready(fields)


def _check_ready(fields: Any) -> None:
    """A post leaving draft has what its type needs (a row or a dict of its columns)."""
    if fields["content_type"] == "text" and fields["body"] is None:
        raise BadRequest("a text post needs its `body` before it is published or scheduled")
    if fields["content_type"] in MEDIA_TYPES and fields["media_url"] is None:
        raise BadRequest(
            f"a {fields['content_type']} post needs its `media_url` before it is published"
        )


def _future(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise BadRequest("`scheduled_at` needs a time zone (e.g. 2030-01-01T12:00:00Z)")
    if when <= datetime.now(UTC):
        raise BadRequest("`scheduled_at` is in the past; publish now instead")
    return when


def _metadata(metadata: dict[str, Any] | None, preview: Preview | None) -> dict[str, Any]:
    stored = {k: v for k, v in (metadata or {}).items() if k != posts.PREVIEW_KEY}
    if preview is not None:
        stored[posts.PREVIEW_KEY] = msgspec.to_builtins(preview)
    return stored


async def _render(
    request: web.Request, content_id: uuid.UUID, reader: uuid.UUID
) -> posts.ContentOut:
    return posts.render(await posts.read_for(request.app[POOL], content_id, reader))


async def _own(
    conn: asyncpg.Connection, content_id: uuid.UUID, me: uuid.UUID, *, editing: bool = True
) -> asyncpg.Record:
    """The caller's own live content row, locked for the change (an edit of content removed by
    moderation is refused; its deletion is not)."""
    row = await conn.fetchrow(
        "SELECT * FROM creator.content WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        content_id,
    )
    if row is None:
        raise NotFound(f"no content {content_id}")
    if row["creator_id"] != me:
        raise Forbidden("only its creator may change this content")
    if editing and row["moderation_status"] == "removed":
        raise Conflict("this content was removed by moderation; it cannot be changed")
    await conn.execute("SELECT set_config('creator.user_id', $1, true)", str(me))
    return row


@endpoint(
    routes,
    "POST",
    "/v1/content",
    summary="Create a post (draft, published now, or scheduled); creators only",
    tag="creator content",
    body=ContentBody,
    response=posts.ContentOut,
    status=201,
    errors=(400, 403, 409),
)
async def create(request: web.Request, body: ContentBody) -> posts.ContentOut:
    me = await _creator(request)
    fields = msgspec.structs.asdict(body)
    _check(fields)
    if (body.status == "scheduled") != (body.scheduled_at is not None):
        raise BadRequest("`scheduled_at` is given exactly when `status` is scheduled")
    scheduled = _future(body.scheduled_at) if body.scheduled_at is not None else None
    premium, subscriber_only = posts.flags_of(body.monetization)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('creator.user_id', $1, true)", str(me.id))
        content_id = await conn.fetchval(
            "INSERT INTO creator.content (creator_id, content_type, title, body, media_url,"
            " thumbnail_url, media_metadata, status, is_subscriber_only, is_premium, price,"
            " scheduled_at, published_at, content_warning, is_age_restricted)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
            "         CASE WHEN $8::varchar = 'published' THEN now() END, $13, $14) RETURNING id",
            me.id,
            body.content_type,
            body.title,
            body.body,
            body.media_url,
            body.thumbnail_url,
            _metadata(body.media_metadata, body.preview),
            body.status,
            subscriber_only,
            premium,
            body.price,
            scheduled,
            body.content_warning,
            body.is_age_restricted,
        )
        await conn.execute(
            "INSERT INTO creator.user_analytics (user_id, event_type, metadata)"
            " VALUES ($1, 'content_upload', jsonb_build_object('content_id', $2::text))",
            me.id,
            str(content_id),
        )
    return await _render(request, content_id, me.id)


@endpoint(
    routes,
    "GET",
    "/v1/content/{id}",
    summary="One post, locked (preview only) for a reader without access",
    tag="creator content",
    response=posts.ContentOut,
    errors=(400, 404),
)
async def get_content(request: web.Request) -> posts.ContentOut:
    me = await current_account(request)
    content_id = path_uuid(request)
    row = await posts.read_for(request.app[POOL], content_id, me.id)
    item = posts.render(row)
    if row["creator_id"] != me.id and not item.locked:
        await request.app[POOL].execute(
            "INSERT INTO creator.content_analytics (content_id, user_id, event_type)"
            " VALUES ($1, $2, 'view')",
            content_id,
            me.id,
        )
    return item


@endpoint(
    routes,
    "GET",
    "/v1/creators/{id}/content",
    summary="A creator's posts, newest first (their own: every non-deleted one)",
    tag="creator content",
    query=PageQuery,
    response=Page[posts.ContentOut],
    errors=(400, 404),
)
async def list_content(request: web.Request, query: PageQuery) -> Page[posts.ContentOut]:
    me = await current_account(request)
    creator_id = path_uuid(request)
    own = creator_id == me.id
    pool = request.app[POOL]
    if not own and not await pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM creator.users WHERE id = $1 AND account_type = 'creator'"
        " AND account_status = 'active' AND deleted_at IS NULL)",
        creator_id,
    ):
        raise NotFound(f"no creator {creator_id}")
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    order = "c.created_at" if own else "c.published_at"
    visible = "c.deleted_at IS NULL" if own else posts.PUBLIC
    rows = await pool.fetch(
        f"{posts.SELECT_FOR_READER} WHERE c.creator_id = $1 AND {visible}"
        f" AND ($3::timestamptz IS NULL OR ({order}, c.id) < ($3, $4::uuid))"
        f" ORDER BY {order} DESC, c.id DESC LIMIT $5",
        creator_id,
        me.id,
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
    )
    items = [posts.render(r) for r in rows]

    def key(item: posts.ContentOut) -> tuple[str, str]:
        at = item.created_at if own else item.published_at
        assert at is not None
        return at.isoformat(), str(item.id)

    return page_of(items, query.limit, key)


@endpoint(
    routes,
    "PATCH",
    "/v1/content/{id}",
    summary="Edit a post (its creator); approved content goes back to moderation",
    tag="creator content",
    body=ContentEdit,
    response=posts.ContentOut,
    errors=(400, 403, 404, 409),
)
async def edit(request: web.Request, body: ContentEdit) -> posts.ContentOut:
    me = await _creator(request)
    content_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _own(conn, content_id, me.id)
        current: dict[str, Any] = {
            **dict(row),
            "monetization": posts.monetization_of(row["is_premium"], row["is_subscriber_only"]),
            "preview": (row["media_metadata"] or {}).get(posts.PREVIEW_KEY),
        }
        changes = {
            k: v
            for k, v in msgspec.structs.asdict(body).items()
            if v is not UNSET and k not in ("media_metadata", "preview")
        }
        if body.monetization is not UNSET and body.monetization != "pay_per_view":
            changes.setdefault("price", None)
        merged = {**current, **changes}
        _check(merged)
        if body.media_metadata is not UNSET or body.preview is not UNSET:
            metadata = (
                current["media_metadata"] if body.media_metadata is UNSET else body.media_metadata
            )
            preview = current["preview"] if body.preview is UNSET else body.preview
            merged["media_metadata"] = _metadata(metadata, None)
            if preview is not None:
                merged["media_metadata"][posts.PREVIEW_KEY] = msgspec.to_builtins(preview)
        premium, subscriber_only = posts.flags_of(merged["monetization"])
        shown_changed = any(merged[k] != row[k] for k in SHOWN)
        moderation = row["moderation_status"]
        if shown_changed and moderation in ("approved", "flagged", "rejected"):
            moderation = "pending"
        await conn.execute(
            "UPDATE creator.content SET title = $2, body = $3, media_url = $4,"
            " thumbnail_url = $5, media_metadata = $6, is_premium = $7,"
            " is_subscriber_only = $8, price = $9, content_warning = $10,"
            " is_age_restricted = $11, moderation_status = $12 WHERE id = $1",
            content_id,
            merged["title"],
            merged["body"],
            merged["media_url"],
            merged["thumbnail_url"],
            merged["media_metadata"],
            premium,
            subscriber_only,
            merged["price"],
            merged["content_warning"],
            merged["is_age_restricted"],
            moderation,
        )
    return await _render(request, content_id, me.id)


@endpoint(
    routes,
    "POST",
    "/v1/content/{id}/publish",
    summary="Publish a draft or scheduled post now (its creator)",
    tag="creator content",
    response=posts.ContentOut,
    errors=(400, 403, 404, 409),
)
async def publish(request: web.Request) -> posts.ContentOut:
    me = await _creator(request)
    content_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _own(conn, content_id, me.id)
        if row["status"] != "published":
            _check_ready(row)
            await conn.execute(
                "UPDATE creator.content SET status = 'published', published_at = now(),"
                " scheduled_at = NULL WHERE id = $1",
                content_id,
            )
    return await _render(request, content_id, me.id)


@endpoint(
    routes,
    "POST",
    "/v1/content/{id}/schedule",
    summary="Schedule a draft (or move a scheduled post) to a future time (its creator)",
    tag="creator content",
    body=ScheduleBody,
    response=posts.ContentOut,
    errors=(400, 403, 404, 409),
)
async def schedule(request: web.Request, body: ScheduleBody) -> posts.ContentOut:
    me = await _creator(request)
    content_id = path_uuid(request)
    when = _future(body.scheduled_at)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _own(conn, content_id, me.id)
        if row["status"] not in ("draft", "scheduled"):
            raise Conflict(f"a {row['status']} post cannot be scheduled")
        _check_ready(row)
        await conn.execute(
            "UPDATE creator.content SET status = 'scheduled', scheduled_at = $2 WHERE id = $1",
            content_id,
            when,
        )
    return await _render(request, content_id, me.id)


@endpoint(
    routes,
    "DELETE",
    "/v1/content/{id}",
    summary="Delete a post (its creator; kept 30 days, then purged by retention)",
    tag="creator content",
    status=204,
    errors=(400, 403, 404, 409),
)
async def delete(request: web.Request) -> None:
    me = await _creator(request)
    content_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await _own(conn, content_id, me.id, editing=False)
        await conn.execute(
            "UPDATE creator.content SET deleted_at = now() WHERE id = $1", content_id
        )


@endpoint(
    routes,
    "POST",
    "/v1/content/{id}/purchase",
    summary="Buy a pay-per-view post (idempotent: a bought post is never charged again)",
    tag="creator content",
    body=PurchaseBody,
    response=ContentPurchaseOut,
    errors=(400, 403, 404, 409),
)
async def purchase(request: web.Request, body: PurchaseBody) -> ContentPurchaseOut:
    buyer = await verified_account(request, "buying")
    content_id = path_uuid(request)
    payment, charged = await posts.purchase(
        request.app[POOL],
        request.app[billing.PROCESSOR],
        buyer=buyer.id,
        content_id=content_id,
        method=body.payment_method,
        token=body.payment_token,
    )
    if payment.status == "failed":
        raise billing.payment_failed(payment)
    item = await _render(request, content_id, buyer.id)
    return ContentPurchaseOut(payment=payment, charged=charged, content=item)
