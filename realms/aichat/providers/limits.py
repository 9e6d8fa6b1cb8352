"""Per-provider request limits (`ai_providers.requests_per_minute` / `requests_per_day`),
counted across every gateway process in Redis, checked before a provider is called.

Per minute: a sliding-window log (a sorted set of the requests of the last 60 s): a request is
allowed while fewer than the limit were made in the 60 s before it. Per day: a counter per
calendar day in UTC. One Lua script checks both and records the request only when both
allow it, so concurrent sends on many processes never overshoot. Keys are hash-tagged with
the provider (`sb:aichat:prl:{<provider>}:...`), so both live in one slot of a Redis Cluster.

Without REDIS_URL the same rule runs in process memory (one gateway process). When Redis
does not answer within GATEWAY_REDIS_TIMEOUT, this process judges by its own memory for
RETRY_S and tries Redis again: the limit then holds per process (as the core's chat limit).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, Protocol

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from kernel.logs import EventLog

log = EventLog("realms.aichat.limits")

WINDOW_MS = 60_000
RETRY_S = 2.0  # after Redis failed to answer, judge in memory this long before asking again
LOCAL = "m|"  # prefix of the tokens of requests recorded by the in-memory stand-in
REDIS_ERRORS = (RedisError, RedisClusterException, OSError, TimeoutError)


class Limits(NamedTuple):
    """A provider's limits; None: no limit."""

    per_minute: int | None
    per_day: int | None

    @property
    def unlimited(self) -> bool:
        return self.per_minute is None and self.per_day is None


class Verdict(NamedTuple):
    allowed: bool
    retry_after_ms: int  # 0 when allowed
    which: str = ""  # "minute" or "day": the limit that refused
    token: str = ""  # names the recorded request, for release()


class ProviderLimiter(Protocol):
    async def acquire(self, provider: str, limits: Limits, now_ms: int | None = None) -> Verdict:
        """Record one request to `provider` if its limits allow it. When the request is then
        not made after all (the send was refused or rolled back), call release() with the
        verdict's token so that it does not count."""
        ...

    async def release(self, provider: str, token: str) -> None: ...

    async def close(self) -> None: ...


def _now_ms() -> int:
    return int(time.time() * 1000)


def _day(now_ms: int) -> tuple[str, int]:
    """The UTC day of `now_ms` (YYYY-MM-DD) and the ms left until the next one begins."""
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return now.strftime("%Y-%m-%d"), max(1, int(midnight.timestamp() * 1000) - now_ms)


def minute_key(provider: str) -> str:
    return f"sb:aichat:prl:{{{provider}}}:m"


def day_key(provider: str, day: str) -> str:
    return f"sb:aichat:prl:{{{provider}}}:d:{day}"


class MemoryProviderLimiter:
    """The same rule in this process's memory."""

    def __init__(self) -> None:
        self._minute: dict[str, deque[int]] = {}
        self._days: dict[tuple[str, str], int] = {}

    async def acquire(self, provider: str, limits: Limits, now_ms: int | None = None) -> Verdict:
        now = _now_ms() if now_ms is None else now_ms
        recent = self._minute.setdefault(provider, deque())
        while recent and recent[0] <= now - WINDOW_MS:
            recent.popleft()
        if limits.per_minute is not None and len(recent) >= limits.per_minute:
            return Verdict(False, recent[0] + WINDOW_MS - now + 1, "minute")
        day, to_midnight = _day(now)
        used = self._days.get((provider, day), 0)
        if limits.per_day is not None and used >= limits.per_day:
            return Verdict(False, to_midnight, "day")
        for key in [k for k in self._days if k[0] == provider and k[1] != day]:
            del self._days[key]  # earlier days are over
        if limits.per_minute is not None:
            recent.append(now)
        self._days[(provider, day)] = used + 1
        return Verdict(True, 0, "", f"{day}|{now}")

    async def release(self, provider: str, token: str) -> None:
        day, _, stamp = token.partition("|")
        recent = self._minute.get(provider)
        if recent is not None and stamp.isdigit() and int(stamp) in recent:
            recent.remove(int(stamp))
        if self._days.get((provider, day), 0) > 0:
            self._days[(provider, day)] -= 1

    async def close(self) -> None:
        return None


