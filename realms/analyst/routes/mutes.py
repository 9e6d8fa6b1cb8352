"""/v1/moderation/mutes: muting in chat. A muted user stays in the room and reads, but every
send is refused until the mute ends or is lifted; open sockets learn it at once (the table's
trigger, sql 0019). Admins mute anyone but admins, anywhere or in one channel; a channel's
analyst mutes in their own channels."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Forbidden, NotFound
from kernel.web.auth import Caller, caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.paths import path_uuid

routes = web.RouteTableDef()

_COLUMNS = "id, user_id, channel_id, muted_by, reason, until, created_at"


class MuteBody(Struct, kw_only=True, forbid_unknown_fields=True):
    user_id: uuid.UUID
    channel_id: Annotated[uuid.UUID | None, Meta(description="null: every channel (admins)")] = None
    minutes: Annotated[int, Meta(ge=1, le=525_600, description="null: until lifted")] | None = None
    reason: Annotated[str, Meta(min_length=1, max_length=500, pattern=r"^[^\x00]*$")] | None = None


class MuteOut(Struct):
    id: uuid.UUID
    user_id: uuid.UUID
    channel_id: uuid.UUID | None
    muted_by: uuid.UUID | None
    reason: str | None
    until: datetime | None
    created_at: datetime


class MutesQuery(Struct, kw_only=True):
    user_id: uuid.UUID | None = None


async def _may_mute_in(request: web.Request, who: Caller, channel_id: uuid.UUID | None) -> None:
    if who.is_admin:
        return
    if channel_id is None:
        raise Forbidden("only admins mute in every channel; name your channel")
    owner = await request.app[POOL].fetchval(
        "SELECT analyst_id FROM analyst.chat_channels WHERE id = $1 AND deleted_at IS NULL",
        channel_id,
    )
    if owner is None:
        raise NotFound(f"channel {channel_id} does not exist")
    if owner != who.user_id:
        raise Forbidden("only admins and the channel's analyst mute in a channel")


@endpoint(
    routes,
    "POST",
    "/v1/moderation/mutes",
    summary="Mute a user in chat (one channel, or every channel for admins)",
    tag="moderation",
    body=MuteBody,
    response=MuteOut,
    status=201,
    errors=(403, 404),
)
async def mute(request: web.Request, body: MuteBody) -> MuteOut:
    who = await caller(request)
    await _may_mute_in(request, who, body.channel_id)
    pool = request.app[POOL]
    target = await pool.fetchrow(
        "SELECT user_type FROM analyst.users WHERE id = $1 AND deleted_at IS NULL", body.user_id
    )
    if target is None:
        raise NotFound(f"user {body.user_id} does not exist")
    if target["user_type"] == "admin" or body.user_id == who.user_id:
        raise BadRequest("admins and oneself are not muted")
    row = await pool.fetchrow(
        f"INSERT INTO analyst.chat_mutes (user_id, channel_id, muted_by, reason, until)"
        f" VALUES ($1, $2, $3, $4, now() + make_interval(mins => $5)) RETURNING {_COLUMNS}",
        body.user_id,
        body.channel_id,
        who.user_id,
        body.reason,
        body.minutes,
    )
    return MuteOut(**dict(row))


@endpoint(
    routes,
    "GET",
    "/v1/moderation/mutes",
    summary="Live mutes: all for admins, in one's own channels for analysts",
    tag="moderation",
    query=MutesQuery,
    response=list[MuteOut],
)
async def list_mutes(request: web.Request, query: MutesQuery) -> list[MuteOut]:
    who = await caller(request)
    rows = await request.app[POOL].fetch(
        f"SELECT {_COLUMNS} FROM analyst.chat_mutes m"
        " WHERE (m.until IS NULL OR m.until > now()) AND ($1::uuid IS NULL OR m.user_id = $1)"
        "   AND ($2 OR m.channel_id IN (SELECT id FROM analyst.chat_channels"
        "                               WHERE analyst_id = $3))"
        " ORDER BY m.created_at DESC LIMIT 500",
        query.user_id,
        who.is_admin,
        who.user_id,
    )
    return [MuteOut(**dict(r)) for r in rows]


@endpoint(
    routes,
    "DELETE",
    "/v1/moderation/mutes/{id}",
    summary="Lift a mute",
    tag="moderation",
    status=204,
    errors=(403, 404),
)
async def lift(request: web.Request) -> None:
    who = await caller(request)
    mute_id = path_uuid(request)
    pool = request.app[POOL]
    row = await pool.fetchrow("SELECT channel_id FROM analyst.chat_mutes WHERE id = $1", mute_id)
    if row is None:
        raise NotFound(f"mute {mute_id} does not exist")
    await _may_mute_in(request, who, row["channel_id"])
    await pool.execute("DELETE FROM analyst.chat_mutes WHERE id = $1", mute_id)
