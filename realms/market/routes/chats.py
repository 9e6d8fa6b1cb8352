"""/v1/market/chats: open direct, group and support chats, list them with unread counts, read
one with its participants and assignment, page its history, manage a group's members and
name, mark read, mute. Messages are sent over the socket (`market.chat:<id>`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from realms.market import chats
from realms.market.chatmessages import COLUMNS, MarketMessage, from_row, product_cards
from realms.market.chatmessages import product_id_of as _product_of

routes = web.RouteTableDef()

Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]
ChatName = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"\S")]


class OpenChat(Struct, forbid_unknown_fields=True, kw_only=True):
    type: Literal["direct", "group", "support"]
    with_: Id | None = msgspec.field(default=None, name="with")
    members: Annotated[list[Id], Meta(min_length=1, max_length=99)] | None = None
    name: ChatName | None = None
    product_id: Id | None = None
    order_id: Id | None = None


class ChatOpened(Struct):
    id: int
    channel: str
    type: str
    created: bool


class ChatSummary(Struct):
    id: int
    channel: str
    type: str
    role: str
    name: str | None
    unread: int
    last_seq: int
    muted: bool
    last_message_at: datetime | None
    product_id: int | None
    order_id: int | None
    assigned_to: int | None


class ChatsQuery(PageQuery, kw_only=True):
    type: Literal["direct", "group", "support"] | None = None


class ParticipantOut(Struct):
    user_id: int
    role: str
    last_read_seq: int
    last_read_at: datetime | None
    is_muted: bool


class ChatOut(Struct):
    id: int
    channel: str
    type: str
    name: str | None
    created_by: int
    product_id: int | None
    order_id: int | None
    assigned_to: int | None
    last_message_at: datetime | None
    participants: list[ParticipantOut]


class HistoryQuery(Struct, kw_only=True):
    before: Annotated[int, Meta(ge=1)] | None = None
    limit: Annotated[int, Meta(ge=1, le=100)] = 50


class Members(Struct, forbid_unknown_fields=True):
    users: Annotated[list[Id], Meta(min_length=1, max_length=99)]


class Added(Struct):
    added: list[int]


class Rename(Struct, forbid_unknown_fields=True):
    name: ChatName


class ReadBody(Struct, forbid_unknown_fields=True):
    seq: Annotated[int, Meta(ge=0)]


class ReadOut(Struct):
    read_seq: int
    unread: int


class MuteBody(Struct, forbid_unknown_fields=True):
    muted: bool


def _chat_id(request: web.Request) -> int:
    raw = request.match_info["chat_id"]
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise BadRequest(f"chat id {raw!r} is not a positive integer")
    return int(raw)


async def _me(request: web.Request) -> int:
    return int((await caller(request)).subject)


@endpoint(
    routes,
    "POST",
    "/v1/chats",
    summary="Open a direct chat (the pair's one; with a seller), a group or a support chat",
    tag="market chats",
    body=OpenChat,
    response=ChatOpened,
    status=201,
    errors=(400, 401, 403, 404, 409),
)
async def open_chat(request: web.Request, body: OpenChat) -> ChatOpened:
    me = await _me(request)
    if body.type != "direct" and (body.product_id or body.order_id or body.with_):
        raise BadRequest("only a direct chat takes `with`, `product_id` or `order_id`")
    async with request.app[POOL].acquire() as conn:
        if body.type == "direct":
            if body.with_ is None or body.members is not None:
                raise BadRequest("a direct chat takes `with` (one user)")
            chat_id, created = await chats.open_direct(
                conn, me, body.with_, body.product_id, body.order_id
            )
        elif body.type == "group":
            if not body.members or body.name is None:
                raise BadRequest("a group takes `members` and a `name`")
            chat_id, created = await chats.open_group(conn, me, body.members, body.name), True
        else:
            if body.members is not None:
                raise BadRequest("a support chat takes an optional `name` only")
            chat_id, created = await chats.open_support(conn, me, body.name), True
    return ChatOpened(chat_id, chats.chat_channel(chat_id), body.type, created)


@endpoint(
    routes,
    "GET",
    "/v1/chats",
    summary="The caller's chats, newest activity first, with unread counts (support staff "
    "asking for type=support get the whole support queue)",
    tag="market chats",
    query=ChatsQuery,
    response=Page[ChatSummary],
    errors=(400, 401),
)
async def list_chats(request: web.Request, query: ChatsQuery) -> Page[ChatSummary]:
    me = await _me(request)
    pool = request.app[POOL]
    after = decode_cursor(query.cursor, datetime, int)
    staff = query.type == "support" and await chats.is_support_staff(pool, me)
    rows = await pool.fetch(
        chats.LIST_SQL,
        me,
        query.type,
        staff,
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
    )
    items = [
        ChatSummary(
            id=r["id"],
            channel=chats.chat_channel(r["id"]),
            type=r["type"],
            role=r["role"],
            name=r["name"],
            unread=r["unread"],
            last_seq=r["last_seq"],
            muted=r["muted"],
            last_message_at=r["last_message_at"],
            product_id=r["product_id"],
            order_id=r["order_id"],
            assigned_to=r["assigned_to"],
        )
        for r in rows
    ]
    stamps = {r["id"]: r["last_message_at"] or r["created_at"] for r in rows}
    return page_of(items, query.limit, lambda c: (stamps[c.id].isoformat(), c.id))


@endpoint(
    routes,
    "GET",
    "/v1/chats/{chat_id}",
    summary="A chat with its participants, read positions and support assignment",
    tag="market chats",
    response=ChatOut,
    errors=(400, 401, 403, 404),
)
async def get_chat(request: web.Request) -> ChatOut:
    me, chat_id = await _me(request), _chat_id(request)
    pool = request.app[POOL]
    await chats.admit(pool, chat_id, me, enter=False)
    row = await pool.fetchrow(
        "SELECT id, type::text AS type, name, created_by, product_id, order_id, assigned_to,"
        " last_message_at FROM market.chats WHERE id = $1",
        chat_id,
    )
    people = await chats.participants(pool, chat_id)
    return ChatOut(
        channel=chats.chat_channel(chat_id),
        participants=[ParticipantOut(**vars(p)) for p in people],
        **dict(row),
    )


@endpoint(
    routes,
    "GET",
    "/v1/chats/{chat_id}/messages",
    summary="A page of the chat's messages in seq order (the latest, or those before `before`)",
    tag="market chats",
    query=HistoryQuery,
    response=list[MarketMessage],
    errors=(400, 401, 403, 404),
)
async def history(request: web.Request, query: HistoryQuery) -> list[MarketMessage]:
    me, chat_id = await _me(request), _chat_id(request)
    pool = request.app[POOL]
    await chats.admit(pool, chat_id, me, enter=False)
    rows = await pool.fetch(
        f"SELECT {COLUMNS} FROM market.messages m WHERE m.chat_id = $1 AND m.seq < $2"
        " ORDER BY m.seq DESC LIMIT $3",
        chat_id,
        query.before or 2**62,
        query.limit,
    )
    ids = [pid for r in rows if r["type"] == "product" and (pid := _product_of(r["metadata"]))]
    cards = await product_cards(pool, ids)
    channel = chats.chat_channel(chat_id)
    return [from_row(channel, r, cards) for r in reversed(rows)]


@endpoint(
    routes,
    "POST",
    "/v1/chats/{chat_id}/members",
    summary="Add members to a group (its admins)",
    tag="market chats",
    body=Members,
    response=Added,
    errors=(400, 401, 403, 404, 409),
)
async def add_members(request: web.Request, body: Members) -> Added:
    me, chat_id = await _me(request), _chat_id(request)
    async with request.app[POOL].acquire() as conn:
        return Added(await chats.add_members(conn, chat_id, me, body.users))


@endpoint(
    routes,
    "DELETE",
    "/v1/chats/{chat_id}/members/{user_id}",
    summary="Remove a member from a group (its admins), or leave it (anyone)",
    tag="market chats",
    status=204,
    errors=(400, 401, 403, 404),
)
async def remove_member(request: web.Request) -> None:
    me, chat_id = await _me(request), _chat_id(request)
    raw = request.match_info["user_id"]
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise BadRequest(f"user id {raw!r} is not a positive integer")
    async with request.app[POOL].acquire() as conn:
        await chats.remove_member(conn, chat_id, me, int(raw))


@endpoint(
    routes,
    "PATCH",
    "/v1/chats/{chat_id}",
    summary="Rename a group (its admins)",
    tag="market chats",
    body=Rename,
    status=204,
    errors=(400, 401, 403, 404),
)
async def rename(request: web.Request, body: Rename) -> None:
    me, chat_id = await _me(request), _chat_id(request)
    async with request.app[POOL].acquire() as conn:
        await chats.rename(conn, chat_id, me, body.name)


@endpoint(
    routes,
    "POST",
    "/v1/chats/{chat_id}/read",
    summary="Mark the chat read up to `seq` (read receipts in message_reads)",
    tag="market chats",
    body=ReadBody,
    response=ReadOut,
    errors=(400, 401, 403, 404),
)
async def read(request: web.Request, body: ReadBody) -> ReadOut:
    me, chat_id = await _me(request), _chat_id(request)
    async with request.app[POOL].acquire() as conn:
        state = await chats.mark_read(conn, chat_id, me, body.seq)
    return ReadOut(read_seq=state.read_seq, unread=state.unread)


@endpoint(
    routes,
    "PUT",
    "/v1/chats/{chat_id}/mute",
    summary="Mute or unmute a chat for oneself (no push; unread counts and in-app stay)",
    tag="market chats",
    body=MuteBody,
    status=204,
    errors=(400, 401, 403),
)
async def mute(request: web.Request, body: MuteBody) -> None:
    me, chat_id = await _me(request), _chat_id(request)
    await chats.set_muted(request.app[POOL], chat_id, me, body.muted)
