"""The fan-out bus over a Redis Cluster: sharded pub/sub (SPUBLISH / SSUBSCRIBE).

A channel's topic is `sb:ch:{<channel>}`: hash-tagged by the channel, so it shares its slot
(hence its shard) with the channel's rate-limit windows (gateway/ratelimit.py). Publishing
splits a batch by the master that owns each topic's slot and sends one pipeline to each, all
at once; what a failed shard did not take goes back into the queue and is sent again once
the slot map has been read again. Subscribing keeps one pub/sub connection per master,
holding the topics of that master's slots, each read by its own task (no polling round).

When a shard's connection fails, stops answering PING, or the server moves a slot away (a
SUNSUBSCRIBE it sends unasked), that shard alone is rebuilt: the slot map is read again,
its topics are subscribed on their new owners, and the hub catches its rooms up from
Postgres. Everything else (queue bound, drops, resync notices, health) is gateway/bus.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import RedisClusterException

from gateway.bus import NODE_TOPIC, REDIS_ERRORS, RETRY_S, PartlySent, QueuedBus, RedisHealth
from gateway.ratelimit import RedisChatRateLimiter
from kernel.logs import EventLog

log = EventLog("gateway.bus")


@functools.lru_cache(maxsize=65_536)
def topic_slot(topic: str) -> int:
    """The cluster slot of a topic (its `{...}` hash tag when it has one)."""
    return key_slot(topic.encode())


class StaleSlotMap(RedisClusterException):
    """The slot map read still names the master that just gave a topic's slot away: the
    cluster's view has not converged yet, so the subscriber reads it again shortly."""


class _Shard:
    """The pub/sub connection to one master and the topics subscribed on it."""

    __slots__ = ("name", "pubsub", "reader", "topics")

    def __init__(self, name: str, pubsub: PubSub) -> None:
        self.name = name
        self.pubsub = pubsub
        self.topics: set[str] = set()
        self.reader: asyncio.Task[None] | None = None


