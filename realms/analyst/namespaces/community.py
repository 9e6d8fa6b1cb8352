"""`community:<chat_channels.id>`: analyst chat rooms, gated by the seed's channel rules.

A user may join when the channel is active, not archived and not deleted, and either the
channel needs no subscription, or the user holds an active subscription to the channel's
analyst whose tier has chat_access and is at least `minimum_tier_required` by tier_order.
`channel_type` 'premium' always needs that subscription; 'support' channels are not rooms
(a trader talks to staff in a support conversation). The channel's analyst and admins may
always join (and are not counted against max_members). max_members limits concurrent
participants: distinct users connected to the room, on every gateway process (the ledger
in gateway.live_members, under the channel's row lock).
"""

from __future__ import annotations

import asyncpg

from kernel.conversation import ChatStore, Membership, Principal, SequenceSource, parse_uuid
from kernel.errors import Forbidden, NotFound
from realms.analyst.namespaces.community_messages import CommunityMessages

_GATE = """
SELECT c.analyst_id, c.channel_type, c.is_active, c.is_archived, c.deleted_at,
       c.require_subscription,
       c.max_members, c.is_rate_limited, c.message_rate_limit, mt.tier_name AS min_tier,
       e.entitled, e.entitled_until, mu.muted_until
  FROM analyst.chat_channels c
  LEFT JOIN analyst.subscription_tiers mt ON mt.id = c.minimum_tier_required
  -- Every entitling subscription: the entitlement lasts until the last of them expires
  -- (NULL when one of them never does).
  CROSS JOIN LATERAL (
        SELECT count(*) > 0 AS entitled,
               CASE WHEN bool_or(s.expires_at IS NULL) THEN NULL
                    ELSE extract(epoch FROM max(s.expires_at))::float8 END AS entitled_until
          FROM analyst.subscriptions s
          JOIN analyst.subscription_tiers t ON t.id = s.tier_id
         WHERE s.user_id = $2 AND s.analyst_id = c.analyst_id
           AND s.status = 'active' AND s.deleted_at IS NULL
           AND (s.expires_at IS NULL OR s.expires_at > now())
           AND t.chat_access AND t.deleted_at IS NULL
           AND (mt.id IS NULL OR t.tier_order >= mt.tier_order)
       ) e
 CROSS JOIN LATERAL (
        -- Live mutes of the user here or everywhere: until the last ends (+infinity: lifted
        -- by hand only); NULL when not muted.
        SELECT CASE WHEN count(*) = 0 THEN NULL
                    WHEN bool_or(m.until IS NULL) THEN 'infinity'::float8
                    ELSE extract(epoch FROM max(m.until))::float8 END AS muted_until
          FROM analyst.chat_mutes m
         WHERE m.user_id = $2 AND (m.channel_id IS NULL OR m.channel_id = c.id)
           AND (m.until IS NULL OR m.until > now())
       ) mu
 WHERE c.id = $1
"""

LOCK_CHANNEL = "SELECT 1 FROM analyst.chat_channels WHERE id = $1::uuid FOR UPDATE"


class ChannelGate:
    """The join rule of a community channel, on its own: the namespace uses it for joins and
    re-checks, the REST history route for reads."""

    realm = "analyst"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def authorize(self, principal: Principal, channel: str, key: str) -> Membership:
        channel_id = parse_uuid(key, "channel id")
        if principal.realm != self.realm:
            raise Forbidden(f"community channels belong to realm {self.realm!r}")
        row = await self._pool.fetchrow(_GATE, channel_id, principal.user_id)
        if row is None or row["deleted_at"] is not None:
            raise NotFound(f"channel {key} does not exist")
        if not row["is_active"]:
            raise Forbidden("channel is not active")
        if row["is_archived"]:
            raise Forbidden("channel is archived")
        owner = str(row["analyst_id"])
        # A premium channel is for subscribers whatever require_subscription says: of its
        # minimum tier or above when it names one, else of any tier with chat access.
        gated = row["require_subscription"] or row["channel_type"] == "premium"
        if owner == principal.user_id:
            role = "owner"
        elif principal.is_admin:
            role = "admin"
        elif row["channel_type"] == "support":
            raise Forbidden(
                "support channels are one to one: open a support conversation"
                " (`create` with kind `support`) instead"
            )
        elif gated and not row["entitled"]:
            tier = f" at tier {row['min_tier']!r} or above" if row["min_tier"] else ""
            raise Forbidden(f"joining needs an active subscription with chat access{tier}")
        else:
            role = "member"
        entitled = role == "member" and gated
        until = row["entitled_until"] if entitled else None
        return Membership(
            channel=channel,
            role=role,
            owner_id=owner,
            rate_limit=row["message_rate_limit"] if row["is_rate_limited"] else None,
            max_members=None if role != "member" else row["max_members"],
            entitled_until=until,
            muted_until=None if role != "member" else row["muted_until"],
        )


class CommunityNamespace:
    name = "community"
    realm = "analyst"
    tracks_presence = True
    auto_join = False

    def __init__(self, pool: asyncpg.Pool, messages: CommunityMessages) -> None:
        self._pool = pool
        self._gate = ChannelGate(pool)
        self._messages = messages

    def canonical_key(self, key: str) -> str:
        return str(parse_uuid(key, "channel id"))

    async def authorize(self, principal: Principal, channel: str, key: str) -> Membership:
        return await self._gate.authorize(principal, channel, key)

    def sequence_source(self) -> SequenceSource:
        return self._messages

    def chat(self) -> ChatStore:
        return self._messages

    def conversations(self) -> None:
        return None

    async def members_changed(self, conn: asyncpg.Connection, channel: str, count: int) -> None:
        await conn.execute(
            "UPDATE analyst.chat_channels SET active_members_count = $2"
            " WHERE id = $1::uuid AND active_members_count IS DISTINCT FROM $2",
            channel.partition(":")[2],
            count,
        )

    def lock_sql(self) -> str:
        return LOCK_CHANNEL

    def affected_by(self, notice: dict[str, str], membership: Membership) -> bool:
        if notice.get("kind") == "mute":
            return notice.get("channel_id") in ("*", membership.channel.partition(":")[2])
        if notice.get("kind") == "subscription":
            return notice.get("analyst_id") == membership.owner_id
        if notice.get("kind") == "channel":
            return membership.channel.partition(":")[2] == notice.get("channel_id")
        return False
