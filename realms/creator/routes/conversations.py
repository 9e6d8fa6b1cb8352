"""/v1/creator/conversations: a fan opens their conversation with a creator (when the
creator's rule lets them), both parties list, read and archive theirs, read history (premium
messages locked for a fan who has not bought them), send (creators may price a message:
premium, with a preview), mark read, and block. Sockets hear REST sends and reads through the
relay (realms/creator/relay.py)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Forbidden, NotFound
from kernel.messages import Attachment
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from realms.creator import dm, notices, relay
from realms.creator.accounts import verified_account
from realms.creator.wire import CreatorMessage, Preview, dm_channel

routes = web.RouteTableDef()

NO_NUL = r"^[^\x00]*$"


class OpenBody(Struct, forbid_unknown_fields=True):
    creator_id: uuid.UUID


class ConversationOut(Struct, kw_only=True):
    id: uuid.UUID
    channel: str
    role: str
    peer_id: uuid.UUID
    last_seq: int
    unread: int
    last_read_seq: int
    peer_last_read_seq: int
    archived: bool
    blocked: bool
    last_message_at: str | None
    state_version: int


class Opened(Struct, kw_only=True):
    conversation: ConversationOut
    created: bool


class ListQuery(Struct, kw_only=True):
    archived: bool = False


class HistoryQuery(Struct, kw_only=True):
    before: Annotated[int, Meta(ge=0, le=2**53)] | None = None
    after: Annotated[int, Meta(ge=0, le=2**53)] | None = None
    limit: Annotated[int, Meta(ge=1, le=100)] = 50


class SendBody(Struct, forbid_unknown_fields=True, kw_only=True):
    text: Annotated[str, Meta(min_length=1, max_length=5000, pattern=NO_NUL)] | None = None
    type: Literal["text", "image", "video", "audio"] = "text"
    attachments: Annotated[list[Attachment], Meta(max_length=20)] | None = None
    reply_to: uuid.UUID | None = None
    client_id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    # Premium: the price in minor units (cents) and what a fan sees before buying.
    price: int | None = None
    preview: Preview | None = None


class Sent(Struct, kw_only=True):
    message: CreatorMessage
    duplicate: bool


class ReadBody(Struct, forbid_unknown_fields=True):
    seq: Annotated[int, Meta(ge=0, le=2**53)] | None = None


class ReadOut(Struct, kw_only=True):
    last_read_seq: int


class PatchBody(Struct, forbid_unknown_fields=True, kw_only=True):
    archived: bool | None = None
    blocked: bool | None = None


def _out(r: asyncpg.Record, me: uuid.UUID) -> ConversationOut:
    """A row of dm.SUMMARY_SQL as its party `me` sees it."""
    role = "fan" if r["fan_id"] == me else "creator"
    return ConversationOut(
        id=r["id"],
        channel=dm_channel(r["id"]),
        role=role,
        peer_id=r["creator_id"] if role == "fan" else r["fan_id"],
        last_seq=r["last_seq"],
        unread=r["unread"],
        last_read_seq=r["last_read_seq"],
        peer_last_read_seq=r["peer_last_read_seq"],
        archived=r["archived"],
        blocked=r["blocked_by"] is not None,
        last_message_at=r["last_message_at"].isoformat() if r["last_message_at"] else None,
        state_version=r["state_version"],
    )


async def _one(request: web.Request, me: uuid.UUID, conversation_id: uuid.UUID) -> ConversationOut:
    row = await request.app[POOL].fetchrow(dm.SUMMARY_SQL, me, conversation_id)
    if row is None:
        raise NotFound(f"no conversation {conversation_id}")
    return _out(row, me)


def _id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise BadRequest("conversation id is not a UUID") from None


@endpoint(
    routes,
    "POST",
    "/v1/conversations",
    summary="Open (or find) the caller's conversation with a creator",
    tag="creator conversations",
    body=OpenBody,
    response=Opened,
    errors=(400, 403, 404),
)
async def open_conversation(request: web.Request, body: OpenBody) -> Opened:
    me = (await verified_account(request, "messaging")).id
    async with request.app[POOL].acquire() as conn:
        conversation_id, created = await dm.open_conversation(conn, me, body.creator_id)
    return Opened(conversation=await _one(request, me, conversation_id), created=created)


@endpoint(
    routes,
    "GET",
    "/v1/conversations",
    summary="The caller's conversations, most recent first (archived ones with ?archived=true)",
    tag="creator conversations",
    query=ListQuery,
    response=list[ConversationOut],
)
async def list_conversations(request: web.Request, query: ListQuery) -> list[ConversationOut]:
    me = (await verified_account(request, "messaging")).id
    rows = await request.app[POOL].fetch(
        f"SELECT * FROM ({dm.SUMMARY_SQL}) s WHERE s.archived = $3"
        " ORDER BY s.last_message_at DESC NULLS LAST, s.id LIMIT 200",
        me,
        None,
        query.archived,
    )
    return [_out(r, me) for r in rows]


@endpoint(
    routes,
    "GET",
    "/v1/conversations/{id}",
    summary="One of the caller's conversations",
    tag="creator conversations",
    response=ConversationOut,
    errors=(404,),
)
async def get_conversation(request: web.Request) -> ConversationOut:
    me = (await verified_account(request, "messaging")).id
    return await _one(request, me, _id(request))


@endpoint(
    routes,
    "GET",
    "/v1/conversations/{id}/messages",
    summary="A page of messages in seq order (premium ones locked until bought)",
    tag="creator conversations",
    query=HistoryQuery,
    response=list[CreatorMessage],
    errors=(400, 404),
)
async def history(request: web.Request, query: HistoryQuery) -> list[CreatorMessage]:
    me = (await verified_account(request, "messaging")).id
    conversation = await _one(request, me, _id(request))
    if query.before is not None and query.after is not None:
        raise BadRequest("give `before` or `after`, not both")
    messages = await dm.read_history(
        request.app[POOL],
        conversation.id,
        conversation.role,
        query.before,
        query.after,
        query.limit,
    )
    return [m for m in messages if isinstance(m, CreatorMessage)]


@endpoint(
    routes,
    "POST",
    "/v1/conversations/{id}/messages",
    summary="Send a message; a creator may price it (premium: locked until the fan buys it)",
    tag="creator conversations",
    body=SendBody,
    response=Sent,
    status=201,
    errors=(400, 403, 404),
)
async def send(request: web.Request, body: SendBody) -> Sent:
    me = (await verified_account(request, "messaging")).id
    conversation = await _one(request, me, _id(request))
    if body.price is not None and body.price <= 0:
        raise BadRequest("a premium message's price is above zero")
    if body.price is None and body.preview is not None:
        raise BadRequest("only a premium message (with a price) has a preview")
    if body.price is not None and conversation.role != "creator":
        raise BadRequest("only the creator may price a message")
    if body.text is None and not body.attachments:
        raise BadRequest("a message has text, attachments or both")
    if body.type != "text" and not body.attachments:
        raise BadRequest(f"a {body.type} message needs its attachments")
    outgoing = dm.Outgoing(
        conversation_id=conversation.id,
        sender_id=me,
        type=body.type,
        body=body.text,
        attachments=[msgspec.to_builtins(a) for a in body.attachments or ()] or None,
        reply_to=body.reply_to,
        client_id=body.client_id,
        price=body.price,
        preview=msgspec.to_builtins(body.preview) if body.preview else None,
    )
    async with request.app[POOL].acquire() as conn, conn.transaction():
        (row,) = await dm.append(conn, [outgoing])
        status = row["status"]
        if status not in ("ok", "duplicate"):
            raise dm.REFUSALS[status]
        if status == "ok":
            await relay.announce(conn, "message", row["id"])
            peer = conversation.peer_id
            await conn.execute(
                "INSERT INTO creator.notifications (user_id, notification_type, title, actor_id,"
                " related_entity_type, related_entity_id, data)"
                " VALUES ($1, 'new_message', 'New message', $2, 'conversation', $3,"
                " jsonb_build_object('premium', $4::boolean))",
                peer,
                me,
                conversation.id,
                body.price is not None,
            )
            await notices.new_message(
                conn,
                conversation_id=conversation.id,
                recipient=peer,
                sender_name=await conn.fetchval(
                    "SELECT username FROM creator.users WHERE id = $1", me
                ),
                text=body.text,
                premium=body.price is not None,
            )
        history = await dm.read_history(
            conn, conversation.id, conversation.role, None, row["seq"] - 1, 1
        )
    (message,) = history
    assert isinstance(message, CreatorMessage)
    return Sent(message=message, duplicate=status == "duplicate")


@endpoint(
    routes,
    "POST",
    "/v1/conversations/{id}/read",
    summary="Mark the conversation read up to `seq` (default: everything); returns the position",
    tag="creator conversations",
    body=ReadBody,
    response=ReadOut,
    errors=(403, 404),
)
async def read(request: web.Request, body: ReadBody) -> ReadOut:
    me = (await verified_account(request, "messaging")).id
    conversation = await _one(request, me, _id(request))
    async with request.app[POOL].acquire() as conn, conn.transaction():
        stored, _events = await dm.mark_read(
            conn, conversation.id, me, body.seq if body.seq is not None else conversation.last_seq
        )
        await relay.announce(conn, "read", conversation.id, me)
    return ReadOut(last_read_seq=stored)


@endpoint(
    routes,
    "PATCH",
    "/v1/conversations/{id}",
    summary="Archive or unarchive (for the caller only), block or unblock the conversation",
    tag="creator conversations",
    body=PatchBody,
    response=ConversationOut,
    errors=(400, 403, 404),
)
async def patch(request: web.Request, body: PatchBody) -> ConversationOut:
    me = (await verified_account(request, "messaging")).id
    conversation = await _one(request, me, _id(request))
    side = conversation.role
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if body.archived is not None:
            await conn.execute(
                f"UPDATE creator.conversations SET {side}_archived = $2 WHERE id = $1",
                conversation.id,
                body.archived,
            )
        if body.blocked is True and not conversation.blocked:
            await conn.execute(
                "UPDATE creator.conversations SET blocked_by = $2, blocked_at = now()"
                " WHERE id = $1 AND blocked_by IS NULL",
                conversation.id,
                me,
            )
        elif body.blocked is False and conversation.blocked:
            unblocked = await conn.execute(
                "UPDATE creator.conversations SET blocked_by = NULL, blocked_at = NULL"
                " WHERE id = $1 AND blocked_by = $2",
                conversation.id,
                me,
            )
            if unblocked.endswith(" 0"):
                raise Forbidden("only who blocked a conversation may unblock it")
    return await _one(request, me, conversation.id)
