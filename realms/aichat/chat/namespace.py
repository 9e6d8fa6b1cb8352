"""`aichat.conv:<conversations.id>`: the owner of an assistant conversation joins it (on any
number of sockets); sends are stored by AssistantStore (within the providers' request limits,
providers/limits.py) and answered by a streamed reply; `cancel` stops a reply wherever it
streams (chat/cancels.py)."""

from __future__ import annotations

import uuid

import asyncpg

from kernel.config import load_settings
from kernel.conversation import (
    ChatStore,
    Membership,
    NamespaceContext,
    Principal,
    SequenceSource,
    parse_uuid,
)
from kernel.errors import Forbidden, NotFound
from realms.aichat.chat.cancels import CancelRelay
from realms.aichat.chat.store import AssistantStore
from realms.aichat.chat.streams import ReplyStreams
from realms.aichat.providers.limits import DeferredLimiter, ProviderLimiter, open_limiter
from realms.aichat.providers.router import ProviderRouter
from realms.aichat.settings import AichatSettings, load_aichat_settings

NAME = "aichat.conv"


def channel_of(conversation: uuid.UUID | str) -> str:
    return f"{NAME}:{conversation}"


class AssistantNamespace:
    name = NAME
    realm = "aichat"
    auto_join = False
    tracks_presence = False

    def __init__(self, pool: asyncpg.Pool, store: AssistantStore) -> None:
        self._pool = pool
        self._store = store

    def canonical_key(self, key: str) -> str:
        return str(parse_uuid(key, "conversation id"))

    async def authorize(self, principal: Principal, channel: str, key: str) -> Membership:
        owner = await self._pool.fetchval(
            "SELECT user_id FROM aichat.conversations WHERE id = $1", uuid.UUID(key)
        )
        if owner is None:
            raise NotFound(f"conversation {key} does not exist")
        if str(owner) != principal.user_id:
            raise Forbidden("only the conversation's owner may join it")
        return Membership(channel=channel, role="owner", owner_id=str(owner))

    def sequence_source(self) -> SequenceSource:
        return self._store

    def chat(self) -> ChatStore:
        return self._store

    def conversations(self) -> None:
        return None

    async def members_changed(self, conn: asyncpg.Connection, channel: str, count: int) -> None:
        return None

    def lock_sql(self) -> str | None:
        return None

    def affected_by(self, notice: dict[str, str], membership: Membership) -> bool:
        return False

    async def cancel(self, principal: Principal, membership: Membership, id: uuid.UUID) -> None:
        """Stop the reply `id` (as the deltas name it) of this conversation, on whichever
        gateway process streams it. What was generated is committed as a partial message
        (finish_reason `cancelled`)."""
        await self._store.relay.cancel(principal.user_id, membership.channel, id)


def build(
    context: NamespaceContext,
    settings: AichatSettings | None = None,
    dsn: str | None = None,
    limiter: ProviderLimiter | None = None,
) -> AssistantNamespace:
    """The namespace of one gateway process; `dsn` (default DATABASE_URL, read on first use)
    is where its cancel relay LISTENs: the database of `context.pool`; `limiter` (default: on
    REDIS_URL, in memory without it, opened on the first send) counts the providers'
    requests."""
    settings = settings if settings is not None else load_aichat_settings()
    if limiter is None:

        def from_env() -> ProviderLimiter:
            core = load_settings()
            return open_limiter(
                core.redis_url, cluster=core.redis_cluster, timeout_s=core.gateway_redis_timeout_s
            )

        limiter = DeferredLimiter(from_env)
    router = ProviderRouter(settings)
    streams = ReplyStreams(context.pool, context.publish, router)
    relay = CancelRelay(
        context.pool,
        streams,
        (lambda: dsn) if dsn is not None else (lambda: load_settings().database_url),
        wait_s=settings.cancel_wait_s,
    )
    store = AssistantStore(context.pool, context.publish, router, streams, relay, settings, limiter)
    return AssistantNamespace(context.pool, store)
