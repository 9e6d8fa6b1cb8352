"""Live streams as their creator runs them (issue 16, item 4): create and schedule, edit, the
stream key (creator.issue_stream_key: stored hashed, shown once), and the lifecycle
scheduled -> live -> ended (or scheduled -> cancelled), each step with what it tells others in
its own transaction. Going live notifies the creator's followers and subscribers
(stream_starting) and tells the room; ending or cancelling tells the room, then has every
gateway re-authorize the sockets joined to it (NOTIFY sb_membership, the core's membership
recheck), which removes them. Also the job that reminds that audience shortly before a
scheduled start. docs/realm-creator.md, "Live streams: REST"."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.jobs import Clock, Hourly, Job
from realms.creator import notices
from realms.creator.accounts import Account
from realms.creator.live import STREAM_NOTICE, live_channel

# How far ahead a stream may be scheduled.
SCHEDULE_HORIZON = timedelta(days=366)
# The audience hears of a scheduled stream REMINDER_LEAD before it (give or take
# REMINDER_EVERY: the scheduler's finest schedule is hourly, so one job per slot of the hour).
REMINDER_LEAD = timedelta(minutes=15)
REMINDER_EVERY = timedelta(minutes=5)

OPEN = ("scheduled", "live")


class Stream(msgspec.Struct, kw_only=True):
    """A live stream as the API shows it. Never its key or the key's hash: the key is shown
    once, when issued. `access_type` is the caller's stream_access (free, paid, complimentary)
    if any; `stream_key_issued_at` is shown to the stream's creator only."""

    id: uuid.UUID
    channel: str
    creator_id: uuid.UUID
    creator_username: str
    title: str
    description: str | None
    status: str
    is_premium: bool
    price: int | None
    currency: str
    chat_enabled: bool
    scheduled_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    current_viewers: int
    peak_viewers: int
    created_at: datetime
    access_type: str | None = None
    stream_key_issued_at: datetime | None = None


class StreamKey(msgspec.Struct, kw_only=True):
    """A new stream key: the only time it is ever shown. Issuing another replaces it."""

    stream_id: uuid.UUID
    stream_key: str
    issued_at: datetime


# $1: the viewer (their access row).
_SELECT = """
SELECT s.id, s.creator_id, u.username AS creator_username, s.title, s.description, s.status,
       s.is_premium, s.price, u.currency, s.chat_enabled, s.scheduled_at, s.started_at,
       s.ended_at, s.current_viewers, s.peak_viewers, s.created_at, s.stream_key_created_at,
       (SELECT a.access_type FROM creator.stream_access a
         WHERE a.live_stream_id = s.id AND a.user_id = $1) AS access_type,
       u.account_status = 'active' AND u.deleted_at IS NULL AS creator_active
  FROM creator.live_streams s JOIN creator.users u ON u.id = s.creator_id
"""
_LIVE_PAGE = (
    _SELECT
    + """
 WHERE s.status = 'live' AND u.account_status = 'active' AND u.deleted_at IS NULL
   AND ($2::uuid IS NULL OR s.creator_id = $2)
   AND ($3::timestamptz IS NULL OR (s.started_at, s.id) < ($3, $4))
 ORDER BY s.started_at DESC, s.id DESC LIMIT $5
"""
)
# Announced streams only (with a start time), soonest first.
_SCHEDULED_PAGE = (
    _SELECT
    + """
 WHERE s.status = 'scheduled' AND s.scheduled_at IS NOT NULL
   AND u.account_status = 'active' AND u.deleted_at IS NULL
   AND ($2::uuid IS NULL OR s.creator_id = $2)
   AND ($3::timestamptz IS NULL OR (s.scheduled_at, s.id) > ($3, $4))
 ORDER BY s.scheduled_at, s.id LIMIT $5
"""
)
_OWN_PAGE = (
    _SELECT
    + """
 WHERE s.creator_id = $1 AND ($2::text IS NULL OR s.status = $2)
   AND ($3::timestamptz IS NULL OR (s.created_at, s.id) < ($3, $4))
 ORDER BY s.created_at DESC, s.id DESC LIMIT $5
"""
)
_SOLD = (
    "SELECT EXISTS (SELECT 1 FROM creator.transactions WHERE live_stream_id = $1"
    " AND transaction_type = 'stream_access' AND status IN ('pending', 'processing', 'completed'))"
)


