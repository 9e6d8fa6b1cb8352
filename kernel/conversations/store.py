"""The core's conversation store (gateway.conversation* tables, sql/0100): opening and
managing conversations, appending messages by group commit, history and resume, edits,
deletes, reactions, mentions, read receipts, and the unread counts pushed to every socket
of each member (on their user stream)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import msgspec

from kernel.conversation import Committed, Draft, Membership, MessageRef, Principal, Publish
from kernel.conversations.policy import ConversationPolicy
from kernel.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from kernel.groupcommit import GroupCommit
from kernel.logs import EventLog
from kernel.messages import (
    Attachment,
    ConversationSummary,
    Event,
    MemberState,
    Message,
    edited_event,
    json_encoder,
)
from kernel.realms import Realm

log = EventLog("kernel.conversations")

MAX_LISTED = 200
_attachment = msgspec.convert

_COLUMNS = """m.id, m.seq, m.user_id, m.type, m.body, m.reply_to, m.attachment, m.mentions,
    m.client_id, m.created_at, m.edited_at, m.deleted_at,
    (SELECT jsonb_object_agg(r.emoji, r.users) FROM (
        SELECT emoji, jsonb_agg(user_id ORDER BY created_at, user_id) AS users
          FROM gateway.message_reactions WHERE message_id = m.id GROUP BY emoji) r
    ) AS reactions"""


# Members of the conversations a batch touched: unread count, read position, mute, and
# whether a socket of theirs is in the conversation on a live gateway.
_MEMBER_STATES = """
SELECT m.conversation_id, m.user_id, c.last_seq, c.last_seq - m.last_read_seq AS n,
       m.last_read_seq, m.muted,
       EXISTS (SELECT 1 FROM gateway.live_members lm JOIN gateway.nodes nd USING (node_id)
                WHERE lm.channel = $2 || '.' || c.kind || ':' || c.id
                  AND lm.user_id = m.user_id
                  AND nd.heartbeat_at > now() - interval '30 seconds') AS present
  FROM gateway.conversation_members m
  JOIN gateway.conversations c ON c.id = m.conversation_id
 WHERE m.conversation_id = ANY ($1::uuid[])
