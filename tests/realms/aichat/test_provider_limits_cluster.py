"""The providers' request limits on a real Redis Cluster (three masters, no replicas): both
keys of a provider share one slot (`{provider}` hash tag), so the Lua script runs there, and
two cluster clients share the count."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from redis.crc import key_slot

from realms.aichat.providers.limits import (
    Limits,
    RedisProviderLimiter,
    day_key,
    minute_key,
    open_limiter,
)
from tests.cluster.services import RedisClusterServers

NOON = 1_772_625_600_000  # 2026-03-04 12:00 UTC


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServers]:
    servers = RedisClusterServers(masters=3, replicas=0)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


def test_a_providers_keys_share_one_slot() -> None:
    for provider in ("openai", "anthropic"):
        assert key_slot(minute_key(provider).encode()) == key_slot(
            day_key(provider, "2026-03-04").encode()
        )


async def test_limits_hold_across_cluster_clients(cluster: RedisClusterServers) -> None:
    limiters = [open_limiter(cluster.url, cluster=True, timeout_s=5) for _ in range(2)]
    assert all(isinstance(one, RedisProviderLimiter) for one in limiters)
    limits = Limits(per_minute=3, per_day=4)
    try:
        verdicts = await asyncio.gather(
            *(limiters[i % 2].acquire("openai", limits, NOON + i) for i in range(8))
        )
        assert sum(v.allowed for v in verdicts) == 3
        assert {v.which for v in verdicts if not v.allowed} == {"minute"}
        # a minute later the day's fourth request is allowed, the fifth is refused by the day
        later = NOON + 61_000
        assert (await limiters[0].acquire("openai", limits, later)).allowed
        refused = await limiters[1].acquire("openai", limits, later + 1)
        assert not refused.allowed and refused.which == "day"
        # a released request is given back, on the cluster too
        taken = await limiters[0].acquire("anthropic", Limits(1, None), NOON)
        await limiters[1].release("anthropic", taken.token)
        assert (await limiters[1].acquire("anthropic", Limits(1, None), NOON + 1)).allowed
    finally:
        for one in limiters:
            await one.close()
