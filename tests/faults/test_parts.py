"""The parts that make the gateway survive Redis faults, one at a time and in process: the
bus never makes a publisher wait and drops the oldest past its bound; the chat limit does
not hang on a paused Redis and still holds (per process); a closing session's cleanup runs
every step though one fails; the hub catches a room up from the database in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway import protocol as p
from gateway import ratelimit
from gateway.bus import NODE_TOPIC, RESYNC_NOTICE, RedisBus, RedisHealth, open_envelope
from gateway.fanout import Hub
from gateway.ratelimit import RedisChatRateLimiter
from tests.faults.services import RedisServer
from tests.gateway.hub_fakes import FakeSocket, Rows
from tests.gateway.test_session_core import FakeHost, FakeHub, FakePresence, session_for

TIMEOUT = 0.3


def _client(server: RedisServer) -> aioredis.Redis:
    """A client as the gateway builds it: bounded round trips, no hidden retries."""
    return aioredis.from_url(
        server.url,
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )


async def _until(test: Any, timeout: float, what: str) -> None:
    """Poll an in-process condition that nothing announces (health after a timeout)."""
    async with asyncio.timeout(timeout):
        while not test():  # noqa: ASYNC110 - state of another component, not an event we own
            await asyncio.sleep(0.02)


async def test_publish_never_waits_and_a_full_queue_drops_the_oldest(
    own_redis: RedisServer,
) -> None:
    loop = asyncio.get_running_loop()
    client = _client(own_redis)
    watcher = aioredis.from_url(own_redis.url)  # another process's view of the topic
    pubsub = watcher.pubsub()
    await pubsub.subscribe(RedisBus.PREFIX + "room", NODE_TOPIC)
    here: list[int] = []
    registry = CollectorRegistry()
    health = RedisHealth(registry)
    bus = RedisBus(client, timeout_s=TIMEOUT, queue_size=5, health=health)
    await bus.start(lambda _channel, seq, _at, _payload: here.append(seq))
    await bus.subscribe("room")
    try:
        own_redis.pause()
        try:
            started = loop.time()
            await bus.publish_many([("room", seq, b"{}") for seq in range(1, 21)])
            assert loop.time() - started < 0.05, "publish waited on a paused Redis"
            assert here == list(range(1, 21)), "this process's members got everything at once"
            # The 15 oldest are dropped, past the bound of 5.
            assert registry.get_sample_value("switchboard_bus_dropped_total") == 15
            assert registry.get_sample_value("switchboard_bus_queue_depth") == 5
            await _until(lambda: "publish" in health.degraded, 5, "publish degraded")
            assert registry.get_sample_value("switchboard_redis_up") == 0
        finally:
            own_redis.resume()
        seen: list[int] = []
        notices = 0
        async with asyncio.timeout(10):
            while len(seen) < 5 or not notices:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is None:
                    continue
                seq, _, payload = open_envelope(message["data"])
                if message["channel"] == NODE_TOPIC.encode():
                    notices += payload == RESYNC_NOTICE
                else:
                    seen.append(seq)
        # The newest five, in order (a batch that timed out while Redis was paused may
        # have reached it too, and comes again: receivers skip a seq they delivered).
        assert seen[:5] == [16, 17, 18, 19, 20] and set(seen) == {16, 17, 18, 19, 20}
        await _until(lambda: not health.degraded, 10, "healthy again")
        assert registry.get_sample_value("switchboard_redis_up") == 1
        assert here == list(range(1, 21)), "our own publishes came back from Redis"
    finally:
        own_redis.resume()
        await bus.close()
        await pubsub.aclose()
        await watcher.aclose()
        await client.aclose()


async def test_the_chat_limit_does_not_hang_on_a_paused_redis(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "RETRY_S", 1.0)
    loop = asyncio.get_running_loop()
    client = _client(own_redis)
    health = RedisHealth()
    limiter = RedisChatRateLimiter(client, timeout_s=TIMEOUT, health=health)
    try:
        assert (await limiter.hit("u", "c", 3)).allowed
        own_redis.pause()
        try:
            started = loop.time()
            verdicts = [await limiter.hit("u", "c", 3) for _ in range(4)]
            # Only the first waits for Redis (one timeout); the rest are judged at once.
            assert loop.time() - started < TIMEOUT + 0.5
            # Judged by a window in process memory: the limit still holds.
            assert [v.allowed for v in verdicts] == [True, True, True, False]
            assert verdicts[3].retry_after_ms > 0
            assert "ratelimit" in health.degraded
            await limiter.release("u", "c", verdicts[0].token)
            assert (await limiter.hit("u", "c", 3)).allowed
        finally:
            own_redis.resume()
        # Redis is asked again once it answers: a verdict with a Redis token.
        async with asyncio.timeout(10):
            while True:
                verdict = await limiter.hit("u", "fresh", 1000)
                if not verdict.token.startswith(ratelimit.LOCAL):
                    break
                await asyncio.sleep(0.1)
        assert "ratelimit" not in health.degraded
    finally:
        own_redis.resume()
        await client.aclose()


class _FailingHub(FakeHub):
    async def drop(self, client: Any) -> list[str]:
        raise ConnectionError("Redis is down")


class _FlakyPresence(FakePresence):
    """The first leave fails (Postgres away); the others work."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def leave(self, channel: str, user_id: str, **kw: Any) -> bool:
        if self.failures:
            self.failures -= 1
            raise OSError("connection refused")
        return await super().leave(channel, user_id, **kw)


async def test_closing_a_session_runs_every_cleanup_step_though_one_fails() -> None:
    host = FakeHost()
    host.hub = _FailingHub()
    host.presence = _FlakyPresence()
    host.rooms.open |= {"a", "b", "c"}
    session = session_for(host)
    for room in ("room:a", "room:b", "room:c"):
        await session.handle(p.Join(channel=room))
    user = session.principal.user_id
    assert all(user in host.presence.here[r] for r in ("room:a", "room:b", "room:c"))
    await session.close()  # the hub fails, and so does the first presence leave
    assert session.joined == {}
    left = [r for r in ("room:a", "room:b", "room:c") if user not in host.presence.here[r]]
    assert len(left) == 2, "a failed step skipped the ones after it"
    assert sum(e.kind == "left" for e in host.announced) == 2


async def test_the_hub_catches_a_room_up_in_order_without_duplicates() -> None:
    from gateway.fanout import Client

    source = Rows()
    hub = Hub(
        subscribe=lambda _c: asyncio.sleep(0),
        unsubscribe=lambda _c: asyncio.sleep(0),
        source_for=lambda _c: source,
    )
    socket = FakeSocket()
    client = Client(socket, socket, False, "u", on_slow=lambda: None)
    await hub.join(client, "room:x", None)
    source.rows = [b'{"seq":%d}' % i for i in range(1, 8)]
    hub.on_bus("room:x", 1, 0.0, source.rows[0])  # 1 arrives; 2-7 were lost by the bus
    hub.on_bus("room:x", 5, 0.0, source.rows[4])  # 5 arrives early: held
    hub.request_resync()
    hub.request_resync()  # folded into the run in progress
    hub.on_bus("room:x", 3, 0.0, source.rows[2])  # 3 arrives out of order, held too
    await _until(lambda: b'{"seq":7}' in b"".join(socket.written), 5, "caught up")
    await asyncio.sleep(0)
    delivered = b"".join(socket.written)
    order = [delivered.index(b'{"seq":%d}' % i) for i in range(1, 8)]
    assert order == sorted(order)
    assert all(delivered.count(b'{"seq":%d}' % i) == 1 for i in range(1, 8))
