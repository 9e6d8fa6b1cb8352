"""`echo.room:<rooms.id>`: members of a room may join; messages live in echo.messages, named
by BIGINT ids (a reply names a message of the same room)."""

from __future__ import annotations

import asyncio

import asyncpg

from kernel.conversation import (
    ChatStore,
    Committed,
    Draft,
    Membership,
    Principal,
    Publish,
    RefusesMessageChanges,
    SequenceSource,
)
from kernel.errors import BadRequest, Forbidden, NotFound
from kernel.messages import Message, json_encoder

UNSUPPORTED = "echo rooms keep plain messages only"

_APPEND = """
WITH room AS (SELECT id FROM echo.rooms WHERE id = $1 FOR UPDATE),
     dup AS (SELECT id, seq, created_at FROM echo.messages
              WHERE room_id = $1 AND user_id = $2 AND client_id = $4),
     ins AS (INSERT INTO echo.messages (room_id, seq, user_id, body, client_id, reply_to)
             SELECT $1, coalesce((SELECT max(seq) FROM echo.messages WHERE room_id = $1), 0) + 1,
                    $2, $3, $4, $5
              FROM room WHERE NOT EXISTS (SELECT 1 FROM dup)
             RETURNING id, seq, created_at)
SELECT id, seq, created_at, false AS duplicate FROM ins
UNION ALL SELECT id, seq, created_at, true FROM dup
"""


def _room(channel: str) -> int:
    return int(channel.partition(":")[2])


class EchoRooms(RefusesMessageChanges):
    refusal = UNSUPPORTED
    name = "echo.room"
    realm = "echo"
    auto_join = False
    tracks_presence = True
    message_ids = "bigint"  # echo.messages.id (9003)

    def __init__(self, pool: asyncpg.Pool, publish: Publish) -> None:
        self._pool = pool
        self._publish = publish
        # Appends run one at a time, in the order they were asked for: a waiter queues on
        # the lock before its first suspension, as the ChatStore contract asks.
        self._order = asyncio.Lock()

    def canonical_key(self, key: str) -> str:
        if not key.isdigit() or not 0 < int(key) < 2**63:
            raise BadRequest(f"room id {key!r} is not a positive integer")
        return str(int(key))

    async def authorize(self, principal: Principal, channel: str, key: str) -> Membership:
        row = await self._pool.fetchrow(
            "SELECT r.id, m.user_id IS NOT NULL AS member FROM echo.rooms r"
            " LEFT JOIN echo.room_members m ON m.room_id = r.id AND m.user_id = $2"
            " WHERE r.id = $1",
            int(key),
            int(principal.user_id),
        )
        if row is None:
            raise NotFound(f"room {key} does not exist")
        if not row["member"]:
            raise Forbidden("only the room's members may join")
        return Membership(channel=channel, role="member")

    def sequence_source(self) -> SequenceSource:
        return self

    def chat(self) -> ChatStore:
        return self

    def conversations(self) -> None:
        return None

    async def members_changed(self, conn: asyncpg.Connection, channel: str, count: int) -> None:
        return None

    def lock_sql(self) -> str | None:
        return None

    def affected_by(self, notice: dict[str, str], membership: Membership) -> bool:
        return False

    # --- ChatStore and SequenceSource ------------------------------------------------------

    def _message(self, channel: str, row: asyncpg.Record) -> Message:
        return Message(
            channel=channel,
            seq=row["seq"],
            id=str(row["id"]),
            user_id=str(row["user_id"]),
            text=row["body"],
            type="text",
            created_at=row["created_at"].isoformat(),
            reply_to=str(row["reply_to"]) if row["reply_to"] is not None else None,
            client_id=row["client_id"],
        )

    async def append(self, principal: Principal, membership: Membership, draft: Draft) -> Committed:
        text, type_, reply_to = draft.text, draft.type, draft.reply_to
        client_id, attachment_url = draft.client_id, draft.attachment_url
        if draft.attachment is not None or draft.mentions:
            raise BadRequest("this channel takes `attachment_url`, not attachments or mentions")
        if type_ != "text" or attachment_url is not None:
            raise BadRequest(UNSUPPORTED)
        channel = membership.channel
        async with self._order:
            try:
                row = await self._pool.fetchrow(
                    _APPEND, _room(channel), int(principal.user_id), text, client_id, reply_to
                )
            except asyncpg.ForeignKeyViolationError:
                raise BadRequest("reply_to is not a message of this room") from None
        if row is None:
            raise NotFound(f"room {_room(channel)} is gone")
        message = Message(
            channel=channel,
            seq=row["seq"],
            id=str(row["id"]),
            user_id=principal.user_id,
            text=text,
            type="text",
            created_at=row["created_at"].isoformat(),
            reply_to=str(reply_to) if reply_to is not None else None,
            client_id=client_id,
        )
        payload = json_encoder.encode(message)
        if not row["duplicate"]:
            await self._publish([(channel, message.seq, payload)])
        return Committed(
            id=message.id,
            seq=message.seq,
            created_at=message.created_at,
            duplicate=row["duplicate"],
            payload=payload,
        )

    async def last_seq(self, channel: str) -> int:
        value = await self._pool.fetchval(
            "SELECT coalesce(max(seq), 0) FROM echo.messages WHERE room_id = $1", _room(channel)
        )
        return int(value)

    async def after(self, channel: str, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        rows = await self._pool.fetch(
            "SELECT * FROM echo.messages WHERE room_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            _room(channel),
            after_seq,
            limit,
        )
        return [(r["seq"], json_encoder.encode(self._message(channel, r))) for r in rows]

    async def history(
        self, membership: Membership, before: int | None, after: int | None, limit: int
    ) -> list[Message]:
        rows = await self._pool.fetch(
            "SELECT * FROM (SELECT * FROM echo.messages WHERE room_id = $1 AND seq < $2"
            " ORDER BY seq DESC LIMIT $3) m ORDER BY seq",
            _room(membership.channel),
            before or 2**62,
            limit,
        )
        return [self._message(membership.channel, r) for r in rows]

    async def drain(self) -> None:
        return None

    async def close(self) -> None:
        return None