def stream_of(row: asyncpg.Record, viewer: uuid.UUID) -> Stream:
    mine = row["creator_id"] == viewer
    return Stream(
        id=row["id"],
        channel=live_channel(row["id"]),
        creator_id=row["creator_id"],
        creator_username=row["creator_username"],
        title=row["title"],
        description=row["description"],
        status=row["status"],
        is_premium=row["is_premium"],
        price=row["price"],
        currency=row["currency"],
        chat_enabled=row["chat_enabled"],
        scheduled_at=row["scheduled_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        current_viewers=row["current_viewers"],
        peak_viewers=row["peak_viewers"],
        created_at=row["created_at"],
        access_type=row["access_type"],
        stream_key_issued_at=row["stream_key_created_at"] if mine else None,
    )


def check_schedule(when: datetime | None) -> None:
    """A start time is in the future, within SCHEDULE_HORIZON (BadRequest otherwise)."""
    if when is None:
        return
    ahead = when - datetime.now(UTC)
    if ahead <= timedelta(0):
        raise BadRequest("scheduled_at is in the past")
    if ahead > SCHEDULE_HORIZON:
        raise BadRequest(f"scheduled_at is more than {SCHEDULE_HORIZON.days} days ahead")


async def _acting(conn: asyncpg.Connection, user: uuid.UUID) -> None:
    """Name the acting user for the audit trail (3008) in this transaction."""
    await conn.execute("SELECT set_config('creator.user_id', $1, true)", str(user))


async def _stream(conn: asyncpg.Connection, stream_id: uuid.UUID, viewer: uuid.UUID) -> Stream:
    row = await conn.fetchrow(_SELECT + " WHERE s.id = $2", viewer, stream_id)
    assert row is not None
    return stream_of(row, viewer)


async def _owned(
    conn: asyncpg.Connection, stream_id: uuid.UUID, me: Account, doing: str, *, staff: bool = False
) -> asyncpg.Record:
    """The stream's row, locked, when `me` is its creator (or, with `staff`, a moderator or
    an admin): else NotFound or Forbidden."""
    row = await conn.fetchrow(_SELECT + " WHERE s.id = $2 FOR UPDATE OF s", me.id, stream_id)
    if row is None:
        raise NotFound(f"no stream {stream_id}")
    if row["creator_id"] != me.id and not (staff and me.is_staff):
        raise Forbidden(f"only the stream's creator may {doing} it")
    return row


async def _tell_room(
    conn: asyncpg.Connection, stream_id: uuid.UUID, name: str, data: dict[str, Any]
) -> None:
    """At commit, every gateway delivers `event {kind: server, name, data}` to the room."""
    payload = {"op": "publish", "channel": live_channel(stream_id), "name": name, "data": data}
    await conn.execute("SELECT pg_notify('sb_server', $1)", msgspec.json.encode(payload).decode())


async def _close_room(conn: asyncpg.Connection, stream_id: uuid.UUID) -> None:
    """At commit, every gateway re-authorizes the sockets joined to the room (LiveStreams.
    affected_by): a stream no longer open removes them all, each told why (`removed`)."""
    notice = {"kind": STREAM_NOTICE, "stream_id": str(stream_id)}
    await conn.execute(
        "SELECT pg_notify('sb_membership', $1)", msgspec.json.encode(notice).decode()
    )


# --- the creator's writes -----------------------------------------------------------------------


async def create(
    pool: asyncpg.Pool,
    me: Account,
    *,
    title: str,
    description: str | None,
    scheduled_at: datetime | None,
    price: int | None,
    chat_enabled: bool,
) -> Stream:
    """A new stream, `scheduled` (a start time is optional); premium when it has a price."""
    if not me.is_creator:
        raise Forbidden("only creators stream")
    if not me.age_verified:
        raise Forbidden("streaming needs a verified age (account age verification)")
    if not title.strip():
        raise BadRequest("title is blank")
    check_schedule(scheduled_at)
    async with pool.acquire() as conn, conn.transaction():
        await _acting(conn, me.id)
        if await conn.fetchval(
            "SELECT creator.has_feature_restriction($1, 'live_streaming')", me.id
        ):
            raise Forbidden("live streaming is restricted on your account")
        stream_id = await conn.fetchval(
            "INSERT INTO creator.live_streams (creator_id, title, description, scheduled_at,"
            " is_premium, price, chat_enabled) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            me.id,
            title,
            description,
            scheduled_at,
            price is not None,
            price,
            chat_enabled,
        )
        return await _stream(conn, stream_id, me.id)


# Fields a live stream still takes; the others change only while it is scheduled.
LIVE_EDITABLE = frozenset({"title", "description", "chat_enabled"})


async def update(
    pool: asyncpg.Pool, me: Account, stream_id: uuid.UUID, changes: dict[str, Any]
) -> Stream:
    """Apply `changes` (title, description, chat_enabled; while scheduled also scheduled_at
    and price, None meaning free). A price is not changed once access was sold (Conflict)."""
    if "title" in changes and not str(changes["title"]).strip():
        raise BadRequest("title is blank")
    check_schedule(changes.get("scheduled_at"))
    async with pool.acquire() as conn, conn.transaction():
        await _acting(conn, me.id)
        row = await _owned(conn, stream_id, me, "edit")
        if not changes:
            return stream_of(row, me.id)
        if row["status"] == "scheduled":
            refused: list[str] = []
        else:
            allowed = LIVE_EDITABLE if row["status"] == "live" else frozenset()
            refused = sorted(set(changes) - allowed)
        if refused:
            raise BadRequest(f"{', '.join(refused)} cannot change: the stream is {row['status']}")
        columns = {k: v for k, v in changes.items() if k != "price"}
        if "price" in changes:
            price = changes["price"]
            if (price, price is not None) != (row["price"], row["is_premium"]):
                if await conn.fetchval(_SOLD, stream_id):
                    raise Conflict("access to this stream was sold: its price no longer changes")
            columns["is_premium"] = price is not None
            columns["price"] = price
        # Column names are the fixed keys above (never the caller's); values are parameters.
        assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=2))
        await conn.execute(
            f"UPDATE creator.live_streams SET {assignments} WHERE id = $1",
            stream_id,
            *columns.values(),
        )
        return await _stream(conn, stream_id, me.id)


