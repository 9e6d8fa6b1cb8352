"""Live delivery of what the REST side commits (a premium message sent, a purchase that
unlocks one, a tip, a read), in every gateway process: REST announces it with
`announce(conn, kind, id)` in its transaction (NOTIFY creator_live, heard at commit); each
gateway's relay hears it, and the first to claim its key in creator.live_claims publishes the
frames, so every socket gets each once (docs/realm-creator.md, "Premium messages")."""

from __future__ import annotations

import asyncio
import uuid
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


class Notice(msgspec.Struct, frozen=True):
    kind: Kind
    id: uuid.UUID
    # read: the reader
    user_id: uuid.UUID | None = None


_decode = msgspec.json.Decoder(Notice).decode


async def announce(
    conn: asyncpg.Connection, kind: Kind, id_: uuid.UUID, user_id: uuid.UUID | None = None
) -> None:
    """Have the gateways publish `kind` of `id_` once this transaction commits."""
    await conn.execute(
        "SELECT pg_notify($1, $2)",
        CHANNEL,
        msgspec.json.encode(Notice(kind, id_, user_id)).decode(),
    )


class Relay:
    """One per gateway process: hears creator_live and publishes each notice once overall."""

    def __init__(self, pool: asyncpg.Pool, publish: Publish, dsn: str) -> None:
        self._pool = pool
        self._publish = publish
        self._listener = Listener(dsn, "switchboard-creator-live")
        self._listener.on(CHANNEL, self._heard)
        self._tasks: set[asyncio.Task[None]] = set()
        self._started: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._started = asyncio.get_running_loop().create_task(self._listener.start())

    async def close(self) -> None:
        if self._started is not None:
            self._started.cancel()
        await self._listener.close()
        for task in list(self._tasks):
            task.cancel()

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            notice = _decode(payload)
        except msgspec.DecodeError:
            log.error("bad_notice", payload=payload[:200])
            return
        task = asyncio.get_running_loop().create_task(self._handle(notice))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, notice: Notice) -> None:
        try:
            frames = await self._claim_and_build(notice)
            if frames:
                await self._publish(frames)
        except Exception as exc:  # committed: readers find it in history
            log.error("relay_failed", kind=notice.kind, id=str(notice.id), error=repr(exc))

    async def _claim_and_build(self, notice: Notice) -> list[tuple[str, int, bytes]]:
        async with self._pool.acquire() as conn, conn.transaction():
            key = f"{notice.kind}:{notice.id}:{notice.user_id or ''}"
            if notice.kind == "read":  # every read is its own event: key it by version
                version = await conn.fetchval(
                    "SELECT state_version FROM creator.conversations WHERE id = $1", notice.id
                )
                key = f"{key}:{version}"
            claimed = await conn.fetchval(
                "INSERT INTO creator.live_claims (key) VALUES ($1)"
                " ON CONFLICT DO NOTHING RETURNING true",
                key,
            )
            if not claimed:
                return []
            if notice.kind == "message":
                return await _message_frames(conn, notice.id)
            if notice.kind == "unlock":
                return await _unlock_frames(conn, notice.id)
            if notice.kind == "tip":
                return await _tip_frames(conn, notice.id)
            assert notice.user_id is not None
            return await _read_frames(conn, notice.id, notice.user_id)


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
