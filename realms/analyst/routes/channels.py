"""/v1/channels: an analyst's chat channels (create, edit, archive, soft-delete, list) and their
message history over HTTP, for clients without a socket, gated exactly as a socket join is."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import UNSET, Meta, Struct, UnsetType

from kernel.conversation import Principal
from kernel.errors import BadRequest, Forbidden, NotFound
from kernel.messages import Message
from kernel.web.auth import Caller, caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid
from realms.analyst.namespaces.community import ChannelGate
from realms.analyst.namespaces.community_messages import to_message

routes = web.RouteTableDef()

ChannelType = Literal["community", "premium", "support"]
Name = Annotated[str, Meta(min_length=1, max_length=255)]
Description = Annotated[str, Meta(max_length=5000)]
MaxMembers = Annotated[int, Meta(ge=1, le=1_000_000)]
RateLimit = Annotated[int, Meta(ge=1, le=600, description="messages per user per minute")]


class NewChannelBody(Struct, forbid_unknown_fields=True):
    # a minimum tier gates only a channel that requires a subscription (_check_tier)
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "anyOf": [
                {"properties": {"minimum_tier_required": {"type": "null"}}},
                {"properties": {"require_subscription": {"const": True}}},
            ]
        },
    )
    channel_name: Name
    channel_type: ChannelType = "community"
    description: Description | None = None
    max_members: MaxMembers | None = None
    message_rate_limit: RateLimit = 10
    is_rate_limited: bool = True
    require_subscription: bool = True
    minimum_tier_required: uuid.UUID | None = None


class EditChannelBody(Struct, forbid_unknown_fields=True):
    """Only the fields given change; null clears description, max_members and the tier."""

    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = ({"minProperties": 1},)  # a change

    channel_name: Name | UnsetType = UNSET
    channel_type: ChannelType | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    max_members: MaxMembers | UnsetType | None = UNSET
    message_rate_limit: RateLimit | UnsetType = UNSET
    is_rate_limited: bool | UnsetType = UNSET
    require_subscription: bool | UnsetType = UNSET
    minimum_tier_required: uuid.UUID | UnsetType | None = UNSET
    is_active: bool | UnsetType = UNSET


class ChannelsQuery(PageQuery, kw_only=True):
    analyst_id: uuid.UUID


Seq = Annotated[int, Meta(le=2**63 - 1)]  # chat_messages.seq is a bigint


class HistoryQuery(Struct, kw_only=True):
    before_seq: Annotated[Seq, Meta(ge=1)] | None = None
    after_seq: Annotated[Seq, Meta(ge=0)] | None = None
    limit: Annotated[int, Meta(ge=1, le=100)] = 50


class ChannelOut(Struct):
    id: uuid.UUID
    analyst_id: uuid.UUID
    channel_name: str
    channel_type: str
    description: str | None
    is_active: bool
    is_archived: bool
    max_members: int | None
    message_rate_limit: int
    is_rate_limited: bool
    require_subscription: bool
    minimum_tier_required: uuid.UUID | None
    total_messages: int
    active_members_count: int
    last_message_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ChannelHistory(Struct):
    """`items` in seq order; `has_more`: further messages exist in the direction read
    (older without `after_seq`, newer with it)."""

    items: list[Message]  # the socket's `msg` frames, the same schema byte for byte
    has_more: bool


_COLUMNS = (
    "id, analyst_id, channel_name, channel_type, channel_description AS description, is_active,"
    " is_archived, max_members, message_rate_limit, is_rate_limited, require_subscription,"
    " minimum_tier_required, total_messages, active_members_count, last_message_at,"
    " created_at, updated_at"
)
_MESSAGE_COLUMNS = (
    "id, seq, user_id, message, message_type, created_at, reply_to_message_id, client_id,"
    " attachment_url, is_deleted, is_pinned, edited_at"
)
_EDITABLE = {
    "channel_name": "channel_name",
    "channel_type": "channel_type",
    "description": "channel_description",
    "max_members": "max_members",
    "message_rate_limit": "message_rate_limit",
    "is_rate_limited": "is_rate_limited",
    "require_subscription": "require_subscription",
    "minimum_tier_required": "minimum_tier_required",
    "is_active": "is_active",
}


def _channel(row: asyncpg.Record) -> ChannelOut:
    return msgspec.convert(dict(row), ChannelOut)


def _sees_everything(who: Caller, analyst_id: uuid.UUID) -> bool:
    return who.user_id == analyst_id or who.is_admin


async def _check_tier(
    conn: asyncpg.Connection,
    analyst_id: uuid.UUID,
    tier_id: uuid.UUID | None,
    require_subscription: bool,
) -> None:
    """The minimum tier is one of the analyst's live tiers, and only means something when the
    channel requires a subscription (the join gate ignores it otherwise)."""
    if tier_id is None:
        return
    if not require_subscription:
        raise BadRequest("`minimum_tier_required` needs `require_subscription`")
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM analyst.subscription_tiers"
        " WHERE id = $1 AND analyst_id = $2 AND deleted_at IS NULL)",
        tier_id,
        analyst_id,
    ):
        raise BadRequest("`minimum_tier_required` is not one of your subscription tiers")


async def _write(conn: asyncpg.Connection, sql: str, *args: Any) -> asyncpg.Record:
    """Run a channel write; a constraint the checks above did not foresee is a 400, not a 500."""
    try:
        row: asyncpg.Record = await conn.fetchrow(sql, *args)
    except asyncpg.ForeignKeyViolationError:
        raise BadRequest("`minimum_tier_required` is not one of your subscription tiers") from None
    except asyncpg.CheckViolationError as exc:
        raise BadRequest(f"invalid channel settings ({exc.constraint_name})") from None
    return row


async def _owned(conn: asyncpg.Connection, who: Caller, channel_id: uuid.UUID) -> asyncpg.Record:
    """The caller's own live channel, locked; 404 when hidden from them, 403 when not theirs."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM analyst.chat_channels"
        f" WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        channel_id,
    )
    if row is None:
        raise NotFound("no such channel")
    if row["analyst_id"] != who.user_id:
        if not who.is_admin and (not row["is_active"] or row["is_archived"]):
            raise NotFound("no such channel")
        raise Forbidden("only the channel's analyst may change it")
    return row


