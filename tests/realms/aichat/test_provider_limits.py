"""Per-provider request limits (ai_providers.requests_per_minute / requests_per_day): the
limiter's rule on a real Redis and in memory, and two gateway processes on one Redis letting
exactly `requests_per_minute` of many concurrent sends reach the provider; the others are
refused with `rate_limited` and a retry hint, and nothing of them is stored."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from kernel.db import connect
from realms.aichat.providers.limits import (
    WINDOW_MS,
    Limits,
    MemoryProviderLimiter,
    ProviderLimiter,
    RedisProviderLimiter,
)
from tests.conftest import free_port
from tests.gateway.harness import GatewayProcess, WsClient
from tests.realms.aichat.provider_standin import ProviderStandIn
from tests.realms.aichat.world import make_conversation, make_user, socket

# 2026-03-04 12:00:00 UTC, in ms: a fixed clock for the limiter's rule
NOON = int(datetime(2026, 3, 4, 12, tzinfo=UTC).timestamp() * 1000)
MIDNIGHT = int(datetime(2026, 3, 5, tzinfo=UTC).timestamp() * 1000)


async def forget_windows(client: aioredis.Redis) -> None:
    """Drop every provider's request log (of earlier tests on this session's Redis)."""
    keys = [key async for key in client.scan_iter(match="sb:aichat:prl:*")]
    if keys:
        await client.delete(*keys)


@pytest.fixture(params=["redis", "memory"])
async def limiter(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[ProviderLimiter]:
    if request.param == "memory":
        yield MemoryProviderLimiter()
        return
    client = aioredis.from_url(redis_url)
    await forget_windows(client)
    limiter = RedisProviderLimiter(client)
    yield limiter
    await limiter.close()


async def test_per_minute_is_a_sliding_window(limiter: ProviderLimiter) -> None:
    limits = Limits(per_minute=3, per_day=None)
    verdicts = [await limiter.acquire("openai", limits, NOON + i) for i in range(5)]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    refused = verdicts[3]
    assert refused.which == "minute"
    assert refused.retry_after_ms == WINDOW_MS - 3 + 1  # the oldest leaves the window then
    # another provider has its own window
    assert (await limiter.acquire("anthropic", limits, NOON + 5)).allowed
    # 60 s after the first request, one slot is free again, and only one
    assert (await limiter.acquire("openai", limits, NOON + WINDOW_MS)).allowed
    assert not (await limiter.acquire("openai", limits, NOON + WINDOW_MS)).allowed


async def test_per_day_counts_the_utc_day_and_resets_at_midnight(
    limiter: ProviderLimiter,
) -> None:
    limits = Limits(per_minute=None, per_day=2)
    hour = 3_600_000
    assert (await limiter.acquire("openai", limits, NOON)).allowed
    assert (await limiter.acquire("openai", limits, NOON + 2 * hour)).allowed
    refused = await limiter.acquire("openai", limits, NOON + 3 * hour)
    assert not refused.allowed and refused.which == "day"
    assert refused.retry_after_ms == MIDNIGHT - (NOON + 3 * hour)
    assert (await limiter.acquire("openai", limits, MIDNIGHT + 1)).allowed


async def test_a_released_request_does_not_count(limiter: ProviderLimiter) -> None:
    limits = Limits(per_minute=1, per_day=1)
    taken = await limiter.acquire("openai", limits, NOON)
    assert taken.allowed and not (await limiter.acquire("openai", limits, NOON + 1)).allowed
    await limiter.release("openai", taken.token)
    assert (await limiter.acquire("openai", limits, NOON + 2)).allowed


async def test_the_limits_hold_across_limiters_on_one_redis(redis_url: str) -> None:
    clients = [aioredis.from_url(redis_url) for _ in range(2)]
    await forget_windows(clients[0])
    limiters = [RedisProviderLimiter(c) for c in clients]
    limits = Limits(per_minute=5, per_day=None)
    try:
        verdicts = await asyncio.gather(
            *(limiters[i % 2].acquire("openai", limits, NOON + i) for i in range(12))
        )
        assert sum(v.allowed for v in verdicts) == 5
    finally:
        for one in limiters:
            await one.close()


async def test_without_redis_the_process_judges_alone(redis_url: str) -> None:
    """Redis not answering: the same rule on this process's memory, no error to the sender."""
    dead = aioredis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=0.2)
    limiter = RedisProviderLimiter(dead, timeout_s=0.5)
    limits = Limits(per_minute=2, per_day=None)
    try:
        verdicts = [await limiter.acquire("openai", limits, NOON + i) for i in range(3)]
        assert [v.allowed for v in verdicts] == [True, True, False]
        await limiter.release("openai", verdicts[0].token)
        assert (await limiter.acquire("openai", limits, NOON + 4)).allowed
    finally:
        await limiter.close()


