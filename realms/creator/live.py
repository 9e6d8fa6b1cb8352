"""`creator.live:<live_streams.id>`: a live stream's room (the `live` kind: chat is broadcast,
never stored, ADR 0004), with who may watch and the viewer counts.

Who joins: the stream's creator (role `owner`, while scheduled or live) and staff (role
`admin`), neither counted as a viewer; anyone else with an active, age-verified account while
the stream is `live`: any such account on a free stream, on a premium one only with `paid`
(a stream_access purchase) or `complimentary` stream_access. Chat (`send`, plain text) while
`chat_enabled`, under the core's rate limits. A stream that ends or is cancelled has every
socket re-authorized and so removed from its room (STREAM_NOTICE, streams.py).

Viewer counts: the core's presence ledger (gateway.live_members, across gateway processes,
rows of a dead process swept) is the live truth. A join or leave marks the stream dirty in
this process; a ticker, once a second, for each stream changed in the last SETTLE_S, re-reads
the viewers and writes, in one transaction: stream_access joins and leaves (watch time), and
`current_viewers` (`peak_viewers` follows by trigger). When that changes the row, it
publishes one `viewers` event {current, peak} to the room: at most about once a second per
process, never once per join. Re-reading for SETTLE_S after the last change makes every
process's last write a count taken after all the joins and leaves committed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

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
    parse_uuid,
)
from kernel.errors import BadRequest, Forbidden, NotFound
from kernel.logs import EventLog
from kernel.messages import Event, LiveMessage, json_encoder

log = EventLog("realms.creator.live")

LIVE_NAMESPACE = "creator.live"
NOT_STORED = "creator.live: stream chat is not stored"
TICK_S = 1.0
SETTLE_S = 3.0
NODE_TTL_S = 20.0  # the core's default: a gateway silent this long is dead
# sb_membership notice {kind, stream_id}: the stream ended or was cancelled (streams.py);
# every gateway re-authorizes the sockets in its room, which removes them.
STREAM_NOTICE = "creator_stream"
# sb_membership notice {kind, stream_id}: chat_enabled changed (trigger, sql 3013).
CHAT_NOTICE = "creator_stream_chat"

_GATE = """
SELECT s.status, s.creator_id, s.is_premium, s.chat_enabled,
       u.age_verified, u.account_type,
       (SELECT a.access_type FROM creator.stream_access a
         WHERE a.live_stream_id = s.id AND a.user_id = u.id) AS access_type
  FROM creator.live_streams s, creator.users u
 WHERE s.id = $1 AND u.id = $2
"""

# Viewers now: counted members (not the creator, not staff) on a live gateway.
_VIEWERS = """
SELECT DISTINCT lm.user_id::uuid AS user_id
  FROM gateway.live_members lm JOIN gateway.nodes n USING (node_id)
 WHERE lm.channel = $1 AND lm.counted AND n.heartbeat_at > now() - make_interval(secs => $2)
"""
_WATCHING = """
SELECT user_id FROM creator.stream_access
 WHERE live_stream_id = $1 AND last_joined_at IS NOT NULL
   AND (last_left_at IS NULL OR last_left_at < last_joined_at)
"""
_RECORD_JOINS = """
SELECT count(creator.record_stream_join($1, u)) FROM unnest($2::uuid[]) AS u
"""
_RECORD_LEAVES = """
SELECT count(creator.record_stream_leave($1, u)) FROM unnest($2::uuid[]) AS u
"""
_WRITE_COUNT = """
UPDATE creator.live_streams SET current_viewers = $2
 WHERE id = $1 AND status = 'live' AND current_viewers IS DISTINCT FROM $2