@endpoint(
    routes,
    "POST",
    "/v1/channels",
    summary="Create a chat channel (analysts)",
    tag="channels",
    body=NewChannelBody,
    response=ChannelOut,
    status=201,
    errors=(401, 403),
)
async def create_channel(request: web.Request, body: NewChannelBody) -> ChannelOut:
    who = await caller(request)
    if who.user_type != "analyst":
        raise Forbidden("only analysts have chat channels")
    async with request.app[POOL].acquire() as conn:
        await _check_tier(conn, who.user_id, body.minimum_tier_required, body.require_subscription)
        row = await _write(
            conn,
            f"INSERT INTO analyst.chat_channels (analyst_id, channel_name, channel_type,"
            f" channel_description, max_members, message_rate_limit, is_rate_limited,"
            f" require_subscription, minimum_tier_required)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {_COLUMNS}",
            who.user_id,
            body.channel_name,
            body.channel_type,
            body.description,
            body.max_members,
            body.message_rate_limit,
            body.is_rate_limited,
            body.require_subscription,
            body.minimum_tier_required,
        )
    return _channel(row)


@endpoint(
    routes,
    "GET",
    "/v1/channels",
    summary="An analyst's channels: active ones for everybody, all for the analyst and admins",
    tag="channels",
    query=ChannelsQuery,
    response=Page[ChannelOut],
    errors=(401,),
)
async def list_channels(request: web.Request, query: ChannelsQuery) -> Page[ChannelOut]:
    who = await caller(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        f"SELECT {_COLUMNS} FROM analyst.chat_channels"
        f" WHERE analyst_id = $1 AND deleted_at IS NULL AND ($2 OR (is_active AND NOT is_archived))"
        f"   AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4))"
        f" ORDER BY created_at, id LIMIT $5",
        query.analyst_id,
        _sees_everything(who, query.analyst_id),
        *(after or (None, None)),
        query.limit + 1,
    )
    return page_of([_channel(r) for r in rows], query.limit, lambda c: (c.created_at, c.id))


@endpoint(
    routes,
    "GET",
    "/v1/channels/{id}",
    summary="One channel (archived and inactive ones: its analyst and admins only)",
    tag="channels",
    response=ChannelOut,
    errors=(401, 404),
)
async def get_channel(request: web.Request) -> ChannelOut:
    who = await caller(request)
    row = await request.app[POOL].fetchrow(
        f"SELECT {_COLUMNS} FROM analyst.chat_channels WHERE id = $1 AND deleted_at IS NULL",
        path_uuid(request),
    )
    if row is None or not (
        _sees_everything(who, row["analyst_id"]) or (row["is_active"] and not row["is_archived"])
    ):
        raise NotFound("no such channel")
    return _channel(row)