# --- two gateway processes ------------------------------------------------------------------


@pytest.fixture
async def pair(
    dsn: str, secret: str, redis_url: str, standin: ProviderStandIn
) -> AsyncIterator[tuple[GatewayProcess, GatewayProcess]]:
    client = aioredis.from_url(redis_url)
    await forget_windows(client)
    await client.aclose()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "SWITCHBOARD_SECRET": secret,
        "SWITCHBOARD_REALMS": "aichat",
        "REDIS_URL": redis_url,
        "AICHAT_OPENAI_BASE_URL": standin.base_url,
        "AICHAT_LOCAL_DELAY_MS": "0",
    }
    a = GatewayProcess({**env, "GATEWAY_PORT": str(free_port())})
    b = GatewayProcess({**env, "GATEWAY_PORT": str(free_port())})
    await a.start()
    await b.start()
    yield a, b
    for process in (a, b):
        await process.stop()
        print("".join(process.log))  # shown on failure


def _reply(f: dict[str, Any]) -> bool:
    return f.get("op") == "msg" and f.get("role") == "assistant"


async def test_two_gateways_call_the_provider_exactly_requests_per_minute_times(
    dsn: str,
    secret: str,
    pair: tuple[GatewayProcess, GatewayProcess],
    standin: ProviderStandIn,
) -> None:
    limit, extra = 4, 6
    conn = await connect(dsn)
    try:
        await conn.execute(
            "UPDATE aichat.ai_providers SET requests_per_minute = $1, requests_per_day = NULL"
            " WHERE name = 'openai'",
            limit,
        )
        user = await make_user(dsn)
        channels = [
            f"aichat.conv:{await make_conversation(dsn, user)}" for _ in range(limit + extra)
        ]
        sockets: list[WsClient] = []
        for i, channel in enumerate(channels):  # one socket per conversation, both gateways
            client = await socket(pair[i % 2], secret, user)
            await client.ok("join", channel=channel)
            sockets.append(client)

        answers = await asyncio.gather(
            *(
                client.call("send", channel=channel, text=f"question {i}")
                for i, (client, channel) in enumerate(zip(sockets, channels, strict=True))
            )
        )
        accepted = [i for i, a in enumerate(answers) if a["op"] == "ok"]
        refused = [a for a in answers if a["op"] == "error"]
        assert len(accepted) == limit, answers
        assert len(refused) == extra
        for error in refused:
            assert error["code"] == "rate_limited", error
            assert 0 < error["retry_after_ms"] <= 60_001
            assert "nothing was stored" in error["message"]
        # every accepted send is answered; then no other request can be on its way
        for i in accepted:
            reply = await sockets[i].expect(_reply)
            assert not reply.get("partial")  # a whole reply
        assert standin.calls == limit

        # refused sends stored nothing and reserved nothing of the month's quota
        assert (
            await conn.fetchval("SELECT count(*) FROM aichat.messages WHERE role = 'user'") == limit
        )
        assert (
            await conn.fetchval(
                "SELECT messages_count FROM aichat.usage_tracking WHERE user_id = $1", user
            )
            == limit
        )
        refused_channels = [c for i, c in enumerate(channels) if i not in accepted]
        counts = await conn.fetch(
            "SELECT message_count FROM aichat.conversations WHERE id = ANY ($1::uuid[])",
            [uuid.UUID(c.partition(":")[2]) for c in refused_channels],
        )
        assert [r["message_count"] for r in counts] == [0] * extra
    finally:
        await conn.close()
