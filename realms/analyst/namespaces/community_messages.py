"""Messages of community channels in analyst.chat_messages: append (group commit), history,
edit, delete, pin, flag and read positions, each authorised by the caller's membership."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import msgspec

from kernel.conversation import Committed, Draft, Membership, MessageRef, Principal, Publish
from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.groupcommit import GroupCommit
from kernel.logs import EventLog
from kernel.messages import Event, Message, edited_event, json_encoder

log = EventLog("gateway.community")

_COLUMNS = """id, seq, user_id, message, message_type, created_at, reply_to_message_id,
              client_id, attachment_url, is_deleted, is_pinned, edited_at"""


# analyst.chat_messages.message_type's CHECK (seed 000)
ROOM_MESSAGE_TYPES = ("text", "image", "file", "system")


class _Pending(msgspec.Struct, frozen=True):
    channel: str
    channel_id: uuid.UUID
    user_id: str
    text: str
    type: str
    reply_to: MessageRef | None
    client_id: str | None
    attachment_url: str | None


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def to_message(channel: str, row: asyncpg.Record) -> Message:
    deleted = row["is_deleted"]
    return Message(
        channel=channel,
        seq=row["seq"],
        id=str(row["id"]),
        user_id=str(row["user_id"]) if row["user_id"] else "",
        text="" if deleted else row["message"],
        type=row["message_type"],
        created_at=row["created_at"].isoformat(),
        reply_to=str(row["reply_to_message_id"]) if row["reply_to_message_id"] else None,
        client_id=row["client_id"],
        attachment_url=None if deleted else row["attachment_url"],
        deleted=deleted,
        pinned=row["is_pinned"],
        edited_at=_iso(row["edited_at"]),
    )


def _key(channel: str) -> uuid.UUID:
    return uuid.UUID(channel.partition(":")[2])


class CommunityMessages:
    """The ChatStore and SequenceSource of `community:` channels."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        publish: Publish,
        *,
        max_batch: int = 256,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._pool = pool
        self._publish = publish
        self._appends: GroupCommit[_Pending, Committed | Exception] = GroupCommit(
            self._flush, max_batch=max_batch, on_batch=on_batch, key=lambda p: p.channel
        )

    async def close(self) -> None:
        await self._appends.close()

    async def drain(self) -> None:
        await self._appends.drain()

    # --- append (group commit) --------------------------------------------------------------

    async def append(self, principal: Principal, membership: Membership, draft: Draft) -> Committed:
        if draft.type not in ROOM_MESSAGE_TYPES:
            raise BadRequest(f"community channels keep {', '.join(ROOM_MESSAGE_TYPES)} messages")
        if draft.attachment is not None or draft.mentions:
            raise BadRequest(
                "community channels take `attachment_url`, not attachments or mentions"
            )
        result = await self._appends.submit(
            _Pending(
                membership.channel,
                _key(membership.channel),
                principal.user_id,
                draft.text,
                draft.type,
                draft.reply_to,
                draft.client_id,
                draft.attachment_url,
            )
        )
        assert isinstance(result, Committed)  # refusals were raised by submit()
        return result

    async def _flush(self, batch: list[_Pending]) -> list[Committed | Exception]:
        rows = await self._pool.fetch(
            "SELECT * FROM gateway.append_chat_messages($1, $2, $3, $4, $5, $6, $7)",
            [p.channel_id for p in batch],
            [p.user_id for p in batch],
            [p.text for p in batch],
            [p.type for p in batch],
            [p.reply_to for p in batch],
            [p.client_id for p in batch],
            [p.attachment_url for p in batch],
        )
        results: list[Committed | Exception] = []
        first_in_batch: dict[tuple[str, str, str], Committed] = {}
        fresh: list[tuple[str, int, bytes]] = []
        for pending, row in zip(batch, rows, strict=True):
            status = row["status"]
            if status == "closed":
                results.append(Forbidden("channel is closed"))
                continue
            if status == "bad_reply":
                results.append(BadRequest("reply_to is not a message of this channel"))
                continue
            dedup_key = (pending.channel, pending.user_id, pending.client_id or "")
            if status == "duplicate" and row["id"] is None:
                original = first_in_batch.get(dedup_key)
                results.append(
                    msgspec.structs.replace(original, duplicate=True)
                    if original
                    else Conflict("duplicate client_id")
                )
                continue
            message = Message(
                channel=pending.channel,
                seq=row["seq"],
                id=str(row["id"]),
                user_id=pending.user_id,
                text=pending.text,
                type=pending.type,
                created_at=row["created_at"].isoformat(),
                reply_to=str(pending.reply_to) if pending.reply_to else None,
                client_id=pending.client_id,
                attachment_url=pending.attachment_url,
            )
            payload = json_encoder.encode(message)
            committed = Committed(
                id=message.id,
                seq=message.seq,
                created_at=message.created_at,
                duplicate=status == "duplicate",
                payload=payload,
            )
            if status == "ok":
                fresh.append((pending.channel, message.seq, payload))
                if pending.client_id:
                    first_in_batch[dedup_key] = committed
            results.append(committed)
        if fresh:
            try:
                await self._publish(fresh)
            except Exception as exc:
                log.error("publish_failed", messages=len(fresh), error=repr(exc))
        return results

    # --- reads --------------------------------------------------------------------------------

    async def last_seq(self, channel: str) -> int:
        value = await self._pool.fetchval(
            "SELECT coalesce(max(seq), 0) FROM analyst.chat_messages WHERE channel_id = $1",
            _key(channel),
        )
        return int(value)

    async def after(self, channel: str, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM analyst.chat_messages"
            " WHERE channel_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            _key(channel),
            after_seq,
            limit,
        )
        return [(r["seq"], json_encoder.encode(to_message(channel, r))) for r in rows]

    async def history(
        self, membership: Membership, before: int | None, after: int | None, limit: int
    ) -> list[Message]:
        channel = membership.channel
        if before is not None and after is not None:
            raise BadRequest("give `before` or `after`, not both")
        if after is not None:
            sql = (
                f"SELECT {_COLUMNS} FROM analyst.chat_messages"
                " WHERE channel_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            )
            rows = await self._pool.fetch(sql, _key(channel), after, limit)
        else:
            sql = (
                f"SELECT {_COLUMNS} FROM analyst.chat_messages"
                " WHERE channel_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
            )
            rows = await self._pool.fetch(
                sql, _key(channel), 2**62 if before is None else before, limit
            )
            rows = list(reversed(rows))
        return [to_message(channel, r) for r in rows]

    # --- changes to existing messages -----------------------------------------------------------

    async def _explain_miss(self, channel: str, message_id: MessageRef) -> asyncpg.Record:
        row = await self._pool.fetchrow(
            "SELECT user_id, is_deleted FROM analyst.chat_messages"
            " WHERE id = $1 AND channel_id = $2",
            message_id,
            _key(channel),
        )
        if row is None:
            raise NotFound(f"message {message_id} is not in {channel}")
        if row["is_deleted"]:
            raise Conflict("message is deleted")
        return row

    async def _announce(self, event: Event) -> None:
        await self._publish([(event.channel, 0, json_encoder.encode(event))])

    async def edit(
        self, principal: Principal, membership: Membership, message_id: MessageRef, text: str
    ) -> Message:
        channel = membership.channel
        row = await self._pool.fetchrow(
            f"UPDATE analyst.chat_messages SET message = $4, edited_at = now()"
            f" WHERE id = $1 AND channel_id = $2 AND user_id = $3 AND NOT is_deleted"
            f" RETURNING {_COLUMNS}",
            message_id,
            _key(channel),
            principal.user_id,
            text,
        )
        if row is None:
            await self._explain_miss(channel, message_id)
            raise Forbidden("only the author may edit a message")
        message = to_message(channel, row)
        await self._announce(edited_event(message, principal.user_id))
        return message

    async def delete(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        reason: str | None,
    ) -> Message:
        channel = membership.channel
        row = await self._pool.fetchrow(
            f"UPDATE analyst.chat_messages SET is_deleted = true, deleted_by = $3,"
            f" deleted_at = now(), deletion_reason = $4"
            f" WHERE id = $1 AND channel_id = $2 AND NOT is_deleted AND (user_id = $3 OR $5)"
            f" RETURNING {_COLUMNS}",
            message_id,
            _key(channel),
            principal.user_id,
            reason,
            membership.privileged,
        )
        if row is None:
            await self._explain_miss(channel, message_id)
            raise Forbidden("only the author, the channel's analyst or an admin may delete")
        # The `deleted` event comes from the table's trigger (sql 0017), as it does for a
        # deletion by any other path (a moderator's REST call): one way, every gateway.
        return to_message(channel, row)

    async def pin(
        self, principal: Principal, membership: Membership, message_id: MessageRef, pinned: bool
    ) -> Message:
        channel = membership.channel
        if not membership.privileged:
            raise Forbidden("only the channel's analyst or an admin may pin")
        row = await self._pool.fetchrow(
            f"UPDATE analyst.chat_messages SET is_pinned = $3,"
            f" pinned_by = CASE WHEN $3 THEN $4::uuid END,"
            f" pinned_at = CASE WHEN $3 THEN now() END"
            f" WHERE id = $1 AND channel_id = $2 AND NOT is_deleted RETURNING {_COLUMNS}",
            message_id,
            _key(channel),
            pinned,
            principal.user_id,
        )
        if row is None:
            await self._explain_miss(channel, message_id)
            raise NotFound(f"message {message_id} is not in {channel}")
        message = to_message(channel, row)
        await self._announce(
            Event(
                channel=channel,
                kind="pinned" if pinned else "unpinned",
                id=message.id,
                by=principal.user_id,
                seq=message.seq,
            )
        )
        return message

    async def flag(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        reason: str,
        description: str | None,
    ) -> None:
        channel = membership.channel
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE analyst.chat_messages SET is_flagged = true, flagged_by = $3,"
                " flagged_reason = $4 WHERE id = $1 AND channel_id = $2 AND NOT is_deleted"
                " AND user_id IS DISTINCT FROM $3 RETURNING id",
                message_id,
                _key(channel),
                principal.user_id,
                reason,
            )
            if row is None:
                await self._explain_miss(channel, message_id)
                raise Forbidden("you cannot flag your own message")
            await conn.execute(
                "INSERT INTO analyst.moderation_flags (reported_by, flagged_entity_type,"
                " flagged_entity_id, flag_reason, flag_description)"
                " SELECT $1, 'chat_message', $2, $3, $4 WHERE NOT EXISTS ("
                "  SELECT 1 FROM analyst.moderation_flags WHERE reported_by = $1"
                "  AND flagged_entity_type = 'chat_message' AND flagged_entity_id = $2)",
                principal.user_id,
                message_id,
                reason,
                description,
            )

    async def mark_read(self, principal: Principal, membership: Membership, seq: int) -> int:
        channel = membership.channel
        last = await self.last_seq(channel)
        if seq > last:
            raise BadRequest(f"seq {seq} is beyond the channel's last message ({last})")
        stored = await self._pool.fetchval(
            "INSERT INTO gateway.channel_reads (channel, user_id, last_read_seq)"
            " VALUES ($1, $2, $3) ON CONFLICT (channel, user_id) DO UPDATE"
            " SET last_read_seq = greatest(channel_reads.last_read_seq, EXCLUDED.last_read_seq),"
            "     updated_at = now() RETURNING last_read_seq",
            channel,
            principal.user_id,
            seq,
        )
        await self._announce(
            Event(channel=channel, kind="read", user_id=principal.user_id, seq=int(stored))
        )
        return int(stored)