class ClusterBus(QueuedBus):
    """Sharded pub/sub on `cluster`; this bus owns the client and closes it."""

    PREFIX = "sb:ch:{"
    SUFFIX = "}"

    def __init__(
        self,
        cluster: RedisCluster,
        *,
        timeout_s: float = 1.0,
        queue_size: int = 10_000,
        health: RedisHealth | None = None,
    ) -> None:
        super().__init__(timeout_s=timeout_s, queue_size=queue_size, health=health)
        self._cluster = cluster
        self._clients: dict[str, aioredis.Redis] = {}  # node name -> its connection pool
        self._shards: dict[str, _Shard] = {}  # node name -> live subscription
        self._shard_lock = asyncio.Lock()
        self._refresh_lock = asyncio.Lock()
        self._stale = True  # read the slot map before the next use
        self._repair = asyncio.Event()  # a shard broke: the subscriber rebuilds it
        self._lost_shard = False
        # topic -> the master whose unasked SUNSUBSCRIBE said it gave the topic's slot away
        self._moved_from: dict[str, str] = {}

    def _topic(self, channel: str) -> str:
        return self.PREFIX + channel + self.SUFFIX

    # --- topology ---------------------------------------------------------------------------

    async def _refresh(self) -> None:
        """Read the slot map again if it may be out of date (once for all who wait)."""
        async with self._refresh_lock:
            if not self._stale:
                return
            async with asyncio.timeout(self._timeout * 2):
                if self._cluster.get_default_node() is None:
                    await self._cluster.initialize()
                else:
                    await self._cluster.nodes_manager.initialize()
            self._stale = False

    def _owner(self, topic: str) -> ClusterNode:
        return self._cluster.nodes_manager.get_node_from_slot(topic_slot(topic))

    def _client(self, node: ClusterNode) -> aioredis.Redis:
        client = self._clients.get(node.name)
        if client is None:
            client = self._clients[node.name] = aioredis.Redis(
                host=node.host,
                port=int(node.port),
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0),
            )
        return client

    # --- publishing -------------------------------------------------------------------------

    async def _send(self, batch: list[tuple[str, bytes]]) -> None:
        if self._stale:
            await self._refresh()
        groups: dict[str, tuple[ClusterNode, list[tuple[str, bytes]]]] = {}
        for item in batch:
            node = self._owner(item[0])
            group = groups.get(node.name)
            if group is None:
                group = groups[node.name] = (node, [])
            group[1].append(item)
        results = await asyncio.gather(
            *(self._send_to(node, items) for node, items in groups.values()),
            return_exceptions=True,
        )
        unsent: list[tuple[str, bytes]] = []
        error: BaseException | None = None
        for (_, items), result in zip(groups.values(), results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                unsent.extend(items)
                error = result
            elif result:
                unsent.extend(result)
                error = error or RuntimeError("a slot moved: its envelopes were refused")
        if error is not None:
            self._stale = True
            raise PartlySent(unsent, error)

    async def _send_to(
        self, node: ClusterNode, items: list[tuple[str, bytes]]
    ) -> list[tuple[str, bytes]]:
        """One pipeline to one master; returns what it refused (a slot moved away)."""
        async with asyncio.timeout(self._timeout):
            async with self._client(node).pipeline(transaction=False) as pipe:
                for topic, data in items:
                    pipe.spublish(topic, data)
                replies = await pipe.execute(raise_on_error=False)
        return [item for item, reply in zip(items, replies, strict=True) if _refused(reply)]

    # --- subscribing ------------------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        """Wanted from now on: sent to its shard before returning when the cluster answers,
        otherwise by the subscriber once it does."""
        self._channels.add(channel)
        topic = self._topic(channel)
        shard: _Shard | None = None
        try:
            if self._stale:
                await self._refresh()
            shard = await self._shard(self._owner(topic))
            async with asyncio.timeout(self._timeout):
                await shard.pubsub.ssubscribe(topic)
            shard.topics.add(topic)
        except REDIS_ERRORS as exc:
            if shard is not None:
                self._broken(shard, exc)
            else:  # subscribed later by the subscriber, then caught up from Postgres
                self._stale = True
                self._lost_shard = True
                self._repair.set()

    async def unsubscribe(self, channel: str) -> None:
        """Not wanted any more: told to its shard in the background (never waited for)."""
        self._channels.discard(channel)
        topic = self._topic(channel)
        for shard in list(self._shards.values()):
            if topic in shard.topics:
                shard.topics.discard(topic)
                self._spawn(self._sunsubscribe(shard, channel, topic), "redis-bus-unsubscribe")

    async def _sunsubscribe(self, shard: _Shard, channel: str, topic: str) -> None:
        if channel in self._channels or self._shards.get(shard.name) is not shard:
            return  # wanted again meanwhile, or the shard is being rebuilt
        try:
            async with asyncio.timeout(self._timeout):
                await shard.pubsub.sunsubscribe(topic)
        except REDIS_ERRORS as exc:
            self._broken(shard, exc)

    async def _shard(self, node: ClusterNode) -> _Shard:
        """The live subscription to `node`, connected (and its reader started) if new."""
        shard = self._shards.get(node.name)
        if shard is not None:
            return shard
        async with self._shard_lock:
            shard = self._shards.get(node.name)
            if shard is None:
                pubsub = self._client(node).pubsub()
                try:
                    async with asyncio.timeout(self._timeout):
                        await pubsub.connect()  # type: ignore[no-untyped-call]
                except BaseException:
                    await _close_quietly(pubsub, self._timeout)
                    raise
                shard = self._shards[node.name] = _Shard(node.name, pubsub)
                shard.reader = asyncio.get_running_loop().create_task(
                    self._listen(shard), name=f"redis-bus-shard-{node.name}"
                )
                self._tasks.add(shard.reader)
                shard.reader.add_done_callback(self._tasks.discard)
        return shard

    def _broken(self, shard: _Shard, exc: BaseException) -> None:
        """A shard's connection failed: drop it; the subscriber rebuilds what it held."""
        if self._shards.get(shard.name) is not shard:
            return
        del self._shards[shard.name]
        self._stale = True
        self._lost_shard = True
        self.health.failed("subscribe", exc)
        self._spawn(self._close_shard(shard), "redis-bus-shard-close")
        self._repair.set()

    async def _close_shard(self, shard: _Shard) -> None:
        reader = shard.reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await _close_quietly(shard.pubsub, self._timeout)

    async def _subscriber(self) -> None:
        """Keep every wanted topic subscribed on the master that owns its slot."""
        failing = False
        while True:
            self._repair.clear()
            try:
                await self._reconcile()
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                self._stale = True
                if not failing:
                    self.health.failed("subscribe", exc)
                failing = True
            except Exception:
                log.exception("bus_subscriber_crashed")
                failing = True
            if failing:
                # Away: catch the rooms up from Postgres meanwhile, then try again.
                self._resync()
                failing = False
                self._lost_shard = True
                await asyncio.sleep(RETRY_S)
                continue
            self._subscribed.set()
            if self.health.recovered("subscribe") or self._lost_shard:
                self._lost_shard = False
                self.health.reconnects.inc()
                log.info("bus_resubscribed", shards=len(self._shards), channels=len(self._channels))
                self._resync()  # what was published while a shard was away
            await self._repair.wait()

    async def _reconcile(self) -> None:
        """Subscribe every wanted topic on its owner; drop the shards of nodes that are no
        longer masters (a master's shard stays open while idle: at most one per master)."""
        await self._refresh()
        wanted: dict[str, tuple[ClusterNode, set[str]]] = {}
        for topic in [NODE_TOPIC, *(self._topic(c) for c in list(self._channels))]:
            node = self._owner(topic)
            if self._moved_from.get(topic) == node.name:
                self._stale = True
                raise StaleSlotMap(f"{topic}: the slot map still names {node.name}")
            self._moved_from.pop(topic, None)
            wanted.setdefault(node.name, (node, set()))[1].add(topic)
        masters = {node.name for node in self._cluster.get_primaries()}
        for name, shard in list(self._shards.items()):
            if name not in masters and self._shards.get(name) is shard:
                del self._shards[name]
                await self._close_shard(shard)
        for node, topics in wanted.values():
            shard = await self._shard(node)
            try:
                async with asyncio.timeout(self._timeout * 2):
                    # One topic per SSUBSCRIBE: a command's topics must share a slot.
                    for topic in topics - shard.topics:
                        await shard.pubsub.ssubscribe(topic)
                        shard.topics.add(topic)
                    for topic in shard.topics - topics:  # its slot moved elsewhere
                        shard.topics.discard(topic)
                        await shard.pubsub.sunsubscribe(topic)
            except REDIS_ERRORS as exc:
                self._broken(shard, exc)
                raise

    async def _listen(self, shard: _Shard) -> None:
        """Deliver a shard's messages until it fails or stops answering (or is dropped)."""
        loop = asyncio.get_running_loop()
        heard = loop.time()
        pinged: float | None = None
        quiet_s = max(self._timeout, 0.5)
        try:
            while self._shards.get(shard.name) is shard:
                message = await shard.pubsub.get_message(timeout=quiet_s)
                now = loop.time()
                if message is not None:
                    heard, pinged = now, None
                    kind = message["type"]
                    if kind == "smessage":
                        self._on_message(message)
                    elif kind == "sunsubscribe":
                        self._on_sunsubscribe(shard, message)
                    continue
                if pinged is None:
                    if now - heard >= quiet_s:
                        async with asyncio.timeout(self._timeout):
                            await shard.pubsub.ping()
                        pinged = now
                elif now - pinged > self._timeout:
                    raise TimeoutError(f"no PONG from {shard.name} within {self._timeout:g} s")
        except asyncio.CancelledError:
            raise
        except REDIS_ERRORS as exc:
            self._broken(shard, exc)
        except Exception as exc:
            log.exception("bus_shard_reader_crashed", node=shard.name)
            self._broken(shard, exc)

    def _on_sunsubscribe(self, shard: _Shard, message: dict[str, Any]) -> None:
        raw = message["channel"]
        topic = raw.decode() if isinstance(raw, bytes) else str(raw)
        if topic not in shard.topics:
            return  # the answer to our own SUNSUBSCRIBE
        # Unasked: the server gave the slot to another master (failover, resharding).
        shard.topics.discard(topic)
        shard.pubsub.shard_channels.pop(raw, None)
        log.info("bus_slot_moved", node=shard.name, topic=topic)
        self._moved_from[topic] = shard.name
        self._stale = True
        self._lost_shard = True
        self._repair.set()

    async def _close_subscriptions(self) -> None:
        for shard in list(self._shards.values()):
            await self._close_shard(shard)
        self._shards.clear()
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        with contextlib.suppress(Exception):
            await self._cluster.aclose()


def _refused(reply: object) -> bool:
    return isinstance(reply, Exception)


async def _close_quietly(pubsub: PubSub, timeout_s: float) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout_s):
            await pubsub.aclose()


def open_cluster(
    url: str, *, timeout_s: float, queue_size: int, health: RedisHealth
) -> tuple[ClusterBus, RedisChatRateLimiter]:
    """The bus and the chat rate limiter on the cluster that `url` names a node of; every
    round trip bounded by `timeout_s` and never retried behind our back (each caller has
    its own fallback). Closing the bus closes the client."""
    cluster = RedisCluster.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    bus = ClusterBus(cluster, timeout_s=timeout_s, queue_size=queue_size, health=health)
    return bus, RedisChatRateLimiter(cluster, timeout_s=timeout_s, health=health)
