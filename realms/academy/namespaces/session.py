"""`academy.session:<live_sessions.id>`: a live session's room.

Only while the session is `live`, its host (role `owner`) and its registered participants
(role `member`) may join; anyone else gets `forbidden` with the reason (not live, on the
waitlist, not registered, removed by the host). The ledger of live members decides
attendance: a participant's first join sets `joined_at` and `attended`, their last socket
leaving sets `left_at` (a return clears it); `current_participants` is the number of
participants (the host aside) in the room, pushed to the room as a `participants` event
whenever it changes. Chat is stored in academy.session_messages with a gap-free seq; the
host pins. When the host ends the session (REST), the room gets `session_ended` and every
socket is removed; the chat stays readable over REST.
"""

from __future__ import annotations

import uuid
from typing import NamedTuple

import asyncpg

from kernel.conversation import (
    ChatStore,
    Committed,
    Draft,
    Membership,
    MessageRef,
    Principal,
    Publish,
    RefusesMessageChanges,
    SequenceSource,
    parse_uuid,
)
from kernel.errors import BadRequest, Forbidden, NotFound
from kernel.groupcommit import GroupCommit
from kernel.logs import EventLog
from kernel.messages import Event, Message, json_encoder

PLAIN = "session rooms keep plain text messages"

_GATE = """
SELECT s.status, s.host_id,
       (SELECT p.attendance_status FROM academy.session_participants p
         WHERE p.session_id = s.id AND p.user_id = $2) AS attendance,
       EXISTS (SELECT 1 FROM academy.session_removals r
                WHERE r.session_id = s.id AND r.user_id = $2) AS removed
  FROM academy.live_sessions s WHERE s.id = $1
"""

_ATTENDANCE = """
WITH live AS (
    SELECT DISTINCT lm.user_id::uuid AS user_id FROM gateway.live_members lm
     WHERE lm.channel = $2
), arrived AS (
    UPDATE academy.session_participants p
       SET joined_at = coalesce(p.joined_at, now()), attendance_status = 'attended',
           left_at = NULL
     WHERE p.session_id = $1 AND p.user_id IN (SELECT user_id FROM live)
       AND p.attendance_status IN ('registered', 'attended')
       AND (p.attendance_status = 'registered' OR p.left_at IS NOT NULL OR p.joined_at IS NULL)
    RETURNING p.user_id
), departed AS (
    UPDATE academy.session_participants p SET left_at = now()
     WHERE p.session_id = $1 AND p.attendance_status = 'attended' AND p.left_at IS NULL
       AND p.user_id NOT IN (SELECT user_id FROM live)
    RETURNING p.user_id
)
UPDATE academy.live_sessions s
   SET current_participants = c.n
  FROM (SELECT count(*)::int AS n FROM live, academy.live_sessions h
         WHERE h.id = $1 AND live.user_id <> h.host_id) c
 WHERE s.id = $1 AND s.current_participants IS DISTINCT FROM c.n
RETURNING s.current_participants
"""

log = EventLog("realms.academy.session")

_APPEND = """
WITH dup AS (
    SELECT id, seq, created_at FROM academy.session_messages
     WHERE session_id = $1 AND user_id = $2 AND client_id = $4
), room AS (
    INSERT INTO academy.session_rooms AS r (session_id, last_seq)
    SELECT $1, 1 WHERE NOT EXISTS (SELECT 1 FROM dup)
    ON CONFLICT (session_id) DO UPDATE SET last_seq = r.last_seq + 1
    RETURNING last_seq
), ins AS (
    INSERT INTO academy.session_messages (session_id, seq, user_id, body, message_type, client_id)
    SELECT $1, room.last_seq, $2, $3, $5, $4 FROM room
    RETURNING id, seq, created_at
)
SELECT id, seq, created_at, false AS duplicate FROM ins
UNION ALL SELECT id, seq, created_at, true FROM dup
"""

LOCK_SESSION = "SELECT 1 FROM academy.live_sessions WHERE id = $1::uuid FOR UPDATE"


