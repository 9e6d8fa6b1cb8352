"""The fan-out bus between gateway processes: in-process (no REDIS_URL) or Redis pub/sub
(one Redis here; a Redis Cluster's sharded pub/sub in gateway/bus_cluster.py).

What travels is an envelope: 8-byte sequence number (0 for unsequenced events), 8-byte
publish time, 8-byte id of the publishing process, then the already-encoded JSON frame. It is
built once per message and delivered to every process subscribed to the channel's topic.

Redis is never on the path of an acknowledgement (docs/protocol.md §14). `publish_many`
hands each frame to this process's own members at once and queues it for Redis; one
publisher task drains the queue, every round trip bounded by a timeout. The queue is bounded
(GATEWAY_PUBLISH_QUEUE): when it is full the oldest entry is dropped, counted and logged. A
subscriber task keeps one pub/sub connection, PINGs it when it is quiet and rebuilds it when
it fails or stops answering. Whatever Redis lost is read back from Postgres: after every
rebuild, and every second while Redis is away, the subscriber asks the hub to catch its
rooms up (`on_resync`); and a publisher that dropped or failed to publish tells every other
process to do the same once Redis answers again (a resync notice on `sb:node`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.exceptions import RedisClusterException, RedisError

from kernel.logs import EventLog

log = EventLog("gateway.bus")
_HEADER = struct.Struct(">Qd8s")
Handler = Callable[[str, int, float, bytes], None]
Resync = Callable[[], None]

NODE_TOPIC = "sb:node"  # every process subscribes: notices for all of them
RESYNC_NOTICE = b"resync"
PUBLISH_BATCH = 512  # envelopes per pipelined round trip
RETRY_S = 1.0  # between attempts while Redis is away (and between catch-ups meanwhile)
DROP_LOG_EVERY_S = 5.0  # at most one `publish_dropped` line per this many seconds
# Errors that mean "Redis is away or slow", as opposed to a defect.
REDIS_ERRORS = (RedisError, RedisClusterException, OSError, TimeoutError)


def envelope(seq: int, payload: bytes, node: bytes = bytes(8)) -> bytes:
    return _HEADER.pack(seq, time.time(), node) + payload


def open_envelope(data: bytes) -> tuple[int, float, bytes]:
    seq, sent_at, _node = _HEADER.unpack_from(data)
    return seq, sent_at, data[_HEADER.size :]


class RedisHealth:
    """What this process knows of its Redis: which parts fail right now, and the metrics.

    Parts are `publish` and `subscribe` (failing until they work again: both keep trying)
    and `ratelimit` (failing while the limiter judges locally, RETRY_S after each failure).
    Redis is `degraded` while any part fails.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._failing: dict[str, tuple[str, float]] = {}  # part -> (error, until)
        r = registry if registry is not None else CollectorRegistry()
        self.up = Gauge(
            "switchboard_redis_up",
            "1 while Redis answers publishes, subscriptions and rate limits in time; 0 degraded",
            registry=r,
        )
        self.up.set_function(lambda: 0.0 if self.degraded else 1.0)
        self.errors = Counter(
            "switchboard_redis_errors_total",
            "Redis round trips that failed or timed out",
            ["op"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "switchboard_bus_queue_depth", "Envelopes waiting to be published to Redis", registry=r
        )
        self.dropped = Counter(
            "switchboard_bus_dropped_total",
            "Envelopes dropped unpublished because the publish queue was full",
            registry=r,
        )
        self.resyncs = Counter(
            "switchboard_bus_resyncs_total",
            "Catch-ups from Postgres asked for after Redis may have lost messages",
            registry=r,
        )
        self.reconnects = Counter(
            "switchboard_bus_reconnects_total",
            "Pub/sub connections rebuilt after a failure",
            registry=r,
        )
        self.ratelimit_fallbacks = Counter(
            "switchboard_ratelimit_local_total",
            "Sends judged by the in-process window because Redis did not answer in time",
            registry=r,
        )

    def _failing_now(self, part: str) -> bool:
        entry = self._failing.get(part)
        return entry is not None and entry[1] > time.monotonic()

    def failed(self, part: str, exc: BaseException, for_s: float = math.inf) -> bool:
        """Record a failure of `part` (degraded for `for_s` at most, or until `recovered`);
        True when it was working until now (logged once)."""
        self.errors.labels(part).inc()
        new = not self._failing_now(part)
        self._failing[part] = (repr(exc)[:200], time.monotonic() + for_s)
        if new:
            log.warning("redis_degraded", part=part, error=self._failing[part][0])
        return new

    def recovered(self, part: str) -> bool:
        """Record a success of `part`; True when it was failing until now."""
        was = self._failing_now(part)
        if self._failing.pop(part, None) is not None and was:
            log.info("redis_recovered", part=part, still_failing=",".join(self.degraded) or "-")
        return was

    @property
    def degraded(self) -> dict[str, str]:
        """Failing part -> last error; empty while Redis is healthy."""
        now = time.monotonic()
        return {part: error for part, (error, until) in self._failing.items() if until > now}


class Bus(Protocol):
    """Topics are channel names. `handler(channel, seq, sent_at, payload)` runs in the loop;
    `on_resync()` asks for a catch-up from the database (messages may have been lost)."""

    async def start(self, handler: Handler, on_resync: Resync | None = None) -> None: ...
    async def close(self) -> None: ...
    async def subscribe(self, channel: str) -> None: ...
    async def unsubscribe(self, channel: str) -> None: ...
    async def publish(self, channel: str, seq: int, payload: bytes) -> None: ...
    async def publish_many(self, items: list[tuple[str, int, bytes]]) -> None: ...
    def degraded(self) -> dict[str, str]: ...


class LocalBus:
    """Delivers within this process only: one gateway process, no Redis."""

    def __init__(self) -> None:
        self._handler: Handler | None = None

    async def start(self, handler: Handler, on_resync: Resync | None = None) -> None:
        self._handler = handler

    async def close(self) -> None:
        self._handler = None

    async def subscribe(self, channel: str) -> None:
        return None

    async def unsubscribe(self, channel: str) -> None:
        return None

    async def publish(self, channel: str, seq: int, payload: bytes) -> None:
        if self._handler is not None:
            self._handler(channel, seq, time.time(), payload)

    async def publish_many(self, items: list[tuple[str, int, bytes]]) -> None:
        for channel, seq, payload in items:
            await self.publish(channel, seq, payload)

    def degraded(self) -> dict[str, str]:
        return {}


class PartlySent(RedisError):
    """A batch reached Redis only in part (a cluster shard failed): `unsent` goes back into
    the queue, the rest was published."""

    def __init__(self, unsent: list[tuple[str, bytes]], cause: BaseException) -> None:
        super().__init__(f"{len(unsent)} envelopes unsent: {cause!r}")
        self.unsent = unsent


class QueuedBus:
    """A bus over Redis, whatever its deployment: this process's members served at once, a
    bounded queue drained to Redis by one publisher task, resync notices, health.

    A subclass sends a batch (`_send`) and keeps the subscriptions (`subscribe`,
    `unsubscribe`, `_subscriber`, `_close_subscriptions`); a topic is PREFIX + channel +
    SUFFIX. Publishing never waits on Redis; subscribing and unsubscribing never fail (a
    topic is subscribed again when a connection is rebuilt). `timeout_s` bounds every round
    trip; `queue_size` bounds what waits to be published.
    """

    PREFIX = "sb:ch:"
    SUFFIX = ""

    def __init__(
        self,
        *,
        timeout_s: float = 1.0,
        queue_size: int = 10_000,
        health: RedisHealth | None = None,
    ) -> None:
        self._timeout = timeout_s
        self._queue_size = max(1, queue_size)
        self.health = health or RedisHealth()
        self.health.queue_depth.set_function(lambda: len(self._queue))
        self._node = os.urandom(8)  # our own envelopes come back from Redis: skip them
        self._handler: Handler | None = None
        self._on_resync: Resync = lambda: None
        self._channels: set[str] = set()  # topics wanted (local rooms), whatever Redis says
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wakeup = asyncio.Event()
        self._lost = False  # publishes were dropped or failed: others must catch up
        self._idle = asyncio.Event()  # nothing queued, nothing being sent
        self._idle.set()
        self._dropped_since_log = 0
        self._drop_logged_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscribed = asyncio.Event()

    async def start(self, handler: Handler, on_resync: Resync | None = None) -> None:
        """Returns once subscribed, or after one failed attempt (Redis away): the gateway
        serves meanwhile, and the subscriber keeps trying."""
        self._handler = handler
        if on_resync is not None:
            self._on_resync = on_resync
        self._spawn(self._subscriber(), "redis-bus-subscriber")
        self._spawn(self._publisher(), "redis-bus-publisher")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), self._timeout * 3)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Publish what is queued (for a little while), then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self._timeout * 2)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close_subscriptions()

    def degraded(self) -> dict[str, str]:
        return self.health.degraded

    # --- publishing -------------------------------------------------------------------------

    async def publish(self, channel: str, seq: int, payload: bytes) -> None:
        await self.publish_many([(channel, seq, payload)])

    async def publish_many(self, items: list[tuple[str, int, bytes]]) -> None:
        """Deliver to this process's members now; queue for the others. Never waits."""
        now = time.time()
        for channel, seq, payload in items:
            if self._handler is not None:
                try:
                    self._handler(channel, seq, now, payload)
                except Exception:
                    log.exception("bus_handler_failed", channel=channel)
            topic = self.PREFIX + channel + self.SUFFIX
            self._enqueue(topic, _HEADER.pack(seq, now, self._node) + payload)
        self._idle.clear()
        self._wakeup.set()

    def _enqueue(self, topic: str, data: bytes) -> None:
        if len(self._queue) >= self._queue_size:
            self._queue.popleft()
            self._note_dropped(1)
        self._queue.append((topic, data))

    def _note_dropped(self, count: int) -> None:
        self._lost = True
        self.health.dropped.inc(count)
        self._dropped_since_log += count
        now = time.monotonic()
        if now - self._drop_logged_at >= DROP_LOG_EVERY_S:
            log.warning(
                "publish_dropped",
                dropped=self._dropped_since_log,
                queue_size=self._queue_size,
                recovery="subscribers catch up from Postgres; clients resume with since",
            )
            self._dropped_since_log = 0
            self._drop_logged_at = now

    async def _publisher(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(PUBLISH_BATCH, len(self._queue)))]
            try:
                await self._send(batch)
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                # Put the batch back in front (the oldest is dropped past the bound): a blip
                # costs latency, not messages. It may have reached Redis anyway (a timeout
                # while Redis was paused): receivers drop a seq they have already delivered.
                unsent = exc.unsent if isinstance(exc, PartlySent) else batch
                self._queue.extendleft(reversed(unsent))
                excess = len(self._queue) - self._queue_size
                for _ in range(max(0, excess)):
                    self._queue.popleft()
                if excess > 0:
                    self._note_dropped(excess)
                self._lost = True
                self.health.failed("publish", exc)
                await asyncio.sleep(RETRY_S)
                continue
            except Exception:
                log.exception("publish_crashed", envelopes=len(batch))
                self._lost = True
                continue
            self.health.recovered("publish")
            if self._lost:
                # Tell every process that some of our publishes never reached Redis; queued
                # like any envelope, so it is retried like one.
                self._lost = False
                notice = _HEADER.pack(0, time.time(), self._node) + RESYNC_NOTICE
                self._queue.appendleft((NODE_TOPIC, notice))
                log.info("resync_announced")

    async def _send(self, batch: list[tuple[str, bytes]]) -> None:
        """Publish every (topic, envelope) of `batch`; raise a REDIS_ERRORS error when the
        batch (PartlySent: part of it) may not have reached Redis."""
        raise NotImplementedError

    async def subscribe(self, channel: str) -> None:
        raise NotImplementedError

    async def unsubscribe(self, channel: str) -> None:
        raise NotImplementedError

    async def _subscriber(self) -> None:
        """Keep the subscriptions up for as long as the bus runs (a task of `start`)."""
        raise NotImplementedError

    async def _close_subscriptions(self) -> None:
        return None

    def _on_message(self, message: dict[str, Any]) -> None:
        topic = message["channel"]
        name = topic.decode() if isinstance(topic, bytes) else str(topic)
        data = message["data"]
        if not isinstance(data, bytes) or len(data) < _HEADER.size:
            return  # not an envelope of ours
        seq, sent_at, node = _HEADER.unpack_from(data)
        if node == self._node:
            return  # delivered here when it was published
        if name == NODE_TOPIC:
            if data[_HEADER.size :] == RESYNC_NOTICE:
                self._resync()
            return
        if self._handler is None or not name.startswith(self.PREFIX):
            return
        channel = name[len(self.PREFIX) : len(name) - len(self.SUFFIX)]
        try:
            self._handler(channel, seq, sent_at, data[_HEADER.size :])
        except Exception:
            log.exception("bus_handler_failed", channel=channel)

    def _resync(self) -> None:
        self.health.resyncs.inc()
        try:
            self._on_resync()
        except Exception:
            log.exception("bus_resync_failed")


