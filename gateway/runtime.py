"""The gateway's services for one process, built from Settings and closed in reverse order:
database pool, bus (Redis or in-process), rate limiter, namespaces, hub, presence, and the
LISTEN connections that hear membership changes and new notifications."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.bus import Bus, LocalBus, RedisBus, RedisHealth
from gateway.bus_cluster import open_cluster
from gateway.fanout import Hub
from gateway.metrics import GatewayMetrics
from gateway.namespaces.user import UserNamespace
from gateway.notifications import NotificationRelay
from gateway.presence import PresenceLedger
from gateway.protocol import Event, json_encoder
from gateway.ratelimit import ChatRateLimiter, MemoryChatRateLimiter, RedisChatRateLimiter
from gateway.session import Session
from kernel.config import Settings
from kernel.conversation import ChatStore, Namespace, NamespaceContext, NamespaceRegistry
from kernel.db import create_pool
from kernel.errors import SwitchboardError
from kernel.listen import Listener
from kernel.logs import EventLog
from kernel.realms import Realms, enabled_realms

log = EventLog("gateway")
MEMBERSHIP_CHANNEL = "sb_membership"
SERVER_CHANNEL = "sb_server"  # the server API: publish, disconnect
CLOSE_DISCONNECTED = 4003
CLOSE_ACCOUNT_DISABLED = 4004
# Events a database trigger may have every gateway deliver (op "event" on sb_server).
TRIGGERED_EVENTS = frozenset({"deleted"})


class ServerNotice(msgspec.Struct, frozen=True, kw_only=True):
    op: str
    channel: str | None = None
    name: str | None = None
    data: dict[str, Any] | None = None
    realm: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    kind: str | None = None
    id: str | None = None
    by: str | None = None
    reason: str | None = None
    seq: int | None = None


_server_notice = msgspec.json.Decoder(ServerNotice)


class Gateway:
    """Everything a session needs. `await start()` before use, `await close()` after."""

    pool: asyncpg.Pool
    bus: Bus
    chat_limiter: ChatRateLimiter
    namespaces: NamespaceRegistry
    hub: Hub
    presence: PresenceLedger
    notifications: NotificationRelay

    def __init__(
        self, settings: Settings, *, node_id: str | None = None, realms: Realms | None = None
    ) -> None:
        self.settings = settings
        self.realms = realms if realms is not None else enabled_realms()
        self.metrics = GatewayMetrics()
        self.node_id = node_id
        self.draining = False
        # by user stream (`user:<id>`, `<realm>.user:<id>`): one key per user of any realm
        self.sessions: dict[str, set[Session]] = defaultdict(set)
        self._stores: list[ChatStore] = []
        self._redis: aioredis.Redis | None = None
        self.listener: Listener | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        s = self.settings
        self.pool = await create_pool(
            s.database_url,
            min_size=s.db_pool_min,
            max_size=max(s.db_pool_max, 4),
            application_name="switchboard-gateway",
        )
        if s.redis_url:
            self._open_redis(s.redis_url)
        else:
            self.bus = LocalBus()
            self.chat_limiter = MemoryChatRateLimiter()
        self.namespaces = NamespaceRegistry(self._build_namespaces())
        self.hub = Hub(
            subscribe=self.bus.subscribe,
            unsubscribe=self.bus.unsubscribe,
            source_for=self.namespaces.sequence_source,
            slow_limit_bytes=s.gateway_slow_consumer_bytes,
            on_delivered=lambda n, sent: self.metrics.delivered(n, sent, time.time()),
        )
        await self.bus.start(self.hub.on_bus, self.hub.request_resync)
        self.presence = PresenceLedger(
            self.pool,
            self.node_id,
            heartbeat_s=s.gateway_heartbeat_s,
            node_ttl_s=s.gateway_node_ttl_s,
        )
        await self.presence.start(self._recount)
        # One reconnecting LISTEN for every feature; after a reconnection every membership is
        # re-checked, since changes announced while it was deaf are never replayed.
        self.listener = Listener(s.database_url, "switchboard-listen")
        self.listener.on(MEMBERSHIP_CHANNEL, self._on_notice)
        self.listener.on(SERVER_CHANNEL, self._on_server)
        self.listener.on_resync(self._revalidate_all)
        self.notifications = NotificationRelay(self)
        self.notifications.attach(self.listener)
        await self.listener.start()
        log.info("started", node=self.presence.node_id, bus=type(self.bus).__name__)

    def _open_redis(self, url: str) -> None:
        """Bus and rate limiter on Redis, every round trip bounded by GATEWAY_REDIS_TIMEOUT
        and never retried behind our back (each caller has its own fallback)."""
        timeout = self.settings.gateway_redis_timeout_s
        if self.settings.redis_cluster:  # sharded pub/sub; the bus owns the cluster client
            self.bus, self.chat_limiter = open_cluster(
                url,
                timeout_s=timeout,
                queue_size=self.settings.gateway_publish_queue,
                health=RedisHealth(self.metrics.registry),
            )
            return
        self._redis = aioredis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        health = RedisHealth(self.metrics.registry)
        self.bus = RedisBus(
            self._redis,
            timeout_s=timeout,
            queue_size=self.settings.gateway_publish_queue,
            health=health,
        )
        self.chat_limiter = RedisChatRateLimiter(self._redis, timeout_s=timeout, health=health)

    def degraded(self) -> dict[str, str]:
        """What this process runs without right now (`redis` -> the failing parts); empty
        when healthy. /healthz reports it; acks and local delivery go on regardless."""
        failing = self.bus.degraded()
        return {"redis": ", ".join(sorted(failing))} if failing else {}

    async def close(self) -> None:
        if self.listener is not None:
            await self.listener.close()
        await self.notifications.close()
        for store in self._stores:
            await store.close()
        await self.presence.close()
        await self.bus.close()
        if self._redis is not None:
            await self._redis.aclose()
        for task in list(self._tasks):
            task.cancel()
        await self.pool.close()

    async def drain(self) -> None:
        """Refuse new sends and wait until every accepted one is committed and acknowledged."""
        self.draining = True
        for store in self._stores:
            await store.drain()

    def _build_namespaces(self) -> list[Namespace]:
        context = NamespaceContext(
            pool=self.pool,
            publish=self.bus.publish_many,
            on_batch=self.metrics.batch_size.observe,
        )
        namespaces: list[Namespace] = []
        for realm in self.realms:
            namespaces.append(UserNamespace(realm))
            if realm.namespaces is not None:
                namespaces.extend(realm.namespaces(context))
        for namespace in namespaces:
            store = namespace.chat()
            if store is not None and all(store is not s for s in self._stores):
                self._stores.append(store)
        return namespaces

    # --- sessions -------------------------------------------------------------------------------

    def register(self, session: Session) -> None:
        self.sessions[session.user_stream].add(session)
        self.metrics.connections.inc()

    def unregister(self, session: Session) -> None:
        sessions = self.sessions.get(session.user_stream)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self.sessions[session.user_stream]
        self.metrics.connections.dec()

    def announce(self, event: Event) -> None:
        """Publish an unsequenced event to a channel, in the background."""
        self._spawn(self.bus.publish(event.channel, 0, json_encoder.encode(event)))

    def _spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- membership changes -----------------------------------------------------------------------

    def _on_notice(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            notice = msgspec.json.decode(payload, type=dict[str, str])
        except msgspec.DecodeError:
            log.error("bad_membership_notice", payload=payload[:200])
            return
        if "user_id" in notice:  # one user's change: only their sessions can be affected
            # Every trigger names its realm (sql 0016 on): a user id means nothing without it.
            realm = notice.get("realm", "")
            targets = []
            if realm in self.realms:
                stream = self.realms.get(realm).user_stream(notice["user_id"])
                targets = list(self.sessions.get(stream, ()))
        else:
            targets = [s for group in self.sessions.values() for s in group]
        if notice.get("kind") == "account":  # deactivated, banned, deleted: no socket stays
            if "sid" in notice:  # one sign-in session ended: only the sockets it opened
                targets = [s for s in targets if s.token_session == notice["sid"]]
            reason = notice.get("reason", "account disabled")
            for session in targets:
                session.kick(CLOSE_ACCOUNT_DISABLED, reason)
            log.info("account_disabled", user=notice.get("user_id"), sockets=len(targets))
            return
        if notice.get("kind") == "revoke":
            for session in targets:
                if notice.get("channel") in session.joined:
                    self._spawn(
                        session.leave(notice["channel"], reason="membership revoked by the server")
                    )
            return
        for session in targets:
            self._spawn(session.recheck(notice))

    def _on_server(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            notice = _server_notice.decode(payload)
        except msgspec.DecodeError:
            log.error("bad_server_notice", payload=payload[:200])
            return
        if notice.op == "publish" and notice.channel is not None:
            try:
                _, _, channel = self.namespaces.resolve(notice.channel)
            except SwitchboardError as exc:
                log.info("server_publish_dropped", channel=notice.channel, reason=exc.message)
                return
            event = Event(channel=channel, kind="server", name=notice.name, data=notice.data)
            self.hub.on_bus(channel, 0, time.time(), json_encoder.encode(event))
        elif notice.op == "event" and notice.kind in TRIGGERED_EVENTS and notice.channel:
            event = Event(
                channel=notice.channel,
                kind=notice.kind,
                id=notice.id,
                by=notice.by,
                reason=notice.reason,
                seq=notice.seq,
            )
            self.hub.on_bus(notice.channel, 0, time.time(), json_encoder.encode(event))
        elif notice.op == "disconnect" and notice.realm and notice.user_id:
            if notice.realm not in self.realms:
                return
            stream = self.realms.get(notice.realm).user_stream(notice.user_id)
            for session in list(self.sessions.get(stream, ())):
                if notice.session_id in (None, session.session_id):
                    session.kick(CLOSE_DISCONNECTED, "disconnected by the server")

    async def _revalidate_all(self) -> None:
        """Re-authorise every joined channel of every local socket (after the listener was
        deaf); a membership lost meanwhile is removed as if its notice had arrived."""
        sessions = [s for group in self.sessions.values() for s in group]
        await asyncio.gather(*(s.revalidate() for s in sessions), return_exceptions=True)
        log.info("memberships_revalidated", sessions=len(sessions))

    async def _recount(self, channels: list[str]) -> None:
        for channel in channels:
            namespace, _, _ = self.namespaces.resolve(channel)
            if namespace.tracks_presence:
                await self.presence.recount(channel, namespace.members_changed)
