"""Gateways on a Redis Cluster (REDIS_CLUSTER=1): messages cross between gateway processes
through sharded pub/sub on every master, resume with `since` works across them, and the chat
rate limit is the single-Redis rule, shared by every process, kept on the channel's shard."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio.cluster import RedisCluster

from gateway.ratelimit import ChatRateLimiter, RedisChatRateLimiter, window_key
from tests.cluster.conftest import master_of, shard_subscribers, topic_of
from tests.cluster.services import RedisClusterServers
from tests.gateway.conftest import Starter, World, make_channel
from tests.gateway.harness import WsClient, token_for
from tests.gateway.test_ratelimit import (
    test_gateway_limiter_and_sql_function_agree_at_every_step as sql_rule_agreement,
)
from tests.gateway.test_ratelimit import (
    test_limiter_is_per_user_and_per_channel as per_user_and_channel,
)

pytestmark = pytest.mark.xdist_group("redis-cluster")


async def _connect(url: str, secret: str, user: uuid.UUID) -> WsClient:
    client = await WsClient.open(url, token_for(secret, user))
    await client.expect("welcome")
    await client.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
    return client


def _msg_in(room: str, text: str | None = None):  # type: ignore[no-untyped-def]
    return lambda f: (
        f.get("op") == "msg" and f["channel"] == room and (text is None or f["text"] == text)
    )


async def _rooms_on_every_master(
    db: asyncpg.Connection, world: World, servers: RedisClusterServers
) -> list[str]:
    """Open rooms until their topics cover every master (one room per master)."""
    by_master: dict[int, str] = {}
    for _ in range(200):
        channel = await make_channel(
            db, world.analyst, require_subscription=False, message_rate_limit=1000
        )
        room = f"community:{channel}"
        by_master.setdefault(master_of(servers, room).port, room)
        if len(by_master) == servers.masters:
            return list(by_master.values())
    raise AssertionError("200 random rooms did not cover every master")


async def test_messages_cross_gateways_on_rooms_of_every_master(
    world: World,
    db: asyncpg.Connection,
    start_gateway: Starter,
    redis_cluster: RedisClusterServers,
    cluster_env: dict[str, str],
    secret: str,
) -> None:
    rooms = await _rooms_on_every_master(db, world, redis_cluster)
    one = await start_gateway(**cluster_env)
    two = await start_gateway(**cluster_env)
    alice = await _connect(one.url, secret, world.member)
    bob = await _connect(two.url, secret, world.other_member)
    try:
        for room in rooms:
            for client in (alice, bob):
                await client.ok("join", channel=room)
            # Each gateway subscribes the topic on the master that owns its slot.
            assert shard_subscribers(redis_cluster, room) == 2
        for i, room in enumerate(rooms):
            ack = await alice.ok("send", channel=room, text=f"from one {i}")
            got = await bob.expect(_msg_in(room, f"from one {i}"))
            assert (got["id"], got["seq"]) == (ack["id"], ack["seq"])
            ack = await bob.ok("send", channel=room, text=f"from two {i}")
            got = await alice.expect(_msg_in(room, f"from two {i}"))
            assert (got["id"], got["seq"]) == (ack["id"], ack["seq"])
        # The topic is unsubscribed on its shard when the last local member leaves.
        await alice.ok("leave", channel=rooms[0])
        await bob.ok("leave", channel=rooms[0])
        await bob.ok("send", channel=rooms[1], text="sync")  # the leaves were handled
        await alice.expect(_msg_in(rooms[1], "sync"))
        assert shard_subscribers(redis_cluster, rooms[0]) == 0
    finally:
        await alice.close()
        await bob.close()


async def test_resume_with_since_across_gateways(
    world: World,
    db: asyncpg.Connection,
    start_gateway: Starter,
    cluster_env: dict[str, str],
    secret: str,
) -> None:
    await db.execute(
        "UPDATE analyst.chat_channels SET message_rate_limit = 1000 WHERE id = $1", world.channel
    )
    one = await start_gateway(**cluster_env)
    two = await start_gateway(**cluster_env)
    alice = await _connect(one.url, secret, world.member)
    bob = await _connect(two.url, secret, world.other_member)
    await alice.ok("join", channel=world.room)
    await bob.ok("join", channel=world.room)
    for i in range(3):
        await alice.ok("send", channel=world.room, text=f"seen {i}")
    seen = [(await bob.expect(_msg_in(world.room)))["seq"] for _ in range(3)]
    assert seen == [1, 2, 3]
    await bob.close()
    missed = [
        (await alice.ok("send", channel=world.room, text=f"missed {i}"))["id"] for i in range(4)
    ]
    # Back on the other gateway: the missed messages, in order, then live ones.
    bob = await _connect(one.url, secret, world.other_member)
    ack = await bob.ok("join", channel=world.room, since=seen[-1])
    replayed = bob.take_all("msg")
    assert [f["id"] for f in replayed] == missed
    assert [f["seq"] for f in replayed] == [4, 5, 6, 7]
    assert (ack["replayed"], ack["recovered"], ack["last_seq"]) == (4, True, 7)
    carol = await _connect(two.url, secret, world.analyst)
    await carol.ok("join", channel=world.room)
    await carol.ok("send", channel=world.room, text="live")
    assert (await bob.expect(_msg_in(world.room, "live")))["seq"] == 8
    assert (await alice.expect(_msg_in(world.room, "live")))["seq"] == 8
    for client in (alice, bob, carol):
        await client.close()


@pytest.fixture
async def cluster_limiter(
    redis_cluster: RedisClusterServers,
) -> AsyncIterator[ChatRateLimiter]:
    client = RedisCluster.from_url(redis_cluster.url)
    await client.flushall()
    yield RedisChatRateLimiter(client)
    await client.aclose()


async def test_cluster_limiter_and_sql_function_agree_at_every_step(
    world: World, db: asyncpg.Connection, cluster_limiter: ChatRateLimiter
) -> None:
    await sql_rule_agreement(world, db, cluster_limiter)


async def test_cluster_limiter_is_per_user_and_per_channel(
    cluster_limiter: ChatRateLimiter,
) -> None:
    await per_user_and_channel(cluster_limiter)


async def test_rate_limit_holds_across_gateways_on_the_rooms_shard(
    world: World,
    db: asyncpg.Connection,
    start_gateway: Starter,
    redis_cluster: RedisClusterServers,
    cluster_env: dict[str, str],
    secret: str,
) -> None:
    await db.execute(
        "UPDATE analyst.chat_channels SET message_rate_limit = 3 WHERE id = $1", world.channel
    )
    one = await start_gateway(**cluster_env)
    two = await start_gateway(**cluster_env)
    on_one = await _connect(one.url, secret, world.member)
    on_two = await _connect(two.url, secret, world.member)
    other = await _connect(two.url, secret, world.other_member)
    for client in (on_one, on_two, other):
        await client.ok("join", channel=world.room)
    await on_one.ok("send", channel=world.room, text="1")
    await on_two.ok("send", channel=world.room, text="2")
    await on_one.ok("send", channel=world.room, text="3")
    # The fourth send within the minute is refused whichever gateway it reaches.
    for client in (on_two, on_one):
        refused = await client.call("send", channel=world.room, text="4")
        assert refused["code"] == "rate_limited"
        assert 0 < refused["retry_after_ms"] <= 60_001
    assert (await other.call("send", channel=world.room, text="mine"))["op"] == "ok"
    # The user's window lives on the master of the room's topic: that shard answers for the
    # key itself (any other master would redirect with MOVED).
    key = window_key(str(world.member), world.room)
    owner = master_of(redis_cluster, world.room)
    assert redis_cluster.cli(owner, "ZCARD", key).strip() == "3"
    assert redis_cluster.cli(owner, "CLUSTER", "KEYSLOT", key) == redis_cluster.cli(
        owner, "CLUSTER", "KEYSLOT", topic_of(world.room)
    )
    for client in (on_one, on_two, other):
        await client.close()
