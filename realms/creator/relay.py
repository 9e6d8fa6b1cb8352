"""Live delivery of what the REST side commits (a premium message sent, a purchase that
unlocks one, a tip, a read), in every gateway process, once per socket and never lost to a
deaf or dead gateway: REST calls `announce(conn, kind, id)` in its transaction, which writes
the event to the outbox creator.live_claims and NOTIFYs its key (heard at commit). Each
gateway's relay hears it; the first to claim the row publishes the frames and stamps it
published. After a LISTEN reconnect the relay claims every event nobody claimed (announced
while it was deaf); a periodic sweep also claims events unclaimed for UNCLAIMED_GRACE (no
gateway heard them) and events claimed but unpublished for LEASE (the claimer died between
claim and publish). docs/realm-creator.md, "Live events"."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Literal

import asyncpg
import msgspec

from kernel.conversation import Publish
from kernel.listen import Listener
from kernel.logs import EventLog
from kernel.messages import Event
from kernel.messages import json_encoder as encoder
from realms.creator.dm import unread_event, user_stream
from realms.creator.wire import COLUMNS, FROM, dm_channel, render

log = EventLog("realms.creator.relay")

CHANNEL = "creator_live"
Kind = Literal["message", "unlock", "tip", "read"]

SWEEP_EVERY_S = 5.0
# Claimed but not published after this: the claimer is taken for dead; another publishes.
LEASE = timedelta(seconds=10)
# Unclaimed after this: no gateway heard the NOTIFY (or none was running).
UNCLAIMED_GRACE = timedelta(seconds=30)
# Older events are not replayed live (they are in history and lists by then).
REPLAY_WINDOW = timedelta(minutes=10)
SWEEP_BATCH = 200

_CLAIM_ONE = (
    "UPDATE creator.live_claims SET claimed_at = now()"
    " WHERE key = $1 AND claimed_at IS NULL RETURNING key, kind, ref_id, user_id"
)
# Claim what was missed: unclaimed for `grace`, or claimed and unpublished past the lease.
_CLAIM_MISSED = """
UPDATE creator.live_claims SET claimed_at = now()
 WHERE key IN (SELECT key FROM creator.live_claims
                WHERE published_at IS NULL AND created_at > now() - $1::interval
                  AND ((claimed_at IS NULL AND created_at <= now() - $2::interval)
                       OR claimed_at < now() - $3::interval)
                ORDER BY created_at LIMIT $4 FOR UPDATE SKIP LOCKED)
