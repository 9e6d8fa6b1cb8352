"""The frames of assistant conversations: a stored message (`msg`, with its role, model and
token counts) and the stream's events (`delta`, `reply_failed`), encoded once and published
to the conversation's channel."""

from __future__ import annotations

import asyncpg

from kernel.messages import Message, ServerFrame, json_encoder

ASSISTANT = "assistant"


class ChatMessage(Message, tag="msg", kw_only=True):
    """A `msg` of an assistant conversation. `user_id` is the owner for the user's messages
    and `assistant` for replies; `partial` marks a reply that ended before the provider
    finished it (`finish_reason` says why: cancelled, error, shutdown)."""

    role: str
    model: str | None = None
    token_count: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    partial: bool = False
    finish_reason: str | None = None


class StreamEvent(ServerFrame, tag="event", kw_only=True):
    """`delta`: the `index`-th piece (0, 1, 2 ...) of the reply `id` to the user message
    `reply_to`; `reply_failed`: the reply ended in an error (`code`, `message`,
    `retry_after_ms`), after which a partial reply may follow as its `msg`."""

    channel: str
    kind: str
    id: str
    reply_to: str
    index: int | None = None
    text: str | None = None
    model: str | None = None
    code: str | None = None
    message: str | None = None
    retry_after_ms: int | None = None


COLUMNS = (
    "m.id, m.seq, m.role, m.content, m.token_count, m.prompt_tokens, m.completion_tokens,"
    " m.model, m.client_id, m.reply_to, m.is_partial, m.finish_reason, m.is_deleted,"
    " m.created_at, m.updated_at, c.user_id"
)


def chat_message(channel: str, row: asyncpg.Record) -> ChatMessage:
    """A messages row (joined with its conversation's user_id, COLUMNS) as its frame."""
    deleted = bool(row["is_deleted"])
    return ChatMessage(
        channel=channel,
        seq=row["seq"],
        id=str(row["id"]),
        user_id=ASSISTANT if row["role"] == ASSISTANT else str(row["user_id"]),
        text="" if deleted else row["content"],
        type="text",
        created_at=row["created_at"].isoformat(),
        reply_to=str(row["reply_to"]) if row["reply_to"] else None,
        client_id=row["client_id"],
        deleted=deleted,
        role=row["role"],
        model=row["model"],
        token_count=row["token_count"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        partial=row["is_partial"],
        finish_reason=row["finish_reason"],
    )


def encode(frame: ServerFrame) -> bytes:
    return json_encoder.encode(frame)
