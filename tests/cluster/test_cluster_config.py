"""REDIS_CLUSTER selects the Redis Cluster bus; every other default stays as it was."""

from __future__ import annotations

import pytest

from kernel.config import ConfigError, load_settings

BASE = {"DATABASE_URL": "postgresql://x@127.0.0.1/db", "SWITCHBOARD_SECRET": "s" * 40}


def test_one_redis_unless_redis_cluster_is_set() -> None:
    assert load_settings(BASE).redis_cluster is False
    assert load_settings({**BASE, "REDIS_URL": "redis://127.0.0.1:6379/0"}).redis_cluster is False
    assert load_settings({**BASE, "REDIS_CLUSTER": "0"}).redis_cluster is False


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_redis_cluster_with_a_seed_node(value: str) -> None:
    settings = load_settings(
        {**BASE, "REDIS_URL": "redis://10.0.0.5:7000/0", "REDIS_CLUSTER": value}
    )
    assert settings.redis_cluster is True
    assert settings.redis_url == "redis://10.0.0.5:7000/0"


def test_redis_cluster_needs_a_node_to_start_from() -> None:
    with pytest.raises(ConfigError, match="REDIS_CLUSTER=1 needs REDIS_URL"):
        load_settings({**BASE, "REDIS_CLUSTER": "1"})


def test_redis_cluster_refuses_what_is_not_a_yes_or_no() -> None:
    with pytest.raises(ConfigError, match="REDIS_CLUSTER must be 1"):
        load_settings({**BASE, "REDIS_URL": "redis://h:1/0", "REDIS_CLUSTER": "sharded"})
