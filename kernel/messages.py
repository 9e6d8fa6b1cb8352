"""The message read model shared by the socket and REST: the `msg` and `event` frames as
msgspec Structs, and the one JSON encoder that turns them into bytes. Realms build these
from their own tables; the gateway writes them to sockets; REST history returns them."""

from __future__ import annotations

import msgspec
from msgspec import Struct

json_encoder = msgspec.json.Encoder()

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