_ACQUIRE = """
local mkey, dkey = KEYS[1], KEYS[2]
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local per_minute, per_day = tonumber(ARGV[3]), tonumber(ARGV[4])
local member, to_midnight = ARGV[5], tonumber(ARGV[6])
if per_minute > 0 then
  redis.call('ZREMRANGEBYSCORE', mkey, '-inf', now - window)
  if redis.call('ZCARD', mkey) >= per_minute then
    local oldest = redis.call('ZRANGE', mkey, 0, 0, 'WITHSCORES')
    return {0, tonumber(oldest[2]) + window - now + 1, 'minute'}
  end
end
if per_day > 0 and tonumber(redis.call('GET', dkey) or '0') >= per_day then
  return {0, to_midnight, 'day'}
end
if per_minute > 0 then
  redis.call('ZADD', mkey, now, member)
  redis.call('PEXPIRE', mkey, window)
end
redis.call('INCR', dkey)
redis.call('PEXPIRE', dkey, to_midnight + 3600000)
return {1, 0, ''}
"""

_RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
return 1
"""


class RedisProviderLimiter:
    """The rule in Redis, shared by every gateway process on it."""

    def __init__(self, client: aioredis.Redis | RedisCluster, *, timeout_s: float = 1.0) -> None:
        self._client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._timeout = timeout_s
        self._local = MemoryProviderLimiter()
        self._skip_until = 0.0  # monotonic time before which Redis is not asked

    async def acquire(self, provider: str, limits: Limits, now_ms: int | None = None) -> Verdict:
        now = _now_ms() if now_ms is None else now_ms
        if time.monotonic() >= self._skip_until:
            day, to_midnight = _day(now)
            member = f"{now}-{uuid.uuid4().hex[:12]}"
            try:
                async with asyncio.timeout(self._timeout):
                    allowed, retry, which = await self._acquire(
                        keys=[minute_key(provider), day_key(provider, day)],
                        args=[
                            now,
                            WINDOW_MS,
                            limits.per_minute or 0,
                            limits.per_day or 0,
                            member,
                            to_midnight,
                        ],
                    )
            except REDIS_ERRORS as exc:
                self._skip_until = time.monotonic() + RETRY_S
                log.warning("provider_limits_in_memory", provider=provider, error=repr(exc))
            else:
                if isinstance(which, bytes):
                    which = which.decode()
                token = f"{day}|{member}" if allowed else ""
                return Verdict(bool(allowed), int(retry), str(which), token)
        verdict = await self._local.acquire(provider, limits, now)
        return verdict._replace(token=LOCAL + verdict.token if verdict.allowed else "")

    async def release(self, provider: str, token: str) -> None:
        """Best effort: a release that Redis misses counts one request too many, for at most
        a minute (and the day)."""
        if token.startswith(LOCAL):
            await self._local.release(provider, token[len(LOCAL) :])
            return
        day, _, member = token.partition("|")
        if not member:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self._release(
                    keys=[minute_key(provider), day_key(provider, day)], args=[member]
                )
        except REDIS_ERRORS as exc:
            log.warning("provider_limit_release_failed", provider=provider, error=repr(exc))

    async def close(self) -> None:
        await self._client.aclose()


class DeferredLimiter:
    """A limiter opened by `factory` on first use (so that building a namespace reads no
    settings and opens no connection)."""

    def __init__(self, factory: Callable[[], ProviderLimiter]) -> None:
        self._factory = factory
        self._limiter: ProviderLimiter | None = None

    def _opened(self) -> ProviderLimiter:
        if self._limiter is None:
            self._limiter = self._factory()
        return self._limiter

    async def acquire(self, provider: str, limits: Limits, now_ms: int | None = None) -> Verdict:
        return await self._opened().acquire(provider, limits, now_ms)

    async def release(self, provider: str, token: str) -> None:
        await self._opened().release(provider, token)

    async def close(self) -> None:
        if self._limiter is not None:
            await self._limiter.close()


def open_limiter(
    redis_url: str | None, *, cluster: bool = False, timeout_s: float = 1.0
) -> ProviderLimiter:
    """The limiter of one gateway process: on Redis (or a Redis Cluster) when `redis_url` is
    set, in memory otherwise. Nothing connects before the first request."""
    if not redis_url:
        return MemoryProviderLimiter()
    client: aioredis.Redis | RedisCluster
    if cluster:
        client = RedisCluster.from_url(
            redis_url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
    else:
        client = aioredis.from_url(
            redis_url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
    return RedisProviderLimiter(client, timeout_s=timeout_s)
