"""`community.live:<chat_channels.id>`: the live, unstored side of an analyst chat room.

Joining takes the same gates as `community:` (the channel's state and the user's
subscription, re-checked on the same NOTIFYs), but a message here is broadcast to whoever is
joined at that moment and never written: no seq, no history, no resume, no edit, delete,
pin, flag or read, and nobody is counted against max_members or announced as joined/left.
It is for what loses its value within seconds (reactions during a live session, "going live
now", ticks), like a Phoenix channel or a Centrifugo channel without history. A `send` is
acknowledged once delivered locally and queued for the other gateways (§14); the channel's
rate rule applies, counted apart from the stored room's. docs/adr/0004-live-channels.md.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import msgspec

from kernel.conversation import (
    ChatStore,
    Committed,
    Draft,
    Membership,
    Principal,
    Publish,
    RefusesMessageChanges,
    SequenceSource,
)
from kernel.errors import BadRequest
from kernel.messages import LiveMessage, json_encoder
from realms.analyst.namespaces.community import CommunityNamespace

NOT_STORED = "community.live: messages are not stored"


class LiveMessages(RefusesMessageChanges):
    """The ChatStore of `community.live:` channels: publish, store nothing."""

    refusal = NOT_STORED

    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    async def append(self, principal: Principal, membership: Membership, draft: Draft) -> Committed:
        text, type_, reply_to = draft.text, draft.type, draft.reply_to
        client_id, attachment_url = draft.client_id, draft.attachment_url
        if draft.attachment is not None or draft.mentions:
            raise BadRequest("this channel takes `attachment_url`, not attachments or mentions")
        if reply_to is not None:
            raise BadRequest("a live message cannot reply: there is no stored message to name")
        message = LiveMessage(
            channel=membership.channel,
            id=str(uuid.uuid4()),
            user_id=principal.user_id,
            text=text,
            type=type_,
            created_at=datetime.now(UTC).isoformat(),
            client_id=client_id,
            attachment_url=attachment_url,
        )
        payload = json_encoder.encode(message)
        await self._publish([(membership.channel, 0, payload)])
        return Committed(
            id=message.id, seq=0, created_at=message.created_at, duplicate=False, payload=payload
        )

    async def drain(self) -> None:
        return None  # a send is answered once published: nothing is ever pending

    async def close(self) -> None:
        return None


class CommunityLiveNamespace:
    name = "community.live"
    realm = "analyst"
    tracks_presence = False
    auto_join = False

    def __init__(self, rooms: CommunityNamespace, live: LiveMessages) -> None:
        self._rooms = rooms
        self._live = live

    def canonical_key(self, key: str) -> str:
        return self._rooms.canonical_key(key)

    async def authorize(self, principal: Principal, channel: str, key: str) -> Membership:
        """The stored room's gates; no place under max_members is taken."""
        membership = await self._rooms.authorize(principal, channel, key)
        return msgspec.structs.replace(membership, max_members=None)

    def sequence_source(self) -> SequenceSource | None:
        return None

    def chat(self) -> ChatStore:
        return self._live

    def conversations(self) -> None:
        return None

    async def members_changed(self, conn: asyncpg.Connection, channel: str, count: int) -> None:
        return None

    def lock_sql(self) -> str | None:
        return None

    def affected_by(self, notice: dict[str, str], membership: Membership) -> bool:
        return self._rooms.affected_by(notice, membership)
