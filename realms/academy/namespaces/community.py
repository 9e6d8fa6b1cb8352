"""`academy.community:all`: the community's live feed, receive-only. Any academy user may
join; the api publishes `post_created`, `comment_created` and `score_changed` events to it
(realms/academy/events.py). Nothing is stored here: the posts are the history."""

from __future__ import annotations

import asyncpg

from kernel.conversation import ChatStore, Membership, Principal, SequenceSource
from kernel.errors import BadRequest, Forbidden

FEED_KEY = "all"


class CommunityFeed:
    name = "academy.community"
    realm = "academy"
    auto_join = False
    tracks_presence = False

    def canonical_key(self, key: str) -> str:
        if key != FEED_KEY:
            raise BadRequest(f"the community feed is {self.name}:{FEED_KEY}")
        return key

    async def authorize(self, principal: Principal, channel: str, key: str) -> Membership:
        if principal.realm != self.realm:
            raise Forbidden(f"{self.name} belongs to realm {self.realm!r}")
        return Membership(channel=channel, role="admin" if principal.is_admin else "member")

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
