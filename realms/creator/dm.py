"""`creator.dm:<conversation id>`: the one conversation of a fan and a creator, stored in the
seed's creator.conversations / creator.messages. Its two parties join (roles `fan`, `creator`);
sends are group-committed through creator.append_messages(); unread counts, read receipts and
deletions follow the seed's triggers and are pushed live (unread on each party's user stream,
versioned by conversations.state_version). A premium message travels the channel locked."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec

from kernel.conversation import (
    ChatStore,
    Committed,
    ConversationAdmin,
    Draft,
    Membership,
    MessageRef,
    Principal,
    Publish,
    SequenceSource,
    parse_uuid,
)
from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.groupcommit import GroupCommit
from kernel.logs import EventLog
from kernel.messages import ConversationSummary, Event, MemberState, Message, edited_event
from kernel.messages import json_encoder as encoder
from realms.creator import notices
from realms.creator.wire import COLUMNS, DM_NAMESPACE, FROM, PURCHASED, dm_channel, render

log = EventLog("realms.creator.dm")

USER_STREAM = "creator.user"
MESSAGE_TYPES = frozenset({"text", "image", "video", "audio"})

# Why append_messages() refused a send, as the client is told.
REFUSALS: dict[str, Exception] = {
    "not_party": Forbidden("only the conversation's fan and creator may send to it"),
    "blocked": Forbidden("this conversation is blocked"),
    "inactive": Forbidden("your account may not send messages"),
    "restricted": Forbidden("messaging is restricted on your account"),
    "not_creator": BadRequest("only the creator may price a message"),
    "bad_reply": BadRequest("reply_to is not a message of this conversation"),
}

APPEND_SQL = (
    "SELECT * FROM creator.append_messages($1::uuid[], $2::uuid[], $3::text[], $4::text[],"
    " $5::text[]::jsonb[], $6::uuid[], $7::text[], $8::bigint[], $9::text[]::jsonb[])"
)


def user_stream(user_id: object) -> str:
    return f"{USER_STREAM}:{user_id}"


def unread_event(channel: str, user_id: object, unread: int, seq: int, version: int) -> Event:
    """A party's unread count of a conversation, for their user stream. `data.version` orders
    these events: keep the highest."""
    return Event(
        channel=user_stream(user_id),
        kind="unread",
        conversation=channel,
        unread=unread,
        seq=seq,
        data={"version": version},
    )


class Outgoing(msgspec.Struct, frozen=True, kw_only=True):
    """One message to append: from a socket's `send` or from REST (which may price it)."""

    conversation_id: uuid.UUID
    sender_id: uuid.UUID
    type: str
    body: str | None
    attachments: list[dict[str, Any]] | None = None
    reply_to: MessageRef | None = None
    client_id: str | None = None
    price: int | None = None
    preview: dict[str, Any] | None = None


