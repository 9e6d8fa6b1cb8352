"""`user:<users.id>`: a user's own stream (notifications, personal events).

Joined automatically on connect; nobody else may join it; it is receive-only.
"""

from __future__ import annotations

import asyncpg

from gateway.fanout import SequenceSource
from gateway.namespaces.base import ChatStore, Membership, Principal, parse_uuid
from kernel.errors import Forbidden


class UserNamespace:
    name = "user"
    realm = "*"
    tracks_presence = False
    auto_join = True

    def canonical_key(self, key: str) -> str:
        return str(parse_uuid(key, "channel id" if self.name == "community" else "user id"))

    async def authorize(self, principal: Principal, channel: str, key: str) -> Membership:
        if key != principal.user_id:
            raise Forbidden("a user stream can be joined only by its own user")
        return Membership(channel=channel, role="self", owner_id=principal.user_id)

    def sequence_source(self) -> SequenceSource | None:
        return None

    def chat(self) -> ChatStore | None:
        return None

    async def members_changed(self, conn: asyncpg.Connection, channel: str, count: int) -> None:
        return None

    def lock_sql(self) -> str | None:
        return None

    def affected_by(self, notice: dict[str, str], membership: Membership) -> bool:
        return False
