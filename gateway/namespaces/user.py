"""A user's own stream, one namespace per realm: `user:<id>` (analyst) or `<realm>.user:<id>`:
notifications and personal events. Joined automatically on connect; nobody else may join
it, not even the same id of another realm; it is receive-only."""

from __future__ import annotations

import asyncpg

from kernel.conversation import ChatStore, Membership, Principal, SequenceSource
from kernel.errors import BadRequest, Forbidden, Unauthorized
from kernel.realms import Realm


class UserNamespace:
    tracks_presence = False
    auto_join = True

    def __init__(self, realm: Realm) -> None:
        self._realm = realm
        self.name = realm.user_stream_namespace
        self.realm = realm.name

    def canonical_key(self, key: str) -> str:
        try:
            return self._realm.parse_user_id(key)
        except Unauthorized:
            raise BadRequest(f"{key!r} is not a {self.realm} user id") from None

    async def authorize(self, principal: Principal, channel: str, key: str) -> Membership:
        if principal.realm != self.realm or key != principal.user_id:
            raise Forbidden("a user stream can be joined only by its own user")
        return Membership(channel=channel, role="self", owner_id=principal.user_id)

    def sequence_source(self) -> SequenceSource | None:
        return None

    def chat(self) -> ChatStore | None:
        return None

    def conversations(self) -> None:
        return None

    async def members_changed(self, conn: asyncpg.Connection, channel: str, count: int) -> None:
        return None

    def lock_sql(self) -> str | None:
        return None

    def affected_by(self, notice: dict[str, str], membership: Membership) -> bool:
        return False
