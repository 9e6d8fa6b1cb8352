"""`<realm>.direct:<id>`, `<realm>.group:<id>`, `<realm>.support:<id>`: one namespace per
kind over the core's conversation store. Members join; in support, staff join any
conversation of the queue (and become its staff members)."""

from __future__ import annotations

import asyncpg

from kernel.conversation import (
    ChatStore,
    ConversationAdmin,
    Membership,
    Principal,
    SequenceSource,
    parse_uuid,
)
from kernel.conversations.store import ConversationStore
from kernel.realms import Realm


class ConversationNamespace:
    tracks_presence = True
    auto_join = False
    message_ids = "uuid"  # gateway.conversation_messages.id, in every realm

    def __init__(self, realm: Realm, kind: str, store: ConversationStore) -> None:
        self.realm = realm.name
        self.kind = kind
        self.name = f"{realm.name}.{kind}"
        self._store = store

    def canonical_key(self, key: str) -> str:
        return str(parse_uuid(key, "conversation id"))

    async def authorize(self, principal: Principal, channel: str, key: str) -> Membership:
        return await self._store.admit(principal, self.kind, channel, parse_uuid(key, "id"))

    def sequence_source(self) -> SequenceSource:
        return self._store

    def chat(self) -> ChatStore:
        return self._store

    def conversations(self) -> ConversationAdmin:
        return self._store

    async def members_changed(self, conn: asyncpg.Connection, channel: str, count: int) -> None:
        return None

    def lock_sql(self) -> str | None:
        return None

    def affected_by(self, notice: dict[str, str], membership: Membership) -> bool:
        return (
            notice.get("kind") == "conversation"
            and notice.get("conversation_id") == membership.channel.partition(":")[2]
        )