async def append(
    conn: asyncpg.Connection | asyncpg.Pool, batch: list[Outgoing]
) -> list[asyncpg.Record]:
    """creator.append_messages() over `batch`: one row per item, in order (statuses above)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        APPEND_SQL,
        [o.conversation_id for o in batch],
        [o.sender_id for o in batch],
        [o.type for o in batch],
        [o.body for o in batch],
        # as JSON text: asyncpg would read a list inside the array as one more dimension
        [_json(o.attachments) for o in batch],
        [o.reply_to for o in batch],
        [o.client_id for o in batch],
        [o.price for o in batch],
        [_json(o.preview) for o in batch],
    )
    return rows


def _json(value: object) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


def recipient_unread(row: asyncpg.Record, sender_id: uuid.UUID) -> tuple[uuid.UUID, int]:
    """(the other party, their unread count) of an append_messages() row."""
    if sender_id == row["fan_id"]:
        return row["creator_id"], int(row["creator_unread"])
    return row["fan_id"], int(row["fan_unread"])


def _conversation(channel: str) -> uuid.UUID:
    return uuid.UUID(channel.partition(":")[2])


class _Pending(msgspec.Struct, frozen=True):
    channel: str
    outgoing: Outgoing


class DirectMessages:
    """Namespace `creator.dm`, and its ChatStore, SequenceSource and ConversationAdmin."""

    name = DM_NAMESPACE
    realm = "creator"
    auto_join = False
    tracks_presence = True

    def __init__(
        self,
        pool: asyncpg.Pool,
        publish: Publish,
        *,
        on_batch: Callable[[int], None] | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._pool = pool
        self._on_close = on_close  # the process's relay stops with the store
        self._publish = publish
        self._appends: GroupCommit[_Pending, Committed | Exception] = GroupCommit(
            self._flush, on_batch=on_batch, key=lambda p: p.channel
        )

    # --- Namespace ----------------------------------------------------------------------------

    def canonical_key(self, key: str) -> str:
        return str(parse_uuid(key, "conversation id"))

    async def authorize(self, principal: Principal, channel: str, key: str) -> Membership:
        row = await self._pool.fetchrow(
            "SELECT c.fan_id, c.creator_id, u.age_verified FROM creator.conversations c"
            " JOIN creator.users u ON u.id = $2 WHERE c.id = $1",
            uuid.UUID(key),
            uuid.UUID(principal.user_id),
        )
        if row is None:
            raise NotFound(f"conversation {key} does not exist")
        me = uuid.UUID(principal.user_id)
        if me not in (row["fan_id"], row["creator_id"]):
            raise Forbidden("only the conversation's fan and creator may join it")
        if not row["age_verified"]:
            raise Forbidden("messaging needs a verified age")
        role = "creator" if me == row["creator_id"] else "fan"
        peer = row["fan_id"] if role == "creator" else row["creator_id"]
        return Membership(channel=channel, role=role, owner_id=str(peer))

    def sequence_source(self) -> SequenceSource:
        return self

    def chat(self) -> ChatStore:
        return self

    def conversations(self) -> ConversationAdmin:
        return self

    async def members_changed(self, conn: asyncpg.Connection, channel: str, count: int) -> None:
        return None

    def lock_sql(self) -> str | None:
        return None

    def affected_by(self, notice: dict[str, str], membership: Membership) -> bool:
        return (
            notice.get("kind") == "conversation"
            and notice.get("conversation_id") == membership.channel.partition(":")[2]
        )

    # --- append (group commit) ----------------------------------------------------------------

    async def append(self, principal: Principal, membership: Membership, draft: Draft) -> Committed:
        if draft.type not in MESSAGE_TYPES:
            raise BadRequest(f"direct messages are {', '.join(sorted(MESSAGE_TYPES))}")
        if draft.attachment_url is not None:
            raise BadRequest("direct messages take `attachment` (with its metadata), not a url")
        if draft.mentions:
            raise BadRequest("direct messages take no mentions")
        if draft.type != "text" and draft.attachment is None:
            raise BadRequest(f"a {draft.type} message needs its `attachment`")
        outgoing = Outgoing(
            conversation_id=_conversation(membership.channel),
            sender_id=uuid.UUID(principal.user_id),
            type=draft.type,
            body=draft.text,
            attachments=[msgspec.to_builtins(draft.attachment)] if draft.attachment else None,
            reply_to=draft.reply_to,
            client_id=draft.client_id,
        )
        result = await self._appends.submit(_Pending(membership.channel, outgoing))
        assert isinstance(result, Committed)  # refusals were raised by submit()
        return result

    async def _flush(self, batch: list[_Pending]) -> list[Committed | Exception]:
        rows = await append(self._pool, [p.outgoing for p in batch])
        results: list[Committed | Exception] = []
        fresh: list[tuple[str, int, bytes]] = []
        unread: dict[str, Event] = {}
        # per conversation: its batch's first new message and its recipient
        told: dict[str, tuple[Outgoing, uuid.UUID]] = {}
        for pending, row in zip(batch, rows, strict=True):
            status = row["status"]
            if status not in ("ok", "duplicate"):
                results.append(REFUSALS[status])
                continue
            o = pending.outgoing
            message = render(
                {
                    "id": row["id"],
                    "conversation_id": o.conversation_id,
                    "seq": row["seq"],
                    "sender_id": o.sender_id,
                    "client_id": o.client_id,
                    "message_type": o.type,
                    "body": o.body,
                    "attachments": o.attachments,
                    "preview": None,
                    "price": None,
                    "reply_to_id": o.reply_to,
                    "edited_at": None,
                    "is_deleted": False,
                    "created_at": row["created_at"],
                    "currency": None,
                },
                unlocked=True,
            )
            payload = encoder.encode(message)
            results.append(
                Committed(
                    id=message.id,
                    seq=message.seq,
                    created_at=message.created_at,
                    duplicate=status == "duplicate",
                    payload=payload,
                )
            )
            if status == "ok":
                fresh.append((pending.channel, message.seq, payload))
                peer, count = recipient_unread(row, o.sender_id)
                # the batch's last row of a conversation has its latest counts
                unread[pending.channel] = unread_event(
                    pending.channel, peer, count, message.seq, row["version"]
                )
                told.setdefault(pending.channel, (o, peer))
        if fresh:
            try:
                await self._publish(fresh)
                await self._tell(list(unread.values()))
            except Exception as exc:  # committed: clients catch up with `since`
                log.error("publish_failed", messages=len(fresh), error=repr(exc))
            try:
                await self._tell_offline(list(told.values()))
            except Exception as exc:  # the message is committed and counted unread
                log.error("offline_notify_failed", error=repr(exc))
        return results

    async def _tell_offline(self, sent: list[tuple[Outgoing, uuid.UUID]]) -> None:
        """new_message notifications for recipients not in the conversation (one per
        conversation of the batch; realms/creator/notices.py collapses unread streaks)."""
        async with self._pool.acquire() as conn:
            names = dict(
                await conn.fetch(
                    "SELECT id, username FROM creator.users WHERE id = ANY ($1::uuid[])",
                    list({o.sender_id for o, _ in sent}),
                )
            )
            for o, peer in sent:
                async with conn.transaction():
                    await notices.new_message(
                        conn,
                        conversation_id=o.conversation_id,
                        recipient=peer,
                        sender_name=names.get(o.sender_id),
                        text=o.body,
                        premium=o.price is not None,
                    )

    async def _tell(self, events: list[Event]) -> None:
        if events:
            await self._publish([(e.channel, 0, encoder.encode(e)) for e in events])

    async def drain(self) -> None:
        await self._appends.drain()

    async def close(self) -> None:
        await self._appends.close()
        if self._on_close is not None:
            await self._on_close()

    # --- reads --------------------------------------------------------------------------------

    async def last_seq(self, channel: str) -> int:
        value = await self._pool.fetchval(
            "SELECT last_seq FROM creator.conversations WHERE id = $1", _conversation(channel)
        )
        return int(value or 0)

    async def after(self, channel: str, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        """What the channel's fan-out carries (both parties get these bytes): premium
        messages locked. Their content reaches a buyer as `message_unlocked` and in history."""
        rows = await self._pool.fetch(
            f"SELECT {COLUMNS} FROM {FROM} WHERE m.conversation_id = $1 AND m.seq > $2"
            " ORDER BY m.seq LIMIT $3",
            _conversation(channel),
            after_seq,
            limit,
        )
        return [(r["seq"], encoder.encode(render(r, unlocked=False))) for r in rows]

    async def history(
        self, membership: Membership, before: int | None, after: int | None, limit: int
    ) -> list[Message]:
        if before is not None and after is not None:
            raise BadRequest("give `before` or `after`, not both")
        return list(
            await read_history(
                self._pool, _conversation(membership.channel), membership.role, before, after, limit
            )
        )

    async def mark_read(self, principal: Principal, membership: Membership, seq: int) -> int:
        stored, events = await mark_read(
            self._pool, _conversation(membership.channel), uuid.UUID(principal.user_id), seq
        )
        await self._tell(events)
        return stored

    # --- changes to existing messages ---------------------------------------------------------

    async def edit(
        self, principal: Principal, membership: Membership, message_id: MessageRef, text: str
    ) -> Message:
        row = await self._pool.fetchrow(
            f"WITH m AS (UPDATE creator.messages SET body = $4"
            "  WHERE id = $1 AND conversation_id = $2 AND sender_id = $3 AND NOT is_deleted"
            "    AND price IS NULL RETURNING *)"
            f" SELECT {COLUMNS} FROM m JOIN creator.conversations c ON c.id = m.conversation_id"
            " JOIN creator.users cu ON cu.id = c.creator_id",
            message_id,
            _conversation(membership.channel),
            uuid.UUID(principal.user_id),
            text,
        )
        if row is None:
            await self._why_unchanged(membership, message_id)
            raise Forbidden("only the author may edit a message, and never a premium one")
        message = render(row, unlocked=True)
        await self._tell([edited_event(message, principal.user_id)])
        return message

    async def delete(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        reason: str | None,
    ) -> Message:
        """The author deletes; the `deleted` event reaches every gateway from the database
        (trg_messages_announce_deleted), whoever deleted it and from where."""
        me = uuid.UUID(principal.user_id)
        row = await self._pool.fetchrow(
            "WITH m AS (UPDATE creator.messages"
            "   SET is_deleted = true, deleted_at = now(), deleted_by = $3"
            "  WHERE id = $1 AND conversation_id = $2 AND sender_id = $3 AND NOT is_deleted"
            "  RETURNING *)"
            f" SELECT {COLUMNS} FROM m JOIN creator.conversations c ON c.id = m.conversation_id"
            " JOIN creator.users cu ON cu.id = c.creator_id",
            message_id,
            _conversation(membership.channel),
            me,
        )
        if row is None:
            await self._why_unchanged(membership, message_id)
            raise Forbidden("only the author may delete a message here (moderators use REST)")
        return render(row, unlocked=False)

    async def _why_unchanged(self, membership: Membership, message_id: MessageRef) -> None:
        deleted = await self._pool.fetchval(
            "SELECT is_deleted FROM creator.messages WHERE id = $1 AND conversation_id = $2",
            message_id,
            _conversation(membership.channel),
        )
        if deleted is None:
            raise NotFound(f"message {message_id} is not in {membership.channel}")
        if deleted:
            raise Conflict("message is deleted")

    async def pin(
        self, principal: Principal, membership: Membership, message_id: MessageRef, pinned: bool
    ) -> Message:
        raise Forbidden("direct messages keep no pins")

    async def flag(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        reason: str,
        description: str | None,
    ) -> None:
        raise Forbidden("report a message with POST /v1/creator/reports")

    # --- ConversationAdmin --------------------------------------------------------------------

    async def create(
        self,
        principal: Principal,
        kind: str,
        peer: str | None,
        members: list[str] | None,
        title: str | None,
    ) -> tuple[str, bool]:
        if kind != "direct" or peer is None or members is not None or title is not None:
            raise BadRequest("a creator conversation is `direct`, `with` the creator")
        try:
            creator_id = uuid.UUID(peer)
        except ValueError:
            raise BadRequest(f"{peer!r} is not a creator user id") from None
        async with self._pool.acquire() as conn:
            conversation_id, created = await open_conversation(
                conn, uuid.UUID(principal.user_id), creator_id
            )
        return dm_channel(conversation_id), created

    async def add_members(
        self, principal: Principal, membership: Membership, users: list[str]
    ) -> list[str]:
        raise Forbidden("a direct conversation has its two parties only")

    async def remove_member(
        self, principal: Principal, membership: Membership, user_id: str
    ) -> None:
        raise Forbidden("nobody leaves a direct conversation (archive it instead)")

    async def react(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        emoji: str,
        remove: bool,
    ) -> None:
        raise Forbidden("direct messages keep no reactions")

    async def list_for(self, principal: Principal, kind: str | None) -> list[ConversationSummary]:
        rows = await self._pool.fetch(
            f"{SUMMARY_SQL} ORDER BY c.last_message_at DESC NULLS LAST, c.id LIMIT 200",
            uuid.UUID(principal.user_id),
            None,
        )
        return [summary(r, uuid.UUID(principal.user_id)) for r in rows]

    async def members(self, membership: Membership) -> list[MemberState]:
        row = await self._pool.fetchrow(
            "SELECT fan_id, creator_id, fan_last_read_seq, creator_last_read_seq"
            " FROM creator.conversations WHERE id = $1",
            _conversation(membership.channel),
        )
        if row is None:
            return []
        return [
            MemberState(
                user_id=str(row["creator_id"]),
                role="creator",
                last_read_seq=row["creator_last_read_seq"],
            ),
            MemberState(
                user_id=str(row["fan_id"]), role="fan", last_read_seq=row["fan_last_read_seq"]
            ),
        ]

    async def mute(self, principal: Principal, membership: Membership, muted: bool) -> None:
        raise BadRequest("archive the conversation instead (PATCH /v1/creator/conversations/{id})")


# --- shared by the namespace and the REST routes ------------------------------------------------

SUMMARY_SQL = """
SELECT c.id, c.fan_id, c.creator_id, c.last_seq, c.last_message_at, c.blocked_by,
       CASE WHEN c.fan_id = $1 THEN c.fan_unread_count ELSE c.creator_unread_count END AS unread,
       CASE WHEN c.fan_id = $1 THEN c.fan_archived ELSE c.creator_archived END AS archived,
       CASE WHEN c.fan_id = $1 THEN c.fan_last_read_seq ELSE c.creator_last_read_seq END
           AS last_read_seq,
       CASE WHEN c.fan_id = $1 THEN c.creator_last_read_seq ELSE c.fan_last_read_seq END
           AS peer_last_read_seq,
       c.state_version
  FROM creator.conversations c
 WHERE $1 IN (c.fan_id, c.creator_id) AND ($2::uuid IS NULL OR c.id = $2)