@endpoint(
    routes,
    "PATCH",
    "/v1/channels/{id}",
    summary="Edit one's own channel",
    tag="channels",
    body=EditChannelBody,
    response=ChannelOut,
    errors=(401, 403, 404),
)
async def edit_channel(request: web.Request, body: EditChannelBody) -> ChannelOut:
    who = await caller(request)
    changes = {
        _EDITABLE[name]: value
        for name, value in msgspec.structs.asdict(body).items()
        if value is not UNSET
    }
    if not changes:
        raise BadRequest("nothing to change")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        channel = await _owned(conn, who, path_uuid(request))
        tier = changes.get("minimum_tier_required", channel["minimum_tier_required"])
        require = changes.get("require_subscription", channel["require_subscription"])
        if tier != channel["minimum_tier_required"] or require != channel["require_subscription"]:
            await _check_tier(conn, who.user_id, tier, require)
        # Column names come from _EDITABLE only; every value is a bound parameter.
        assignments = ", ".join(f"{col} = ${i}" for i, col in enumerate(changes, start=2))
        row = await _write(
            conn,
            f"UPDATE analyst.chat_channels SET {assignments} WHERE id = $1 RETURNING {_COLUMNS}",
            channel["id"],
            *changes.values(),
        )
    return _channel(row)


async def _set_archived(request: web.Request, archived: bool) -> ChannelOut:
    who = await caller(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        channel = await _owned(conn, who, path_uuid(request))
        row = await conn.fetchrow(
            f"UPDATE analyst.chat_channels SET is_archived = $2 WHERE id = $1 RETURNING {_COLUMNS}",
            channel["id"],
            archived,
        )
    return _channel(row)


@endpoint(
    routes,
    "POST",
    "/v1/channels/{id}/archive",
    summary="Archive one's own channel: read-only history, nobody joins",
    tag="channels",
    response=ChannelOut,
    errors=(401, 403, 404),
)
async def archive_channel(request: web.Request) -> ChannelOut:
    return await _set_archived(request, True)


@endpoint(
    routes,
    "POST",
    "/v1/channels/{id}/unarchive",
    summary="Bring one's own archived channel back",
    tag="channels",
    response=ChannelOut,
    errors=(401, 403, 404),
)
async def unarchive_channel(request: web.Request) -> ChannelOut:
    return await _set_archived(request, False)


@endpoint(
    routes,
    "DELETE",
    "/v1/channels/{id}",
    summary="Delete one's own channel (soft: kept for audit, gone from the API)",
    tag="channels",
    status=204,
    errors=(401, 403, 404),
)
async def delete_channel(request: web.Request) -> None:
    who = await caller(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        channel = await _owned(conn, who, path_uuid(request))
        await conn.execute(
            "UPDATE analyst.chat_channels SET deleted_at = now() WHERE id = $1", channel["id"]
        )


@endpoint(
    routes,
    "GET",
    "/v1/channels/{id}/messages",
    summary="A channel's messages by seq, for clients without a socket (same rule as joining)",
    tag="channels",
    query=HistoryQuery,
    response=ChannelHistory,
    errors=(401, 403, 404),
)
async def history(request: web.Request, query: HistoryQuery) -> ChannelHistory:
    """Without bounds: the newest `limit` messages. `before_seq`: the newest `limit` below it.
    `after_seq`: the oldest `limit` above it (below `before_seq` too when both are given)."""
    who = await caller(request)
    channel_id = path_uuid(request)
    pool = request.app[POOL]
    owner = await pool.fetchval(
        "SELECT analyst_id FROM analyst.chat_channels WHERE id = $1 AND deleted_at IS NULL",
        channel_id,
    )
    if owner is None:
        raise NotFound(f"channel {channel_id} does not exist")
    if not _sees_everything(who, owner):
        # The gateway's own join rule (the same ChannelGate), so REST reads what a join may.
        principal = Principal(user_id=str(who.user_id), realm="analyst", user_type=who.user_type)
        await ChannelGate(pool).authorize(principal, f"community:{channel_id}", str(channel_id))
    if query.after_seq is not None and query.before_seq is not None:
        if query.after_seq >= query.before_seq:
            raise BadRequest("`after_seq` must be below `before_seq`")
    ascending = query.after_seq is not None
    rows = await pool.fetch(
        f"SELECT {_MESSAGE_COLUMNS} FROM analyst.chat_messages"
        f" WHERE channel_id = $1 AND seq > $2 AND seq < $3"
        f" ORDER BY seq {'ASC' if ascending else 'DESC'} LIMIT $4",
        channel_id,
        query.after_seq or 0,
        query.before_seq or 2**62,
        query.limit + 1,
    )
    has_more = len(rows) > query.limit
    rows = rows[: query.limit]
    if not ascending:
        rows.reverse()
    channel = f"community:{channel_id}"
    return ChannelHistory(items=[to_message(channel, r) for r in rows], has_more=has_more)
