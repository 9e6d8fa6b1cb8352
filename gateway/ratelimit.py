"""Rate limits: the chat rule of check_chat_rate_limit, and a per-connection frame budget.

The chat rule: a user may send in a channel while fewer than `limit` of their messages in
that channel are younger than 60 s (an earlier send at time t counts while now - t < 60 s,
as `created_at > now() - interval '1 minute'` in SQL). It is kept as a sliding-window log:
in Redis (one sorted set per user and channel, updated atomically by a Lua script) so it
holds across gateway processes, or in process memory when there is no REDIS_URL.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from typing import Protocol

import redis.asyncio as aioredis

WINDOW_MS = 60_000


class Verdict(tuple[bool, int]):
    """(allowed, retry_after_ms); retry_after_ms is 0 when allowed."""

    @property
    def allowed(self) -> bool:
        return self[0]

    @property
    def retry_after_ms(self) -> int:
        return self[1]


class ChatRateLimiter(Protocol):
    async def hit(self, user_id: str, channel_id: str, limit: int, now_ms: int | None = None
                  ) -> Verdict:
        """Record a send if allowed; after an allowed hit the message must be sent."""
        ...


def _now_ms() -> int:
    return int(time.time() * 1000)


class MemoryChatRateLimiter:
    """The sliding-window log in process memory (one gateway process, no Redis)."""

    def __init__(self) -> None:
        self._log: dict[tuple[str, str], deque[int]] = {}

    async def hit(self, user_id: str, channel_id: str, limit: int, now_ms: int | None = None
                  ) -> Verdict:
        now = _now_ms() if now_ms is None else now_ms
        log = self._log.setdefault((user_id, channel_id), deque())
        while log and log[0] <= now - WINDOW_MS:
            log.popleft()
        if len(log) < limit:
            log.append(now)
            return Verdict((True, 0))
        return Verdict((False, log[0] + WINDOW_MS - now + 1))


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
    """The same log in Redis, so every gateway process counts the same sends."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._script = client.register_script(_HIT)

    async def hit(self, user_id: str, channel_id: str, limit: int, now_ms: int | None = None
                  ) -> Verdict:
        now = _now_ms() if now_ms is None else now_ms
        allowed, retry = await self._script(
            keys=[f"sb:rl:{user_id}:{channel_id}"],
            args=[now, WINDOW_MS, limit, f"{now}-{uuid.uuid4().hex[:8]}"],
        )
        return Verdict((bool(allowed), int(retry)))


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