async def issue_key(pool: asyncpg.Pool, me: Account, stream_id: uuid.UUID) -> StreamKey:
    """A new stream key for broadcasting; the previous one stops working."""
    async with pool.acquire() as conn, conn.transaction():
        await _acting(conn, me.id)
        row = await _owned(conn, stream_id, me, "key")
        if row["status"] not in OPEN:
            raise BadRequest(f"the stream is {row['status']}: it takes no key")
        key = await conn.fetchval("SELECT creator.issue_stream_key($1)", stream_id)
        issued = await conn.fetchval(
            "SELECT stream_key_created_at FROM creator.live_streams WHERE id = $1", stream_id
        )
    return StreamKey(stream_id=stream_id, stream_key=key, issued_at=issued)


async def start(pool: asyncpg.Pool, me: Account, stream_id: uuid.UUID) -> Stream:
    """scheduled -> live: viewers may join; the creator's followers and subscribers are told
    (stream_starting, once per stream). One live stream per creator at a time (Conflict)."""
    async with pool.acquire() as conn, conn.transaction():
        await _acting(conn, me.id)
        row = await _owned(conn, stream_id, me, "start")
        if row["status"] != "scheduled":
            raise BadRequest(f"only a scheduled stream starts; this one is {row['status']}")
        # Two of the creator's streams starting at once: one after the other.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('creator.live:' || $1::text, 0))",
            str(me.id),
        )
        if await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM creator.live_streams"
            " WHERE creator_id = $1 AND status = 'live' AND id <> $2)",
            me.id,
            stream_id,
        ):
            raise Conflict("you are live in another stream: end it first")
        await conn.execute(
            "UPDATE creator.live_streams SET status = 'live' WHERE id = $1", stream_id
        )
        stream = await _stream(conn, stream_id, me.id)
        audience = await notices.live_audience(conn, me.id)
        # The seed's own notification rows (kept for its schema and reporting; not served).
        await conn.execute(
            "INSERT INTO creator.notifications (user_id, notification_type, title, actor_id,"
            " related_entity_type, related_entity_id)"
            " SELECT r, 'stream_starting', $2, $3, 'live_stream', $4 FROM unnest($1::uuid[]) r",
            audience,
            f"@{me.username} is live: {stream.title}"[:255],
            me.id,
            stream_id,
        )
        await notices.stream_starting(
            conn,
            stream_id=stream_id,
            creator_name=me.username,
            title=stream.title,
            recipients=audience,
        )
        await _tell_room(conn, stream_id, "stream_started", {"stream_id": str(stream_id)})
        return stream


async def end(pool: asyncpg.Pool, me: Account, stream_id: uuid.UUID) -> Stream:
    """live -> ended (by its creator or staff): the seed's trigger closes every viewing
    session; every socket in the room is told and removed, on every gateway."""
    async with pool.acquire() as conn, conn.transaction():
        await _acting(conn, me.id)
        row = await _owned(conn, stream_id, me, "end", staff=True)
        if row["status"] != "live":
            raise BadRequest(f"only a live stream ends; this one is {row['status']}")
        await conn.execute(
            "UPDATE creator.live_streams SET status = 'ended' WHERE id = $1", stream_id
        )
        stream = await _stream(conn, stream_id, me.id)
        await _tell_room(
            conn,
            stream_id,
            "stream_ended",
            {"stream_id": str(stream_id), "peak_viewers": stream.peak_viewers},
        )
        await _close_room(conn, stream_id)
        return stream


