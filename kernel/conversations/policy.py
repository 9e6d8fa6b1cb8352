"""Who may open a conversation with whom, and who is staff: a realm's rule, given to the
core's conversations. `OpenPolicy` is the default: any active user of the realm."""

from __future__ import annotations

from typing import Protocol

import asyncpg

from kernel.conversation import Principal
from kernel.errors import BadRequest, Forbidden, NotFound, Unauthorized
from kernel.realms import Realm

STAFF_TYPES = frozenset({"admin", "staff", "support", "moderator"})


class ConversationPolicy(Protocol):
    def is_staff(self, principal: Principal) -> bool:
        """Whether the user answers the realm's support queue."""
        ...

    async def check_direct(self, principal: Principal, peer: str) -> None:
        """Raise Forbidden / NotFound when `principal` may not talk to `peer` one to one."""
        ...

    async def check_members(self, principal: Principal, users: list[str]) -> None:
        """Raise Forbidden / NotFound when `principal` may not put `users` in a group."""
        ...

    async def check_support_target(self, principal: Principal, target: str) -> None:
        """Raise Forbidden / NotFound unless `target` may answer `principal`'s support
        conversation by name (besides the staff queue)."""
        ...


class OpenPolicy:
    """Any active user of the realm may talk to, or add to a group, any other active user;
    staff are the user types in STAFF_TYPES."""

    def __init__(self, realm: Realm, pool: asyncpg.Pool) -> None:
        self._realm = realm
        self._pool = pool

    def is_staff(self, principal: Principal) -> bool:
        return principal.user_type in STAFF_TYPES

    async def check_direct(self, principal: Principal, peer: str) -> None:
        await self.check_members(principal, [peer])

    async def check_support_target(self, principal: Principal, target: str) -> None:
        if await self._user_type(target) not in STAFF_TYPES:
            raise Forbidden(f"user {target} does not answer support")

    async def _user_type(self, user: str) -> str:
        sql = self._realm.user_lookup_sql
        if sql is None:
            raise NotFound(f"realm {self._realm.name!r} has no users")
        try:
            value = self._realm.user_id_value(self._realm.parse_user_id(user))
        except Unauthorized:
            raise BadRequest(f"{user!r} is not a {self._realm.name} user id") from None
        row = await self._pool.fetchrow(sql, value)
        if row is None or not row["active"]:
            raise NotFound(f"user {user} does not exist")
        return str(row["user_type"])

    async def check_members(self, principal: Principal, users: list[str]) -> None:
        for user in users:
            await self._user_type(user)
