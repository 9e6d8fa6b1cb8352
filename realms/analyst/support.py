"""Support in the analyst realm: a trader talks to an analyst (one who keeps a 'support'
channel, and to whom the trader is subscribed) or to the admins' queue, in the core's
`support` conversations (`analyst.support:<id>`). Admins are the staff who answer any."""

from __future__ import annotations

from kernel.conversation import Principal
from kernel.conversations import OpenPolicy
from kernel.errors import Forbidden

_TARGET = """
SELECT EXISTS (SELECT 1 FROM analyst.chat_channels c
                WHERE c.analyst_id = $2 AND c.channel_type = 'support' AND c.is_active
                  AND NOT c.is_archived AND c.deleted_at IS NULL) AS keeps_support,
       EXISTS (SELECT 1 FROM analyst.subscriptions s
                WHERE s.user_id = $1 AND s.analyst_id = $2 AND s.status = 'active'
                  AND s.deleted_at IS NULL
                  AND (s.expires_at IS NULL OR s.expires_at > now())) AS subscribed
"""


class AnalystSupportPolicy(OpenPolicy):
    def is_staff(self, principal: Principal) -> bool:
        return principal.user_type == "admin"

    async def check_direct(self, principal: Principal, peer: str) -> None:
        raise Forbidden("the analyst realm keeps support conversations only")

    async def check_members(self, principal: Principal, users: list[str]) -> None:
        raise Forbidden("the analyst realm keeps support conversations only")

    async def check_support_target(self, principal: Principal, target: str) -> None:
        if await self._user_type(target) == "admin":
            return
        row = await self._pool.fetchrow(_TARGET, principal.user_id, target)
        if not row["keeps_support"]:
            raise Forbidden(f"user {target} keeps no support channel")
        if not row["subscribed"] and not self.is_staff(principal):
            raise Forbidden("support from an analyst needs an active subscription to them")