"""


class _Pending(msgspec.Struct, frozen=True):
    channel: str
    conversation_id: uuid.UUID
    user_id: str
    draft: Draft


def _key(channel: str) -> uuid.UUID:
    return uuid.UUID(channel.partition(":")[2])


def _message(channel: str, row: asyncpg.Record) -> Message:
    deleted = row["deleted_at"] is not None
    attachment = row["attachment"]
    return Message(
        channel=channel,
        seq=row["seq"],
        id=str(row["id"]),
        user_id=row["user_id"],
        text="" if deleted else row["body"],
        type=row["type"],
        created_at=row["created_at"].isoformat(),
        reply_to=str(row["reply_to"]) if row["reply_to"] else None,
        client_id=row["client_id"],
        deleted=deleted,
        edited_at=row["edited_at"].isoformat() if row["edited_at"] else None,
        attachment=None if deleted or attachment is None else _attachment(attachment, Attachment),
        mentions=list(row["mentions"]) or None,
        reactions=row["reactions"] or None,
    )


class ConversationStore:
    """ChatStore, SequenceSource and ConversationAdmin of one realm's core conversations."""

    def __init__(
        self,
        realm: Realm,
        pool: asyncpg.Pool,
        publish: Publish,
        policy: ConversationPolicy,
        *,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._realm = realm
        self._pool = pool
        self._publish = publish
        self._policy = policy
        self._appends: GroupCommit[_Pending, Committed | Exception] = GroupCommit(
            self._flush, on_batch=on_batch, key=lambda p: p.channel
        )

    def channel(self, kind: str, conversation_id: uuid.UUID | str) -> str:
        return f"{self._realm.name}.{kind}:{conversation_id}"

    def _peer(self, raw: str) -> str:
        try:
            return self._realm.parse_user_id(raw)
        except Unauthorized:
            raise BadRequest(f"{raw!r} is not a {self._realm.name} user id") from None

    async def drain(self) -> None:
        await self._appends.drain()

    async def close(self) -> None:
        await self._appends.close()

    async def _tell(self, events: list[Event]) -> None:
        if events:
            await self._publish([(e.channel, 0, json_encoder.encode(e)) for e in events])

    # --- membership -------------------------------------------------------------------------

    async def admit(
        self, principal: Principal, kind: str, channel: str, conversation_id: uuid.UUID
    ) -> Membership:
        """The membership of a join; staff joining a support conversation become its staff."""
        row = await self._pool.fetchrow(
            "SELECT c.realm, c.kind, m.role FROM gateway.conversations c"
            " LEFT JOIN gateway.conversation_members m"
            "   ON m.conversation_id = c.id AND m.user_id = $2"
            " WHERE c.id = $1",
            conversation_id,
            principal.user_id,
        )
        if row is None or row["realm"] != self._realm.name or row["kind"] != kind:
            raise NotFound(f"conversation {conversation_id} does not exist")
        role = row["role"]
        if role is None and kind == "support" and self._policy.is_staff(principal):
            await self._pool.execute(
                "INSERT INTO gateway.conversation_members (conversation_id, user_id, role)"
                " VALUES ($1, $2, 'staff') ON CONFLICT DO NOTHING",
                conversation_id,
                principal.user_id,
            )
            role = "staff"
        if role is None:
            raise Forbidden("only the conversation's members may join it")
        return Membership(channel=channel, role=role)

    async def create(
        self,
        principal: Principal,
        kind: str,
        peer: str | None,
        members: list[str] | None,
        title: str | None,
    ) -> tuple[str, bool]:
        me = principal.user_id
        if kind == "direct":
            if peer is None or members is not None or title is not None:
                raise BadRequest("a direct conversation takes `with` (one user) and nothing else")
            peer = self._peer(peer)
            if peer == me:
                raise BadRequest("a direct conversation is with someone else")
            await self._policy.check_direct(principal, peer)
            added = [me, peer]
            roles = {me: "member", peer: "member"}
            direct_key = "|".join(sorted(added))
        elif kind == "group":
            if peer is not None or not members:
                raise BadRequest("a group takes `members` (1 to 100 users besides you)")
            others = list(dict.fromkeys(m for m in members if m != me))
            if not others:
                raise BadRequest("a group needs at least one member besides you")
            await self._policy.check_members(principal, others)
            added = [me, *others]
            roles = {me: "admin", **{m: "member" for m in others}}
            direct_key = None
        else:
            if members is not None:
                raise BadRequest("a support conversation takes a `title` and `with` (optional)")
            added, roles, direct_key = [me], {me: "member"}, None
            if peer is not None:  # asked of someone by name, besides the staff queue
                peer = self._peer(peer)
                if peer == me:
                    raise BadRequest("support is asked of someone else")
                await self._policy.check_support_target(principal, peer)
                added.append(peer)
                roles[peer] = "staff"
        async with self._pool.acquire() as conn, conn.transaction():
            conversation_id = await conn.fetchval(
                "INSERT INTO gateway.conversations (realm, kind, title, created_by, direct_key)"
                " VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (realm, direct_key) DO NOTHING RETURNING id",
                self._realm.name,
                kind,
                title,
                me,
                direct_key,
            )
            if conversation_id is None:  # the pair's direct conversation exists
                existing = await conn.fetchval(
                    "SELECT id FROM gateway.conversations WHERE realm = $1 AND direct_key = $2",
                    self._realm.name,
                    direct_key,
                )
                return self.channel(kind, existing), False
            await conn.executemany(
                "INSERT INTO gateway.conversation_members (conversation_id, user_id, role)"
                " VALUES ($1, $2, $3)",
                [(conversation_id, user, roles[user]) for user in added],
            )
        channel = self.channel(kind, conversation_id)
        await self._tell(
            [
                Event(
                    channel=self._realm.user_stream(user),
                    kind="conversation_added",
                    conversation=channel,
                    role=roles[user],
                    by=me,
                )
                for user in added
            ]
        )
        return channel, True

    async def add_members(
        self, principal: Principal, membership: Membership, users: list[str]
    ) -> list[str]:
        kind = membership.channel.partition(":")[0].rpartition(".")[2]
        if kind != "group":
            raise Forbidden(f"members are added to groups only, not to {kind} conversations")
        if membership.role != "admin":
            raise Forbidden("only the group's admins may add members")
        await self._policy.check_members(principal, users)
        rows = await self._pool.fetch(
            "INSERT INTO gateway.conversation_members (conversation_id, user_id, role)"
            " SELECT $1, u, 'member' FROM unnest($2::text[]) u"
            " ON CONFLICT DO NOTHING RETURNING user_id",
            _key(membership.channel),
            users,
        )
        added = [r["user_id"] for r in rows]
        await self._tell(
            [
                Event(
                    channel=self._realm.user_stream(user),
                    kind="conversation_added",
                    conversation=membership.channel,
                    role="member",
                    by=principal.user_id,
                )
                for user in added
            ]
            + (
                [
                    Event(
                        channel=membership.channel,
                        kind="members_added",
                        ids=added,
                        by=principal.user_id,
                    )
                ]
                if added
                else []
            )
        )
        return added

    async def remove_member(
        self, principal: Principal, membership: Membership, user_id: str
    ) -> None:
        kind = membership.channel.partition(":")[0].rpartition(".")[2]
        if kind == "direct":
            raise Forbidden("nobody leaves a direct conversation")
        itself = user_id == principal.user_id
        if not itself and not (kind == "group" and membership.role == "admin"):
            raise Forbidden("only a group's admins remove others; anyone may remove themselves")
        status = await self._pool.execute(
            "DELETE FROM gateway.conversation_members WHERE conversation_id = $1 AND user_id = $2",
            _key(membership.channel),
            user_id,
        )
        if status.endswith(" 0"):
            raise NotFound(f"user {user_id} is not a member")
        await self._tell(
            [
                Event(
                    channel=membership.channel,
                    kind="member_removed",
                    user_id=user_id,
                    by=principal.user_id,
                )
            ]
        )

    async def members(self, membership: Membership) -> list[MemberState]:
        rows = await self._pool.fetch(
            "SELECT user_id, role, last_read_seq FROM gateway.conversation_members"
            " WHERE conversation_id = $1 ORDER BY joined_at, user_id",
            _key(membership.channel),
        )
        return [MemberState(**dict(r)) for r in rows]

    async def list_for(self, principal: Principal, kind: str | None) -> list[ConversationSummary]:
        queue = kind == "support" and self._policy.is_staff(principal)
        rows = await self._pool.fetch(
            "SELECT c.id, c.kind, c.title, coalesce(m.role, 'staff') AS role, c.last_seq,"
            "       c.last_seq - coalesce(m.last_read_seq, 0) AS unread, c.last_message_at,"
            "       coalesce(m.muted, false) AS muted"
            "  FROM gateway.conversations c"
            "  LEFT JOIN gateway.conversation_members m"
            "    ON m.conversation_id = c.id AND m.user_id = $2"
            " WHERE c.realm = $1 AND ($3::text IS NULL OR c.kind = $3)"
            "   AND (m.user_id IS NOT NULL OR $4)"
            " ORDER BY c.last_message_at DESC NULLS LAST, c.created_at DESC LIMIT $5",
            self._realm.name,
            principal.user_id,
            kind,
            queue,
            MAX_LISTED,
        )
        return [
            ConversationSummary(
                channel=self.channel(r["kind"], r["id"]),
                kind=r["kind"],
                role=r["role"],
                last_seq=r["last_seq"],
                unread=r["unread"],
                title=r["title"],
                last_message_at=r["last_message_at"].isoformat() if r["last_message_at"] else None,
                muted=r["muted"],
            )
            for r in rows
        ]

    # --- append (group commit) --------------------------------------------------------------

    async def append(self, principal: Principal, membership: Membership, draft: Draft) -> Committed:
        if draft.attachment_url is not None:
            raise BadRequest("conversations take `attachment` (with its metadata), not a bare url")
        if draft.mentions:
            try:
                mentions = [self._realm.parse_user_id(m) for m in draft.mentions]
            except Exception:
                raise BadRequest("mentions must be user ids of this realm") from None
            draft = msgspec.structs.replace(draft, mentions=list(dict.fromkeys(mentions)))
        result = await self._appends.submit(
            _Pending(membership.channel, _key(membership.channel), principal.user_id, draft)
        )
        assert isinstance(result, Committed)  # refusals were raised by submit()
        return result

    async def _flush(self, batch: list[_Pending]) -> list[Committed | Exception]:
        rows = await self._pool.fetch(
            "SELECT * FROM gateway.append_conversation_messages("
            "$1, $2, $3, $4, $5, $6::jsonb[], $7::text[], $8)",
            [p.conversation_id for p in batch],
            [p.user_id for p in batch],
            [p.draft.type for p in batch],
            [p.draft.text for p in batch],
            [p.draft.reply_to for p in batch],
            [p.draft.attachment for p in batch],
            [",".join(p.draft.mentions or ()) for p in batch],
            [p.draft.client_id for p in batch],
        )
        results: list[Committed | Exception] = []
        fresh: list[tuple[str, int, bytes]] = []
        touched: dict[uuid.UUID, _Pending] = {}
        mentioned: list[Event] = []
        for pending, row in zip(batch, rows, strict=True):
            status = row["status"]
            if status == "not_member":
                results.append(Forbidden("only the conversation's members may send to it"))
                continue
            if status == "bad_reply":
                results.append(BadRequest("reply_to is not a message of this conversation"))
                continue
            if status == "bad_mention":
                results.append(BadRequest("mentions must name members of this conversation"))
                continue
            draft = pending.draft
            message = Message(
                channel=pending.channel,
                seq=row["seq"],
                id=str(row["id"]),
                user_id=pending.user_id,
                text=draft.text,
                type=draft.type,
                created_at=row["created_at"].isoformat(),
                reply_to=str(draft.reply_to) if draft.reply_to else None,
                client_id=draft.client_id,
                attachment=draft.attachment,
                mentions=draft.mentions or None,
            )
            payload = json_encoder.encode(message)
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
                touched[pending.conversation_id] = pending
                mentioned.extend(
                    Event(
                        channel=self._realm.user_stream(user),
                        kind="mention",
                        conversation=pending.channel,
                        id=message.id,
                        seq=message.seq,
                        by=pending.user_id,
                    )
                    for user in draft.mentions or ()
                    if user != pending.user_id
                )
        if fresh:
            try:
                await self._publish(fresh)
                await self._tell(mentioned + await self._unread_events(touched))
            except Exception as exc:  # committed: clients catch up with `since` and a list
                log.error("publish_failed", messages=len(fresh), error=repr(exc))
        return results

    async def _unread_events(self, touched: dict[uuid.UUID, _Pending]) -> list[Event]:
        """Each member's unread count of each conversation that got messages, for their user
        stream (every socket of theirs); the senders' own counts do not change. Members in
        none of the conversation's sockets, and who did not mute it, are told by the realm
        (push, e-mail): once per unread streak, however many messages it holds."""
        rows = await self._pool.fetch(_MEMBER_STATES, list(touched), self._realm.name)
        offline: list[tuple[uuid.UUID, str, int]] = []
        events: list[Event] = []
        for r in rows:
            pending = touched[r["conversation_id"]]
            if r["user_id"] == pending.user_id:
                continue
            events.append(
                Event(
                    channel=self._realm.user_stream(r["user_id"]),
                    kind="unread",
                    conversation=pending.channel,
                    unread=r["n"],
                    seq=r["last_seq"],
                )
            )
            if not r["muted"] and not r["present"]:
                offline.append((r["conversation_id"], r["user_id"], r["last_read_seq"]))
        if offline and self._realm.notify_offline is not None:
            await self._tell_offline(touched, offline)
        return events

    async def _tell_offline(
        self, touched: dict[uuid.UUID, _Pending], offline: list[tuple[uuid.UUID, str, int]]
    ) -> None:
        """One realm call per conversation and read position, not one per member: members
        at the same place in the same conversation share an event key (the realm appends
        each member's id to it)."""
        assert self._realm.notify_offline is not None
        groups: dict[tuple[uuid.UUID, int], list[str]] = {}
        for conversation_id, user, last_read in offline:
            groups.setdefault((conversation_id, last_read), []).append(user)
        async with self._pool.acquire() as conn:
            for (conversation_id, last_read), users in groups.items():
                await self._realm.notify_offline(
                    conn,
                    users,
                    # one per member and unread streak: later messages collapse into it
                    f"conversation:{conversation_id}:after:{last_read}",
                    "New message",
                    touched[conversation_id].draft.text[:140],
                    conversation_id,
                )

    async def mute(self, principal: Principal, membership: Membership, muted: bool) -> None:
        await self._pool.execute(
            "UPDATE gateway.conversation_members SET muted = $3"
            " WHERE conversation_id = $1 AND user_id = $2",
            _key(membership.channel),
            principal.user_id,
            muted,
        )

    # --- reads --------------------------------------------------------------------------------

    async def last_seq(self, channel: str) -> int:
        value = await self._pool.fetchval(
            "SELECT last_seq FROM gateway.conversations WHERE id = $1", _key(channel)
        )
        return int(value or 0)

    async def _rows(self, channel: str, where: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM gateway.conversation_messages m"
            f" WHERE m.conversation_id = $1 AND {where}",
            _key(channel),
            *args,
        )
        return rows

    async def after(self, channel: str, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        rows = await self._rows(channel, "m.seq > $2 ORDER BY m.seq LIMIT $3", after_seq, limit)
        return [(r["seq"], json_encoder.encode(_message(channel, r))) for r in rows]

    async def history(
        self, membership: Membership, before: int | None, after: int | None, limit: int
    ) -> list[Message]:
        channel = membership.channel
        if before is not None and after is not None:
            raise BadRequest("give `before` or `after`, not both")
        if after is not None:
            rows = await self._rows(channel, "m.seq > $2 ORDER BY m.seq LIMIT $3", after, limit)
        else:
            rows = await self._rows(
                channel, "m.seq < $2 ORDER BY m.seq DESC LIMIT $3", before or 2**62, limit
            )
            rows.reverse()
        return [_message(channel, r) for r in rows]

    async def mark_read(self, principal: Principal, membership: Membership, seq: int) -> int:
        """Move the read position forward (never back, never past the last message); every
        member sees the receipt, every socket of the reader its unread count."""
        row = await self._pool.fetchrow(
            "UPDATE gateway.conversation_members m"
            "   SET last_read_seq = greatest(m.last_read_seq, least($3, c.last_seq))"
            "  FROM gateway.conversations c"
            " WHERE c.id = m.conversation_id AND m.conversation_id = $1 AND m.user_id = $2"
            " RETURNING m.last_read_seq, c.last_seq - m.last_read_seq AS unread",
            _key(membership.channel),
            principal.user_id,
            seq,
        )
        if row is None:
            raise Forbidden("only the conversation's members may read it")
        stored = int(row["last_read_seq"])
        await self._tell(
            [
                Event(
                    channel=membership.channel, kind="read", user_id=principal.user_id, seq=stored
                ),
                Event(
                    channel=self._realm.user_stream(principal.user_id),
                    kind="unread",
                    conversation=membership.channel,
                    unread=row["unread"],
                    seq=stored,
                ),
            ]
        )
        return stored

    # --- changes to existing messages -----------------------------------------------------------

    async def _change(
        self, membership: Membership, message_id: MessageRef, sql: str, *args: Any
    ) -> Message:
        row = await self._pool.fetchrow(
            f"WITH m AS ({sql} RETURNING *) SELECT {_COLUMNS} FROM m",
            message_id,
            _key(membership.channel),
            *args,
        )
        if row is None:
            exists = await self._pool.fetchrow(
                "SELECT deleted_at FROM gateway.conversation_messages"
                " WHERE id = $1 AND conversation_id = $2",
                message_id,
                _key(membership.channel),
            )
            if exists is None:
                raise NotFound(f"message {message_id} is not in {membership.channel}")
            if exists["deleted_at"] is not None:
                raise Conflict("message is deleted")
            raise Forbidden("only the author (or, to delete, a group admin or staff) may")
        return _message(membership.channel, row)

    async def edit(
        self, principal: Principal, membership: Membership, message_id: MessageRef, text: str
    ) -> Message:
        message = await self._change(
            membership,
            message_id,
            "UPDATE gateway.conversation_messages SET body = $4, edited_at = now()"
            " WHERE id = $1 AND conversation_id = $2 AND user_id = $3 AND deleted_at IS NULL",
            principal.user_id,
            text,
        )
        await self._tell([edited_event(message, principal.user_id)])
        return message

    async def delete(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        reason: str | None,
    ) -> Message:
        moderator = membership.role in ("admin", "staff")
        message = await self._change(
            membership,
            message_id,
            "UPDATE gateway.conversation_messages SET deleted_at = now()"
            " WHERE id = $1 AND conversation_id = $2 AND deleted_at IS NULL"
            "   AND (user_id = $3 OR $4)",
            principal.user_id,
            moderator,
        )
        await self._tell(
            [
                Event(
                    channel=membership.channel,
                    kind="deleted",
                    id=message.id,
                    by=principal.user_id,
                    reason=reason,
                    seq=message.seq,
                )
            ]
        )
        return message

    async def pin(
        self, principal: Principal, membership: Membership, message_id: MessageRef, pinned: bool
    ) -> Message:
        raise Forbidden("conversations keep no pins")

    async def flag(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        reason: str,
        description: str | None,
    ) -> None:
        raise Forbidden("conversations are moderated by their admins and staff, not flags")

    async def react(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        emoji: str,
        remove: bool,
    ) -> None:
        exists = await self._pool.fetchval(
            "SELECT deleted_at IS NULL FROM gateway.conversation_messages"
            " WHERE id = $1 AND conversation_id = $2",
            message_id,
            _key(membership.channel),
        )
        if exists is None:
            raise NotFound(f"message {message_id} is not in {membership.channel}")
        if not exists:
            raise Conflict("message is deleted")
        if remove:
            status = await self._pool.execute(
                "DELETE FROM gateway.message_reactions"
                " WHERE message_id = $1 AND user_id = $2 AND emoji = $3",
                message_id,
                principal.user_id,
                emoji,
            )
        else:
            status = await self._pool.execute(
                "INSERT INTO gateway.message_reactions (message_id, user_id, emoji)"
                " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                message_id,
                principal.user_id,
                emoji,
            )
        if status.endswith(" 0"):
            return  # nothing changed: nobody is told twice
        await self._tell(
            [
                Event(
                    channel=membership.channel,
                    kind="reaction",
                    id=str(message_id),
                    user_id=principal.user_id,
                    emoji=emoji,
                    added=not remove,
                )
            ]
        )
