"""`market.order:<orders.id>`: live tracking of one order. Its buyer, seller, assigned courier
and staff join; the courier `send`s `type: "location"` with `metadata: {lat, lon}` (about once
a second), every member gets a `position` event at once, and market.order_tracking keeps the
thinned track (realms/market/orders.py: RECORD_POSITION). Status changes arrive as
`order_status` server events, NOTIFYed by the database at commit."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import msgspec

from kernel.conversation import (
    Committed,
    Draft,
    Membership,
    Principal,
    Publish,
    RefusesMessageChanges,
)
from kernel.errors import BadRequest, Forbidden
from kernel.groupcommit import GroupCommit
from kernel.messages import Event, json_encoder
from realms.market import orders
from realms.market.chatmessages import location_of

MAX_ID = 2**63 - 1


class _Position(msgspec.Struct, frozen=True):
    channel: str
    order_id: int
    courier: int
    lat: float
    lon: float


def order_id_of(channel: str) -> int:
    return int(channel.partition(":")[2])


class OrderNamespace(RefusesMessageChanges):
    refusal = "an order's channel carries positions and status events only"
    name = "market.order"
    realm = "market"
    auto_join = False
    tracks_presence = False
    message_ids = "bigint"  # the realm's ids (this channel stores no messages)

    def __init__(self, pool: asyncpg.Pool, publish: Publish) -> None:
        self._pool = pool
        self._publish = publish
        # Positions of one order are stored in the order they were sent; a batch keeps only
        # each order's newest for storage (every one is still delivered live).
        self._positions: GroupCommit[_Position, str | Exception] = GroupCommit(
            self._flush, key=lambda p: p.channel
        )

    def canonical_key(self, key: str) -> str:
        if not key.isascii() or not key.isdigit() or not 0 < int(key) <= MAX_ID:
            raise BadRequest(f"order id {key!r} is not a positive integer")
        return str(int(key))

    async def authorize(self, principal: Principal, channel: str, key: str) -> Membership:
        who = await orders.party(self._pool, int(key), int(principal.user_id))
        return Membership(channel=channel, role=who.role)

    def sequence_source(self) -> None:
        return None

    def chat(self) -> OrderNamespace:
        return self

    def conversations(self) -> None:
        return None

    async def members_changed(self, conn: asyncpg.Connection, channel: str, count: int) -> None:
        return None

    def lock_sql(self) -> str | None:
        return None

    def affected_by(self, notice: dict[str, str], membership: Membership) -> bool:
        return notice.get("kind") == "market_order" and notice.get("order_id") == str(
            order_id_of(membership.channel)
        )

    async def append(self, principal: Principal, membership: Membership, draft: Draft) -> Committed:
        if membership.role != "courier":
            raise Forbidden("only the order's courier sends positions")
        if draft.type != "location":
            raise BadRequest('an order\'s channel takes `type: "location"` positions only')
        lat, lon = location_of(draft.metadata)
        position = _Position(
            membership.channel, order_id_of(membership.channel), int(principal.user_id), lat, lon
        )
        result = await self._positions.submit(position)
        assert isinstance(result, str)
        at = datetime.now(UTC).isoformat()
        event = Event(
            channel=membership.channel,
            kind="position",
            user_id=principal.user_id,
            at=at,
            data={"order_id": position.order_id, "lat": lat, "lon": lon, "tracking": result},
        )
        payload = json_encoder.encode(event)
        await self._publish([(membership.channel, 0, payload)])
        return Committed(id="", seq=0, created_at=at, duplicate=False, payload=payload)

    async def _flush(self, batch: list[_Position]) -> list[str | Exception]:
        newest: dict[int, _Position] = {}
        for position in batch:
            newest[position.order_id] = position
        # One transaction and one pipelined round trip for the batch (asyncpg's fetchmany):
        # one commit for every order in it, not one per position. An order whose statement
        # returns no row is closed or not this courier's.
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetchmany(
                orders.RECORD_POSITION,
                [
                    (
                        order_id,
                        p.courier,
                        Decimal(repr(p.lat)),
                        Decimal(repr(p.lon)),
                        orders.TRACK_WINDOW_S,
                    )
                    for order_id, p in newest.items()
                ],
            )
        stored = {row["order_id"]: str(row["status"]) for row in rows}
        refused = Forbidden("you are not this order's courier, or the order is closed")
        outcome: dict[int, str | Exception] = {
            order_id: stored.get(order_id, refused) for order_id in newest
        }
        return [outcome[p.order_id] for p in batch]

    async def drain(self) -> None:
        await self._positions.drain()

    async def close(self) -> None:
        await self._positions.close()
