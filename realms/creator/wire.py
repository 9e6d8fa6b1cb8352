"""How a creator.messages row is shown: the `msg` frame of `creator.dm:` (the core's Message
plus the premium fields), locked or unlocked, and the columns every reader selects. A locked
message carries its price and preview only: never its body, attachments or media URLs."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
import msgspec
from msgspec import Meta, Struct

from kernel.messages import Attachment, Message

DM_NAMESPACE = "creator.dm"


def dm_channel(conversation_id: object) -> str:
    return f"{DM_NAMESPACE}:{conversation_id}"


class Preview(Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """What a locked premium message shows: blur and shape of its media, never the media."""

    blur_hash: (
        Annotated[
            str,
            Meta(min_length=6, max_length=100, pattern=r"^[0-9A-Za-z#$%*+,\-.:;=?@\[\]^_{|}~]+$"),
        ]
        | None
    ) = None
    width: Annotated[int, Meta(ge=1, le=100_000)] | None = None
    height: Annotated[int, Meta(ge=1, le=100_000)] | None = None
    media_count: Annotated[int, Meta(ge=0, le=100)] | None = None
    media_types: (
        Annotated[
            list[Annotated[str, Meta(pattern=r"^(image|video|audio)$")]], Meta(max_length=100)
        ]
        | None
    ) = None
    duration_ms: Annotated[int, Meta(ge=0, le=2**31)] | None = None
    # A teaser the creator chose to show before purchase (it is not the message's body).
    caption: Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00]*$")] | None = None


class CreatorMessage(Message, tag="msg"):
    """A `creator.dm:` message. `locked`: premium and not paid for by this reader (text is
    empty, no attachment); `price` (minor units) and `preview` mark a premium message."""

    locked: bool = False
    price: int | None = None
    currency: str | None = None
    preview: Preview | None = None
    attachments: list[Attachment] | None = None


# Columns of creator.messages m (joined to creator.conversations c) that render() reads.
COLUMNS = """m.id, m.conversation_id, m.seq, m.sender_id, m.client_id, m.message_type, m.body,
    m.attachments, m.preview, m.price, m.reply_to_id, m.edited_at, m.is_deleted, m.created_at,
    c.fan_id, c.creator_id, cu.currency"""
FROM = """creator.messages m JOIN creator.conversations c ON c.id = m.conversation_id
    JOIN creator.users cu ON cu.id = c.creator_id"""
# Whether the conversation's fan has paid for m (a completed message_purchase).
PURCHASED = """EXISTS (SELECT 1 FROM creator.transactions t
    WHERE t.message_id = m.id AND t.user_id = c.fan_id
      AND t.transaction_type = 'message_purchase' AND t.status = 'completed')"""


def _attachments(raw: Any) -> list[Attachment]:
    if not raw:
        return []
    return msgspec.convert(raw, list[Attachment])


def render(row: asyncpg.Record | dict[str, Any], *, unlocked: bool) -> CreatorMessage:
    """The message as a reader sees it. `unlocked`: the reader may see a premium message's
    content (its sender, or a buyer); ignored for ordinary messages."""
    deleted = bool(row["is_deleted"])
    price = row["price"]
    hidden = deleted or (price is not None and not unlocked)
    attachments = [] if hidden else _attachments(row["attachments"])
    preview = row["preview"]
    return CreatorMessage(
        channel=dm_channel(row["conversation_id"]),
        seq=row["seq"],
        id=str(row["id"]),
        user_id=str(row["sender_id"]),
        text="" if hidden else (row["body"] or ""),
        type=row["message_type"],
        created_at=row["created_at"].isoformat(),
        reply_to=str(row["reply_to_id"]) if row["reply_to_id"] else None,
        client_id=row["client_id"],
        deleted=deleted,
        edited_at=row["edited_at"].isoformat() if row["edited_at"] else None,
        attachment=attachments[0] if attachments else None,
        attachments=attachments if len(attachments) > 1 else None,
        locked=price is not None and not unlocked and not deleted,
        price=price,
        currency=row["currency"] if price is not None else None,
        preview=msgspec.convert(preview, Preview) if preview and not deleted else None,
    )