class RedisBus(QueuedBus):
    """One Redis: PUBLISH, and one pub/sub connection subscribed to a topic per channel that
    has local members (`sb:ch:<channel>`)."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        timeout_s: float = 1.0,
        queue_size: int = 10_000,
        health: RedisHealth | None = None,
    ) -> None:
        super().__init__(timeout_s=timeout_s, queue_size=queue_size, health=health)
        self._client = client
        self._pubsub: Any = None  # the live subscription, None while being (re)built

    async def _close_subscriptions(self) -> None:
        if self._pubsub is not None:
            await self._close_pubsub(self._pubsub)
            self._pubsub = None

    async def _send(self, batch: list[tuple[str, bytes]]) -> None:
        async with asyncio.timeout(self._timeout):
            async with self._client.pipeline(transaction=False) as pipe:
                for topic, data in batch:
                    pipe.publish(topic, data)
                await pipe.execute()

    # --- subscribing ------------------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        """Wanted from now on. Sent to Redis before returning when connected (so whatever
        is committed after a following read is heard); otherwise on reconnection."""
        self._channels.add(channel)
        pubsub = self._pubsub
        if pubsub is None:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await pubsub.subscribe(self.PREFIX + channel)
        except REDIS_ERRORS as exc:
            self._broken(pubsub, exc)

    async def unsubscribe(self, channel: str) -> None:
        """Not wanted any more: told to Redis in the background (never waited for)."""
        self._channels.discard(channel)
        pubsub = self._pubsub
        if pubsub is not None:
            self._spawn(self._unsubscribe(pubsub, channel), "redis-bus-unsubscribe")

    async def _unsubscribe(self, pubsub: Any, channel: str) -> None:
        if channel in self._channels or self._pubsub is not pubsub:
            return  # wanted again meanwhile, or the connection is being rebuilt
        try:
            async with asyncio.timeout(self._timeout):
                await pubsub.unsubscribe(self.PREFIX + channel)
        except REDIS_ERRORS as exc:
            self._broken(pubsub, exc)

    def _broken(self, pubsub: Any, exc: BaseException) -> None:
        """A command on the live subscription failed: the subscriber rebuilds it."""
        if self._pubsub is pubsub:
            self._pubsub = None
            self.health.failed("subscribe", exc)

    async def _subscriber(self) -> None:
        first = True
        while True:
            pubsub = self._client.pubsub()
            try:
                await self._subscribe_all(pubsub)
                self._pubsub = pubsub
                self._subscribed.set()
                if self.health.recovered("subscribe") or not first:
                    self.health.reconnects.inc()
                    log.info("bus_resubscribed", channels=len(self._channels))
                    self._resync()  # what was published while we were away
                first = False
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                self.health.failed("subscribe", exc)
            except Exception:
                log.exception("bus_subscriber_crashed")
            finally:
                if self._pubsub is pubsub:
                    self._pubsub = None
                await self._close_pubsub(pubsub)
            first = False
            # Away: catch the rooms up from Postgres meanwhile, then try again.
            self._resync()
            await asyncio.sleep(RETRY_S)

    async def _subscribe_all(self, pubsub: Any) -> None:
        done: set[str] = set()
        async with asyncio.timeout(self._timeout * 2):
            await pubsub.subscribe(NODE_TOPIC)
            # Rooms opened while this runs are picked up by the next round.
            while wanted := self._channels - done:
                await pubsub.subscribe(*(self.PREFIX + c for c in wanted))
                done |= wanted
        stale = done - self._channels  # closed while we subscribed
        if stale:
            self._spawn(self._unsubscribe_stale(pubsub, stale), "redis-bus-unsubscribe")

    async def _unsubscribe_stale(self, pubsub: Any, channels: set[str]) -> None:
        for channel in channels:
            await self._unsubscribe(pubsub, channel)

    async def _listen(self, pubsub: Any) -> None:
        """Deliver until the connection fails or stops answering (or is declared broken)."""
        loop = asyncio.get_running_loop()
        heard = loop.time()
        pinged: float | None = None
        quiet_s = max(self._timeout, 0.5)
        while self._pubsub is pubsub:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=quiet_s)
            now = loop.time()
            if message is not None:
                heard, pinged = now, None
                if message["type"] == "message":
                    self._on_message(message)
                continue
            if pinged is None:
                if now - heard >= quiet_s:
                    async with asyncio.timeout(self._timeout):
                        await pubsub.ping()
                    pinged = now
            elif now - pinged > self._timeout:
                raise TimeoutError(f"no PONG from Redis within {self._timeout:g} s")

    async def _close_pubsub(self, pubsub: Any) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._timeout):
                await pubsub.aclose()
