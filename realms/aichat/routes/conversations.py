"""/v1/aichat/conversations: the caller's assistant conversations (create with a model and a
system prompt, list, rename, archive, delete) and their messages (history, soft delete).
Sending happens over the socket, on the conversation's `channel`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import asyncpg
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import Forbidden, NotFound
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid
from realms.aichat.chat.frames import COLUMNS, ChatMessage, chat_message
from realms.aichat.chat.namespace import channel_of
from realms.aichat.providers.router import refuse_unknown_model
from realms.aichat.usage import count_conversation, plan_of

routes = web.RouteTableDef()
NoNul = r"^[^\x00]*$"
Title = Annotated[str, Meta(min_length=1, max_length=500, pattern=NoNul)]
Text = Annotated[str, Meta(max_length=20_000, pattern=NoNul)]


class ConversationIn(Struct, forbid_unknown_fields=True):
    model: Annotated[str, Meta(min_length=1, max_length=100)]
    title: Title = "New conversation"
    system_prompt: Text | None = None
    description: Text | None = None


class ConversationPatch(Struct, forbid_unknown_fields=True):
    title: Title | None = None
    description: Text | None = None
    system_prompt: Text | None = None
    archived: bool | None = None


class ConversationOut(Struct):
    id: uuid.UUID
    channel: str
    title: str
    description: str | None
    model: str
    system_prompt: str | None
    message_count: int
    token_count: int
    archived: bool
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ConversationQuery(PageQuery, kw_only=True):
    archived: bool = False


class HistoryQuery(Struct, kw_only=True):
    before: Annotated[int, Meta(ge=1)] | None = None
    limit: Annotated[int, Meta(ge=1, le=100)] = 50


_FIELDS = (
    "id, title, description, model, system_prompt, message_count, token_count, is_archived,"
    " archived_at, created_at, updated_at"
)


def _out(row: asyncpg.Record) -> ConversationOut:
    return ConversationOut(
        id=row["id"],
        channel=channel_of(row["id"]),
        title=row["title"],
        description=row["description"],
        model=row["model"],
        system_prompt=row["system_prompt"],
        message_count=row["message_count"],
        token_count=row["token_count"],
        archived=row["is_archived"],
        archived_at=row["archived_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


@endpoint(
    routes,
    "POST",
    "/v1/conversations",
    summary="Start an assistant conversation with a model and an optional system prompt",
    tag="aichat conversations",
    body=ConversationIn,
    response=ConversationOut,
    status=201,
    errors=(400, 403),
)
async def create(request: web.Request, body: ConversationIn) -> ConversationOut:
    who = await caller(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await refuse_unknown_model(conn, body.model)
        # The user row lock queues one user's concurrent creations behind the count.
        await conn.execute("SELECT 1 FROM aichat.users WHERE id = $1 FOR UPDATE", who.user_id)
        plan = await plan_of(conn, who.user_id)
        if plan.max_conversations is not None:
            held = await conn.fetchval(
                "SELECT count(*) FROM aichat.conversations WHERE user_id = $1", who.user_id
            )
            if held >= plan.max_conversations:
                raise Forbidden(
                    f"the {plan.name} plan keeps at most {plan.max_conversations} conversations;"
                    " delete one first"
                )
        row = await conn.fetchrow(
            "INSERT INTO aichat.conversations (user_id, title, description, model, system_prompt)"
            f" VALUES ($1, $2, $3, $4, $5) RETURNING {_FIELDS}",
            who.user_id,
            body.title,
            body.description,
            body.model,
            body.system_prompt,
        )
        await count_conversation(conn, who.user_id, plan)
    return _out(row)


@endpoint(
    routes,
    "GET",
    "/v1/conversations",
    summary="The caller's conversations, newest first (archived ones with ?archived=true)",
    tag="aichat conversations",
    query=ConversationQuery,
    response=Page[ConversationOut],
)
async def list_conversations(
    request: web.Request, query: ConversationQuery
) -> Page[ConversationOut]:
    who = await caller(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        f"SELECT {_FIELDS} FROM aichat.conversations WHERE user_id = $1 AND is_archived = $2"
        " AND ($3::timestamp IS NULL OR (created_at, id) < ($3, $4))"
        " ORDER BY created_at DESC, id DESC LIMIT $5",
        who.user_id,
        query.archived,
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
    )
    return page_of([_out(r) for r in rows], query.limit, lambda c: (c.created_at, c.id))


@endpoint(
    routes,
    "GET",
    "/v1/conversations/{id}",
    summary="One of the caller's conversations",
    tag="aichat conversations",
    response=ConversationOut,
    errors=(404,),
)
async def get_conversation(request: web.Request) -> ConversationOut:
    who = await caller(request)
    row = await request.app[POOL].fetchrow(
        f"SELECT {_FIELDS} FROM aichat.conversations WHERE id = $1 AND user_id = $2",
        path_uuid(request),
        who.user_id,
    )
    if row is None:
        raise NotFound("no such conversation of yours")
    return _out(row)


@endpoint(
    routes,
    "PATCH",
    "/v1/conversations/{id}",
    summary="Rename, describe, change the system prompt, archive or unarchive",
    tag="aichat conversations",
    body=ConversationPatch,
    response=ConversationOut,
    errors=(404,),
)
async def patch_conversation(request: web.Request, body: ConversationPatch) -> ConversationOut:
    who = await caller(request)
    row = await request.app[POOL].fetchrow(
        "UPDATE aichat.conversations SET title = coalesce($3, title),"
        " description = coalesce($4, description), system_prompt = coalesce($5, system_prompt),"
        " is_archived = coalesce($6, is_archived),"
        " archived_at = CASE WHEN $6 IS NULL THEN archived_at"
        "                    WHEN $6 THEN coalesce(archived_at, LOCALTIMESTAMP) END"
        f" WHERE id = $1 AND user_id = $2 RETURNING {_FIELDS}",
        path_uuid(request),
        who.user_id,
        body.title,
        body.description,
        body.system_prompt,
        body.archived,
    )
    if row is None:
        raise NotFound("no such conversation of yours")
    return _out(row)


@endpoint(
    routes,
    "DELETE",
    "/v1/conversations/{id}",
    summary="Delete a conversation and its messages (token usage stays, without the link)",
    tag="aichat conversations",
    status=204,
    errors=(404,),
)
async def delete_conversation(request: web.Request) -> None:
    who = await caller(request)
    status = await request.app[POOL].execute(
        "DELETE FROM aichat.conversations WHERE id = $1 AND user_id = $2",
        path_uuid(request),
        who.user_id,
    )
    if status.endswith(" 0"):
        raise NotFound("no such conversation of yours")


@endpoint(
    routes,
    "GET",
    "/v1/conversations/{id}/messages",
    summary="A page of a conversation's messages in seq order (before a seq: older ones)",
    tag="aichat conversations",
    query=HistoryQuery,
    response=list[ChatMessage],
    errors=(404,),
)
async def history(request: web.Request, query: HistoryQuery) -> list[ChatMessage]:
    who = await caller(request)
    conv = path_uuid(request)
    pool = request.app[POOL]
    owner = await pool.fetchval("SELECT user_id FROM aichat.conversations WHERE id = $1", conv)
    if owner != who.user_id:
        raise NotFound("no such conversation of yours")
    rows = await pool.fetch(
        f"SELECT * FROM (SELECT {COLUMNS} FROM aichat.messages m"
        " JOIN aichat.conversations c ON c.id = m.conversation_id"
        " WHERE m.conversation_id = $1 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3) p"
        " ORDER BY seq",
        conv,
        query.before or 2**62,
        query.limit,
    )
    channel = channel_of(conv)
    return [chat_message(channel, r) for r in rows]


@endpoint(
    routes,
    "DELETE",
    "/v1/conversations/{id}/messages/{message_id}",
    summary="Soft-delete a message (history shows it as deleted, without its text)",
    tag="aichat conversations",
    status=204,
    errors=(404,),
)
async def delete_message(request: web.Request) -> None:
    who = await caller(request)
    found = await request.app[POOL].fetchval(
        "UPDATE aichat.messages m SET is_deleted = true,"
        " deleted_at = coalesce(m.deleted_at, LOCALTIMESTAMP)"
        "  FROM aichat.conversations c"
        " WHERE m.id = $1 AND m.conversation_id = $2 AND c.id = m.conversation_id"
        "   AND c.user_id = $3 RETURNING m.id",
        path_uuid(request, "message_id"),
        path_uuid(request),
        who.user_id,
    )
    if found is None:
        raise NotFound("no such message in a conversation of yours")
