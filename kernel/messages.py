"""The message read model shared by the socket and REST: the `msg` and `event` frames as
msgspec Structs, and the one JSON encoder that turns them into bytes. Realms build these
from their own tables; the gateway writes them to sockets; REST history returns them."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

json_encoder = msgspec.json.Encoder()

MESSAGE_TYPES = ("text", "image", "video", "audio", "file", "location", "product", "system")


class Attachment(Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """Metadata of an uploaded file a message points to (the upload itself is elsewhere)."""

    url: Annotated[str, Meta(max_length=500, pattern=r"^https?://[^\s\x00]+$")]
    mime_type: Annotated[str, Meta(max_length=100, pattern=r"^[a-z]+/[A-Za-z0-9.+-]+$")]
    size: Annotated[int, Meta(ge=0, le=2**40)] | None = None
    width: Annotated[int, Meta(ge=1, le=100_000)] | None = None
    height: Annotated[int, Meta(ge=1, le=100_000)] | None = None
    duration_ms: Annotated[int, Meta(ge=0, le=2**31)] | None = None
    name: Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[^\x00]*$")] | None = None


class ServerFrame(Struct, tag_field="op", omit_defaults=True, kw_only=True):
    pass


class Message(ServerFrame, tag="msg"):
    channel: str
    seq: int
    id: str
    user_id: str
    text: str
    type: str
    created_at: str
    reply_to: str | None = None
    client_id: str | None = None
    attachment_url: str | None = None
    deleted: bool = False
    pinned: bool = False
    edited_at: str | None = None
    attachment: Attachment | None = None
    mentions: list[str] | None = None
    # emoji -> the users who reacted with it (conversations only; omitted when none)
    reactions: dict[str, list[str]] | None = None


class LiveMessage(ServerFrame, tag="msg"):
    """A `msg` of an unstored channel (`community.live:`): no seq, never replayed."""

    channel: str
    id: str
    user_id: str
    text: str
    type: str
    created_at: str
    client_id: str | None = None
    attachment_url: str | None = None


class Event(ServerFrame, tag="event"):
    channel: str
    kind: str
    id: str | None = None
    user_id: str | None = None
    by: str | None = None
    text: str | None = None
    reason: str | None = None
    seq: int | None = None
    at: str | None = None
    expires_in_ms: int | None = None
    ids: list[str] | None = None
    unread: int | None = None
    conversation: str | None = None
    emoji: str | None = None
    added: bool | None = None
    role: str | None = None
    # kind "server": an event a trusted backend published (POST /v1/server/publish)
    name: str | None = None
    data: dict[str, Any] | None = None


class ConversationSummary(Struct, kw_only=True, omit_defaults=True):
    """One of a user's conversations as a list shows it."""

    channel: str
    kind: str
    role: str
    last_seq: int
    unread: int
    title: str | None = None
    last_message_at: str | None = None
    muted: bool = False


class MemberState(Struct, kw_only=True):
    """A conversation member and how far they have read (a read receipt for every seq up to
    `last_read_seq`)."""

    user_id: str
    role: str
    last_read_seq: int


def edited_event(message: Message, by: str) -> Event:
    """The `edited` event of a message just edited (by `by`), for every member."""
    return Event(
        channel=message.channel,
        kind="edited",
        id=message.id,
        by=by,
        text=message.text,
        seq=message.seq,
        at=message.edited_at,
    )
