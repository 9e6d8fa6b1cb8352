"""The message store of assistant conversations (aichat.messages, seq per conversation):
a user's send is checked (size, archived, model, provider, quota, the provider's request
limits), committed with its quota reservation in one transaction, published, and handed to
the reply streams; history, resume and soft delete read and write the same rows."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from kernel.conversation import Committed, Draft, Membership, MessageRef, Principal, Publish
from kernel.errors import BadRequest, Forbidden, NotFound, RateLimited, TooLarge
from kernel.logs import EventLog
from kernel.messages import Event, Message
from realms.aichat.chat.cancels import CancelRelay
from realms.aichat.chat.frames import COLUMNS, ChatMessage, chat_message, encode
from realms.aichat.chat.streams import Job, ReplyStreams
from realms.aichat.providers.base import ChatRequest, Turn, estimate_tokens
from realms.aichat.providers.limits import MemoryProviderLimiter, ProviderLimiter
from realms.aichat.providers.router import ProviderRouter, Route
from realms.aichat.settings import AichatSettings
from realms.aichat.usage import plan_of, reserve_message

# A user message is at most this many prompt tokens, estimated as ceil(UTF-8 bytes / 4)
# before any provider is called (docs/realm-aichat.md); larger ones are `too_large`.
MAX_MESSAGE_TOKENS = 1000
REFUSED = "assistant conversations keep plain text messages only"
log = EventLog("realms.aichat.store")

_CONVERSATION = """
SELECT id, user_id, model, system_prompt, is_archived, message_count
  FROM aichat.conversations WHERE id = $1 AND user_id = $2 FOR UPDATE
"""
_DUPLICATE = f"""
SELECT {COLUMNS} FROM aichat.messages m JOIN aichat.conversations c ON c.id = m.conversation_id
 WHERE m.conversation_id = $1 AND m.client_id = $2
"""
_INSERT_PROMPT = """
INSERT INTO aichat.messages AS m (conversation_id, role, content, token_count, client_id)
VALUES ($1, 'user', $2, $3, $4)
RETURNING m.id, m.seq, m.role, m.content, m.token_count, m.prompt_tokens, m.completion_tokens,
          m.model, m.client_id, m.reply_to, m.is_partial, m.finish_reason, m.is_deleted,
          m.created_at, m.updated_at, $5::uuid AS user_id
"""
_HISTORY_TURNS = """
SELECT role, content FROM (
    SELECT seq, role, content FROM aichat.messages
     WHERE conversation_id = $1 AND NOT is_deleted AND seq < $2
     ORDER BY seq DESC LIMIT $3) recent
 ORDER BY seq
