"""`market.chat:<chats.id>`: the seed's chats over the socket. Participants join (support
staff join any support chat and become its participant); sends are group-committed into
market.messages (gap-free seq, idempotent client_id, replies within the chat) with each type's
payload checked; authors edit (is_edited) and delete (is_deleted; chat admins too), told to
the chat as `edited` / `deleted`; reads write message_reads and the read position; every
participant's unread count is pushed to their `market.user:<id>` stream after each batch and
each read. Messages are named by their BIGINT ids."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import msgspec

from kernel.conversation import (
    Committed,
    Draft,
    Membership,
    MessageRef,
    Principal,
    Publish,
)
from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.groupcommit import GroupCommit
from kernel.logs import EventLog
from kernel.messages import (
    ConversationSummary,
    Event,
    MemberState,
    Message,
    edited_event,
    json_encoder,
)
from realms.market import chats, events
from realms.market.chatmessages import (
    COLUMNS,
    MarketMessage,
    Prepared,
    from_row,
    prepare,
    product_cards,
    product_id_of,
)

log = EventLog("market.chat")
MAX_ID = 2**63 - 1
NO_REACTIONS = "market chats keep no reactions (seed 004 has no table for them)"
# The constraints that refuse a reply to a message of another chat (or to none at all).
BAD_REPLY = ("messages_reply_in_same_chat", "messages_reply_to_id_fkey")


class _Pending(msgspec.Struct, frozen=True):
    channel: str
    chat_id: int
    sender: int
    role: str
    draft: Draft
    prepared: Prepared


def chat_id_of(channel: str) -> int:
    return int(channel.partition(":")[2])


def _user(raw: str) -> int:
    if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_ID:
        return int(raw)
    raise BadRequest(f"{raw!r} is not a market user id")


class ChatNamespace:
    """Namespace, ChatStore, SequenceSource and ConversationAdmin of market chats."""

    name = "market.chat"
    realm = "market"
    auto_join = False
    tracks_presence = True
    message_ids = "bigint"  # market.messages.id

    def __init__(
        self, pool: asyncpg.Pool, publish: Publish, on_batch: Callable[[int], None] | None
    ) -> None:
        self._pool = pool
        self._publish = publish
        self._appends: GroupCommit[_Pending, Committed | Exception] = GroupCommit(
            self._flush, on_batch=on_batch, key=lambda p: p.channel
        )

    # --- Namespace ----------------------------------------------------------------------------

    def canonical_key(self, key: str) -> str:
        if not key.isascii() or not key.isdigit() or not 0 < int(key) <= MAX_ID:
            raise BadRequest(f"chat id {key!r} is not a positive integer")
        return str(int(key))

    async def authorize(self, principal: Principal, channel: str, key: str) -> Membership:
        admission = await chats.admit(self._pool, int(key), int(principal.user_id))
        return Membership(channel=channel, role=admission.role)

    def sequence_source(self) -> ChatNamespace:
        return self

    def chat(self) -> ChatNamespace:
        return self

    def conversations(self) -> ChatNamespace:
        return self

    async def members_changed(self, conn: asyncpg.Connection, channel: str, count: int) -> None:
        return None

    def lock_sql(self) -> str | None:
        return None

    def affected_by(self, notice: dict[str, str], membership: Membership) -> bool:
        return notice.get("kind") == "market_chat" and notice.get("chat_id") == str(
            chat_id_of(membership.channel)
        )

    # --- sending ------------------------------------------------------------------------------

    async def append(self, principal: Principal, membership: Membership, draft: Draft) -> Committed:
        prepared = prepare(draft)  # refused before it takes a place in the channel
        result = await self._appends.submit(
            _Pending(
                membership.channel,
                chat_id_of(membership.channel),
                int(principal.user_id),
                membership.role,
                draft,
                prepared,
            )
        )
        assert isinstance(result, Committed)  # refusals were raised by submit()
        return result

    async def _flush(self, batch: list[_Pending]) -> list[Committed | Exception]:
        wanted = [p.prepared.product_id for p in batch if p.prepared.product_id is not None]
        cards = await product_cards(self._pool, wanted)
        results: list[Committed | Exception | None] = [None] * len(batch)
        stored: list[int] = []
        for i, pending in enumerate(batch):
            product = pending.prepared.product_id
            if product is not None and product not in cards:
                results[i] = NotFound(f"unknown product {product} in a product message")
            else:
                stored.append(i)
        rows = await self._pool.fetch(
            "SELECT * FROM market.append_chat_messages("
            "$1, $2, $3::market.message_type_enum[], $4, $5, $6::jsonb[], $7, $8)",
            [batch[i].chat_id for i in stored],
            [batch[i].sender for i in stored],
            [batch[i].prepared.type for i in stored],
            [batch[i].prepared.content for i in stored],
            [batch[i].prepared.media_url for i in stored],
            [batch[i].prepared.metadata for i in stored],
            [batch[i].draft.client_id for i in stored],
            [batch[i].prepared.reply_to for i in stored],
        )
        fresh: list[tuple[str, int, bytes]] = []
        touched: dict[int, str] = {}
        senders: dict[int, set[int]] = {}
        texts: dict[int, str] = {}
        claims: list[tuple[int, int]] = []
        for i, row in zip(stored, rows, strict=True):
            pending = batch[i]
            status = row["r_status"]
            if status == "not_member":
                results[i] = Forbidden("only the chat's active participants may send to it")
                continue
            if status == "refused" and row["r_detail"] in BAD_REPLY:
                results[i] = BadRequest("reply_to is not a message of this chat")
                continue
            if status == "refused":
                results[i] = BadRequest(f"refused by storage: {row['r_detail']}")
                continue
            prepared = pending.prepared
            product = prepared.product_id
            message = MarketMessage(
                channel=pending.channel,
                seq=row["r_seq"],
                id=str(row["r_id"]),
                user_id=str(pending.sender),
                text=prepared.content or "",
                type=prepared.type,
                created_at=row["r_created_at"].isoformat(),
                reply_to=str(prepared.reply_to) if prepared.reply_to is not None else None,
                client_id=pending.draft.client_id,
                media_url=prepared.media_url,
                metadata=prepared.metadata,
                product=cards.get(product) if product is not None else None,
            )
            payload = json_encoder.encode(message)
            results[i] = Committed(
                id=message.id,
                seq=message.seq,
                created_at=message.created_at,
                duplicate=status == "duplicate",
                payload=payload,
            )
            if status == "ok":
                fresh.append((pending.channel, message.seq, payload))
                touched[pending.chat_id] = pending.channel
                senders.setdefault(pending.chat_id, set()).add(pending.sender)
                texts[pending.chat_id] = prepared.content or f"[{prepared.type}]"
                if pending.role == "staff":
                    claims.append((pending.chat_id, pending.sender))
        if fresh:
            try:
                await self._publish(fresh)
                for chat_id, staff in claims:
                    await chats.claim(self._pool, chat_id, staff)
                await self._tell(await self._unread_events(touched, senders, texts))
            except Exception as exc:  # committed: clients catch up with `since` and a list
                log.error("publish_failed", messages=len(fresh), error=repr(exc))
        return [r if r is not None else BadRequest("not sent") for r in results]

    async def _unread_events(
        self, touched: dict[int, str], senders: dict[int, set[int]], texts: dict[int, str]
    ) -> list[Event]:
        """Every participant's unread count of each chat that got messages, for their stream.
        Participants with no socket in the chat, and those who muted it, are notified
        (category message): muted ones in-app only, never by push or e-mail."""
        rows = await self._pool.fetch(
            f"SELECT p.chat_id, p.user_id, {chats.UNREAD} AS unread, p.is_muted,"
            "       p.last_read_seq,"
            "       (SELECT max(m.seq) FROM market.messages m WHERE m.chat_id = p.chat_id) AS last,"
            "       EXISTS (SELECT 1 FROM gateway.live_members lm JOIN gateway.nodes nd"
            "                USING (node_id)"
            "                WHERE lm.channel = 'market.chat:' || p.chat_id"
            "                  AND lm.user_id = p.user_id::text"
            "                  AND nd.heartbeat_at > now() - interval '30 seconds') AS present"
            "  FROM market.chat_participants p WHERE p.chat_id = ANY ($1::bigint[])",
            list(touched),
        )
        absent: dict[tuple[int, int, bool], list[int]] = {}
        for r in rows:
            if r["user_id"] not in senders[r["chat_id"]] and (r["is_muted"] or not r["present"]):
                key = (r["chat_id"], r["last_read_seq"], bool(r["is_muted"]))
                absent.setdefault(key, []).append(r["user_id"])
        if absent:
            await self._tell_absent(absent, texts)
        return [
            Event(
                channel=chats.user_stream(r["user_id"]),
                kind="unread",
                conversation=touched[r["chat_id"]],
                unread=r["unread"],
                seq=r["last"],
            )
            for r in rows
        ]

    async def _tell_absent(
        self, absent: dict[tuple[int, int, bool], list[int]], texts: dict[int, str]
    ) -> None:
        """One notification per participant and unread streak (the event key holds the read
        position, so later messages of the streak collapse into it)."""
        async with self._pool.acquire() as conn:
            for (chat_id, last_read, muted), users in absent.items():
                await events.tell(
                    conn,
                    event_key=f"chat:{chat_id}:after:{last_read}",
                    users=users,
                    kind="message",
                    title="New message",
                    message=texts[chat_id][:140],
                    action_url=f"/chats/{chat_id}",
                    push=not muted,
                    email=not muted,
                    sms=False,
                )

    async def _tell(self, events: list[Event]) -> None:
        if events:
            await self._publish([(e.channel, 0, json_encoder.encode(e)) for e in events])

    async def drain(self) -> None:
        await self._appends.drain()

    async def close(self) -> None:
        await self._appends.close()

    # --- reading ------------------------------------------------------------------------------

    async def _messages(self, channel: str, where: str, *args: object) -> list[MarketMessage]:
        rows = await self._pool.fetch(
            f"SELECT {COLUMNS} FROM market.messages m WHERE m.chat_id = $1 AND {where}",
            chat_id_of(channel),
            *args,
        )
        return await self._render(channel, rows)

    async def _render(self, channel: str, rows: list[asyncpg.Record]) -> list[MarketMessage]:
        """Rows (of COLUMNS) as `msg` frames, product messages with their product's card."""
        ids = [
            pid
            for r in rows
            if r["type"] == "product" and (pid := product_id_of(r["metadata"])) is not None
        ]
        cards = await product_cards(self._pool, ids)
        return [from_row(channel, r, cards) for r in rows]

    async def last_seq(self, channel: str) -> int:
        value = await self._pool.fetchval(
            "SELECT coalesce(max(seq), 0) FROM market.messages WHERE chat_id = $1",
            chat_id_of(channel),
        )
        return int(value)

    async def after(self, channel: str, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        found = await self._messages(
            channel, "m.seq > $2 ORDER BY m.seq LIMIT $3", after_seq, limit
        )
        return [(m.seq, json_encoder.encode(m)) for m in found]

    async def history(
        self, membership: Membership, before: int | None, after: int | None, limit: int
    ) -> list[Message]:
        channel = membership.channel
        if before is not None and after is not None:
            raise BadRequest("give `before` or `after`, not both")
        if after is not None:
            return list(
                await self._messages(channel, "m.seq > $2 ORDER BY m.seq LIMIT $3", after, limit)
            )
        found = await self._messages(
            channel, "m.seq < $2 ORDER BY m.seq DESC LIMIT $3", before or 2**62, limit
        )
        found.reverse()
        return list(found)

    async def mark_read(self, principal: Principal, membership: Membership, seq: int) -> int:
        user = int(principal.user_id)
        async with self._pool.acquire() as conn:
            state = await chats.mark_read(conn, chat_id_of(membership.channel), user, seq)
        await self._tell(
            [
                Event(
                    channel=membership.channel, kind="read", user_id=str(user), seq=state.read_seq
                ),
                Event(
                    channel=chats.user_stream(user),
                    kind="unread",
                    conversation=membership.channel,
                    unread=state.unread,
                    seq=state.last_seq,
                ),
            ]
        )
        return state.read_seq

    # --- changes to stored messages ---------------------------------------------------------

    async def _change(
        self, membership: Membership, refusal: str, sql: str, *args: object
    ) -> MarketMessage:
        """Run `sql` (an UPDATE of market.messages m: $1 the message, $2 the chat, returning
        COLUMNS). When it changes no row: NotFound (not in this chat), Conflict (deleted), or
        else Forbidden(`refusal`)."""
        channel = membership.channel
        try:
            row = await self._pool.fetchrow(sql, *args)
        except asyncpg.IntegrityConstraintViolationError as exc:  # e.g. a blank text message
            raise BadRequest(f"refused by storage: {exc.constraint_name or exc}") from None
        if row is None:
            state = await self._pool.fetchval(
                "SELECT is_deleted FROM market.messages WHERE id = $1 AND chat_id = $2",
                args[0],
                args[1],
            )
            if state is None:
                raise NotFound(f"message {args[0]} is not in {channel}")
            if state:
                raise Conflict("message is deleted")
            raise Forbidden(refusal)
        return (await self._render(channel, [row]))[0]

    async def edit(
        self, principal: Principal, membership: Membership, message_id: MessageRef, text: str
    ) -> Message:
        """The author replaces the text (content) of their message: is_edited, and updated_at
        (the schema's trigger) as its edited_at; every member hears `edited`."""
        user = int(principal.user_id)
        message = await self._change(
            membership,
            "only the author may edit a message",
            "UPDATE market.messages m SET content = $4, is_edited = true"
            " WHERE m.id = $1 AND m.chat_id = $2 AND m.sender_id = $3 AND NOT m.is_deleted"
            f" RETURNING {COLUMNS}",
            message_id,
            chat_id_of(membership.channel),
            user,
            text,
        )
        await self._tell([edited_event(message, str(user))])
        return message

    async def delete(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        reason: str | None,
    ) -> Message:
        """Soft delete (the seed's is_deleted; the row and its seq stay, reads show it blank)
        by its author or an admin of the chat (a group's admins, support staff); every member
        hears `deleted` (with `reason`, which is not stored: the seed has no column for it)."""
        user = int(principal.user_id)
        message = await self._change(
            membership,
            "only the author or an admin of the chat may delete a message",
            "UPDATE market.messages m SET is_deleted = true"
            " WHERE m.id = $1 AND m.chat_id = $2 AND NOT m.is_deleted"
            "   AND EXISTS (SELECT 1 FROM market.chat_participants p"
            "                WHERE p.chat_id = m.chat_id AND p.user_id = $3"
            "                  AND (m.sender_id = $3 OR p.role = 'admin'))"
            f" RETURNING {COLUMNS}",
            message_id,
            chat_id_of(membership.channel),
            user,
        )
        await self._tell(
            [
                Event(
                    channel=membership.channel,
                    kind="deleted",
                    id=message.id,
                    by=str(user),
                    reason=reason,
                    seq=message.seq,
                )
            ]
        )
        return message

    async def pin(
        self, principal: Principal, membership: Membership, message_id: MessageRef, pinned: bool
    ) -> Message:
        raise Forbidden("market chats keep no pins")

    async def flag(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        reason: str,
        description: str | None,
    ) -> None:
        raise Forbidden("market chats are not flagged")

    async def react(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        emoji: str,
        remove: bool,
    ) -> None:
        raise Forbidden(NO_REACTIONS)

    # --- ConversationAdmin --------------------------------------------------------------------

    async def create(
        self,
        principal: Principal,
        kind: str,
        peer: str | None,
        members: list[str] | None,
        title: str | None,
    ) -> tuple[str, bool]:
        me = int(principal.user_id)
        async with self._pool.acquire() as conn:
            if kind == "direct":
                if peer is None:
                    raise BadRequest("a direct chat takes `with` (one user)")
                chat_id, created = await chats.open_direct(conn, me, _user(peer))
                return chats.chat_channel(chat_id), created
            if kind == "group":
                chat_id = await chats.open_group(
                    conn, me, [_user(m) for m in members or ()], title or ""
                )
            else:
                chat_id = await chats.open_support(conn, me, title)
        return chats.chat_channel(chat_id), True

    async def add_members(
        self, principal: Principal, membership: Membership, users: list[str]
    ) -> list[str]:
        async with self._pool.acquire() as conn:
            added = await chats.add_members(
                conn,
                chat_id_of(membership.channel),
                int(principal.user_id),
                [_user(u) for u in users],
            )
        return [str(u) for u in added]

    async def remove_member(
        self, principal: Principal, membership: Membership, user_id: str
    ) -> None:
        async with self._pool.acquire() as conn:
            await chats.remove_member(
                conn, chat_id_of(membership.channel), int(principal.user_id), _user(user_id)
            )

    async def list_for(self, principal: Principal, kind: str | None) -> list[ConversationSummary]:
        me = int(principal.user_id)
        staff = kind == "support" and await chats.is_support_staff(self._pool, me)
        rows = await self._pool.fetch(chats.LIST_SQL, me, kind, staff, None, None, 200)
        return [
            ConversationSummary(
                channel=chats.chat_channel(r["id"]),
                kind=r["type"],
                role=r["role"],
                last_seq=r["last_seq"],
                unread=r["unread"],
                title=r["name"],
                last_message_at=r["last_message_at"].isoformat() if r["last_message_at"] else None,
                muted=r["muted"],
            )
            for r in rows
        ]

    async def members(self, membership: Membership) -> list[MemberState]:
        found = await chats.participants(self._pool, chat_id_of(membership.channel))
        return [
            MemberState(user_id=str(p.user_id), role=p.role, last_read_seq=p.last_read_seq)
            for p in found
        ]

    async def mute(self, principal: Principal, membership: Membership, muted: bool) -> None:
        await chats.set_muted(
            self._pool, chat_id_of(membership.channel), int(principal.user_id), muted
        )
