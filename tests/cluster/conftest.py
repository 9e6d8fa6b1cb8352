"""Fixtures of the Redis Cluster tests: a real cluster per test module (three masters, a
replica each), the gateway fixtures of tests/gateway and tests/faults, and helpers that say
which master serves a channel's topic."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.bus_cluster import ClusterBus, topic_slot
from tests.cluster.services import ClusterNode, RedisClusterServers
from tests.faults.conftest import busy, fast, member
from tests.gateway.conftest import start_gateway, world

__all__ = ["busy", "cluster_env", "fast", "member", "redis_cluster", "start_gateway", "world"]


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """One cluster for the module's tests; a test that kills a node has a module of its own."""
    servers = RedisClusterServers()
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def cluster_env(redis_cluster: RedisClusterServers) -> dict[str, str]:
    """Environment of a gateway on the cluster."""
    return {"REDIS_URL": redis_cluster.url, "REDIS_CLUSTER": "1"}


def topic_of(channel: str) -> str:
    return ClusterBus.PREFIX + channel + ClusterBus.SUFFIX


def master_of(servers: RedisClusterServers, channel: str) -> ClusterNode:
    """The master that carries `channel`'s topic (and its rate-limit windows)."""
    return servers.master_of_slot(topic_slot(topic_of(channel)))


def shard_subscribers(servers: RedisClusterServers, channel: str) -> int:
    """How many connections SSUBSCRIBE to `channel`'s topic on the master that owns it."""
    out = servers.cli(master_of(servers, channel), "PUBSUB", "SHARDNUMSUB", topic_of(channel))
    lines = out.split()
    return int(lines[1]) if len(lines) >= 2 else 0