def _session(channel: str) -> uuid.UUID:
    return uuid.UUID(channel.partition(":")[2])


class _Pending(NamedTuple):
    channel: str
    user_id: str
    text: str
    client_id: str | None
    type: str


class SessionChat(RefusesMessageChanges):
    """The rooms' stored chat: append, history, pin (host); no edit, delete, flag or read."""

    refusal = PLAIN

    def __init__(self, pool: asyncpg.Pool, publish: Publish) -> None:
        self._pool = pool
        self._publish = publish
        # Group commit: the sends that arrive while a batch is in flight share the next
        # transaction. A send is queued before its first suspension, and two batches never
        # hold the same room, so a room's messages commit in the order they were sent.
        self._appends: GroupCommit[_Pending, Committed] = GroupCommit(
            self._flush, key=lambda p: p.channel
        )

    def _message(self, channel: str, row: asyncpg.Record) -> Message:
        return Message(
            channel=channel,
            seq=row["seq"],
            id=str(row["id"]),
            user_id=str(row["user_id"]),
            text=row["body"],
            type=row["message_type"],
            created_at=row["created_at"].isoformat(),
            client_id=row["client_id"],
            pinned=row["is_pinned"],
        )

    async def append(self, principal: Principal, membership: Membership, draft: Draft) -> Committed:
        if draft.attachment is not None or draft.mentions or draft.attachment_url is not None:
            raise BadRequest(PLAIN)
        if draft.reply_to is not None or draft.type not in ("text", "system"):
            raise BadRequest(PLAIN)
        return await self._appends.submit(
            _Pending(membership.channel, principal.user_id, draft.text, draft.client_id, draft.type)
        )

    async def _flush(self, batch: list[_Pending]) -> list[Committed]:
        """Commit a batch in one transaction, in order; then publish what was new."""
        rows: list[asyncpg.Record] = []
        async with self._pool.acquire() as conn, conn.transaction():
            for p in batch:
                row = await conn.fetchrow(
                    _APPEND, _session(p.channel), uuid.UUID(p.user_id), p.text, p.client_id, p.type
                )
                if row is None:
                    raise NotFound(f"{p.channel} is gone")
                rows.append(row)
        committed: list[Committed] = []
        fresh: list[tuple[str, int, bytes]] = []
        for p, row in zip(batch, rows, strict=True):
            message = Message(
                channel=p.channel,
                seq=row["seq"],
                id=str(row["id"]),
                user_id=p.user_id,
                text=p.text,
                type=p.type,
                created_at=row["created_at"].isoformat(),
                client_id=p.client_id,
            )
            payload = json_encoder.encode(message)
            if not row["duplicate"]:
                fresh.append((p.channel, message.seq, payload))
            committed.append(
                Committed(
                    id=message.id,
                    seq=message.seq,
                    created_at=message.created_at,
                    duplicate=row["duplicate"],
                    payload=payload,
                )
            )
        if fresh:
            try:
                await self._publish(fresh)
            except Exception as exc:  # committed: the batch must not be retried; gap-fill repairs
                log.error("publish_failed", messages=len(fresh), error=repr(exc))
        return committed

    async def pin(
        self, principal: Principal, membership: Membership, message_id: MessageRef, pinned: bool
    ) -> Message:
        if not membership.privileged:
            raise Forbidden("only the session's host may pin")
        row = await self._pool.fetchrow(
            "UPDATE academy.session_messages SET is_pinned = $3"
            " WHERE id = $1 AND session_id = $2 RETURNING *",
            message_id,
            _session(membership.channel),
            pinned,
        )
        if row is None:
            raise NotFound("no such message in this session")
        message = self._message(membership.channel, row)
        event = Event(
            channel=membership.channel,
            kind="pinned" if pinned else "unpinned",
            id=message.id,
            by=principal.user_id,
            seq=message.seq,
        )
        await self._publish([(membership.channel, 0, json_encoder.encode(event))])
        return message

    async def history(
        self, membership: Membership, before: int | None, after: int | None, limit: int
    ) -> list[Message]:
        if before is not None and after is not None:
            raise BadRequest("give `before` or `after`, not both")
        if after is not None:
            rows = await self._pool.fetch(
                "SELECT * FROM academy.session_messages WHERE session_id = $1 AND seq > $2"
                " ORDER BY seq LIMIT $3",
                _session(membership.channel),
                after,
                limit,
            )
        else:
            rows = await self._pool.fetch(
                "SELECT * FROM (SELECT * FROM academy.session_messages WHERE session_id = $1"
                " AND seq < $2 ORDER BY seq DESC LIMIT $3) m ORDER BY seq",
                _session(membership.channel),
                before if before is not None else 2**62,
                limit,
            )
        return [self._message(membership.channel, r) for r in rows]

    # --- SequenceSource -----------------------------------------------------------------------

    async def last_seq(self, channel: str) -> int:
        value = await self._pool.fetchval(
            "SELECT coalesce(max(last_seq), 0) FROM academy.session_rooms WHERE session_id = $1",
            _session(channel),
        )
        return int(value)

    async def after(self, channel: str, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        rows = await self._pool.fetch(
            "SELECT * FROM academy.session_messages WHERE session_id = $1 AND seq > $2"
            " ORDER BY seq LIMIT $3",
            _session(channel),
            after_seq,
            limit,
        )
        return [(r["seq"], json_encoder.encode(self._message(channel, r))) for r in rows]

    async def drain(self) -> None:
        await self._appends.drain()  # every append asked for so far has been answered

    async def close(self) -> None:
        await self._appends.close()


class SessionRooms:
    name = "academy.session"
    realm = "academy"
    auto_join = False
    tracks_presence = True

    def __init__(self, pool: asyncpg.Pool, publish: Publish, chat: SessionChat) -> None:
        self._pool = pool
        self._publish = publish
        self._chat = chat

    def canonical_key(self, key: str) -> str:
        return str(parse_uuid(key, "session id"))

    async def authorize(self, principal: Principal, channel: str, key: str) -> Membership:
        if principal.realm != self.realm:
            raise Forbidden(f"{self.name} belongs to realm {self.realm!r}")
        user_id = uuid.UUID(principal.user_id)
        row = await self._pool.fetchrow(_GATE, uuid.UUID(key), user_id)
        if row is None:
            raise NotFound(f"session {key} does not exist")
        if row["status"] != "live":
            raise Forbidden(f"the session is not live (it is {row['status']})")
        if row["host_id"] == user_id:
            return Membership(channel=channel, role="owner", owner_id=str(row["host_id"]))
        if row["removed"]:
            raise Forbidden("the host removed you from this session")
        if row["attendance"] == "waitlisted":
            raise Forbidden("you are on the waitlist of this session")
        if row["attendance"] not in ("registered", "attended"):
            raise Forbidden("only registered participants may join this session")
        return Membership(channel=channel, role="member", owner_id=str(row["host_id"]))

    def sequence_source(self) -> SequenceSource:
        return self._chat

    def chat(self) -> ChatStore:
        return self._chat

    def conversations(self) -> None:
        return None

    async def members_changed(self, conn: asyncpg.Connection, channel: str, count: int) -> None:
        """In the ledger's transaction, under the session's row lock: attendance and the live
        count; a changed count is pushed to the room (in lock order, so never out of date)."""
        current = await conn.fetchval(_ATTENDANCE, _session(channel), channel)
        if current is not None:
            event = Event(
                channel=channel,
                kind="server",
                name="participants",
                data={"current_participants": current},
            )
            await self._publish([(channel, 0, json_encoder.encode(event))])

    def lock_sql(self) -> str:
        return LOCK_SESSION

    def affected_by(self, notice: dict[str, str], membership: Membership) -> bool:
        return (
            notice.get("kind") == "academy_session"
            and notice.get("session_id") == membership.channel.partition(":")[2]
        )