RETURNING key, kind, ref_id, user_id, created_at
"""
_PUBLISHED = "UPDATE creator.live_claims SET published_at = now() WHERE key = ANY ($1::text[])"


async def announce(
    conn: asyncpg.Connection, kind: Kind, id_: uuid.UUID, user_id: uuid.UUID | None = None
) -> None:
    """Have the gateways publish `kind` of `id_` once this transaction commits."""
    key = await conn.fetchval(
        "INSERT INTO creator.live_claims (key, kind, ref_id, user_id)"
        " VALUES (gen_random_uuid()::text, $1, $2, $3) RETURNING key",
        kind,
        id_,
        user_id,
    )
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, key)


class Relay:
    """One per gateway process: hears creator_live and publishes each event once overall."""

    def __init__(self, pool: asyncpg.Pool, publish: Publish, dsn: str) -> None:
        self._pool = pool
        self._publish = publish
        self._listener = Listener(dsn, "switchboard-creator-live")
        self._listener.on(CHANNEL, self._heard)
        self._listener.on_resync(self._resync)
        self._tasks: set[asyncio.Task[None]] = set()
        self._started: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._started = loop.create_task(self._listener.start())
        self._sweeper = loop.create_task(self._sweep_forever())

    async def close(self) -> None:
        for task in (self._started, self._sweeper):
            if task is not None:
                task.cancel()
        await self._listener.close()
        for task in list(self._tasks):
            task.cancel()

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, key: str) -> None:
        try:
            async with self._pool.acquire() as conn:
                row = await conn.fetchrow(_CLAIM_ONE, key)
                if row is not None:
                    await self._deliver(conn, [row])
        except Exception as exc:  # committed: the sweep publishes it after the lease
            log.error("relay_failed", key=key[:100], error=repr(exc))

    async def _deliver(self, conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> None:
        """Publish claimed events in order, then mark them published."""
        frames: list[tuple[str, int, bytes]] = []
        for row in rows:
            frames.extend(await _frames(conn, row["kind"], row["ref_id"], row["user_id"]))
        if frames:
            await self._publish(frames)
        await conn.execute(_PUBLISHED, [r["key"] for r in rows])

    async def sweep(self, *, grace: timedelta = UNCLAIMED_GRACE) -> int:
        """Claim and publish missed events (see the module doc); returns how many."""
        done = 0
        async with self._pool.acquire() as conn:
            while True:
                rows = await conn.fetch(_CLAIM_MISSED, REPLAY_WINDOW, grace, LEASE, SWEEP_BATCH)
                if not rows:
                    return done
                await self._deliver(conn, sorted(rows, key=lambda r: r["created_at"]))
                done += len(rows)
                log.warning("relay_replayed", events=len(rows))

    async def _resync(self) -> None:
        """After a LISTEN reconnect: everything nobody claimed may have been announced while
        this process was deaf."""
        await self.sweep(grace=timedelta(0))

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            try:
                await self.sweep()
            except Exception as exc:  # the next sweep tries again
                log.error("relay_sweep_failed", error=repr(exc))


async def _frames(
    conn: asyncpg.Connection, kind: str, ref_id: uuid.UUID, user_id: uuid.UUID | None
) -> list[tuple[str, int, bytes]]:
    if kind == "message":
        return await _message_frames(conn, ref_id)
    if kind == "unlock":
        return await _unlock_frames(conn, ref_id)
    if kind == "tip":
        return await _tip_frames(conn, ref_id)
    assert user_id is not None
    return await _read_frames(conn, ref_id, user_id)


async def _message_frames(
    conn: asyncpg.Connection, message_id: uuid.UUID
) -> list[tuple[str, int, bytes]]:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS}, c.fan_unread_count, c.creator_unread_count, c.state_version"
        f" FROM {FROM} WHERE m.id = $1",
        message_id,
    )
    if row is None:
        return []
    channel = dm_channel(row["conversation_id"])
    to_fan = row["sender_id"] == row["creator_id"]
    peer = row["fan_id"] if to_fan else row["creator_id"]
    count = row["fan_unread_count"] if to_fan else row["creator_unread_count"]
    unread = unread_event(channel, peer, count, row["seq"], row["state_version"])
    return [
        (channel, row["seq"], encoder.encode(render(row, unlocked=False))),
        (unread.channel, 0, encoder.encode(unread)),
    ]


async def _unlock_frames(
    conn: asyncpg.Connection, transaction_id: uuid.UUID
) -> list[tuple[str, int, bytes]]:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS}, t.user_id AS buyer FROM creator.transactions t"
        f" JOIN {FROM} ON m.id = t.message_id"
        " WHERE t.id = $1 AND t.transaction_type = 'message_purchase' AND t.status = 'completed'",
        transaction_id,
    )
    if row is None:
        return []
    message = render(row, unlocked=True)
    event = Event(
        channel=user_stream(row["buyer"]),
        kind="message_unlocked",
        conversation=message.channel,
        id=message.id,
        seq=message.seq,
        data={"message": msgspec.to_builtins(message), "transaction_id": str(transaction_id)},
    )
    return [(event.channel, 0, encoder.encode(event))]


async def _tip_frames(conn: asyncpg.Connection, tip_id: uuid.UUID) -> list[tuple[str, int, bytes]]:
    # From the view creators are served from: an anonymous tipper is NULL there.
    row = await conn.fetchrow("SELECT * FROM creator.tips_received WHERE id = $1", tip_id)
    if row is None:
        return []
    data = {
        "tip_id": str(row["id"]),
        "amount": row["amount"],
        "currency": row["currency"],
        "is_anonymous": row["is_anonymous"],
        "message": row["message"],
        "content_id": str(row["content_id"]) if row["content_id"] else None,
        "message_id": str(row["message_id"]) if row["message_id"] else None,
        "live_stream_id": str(row["live_stream_id"]) if row["live_stream_id"] else None,
    }
    tipper = str(row["tipper_id"]) if row["tipper_id"] is not None else None
    frames = [
        Event(
            channel=user_stream(row["creator_id"]),
            kind="tip",
            id=str(row["id"]),
            by=tipper,
            data=data,
        )
    ]
    if row["live_stream_id"] is not None:
        frames.append(
            Event(
                channel=f"creator.live:{row['live_stream_id']}",
                kind="tip",
                id=str(row["id"]),
                by=tipper,
                data=data,
            )
        )
    return [(e.channel, 0, encoder.encode(e)) for e in frames]


async def _read_frames(
    conn: asyncpg.Connection, conversation_id: uuid.UUID, reader: uuid.UUID
) -> list[tuple[str, int, bytes]]:
    row = await conn.fetchrow(
        "SELECT fan_id, last_seq, state_version,"
        " CASE WHEN fan_id = $2 THEN fan_last_read_seq ELSE creator_last_read_seq END AS stored,"
        " CASE WHEN fan_id = $2 THEN fan_unread_count ELSE creator_unread_count END AS unread"
        " FROM creator.conversations WHERE id = $1",
        conversation_id,
        reader,
    )
    if row is None:
        return []
    channel = dm_channel(conversation_id)
    events = [
        Event(channel=channel, kind="read", user_id=str(reader), seq=row["stored"]),
        unread_event(channel, reader, row["unread"], row["last_seq"], row["state_version"]),
    ]
    return [(e.channel, 0, encoder.encode(e)) for e in events]