"""


def summary(row: asyncpg.Record, me: uuid.UUID) -> ConversationSummary:
    role = "fan" if row["fan_id"] == me else "creator"
    peer = row["creator_id"] if role == "fan" else row["fan_id"]
    return ConversationSummary(
        channel=dm_channel(row["id"]),
        kind="direct",
        role=role,
        last_seq=row["last_seq"],
        unread=row["unread"],
        title=str(peer),
        last_message_at=row["last_message_at"].isoformat() if row["last_message_at"] else None,
    )


async def open_conversation(
    conn: asyncpg.Connection, fan_id: uuid.UUID, creator_id: uuid.UUID
) -> tuple[uuid.UUID, bool]:
    """The fan's conversation with the creator, opened now when the creator's rule lets them
    (creator.may_start_conversation); (id, created). Either party finds an existing one."""
    existing = await conn.fetchval(
        "SELECT id FROM creator.conversations"
        " WHERE (fan_id = $1 AND creator_id = $2) OR (fan_id = $2 AND creator_id = $1)",
        fan_id,
        creator_id,
    )
    if existing is not None:
        return existing, False
    target = await conn.fetchrow(
        "SELECT account_type, account_status = 'active' AND deleted_at IS NULL AS active"
        " FROM creator.users WHERE id = $1",
        creator_id,
    )
    if target is None or not target["active"]:
        raise NotFound(f"no creator {creator_id}")
    if target["account_type"] != "creator":
        raise BadRequest("conversations are opened with a creator")
    if not await conn.fetchval("SELECT creator.may_start_conversation($1, $2)", fan_id, creator_id):
        raise Forbidden("this creator takes messages only from those their settings allow")
    conversation_id = await conn.fetchval(
        "INSERT INTO creator.conversations (creator_id, fan_id) VALUES ($1, $2)"
        " ON CONFLICT (creator_id, fan_id) DO NOTHING RETURNING id",
        creator_id,
        fan_id,
    )
    if conversation_id is None:  # opened concurrently
        existing = await conn.fetchval(
            "SELECT id FROM creator.conversations WHERE fan_id = $1 AND creator_id = $2",
            fan_id,
            creator_id,
        )
        return existing, False
    return conversation_id, True


async def read_history(
    conn: asyncpg.Connection | asyncpg.Pool,
    conversation_id: uuid.UUID,
    role: str,
    before: int | None,
    after: int | None,
    limit: int,
) -> list[Message]:
    """A page of messages in seq order as the party `role` sees them: the creator sees every
    premium message they sent; the fan sees those they bought, the others locked."""
    unlocked = "true" if role == "creator" else PURCHASED
    base = f"SELECT {COLUMNS}, {unlocked} AS unlocked FROM {FROM} WHERE m.conversation_id = $1"
    if after is not None:
        rows = await conn.fetch(
            f"{base} AND m.seq > $2 ORDER BY m.seq LIMIT $3", conversation_id, after, limit
        )
    else:
        rows = await conn.fetch(
            f"{base} AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3",
            conversation_id,
            before if before is not None else 2**62,
            limit,
        )
        rows.reverse()
    return [render(r, unlocked=r["unlocked"]) for r in rows]


async def mark_read(
    conn: asyncpg.Connection | asyncpg.Pool,
    conversation_id: uuid.UUID,
    user_id: uuid.UUID,
    seq: int,
) -> tuple[int, list[Event]]:
    """Move the user's read position forward (never back, never past the last message);
    returns the stored position and the events to publish: the receipt on the channel and the
    reader's unread count on their user stream."""
    row = await conn.fetchrow(
        "UPDATE creator.conversations"
        "   SET fan_last_read_seq = CASE WHEN fan_id = $2 THEN $3 ELSE fan_last_read_seq END,"
        "       creator_last_read_seq = CASE WHEN creator_id = $2 THEN $3"
        "                                    ELSE creator_last_read_seq END"
        " WHERE id = $1 AND $2 IN (fan_id, creator_id)"
        " RETURNING CASE WHEN fan_id = $2 THEN fan_last_read_seq"
        "                ELSE creator_last_read_seq END AS stored,"
        "           CASE WHEN fan_id = $2 THEN fan_unread_count"
        "                ELSE creator_unread_count END AS unread,"
        "           last_seq, state_version",
        conversation_id,
        user_id,
        seq,
    )
    if row is None:
        raise Forbidden("only the conversation's fan and creator may read it")
    channel = dm_channel(conversation_id)
    stored = int(row["stored"])
    return stored, [
        Event(channel=channel, kind="read", user_id=str(user_id), seq=stored),
        unread_event(channel, user_id, row["unread"], row["last_seq"], row["state_version"]),
    ]