RETURNING current_viewers, peak_viewers
"""


def live_channel(stream_id: object) -> str:
    return f"{LIVE_NAMESPACE}:{stream_id}"


def _stream(channel: str) -> uuid.UUID:
    return uuid.UUID(channel.partition(":")[2])


class StreamChat(RefusesMessageChanges):
    """Stream chat: published to whoever is in the room, stored nowhere."""

    refusal = NOT_STORED

    def __init__(
        self, pool: asyncpg.Pool, publish: Publish, on_close: Callable[[], None] | None = None
    ) -> None:
        self._pool = pool
        self._publish = publish
        self._on_close = on_close
        # Whether each stream's chat is open, read once and kept until the stream's chat
        # or status changes (CHAT_NOTICE, STREAM_NOTICE): a send then costs no database
        # round trip, so the sends of one loop iteration reach the room together.
        self._open: dict[uuid.UUID, bool] = {}

    def forget(self, stream: uuid.UUID) -> None:
        self._open.pop(stream, None)

    def remember(self, stream: uuid.UUID, is_open: bool) -> None:
        """What a join just read (every join and every re-authorization refreshes it)."""
        self._open[stream] = is_open

    async def _chat_open(self, stream: uuid.UUID) -> bool:
        known = self._open.get(stream)
        if known is None:
            known = bool(
                await self._pool.fetchval(
                    "SELECT chat_enabled AND status = 'live' FROM creator.live_streams"
                    " WHERE id = $1",
                    stream,
                )
            )
            self._open[stream] = known
        return known

    async def append(self, principal: Principal, membership: Membership, draft: Draft) -> Committed:
        if draft.attachment is not None or draft.attachment_url is not None or draft.mentions:
            raise BadRequest("stream chat is plain text")
        if draft.reply_to is not None or draft.type != "text":
            raise BadRequest("stream chat is plain text")
        if not await self._chat_open(_stream(membership.channel)):
            raise Forbidden("chat is off in this stream")
        message = LiveMessage(
            channel=membership.channel,
            id=str(uuid.uuid4()),
            user_id=principal.user_id,
            text=draft.text,
            type=draft.type,
            created_at=datetime.now(UTC).isoformat(),
            client_id=draft.client_id,
        )
        payload = json_encoder.encode(message)
        await self._publish([(membership.channel, 0, payload)])
        return Committed(
            id=message.id, seq=0, created_at=message.created_at, duplicate=False, payload=payload
        )

    async def drain(self) -> None:
        return None

    async def close(self) -> None:
        if self._on_close is not None:
            self._on_close()


class LiveStreams:
    """Namespace `creator.live` and its viewer-count ticker (one per gateway process)."""

    name = LIVE_NAMESPACE
    realm = "creator"
    auto_join = False
    tracks_presence = True

    def __init__(self, pool: asyncpg.Pool, publish: Publish, *, node_ttl_s: float) -> None:
        self._pool = pool
        self._publish = publish
        self._node_ttl_s = node_ttl_s
        self._chat = StreamChat(pool, publish, on_close=self.stop)
        self._dirty: dict[str, float] = {}  # channel -> re-read until (monotonic)
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()

    # --- Namespace ----------------------------------------------------------------------------

    def canonical_key(self, key: str) -> str:
        return str(parse_uuid(key, "stream id"))

    async def authorize(self, principal: Principal, channel: str, key: str) -> Membership:
        me = uuid.UUID(principal.user_id)
        row = await self._pool.fetchrow(_GATE, uuid.UUID(key), me)
        if row is None:
            raise NotFound(f"stream {key} does not exist")
        self._chat.remember(uuid.UUID(key), row["chat_enabled"] and row["status"] == "live")
        owner = str(row["creator_id"])
        if row["creator_id"] == me:
            if row["status"] not in ("scheduled", "live"):
                raise Forbidden(f"the stream is {row['status']}")
            return Membership(channel=channel, role="owner", owner_id=owner)
        if row["status"] != "live":
            raise Forbidden(f"the stream is not live (it is {row['status']})")
        if row["account_type"] in ("admin", "moderator"):
            return Membership(channel=channel, role="admin", owner_id=owner)
        if not row["age_verified"]:
            raise Forbidden("watching needs a verified age")
        if row["is_premium"] and row["access_type"] not in ("paid", "complimentary"):
            raise Forbidden("this stream is premium: buy access first")
        return Membership(channel=channel, role="member", owner_id=owner)

    def sequence_source(self) -> SequenceSource | None:
        return None

    def chat(self) -> ChatStore:
        return self._chat

    def conversations(self) -> None:
        return None

    async def members_changed(self, conn: asyncpg.Connection, channel: str, count: int) -> None:
        """In the ledger's transaction: only mark the stream; the ticker writes the count."""
        self._dirty[channel] = time.monotonic() + SETTLE_S

    def lock_sql(self) -> str | None:
        return None  # joins of thousands of viewers do not queue on the stream's row

    def affected_by(self, notice: dict[str, str], membership: Membership) -> bool:
        stream = _stream(membership.channel)
        kind = notice.get("kind")
        if kind not in (STREAM_NOTICE, CHAT_NOTICE) or notice.get("stream_id") != str(stream):
            return False
        self._chat.forget(stream)
        return kind == STREAM_NOTICE  # an ended stream's viewers are re-authorized (removed)

    # --- viewer counts ------------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            for channel, until in list(self._dirty.items()):
                if until < now:
                    del self._dirty[channel]
                try:
                    await self.sync(channel)
                except Exception as exc:  # the next tick tries again
                    log.error("viewer_sync_failed", channel=channel, error=repr(exc))

    async def sync(self, channel: str) -> tuple[int, int] | None:
        """Write the stream's viewers (stream_access sessions, current_viewers); returns
        (current, peak) when the count changed, after publishing it to the room."""
        stream_id = _stream(channel)
        async with self._pool.acquire() as conn, conn.transaction():
            viewers = {r["user_id"] for r in await conn.fetch(_VIEWERS, channel, self._node_ttl_s)}
            watching = {r["user_id"] for r in await conn.fetch(_WATCHING, stream_id)}
            status = await conn.fetchval(
                "SELECT status FROM creator.live_streams WHERE id = $1", stream_id
            )
            # One round trip per direction however many came or went (a wave of 500 closes
            # was 500 statements).
            joined = sorted(viewers - watching) if status == "live" else []
            if joined:
                await conn.execute(_RECORD_JOINS, stream_id, joined)
            left = sorted(watching - viewers)
            if left:
                await conn.execute(_RECORD_LEAVES, stream_id, left)
            row = await conn.fetchrow(_WRITE_COUNT, stream_id, len(viewers))
        if row is None:
            return None
        current, peak = int(row["current_viewers"]), int(row["peak_viewers"])
        event = Event(channel=channel, kind="viewers", data={"current": current, "peak": peak})
        await self._publish([(channel, 0, json_encoder.encode(event))])
        return current, peak
