"""Rate limits: the chat rule of check_chat_rate_limit, and a per-connection frame budget.

The chat rule: a user may send in a channel while fewer than `limit` of their messages in
that channel are younger than 60 s (an earlier send at time t counts while now - t < 60 s,
as `created_at > now() - interval '1 minute'` in SQL). It is kept as a sliding-window log:
in Redis (one sorted set per user and channel, updated atomically by a Lua script) so it
holds across gateway processes, or in process memory when there is no REDIS_URL. The key is
hash-tagged with the channel (`sb:rl:{<channel>}:<user>`), so on a Redis Cluster a channel's
windows live on the shard that carries its pub/sub topic.

Redis must answer within GATEWAY_REDIS_TIMEOUT. When it does not (down, paused, failing), the
send is judged by the same rule on a window kept in this process's memory, and Redis is
tried again RETRY_S later: the limit then holds per gateway process rather than across them
(at most limit x processes per minute). It fails neither open (no limit) nor closed (every
send refused while Redis is away); docs/protocol.md §14.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from typing import NamedTuple, Protocol

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from gateway.bus import REDIS_ERRORS, RedisHealth

WINDOW_MS = 60_000
RETRY_S = 2.0  # after Redis failed to answer, judge locally this long before trying it again
LOCAL = "m:"  # prefix of the tokens of sends judged by the in-process window


def window_key(user_id: str, channel_id: str) -> str:
    """The sorted set of a user's sends in a channel; `{channel}` picks its cluster slot."""
    return f"sb:rl:{{{channel_id}}}:{user_id}"


class Verdict(NamedTuple):
    allowed: bool
    retry_after_ms: int  # 0 when allowed
    token: str = ""  # names the recorded send, for release()


class ChatRateLimiter(Protocol):
    async def hit(
        self, user_id: str, channel_id: str, limit: int, now_ms: int | None = None
    ) -> Verdict:
        """Record a send if allowed. If that send then stores nothing (refused, or a
        duplicate), call release() with the verdict's token so the count matches the table."""
        ...

    async def release(self, user_id: str, channel_id: str, token: str) -> None: ...


def _now_ms() -> int:
    return int(time.time() * 1000)


class MemoryChatRateLimiter:
    """The sliding-window log in process memory (one gateway process, no Redis)."""

    def __init__(self) -> None:
        self._log: dict[tuple[str, str], deque[int]] = {}

    async def hit(
        self, user_id: str, channel_id: str, limit: int, now_ms: int | None = None
    ) -> Verdict:
        now = _now_ms() if now_ms is None else now_ms
        log = self._log.setdefault((user_id, channel_id), deque())
        while log and log[0] <= now - WINDOW_MS:
            log.popleft()
        if len(log) < limit:
            log.append(now)
            return Verdict(True, 0, str(now))
        return Verdict(False, log[0] + WINDOW_MS - now + 1)

    async def release(self, user_id: str, channel_id: str, token: str) -> None:
        log = self._log.get((user_id, channel_id))
        if log is not None and token:
            with contextlib.suppress(ValueError):
                log.remove(int(token))


_HIT = """
local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, window)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now + 1}
"""


class RedisChatRateLimiter:
    """The same log in Redis, so every gateway process counts the same sends; a window in
    process memory stands in while Redis does not answer within `timeout_s`."""

    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        *,
        timeout_s: float = 1.0,
        health: RedisHealth | None = None,
    ) -> None:
        self._client = client
        self._script = client.register_script(_HIT)
        self._timeout = timeout_s
        self._health = health or RedisHealth()
        self._local = MemoryChatRateLimiter()
        self._skip_until = 0.0  # monotonic time before which Redis is not asked

    async def hit(
        self, user_id: str, channel_id: str, limit: int, now_ms: int | None = None
    ) -> Verdict:
        now = _now_ms() if now_ms is None else now_ms
        if time.monotonic() >= self._skip_until:
            token = f"{now}-{uuid.uuid4().hex[:8]}"
            try:
                async with asyncio.timeout(self._timeout):
                    allowed, retry = await self._script(
                        keys=[window_key(user_id, channel_id)],
                        args=[now, WINDOW_MS, limit, token],
                    )
            except REDIS_ERRORS as exc:
                self._skip_until = time.monotonic() + RETRY_S
                self._health.failed("ratelimit", exc, RETRY_S)
            else:
                self._health.recovered("ratelimit")
                if self._local._log:  # Redis is back: the stand-in's windows are done with
                    self._local = MemoryChatRateLimiter()
                return Verdict(bool(allowed), int(retry), token if allowed else "")
        self._health.ratelimit_fallbacks.inc()
        verdict = await self._local.hit(user_id, channel_id, limit, now)
        return verdict._replace(token=LOCAL + verdict.token if verdict.allowed else "")

    async def release(self, user_id: str, channel_id: str, token: str) -> None:
        """Best effort: a release Redis misses over-counts one send for up to 60 s."""
        if token.startswith(LOCAL):
            await self._local.release(user_id, channel_id, token[len(LOCAL) :])
            return
        if not token or time.monotonic() < self._skip_until:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.zrem(window_key(user_id, channel_id), token)
        except REDIS_ERRORS as exc:
            self._skip_until = time.monotonic() + RETRY_S
            self._health.failed("ratelimit", exc, RETRY_S)


class FrameBudget:
    """A token bucket of frames per connection: `rate` per second, bursts up to `burst`."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate, self._burst = rate, burst
        self._tokens, self._stamp = burst, time.monotonic()

    def take(self) -> int:
        """0 when a frame may be processed now, else how many ms until one may."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0
        return int((1 - self._tokens) / self._rate * 1000) + 1