"""


def conversation_id(channel: str) -> uuid.UUID:
    return uuid.UUID(channel.partition(":")[2])


class AssistantStore:
    """ChatStore and SequenceSource of `aichat.conv:` channels."""

    refusal = REFUSED

    def __init__(
        self,
        pool: asyncpg.Pool,
        publish: Publish,
        router: ProviderRouter,
        streams: ReplyStreams,
        relay: CancelRelay,
        settings: AichatSettings,
        limiter: ProviderLimiter | None = None,
    ) -> None:
        self._pool = pool
        self._limiter = limiter if limiter is not None else MemoryProviderLimiter()
        self._publish = publish
        self._router = router
        self.streams = streams
        self.relay = relay
        self._settings = settings
        # One queue per conversation: sends of a conversation are stored in the order they
        # arrived (a waiter queues before its first suspension, as ChatStore asks).
        self._order: dict[uuid.UUID, asyncio.Lock] = {}

    # --- sending --------------------------------------------------------------------------

    async def append(self, principal: Principal, membership: Membership, draft: Draft) -> Committed:
        conv = conversation_id(membership.channel)
        lock = self._order.setdefault(conv, asyncio.Lock())
        try:
            async with lock:
                return await self._append(principal, membership.channel, conv, draft)
        finally:
            if not lock.locked() and self._order.get(conv) is lock:
                del self._order[conv]

    async def _append(
        self, principal: Principal, channel: str, conv: uuid.UUID, draft: Draft
    ) -> Committed:
        metadata = getattr(draft, "metadata", None)
        extras = (draft.attachment, draft.attachment_url, draft.mentions, metadata)
        if draft.type != "text" or any(extras):
            raise BadRequest(REFUSED)
        if draft.reply_to is not None:
            raise BadRequest("messages of assistant conversations reply to nothing")
        tokens = estimate_tokens(draft.text)
        if tokens > MAX_MESSAGE_TOKENS:
            raise TooLarge(
                f"a message is at most {MAX_MESSAGE_TOKENS} tokens (about"
                f" {MAX_MESSAGE_TOKENS * 4} bytes of UTF-8); this one is about {tokens}"
            )
        user_id = uuid.UUID(principal.user_id)
        if draft.client_id is not None:
            duplicate = await self._pool.fetchrow(_DUPLICATE, conv, draft.client_id)
            if duplicate is not None:
                return self._committed(chat_message(channel, duplicate), duplicate=True)
        try:
            row, job = await self._store_prompt(channel, conv, user_id, draft, tokens)
        except asyncpg.UniqueViolationError:  # the same client_id raced in: it is stored
            duplicate = await self._pool.fetchrow(_DUPLICATE, conv, draft.client_id)
            if duplicate is None:
                raise
            return self._committed(chat_message(channel, duplicate), duplicate=True)
        message = chat_message(channel, row)
        committed = self._committed(message, duplicate=False)
        await self._publish([(channel, message.seq, committed.payload)])
        try:  # so that a cancel sent to another gateway process reaches this reply
            await self.relay.ready()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.error("cancel_relay_unavailable", channel=channel, error=repr(exc))
        self.streams.start(job)
        return committed

    async def _store_prompt(
        self, channel: str, conv: uuid.UUID, user_id: uuid.UUID, draft: Draft, tokens: int
    ) -> tuple[asyncpg.Record, Job]:
        taken: tuple[str, str] | None = None  # (provider, token) of a request slot taken
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                conversation = await conn.fetchrow(_CONVERSATION, conv, user_id)
                if conversation is None:
                    raise NotFound(f"conversation {conv} does not exist")
                if conversation["is_archived"]:
                    raise Forbidden("this conversation is archived; unarchive it to continue")
                route = await self._router.route(conn, conversation["model"])
                plan = await plan_of(conn, user_id)
                most = plan.max_messages_per_conversation
                if most is not None and conversation["message_count"] + 2 > most:
                    raise Forbidden(
                        f"a conversation of the {plan.name} plan holds at most {most} messages;"
                        " start a new one"
                    )
                await reserve_message(conn, user_id, plan)
                taken = await self._take_request(route)
                row = await conn.fetchrow(
                    _INSERT_PROMPT, conv, draft.text, tokens, draft.client_id, user_id
                )
                assert row is not None
                await conn.execute(
                    "UPDATE aichat.conversations SET message_count = message_count + 1"
                    " WHERE id = $1",
                    conv,
                )
                history = await conn.fetch(
                    _HISTORY_TURNS, conv, row["seq"], self._settings.history_messages
                )
        except BaseException:
            if taken is not None:  # nothing was stored: the provider will not be asked
                await self._limiter.release(*taken)
            raise
        system = conversation["system_prompt"]
        turns = [Turn("system", system)] if system else []
        turns += [Turn(r["role"], r["content"]) for r in history]
        turns.append(Turn("user", draft.text))
        job = Job(
            channel=channel,
            user_id=user_id,
            conversation_id=conv,
            prompt_id=row["id"],
            reply_id=uuid.uuid4(),
            route=route,
            request=ChatRequest(
                model=route.model_id,
                turns=turns,
                max_tokens=self._settings.max_completion_tokens,
            ),
        )
        return row, job

    async def _take_request(self, route: Route) -> tuple[str, str] | None:
        """Count one request to the route's provider against its limits (across gateway
        processes), or raise RateLimited with the wait: the send is then refused and nothing
        of it is stored. The offline provider has no limits."""
        if route.local or route.limits.unlimited:
            return None
        name = route.provider_name
        verdict = await self._limiter.acquire(name, route.limits)
        if not verdict.allowed:
            if verdict.which == "day":
                limit = f"{route.limits.per_day} requests per day (UTC)"
            else:
                limit = f"{route.limits.per_minute} requests per minute"
            raise RateLimited(
                f"the {name} provider's limit of {limit} is reached; nothing was stored:"
                f" send again in {verdict.retry_after_ms / 1000:.1f} s",
                retry_after_ms=verdict.retry_after_ms,
            )
        return name, verdict.token

    @staticmethod
    def _committed(message: ChatMessage, *, duplicate: bool) -> Committed:
        return Committed(
            id=message.id,
            seq=message.seq,
            created_at=message.created_at,
            duplicate=duplicate,
            payload=encode(message),
        )

    # --- stored messages ------------------------------------------------------------------

    async def delete(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        reason: str | None,
    ) -> Message:
        """Soft delete (is_deleted, deleted_at) of a message of the caller's conversation;
        the conversation's sockets get the `deleted` event."""
        channel = membership.channel
        row = await self._pool.fetchrow(
            f"""WITH gone AS (
                    UPDATE aichat.messages SET is_deleted = true,
                           deleted_at = coalesce(deleted_at, CURRENT_TIMESTAMP)
                     WHERE id = $1 AND conversation_id = $2 RETURNING *)
                SELECT {COLUMNS} FROM gone m JOIN aichat.conversations c
                    ON c.id = m.conversation_id""",
            message_id,
            conversation_id(channel),
        )
        if row is None:
            raise NotFound(f"message {message_id} is not in this conversation")
        message = chat_message(channel, row)
        event = Event(channel=channel, kind="deleted", id=message.id, seq=message.seq)
        await self._publish([(channel, 0, encode(event))])
        return message

    async def edit(
        self, principal: Principal, membership: Membership, message_id: MessageRef, text: str
    ) -> Message:
        raise Forbidden("messages of assistant conversations cannot be edited")

    async def pin(
        self, principal: Principal, membership: Membership, message_id: MessageRef, pinned: bool
    ) -> Message:
        raise Forbidden("messages of assistant conversations cannot be pinned")

    async def flag(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        reason: str,
        description: str | None,
    ) -> None:
        raise Forbidden("messages of assistant conversations cannot be flagged")

    async def mark_read(self, principal: Principal, membership: Membership, seq: int) -> int:
        return seq  # one reader, who sees every message as it streams: nothing is unread

    async def history(
        self, membership: Membership, before: int | None, after: int | None, limit: int
    ) -> list[Message]:
        channel = membership.channel
        conv = conversation_id(channel)
        if after is not None:
            rows = await self._pool.fetch(
                f"SELECT {COLUMNS} FROM aichat.messages m JOIN aichat.conversations c"
                " ON c.id = m.conversation_id WHERE m.conversation_id = $1 AND m.seq > $2"
                " ORDER BY m.seq LIMIT $3",
                conv,
                after,
                limit,
            )
        else:
            rows = await self._pool.fetch(
                f"SELECT * FROM (SELECT {COLUMNS} FROM aichat.messages m"
                " JOIN aichat.conversations c ON c.id = m.conversation_id"
                " WHERE m.conversation_id = $1 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3) p"
                " ORDER BY seq",
                conv,
                before if before is not None else 2**62,
                limit,
            )
        return [chat_message(channel, r) for r in rows]

    # --- SequenceSource -------------------------------------------------------------------

    async def last_seq(self, channel: str) -> int:
        value = await self._pool.fetchval(
            "SELECT coalesce(max(seq), 0) FROM aichat.messages WHERE conversation_id = $1",
            conversation_id(channel),
        )
        return int(value)

    async def after(self, channel: str, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        rows = await self._pool.fetch(
            f"SELECT {COLUMNS} FROM aichat.messages m JOIN aichat.conversations c"
            " ON c.id = m.conversation_id WHERE m.conversation_id = $1 AND m.seq > $2"
            " ORDER BY m.seq LIMIT $3",
            conversation_id(channel),
            after_seq,
            limit,
        )
        return [(r["seq"], encode(chat_message(channel, r))) for r in rows]

    async def drain(self) -> None:
        return None  # a send answers once its message is committed: nothing is left waiting

    async def close(self) -> None:
        await self.relay.close()
        await self.streams.close()
        await self._router.close()
        await self._limiter.close()