async def cancel(pool: asyncpg.Pool, me: Account, stream_id: uuid.UUID) -> Stream:
    """scheduled -> cancelled, unless access was sold (refunds are not built: Conflict)."""
    async with pool.acquire() as conn, conn.transaction():
        await _acting(conn, me.id)
        row = await _owned(conn, stream_id, me, "cancel")
        if row["status"] != "scheduled":
            raise BadRequest(f"only a scheduled stream is cancelled; this one is {row['status']}")
        if await conn.fetchval(_SOLD, stream_id):
            raise Conflict("access to this stream was sold, and refunds are not built: end it")
        await conn.execute(
            "UPDATE creator.live_streams SET status = 'cancelled' WHERE id = $1", stream_id
        )
        await _tell_room(conn, stream_id, "stream_cancelled", {"stream_id": str(stream_id)})
        await _close_room(conn, stream_id)
        return await _stream(conn, stream_id, me.id)


# --- reading --------------------------------------------------------------------------------------


async def one(pool: asyncpg.Pool, viewer: Account, stream_id: uuid.UUID) -> Stream:
    """Any stream of an active creator; the creator and staff also see the others."""
    row = await pool.fetchrow(_SELECT + " WHERE s.id = $2", viewer.id, stream_id)
    if row is None or not (
        row["creator_active"] or row["creator_id"] == viewer.id or viewer.is_staff
    ):
        raise NotFound(f"no stream {stream_id}")
    return stream_of(row, viewer.id)


async def public_page(
    pool: asyncpg.Pool,
    viewer: uuid.UUID,
    *,
    status: str,
    creator_id: uuid.UUID | None,
    after: tuple[Any, ...] | None,
    limit: int,
) -> list[Stream]:
    """Live streams (latest started first) or announced scheduled ones (soonest first) of
    active creators; `after` is the (time, id) key of the previous page's last row."""
    sql = _LIVE_PAGE if status == "live" else _SCHEDULED_PAGE
    rows = await pool.fetch(
        sql, viewer, creator_id, after[0] if after else None, after[1] if after else None, limit
    )
    return [stream_of(r, viewer) for r in rows]


async def own_page(
    pool: asyncpg.Pool,
    me: uuid.UUID,
    *,
    status: str | None,
    after: tuple[Any, ...] | None,
    limit: int,
) -> list[Stream]:
    """The caller's own streams, newest first."""
    rows = await pool.fetch(
        _OWN_PAGE, me, status, after[0] if after else None, after[1] if after else None, limit
    )
    return [stream_of(r, me) for r in rows]


# --- the reminder job -----------------------------------------------------------------------------


async def remind_upcoming(conn: asyncpg.Connection, clock: Clock) -> int:
    """The audience of every stream scheduled to start within REMINDER_LEAD is told, once
    per start time (a rescheduled stream is announced again)."""
    now = clock.now()
    rows = await conn.fetch(
        "SELECT s.id, s.creator_id, s.title, s.scheduled_at, u.username"
        "  FROM creator.live_streams s JOIN creator.users u ON u.id = s.creator_id"
        " WHERE s.status = 'scheduled' AND s.scheduled_at > $1"
        "   AND s.scheduled_at <= $1 + $2::interval"
        "   AND u.account_status = 'active' AND u.deleted_at IS NULL"
        " ORDER BY s.scheduled_at, s.id",
        now,
        REMINDER_LEAD,
    )
    created = 0
    for row in rows:
        created += await notices.stream_starting_soon(
            conn,
            stream_id=row["id"],
            scheduled_at=row["scheduled_at"],
            minutes=max(1, round((row["scheduled_at"] - now).total_seconds() / 60)),
            creator_name=row["username"],
            title=row["title"],
            recipients=await notices.live_audience(conn, row["creator_id"]),
        )
    return created


REMINDER_JOBS: tuple[Job, ...] = tuple(
    Job(
        name=f"creator_stream_reminder_{minute:02d}",
        schedule=Hourly(minute=minute),
        run=remind_upcoming,
        summary="remind followers and subscribers of creator streams starting within 15 minutes",
    )
    for minute in range(0, 60, int(REMINDER_EVERY.total_seconds() // 60))
)
