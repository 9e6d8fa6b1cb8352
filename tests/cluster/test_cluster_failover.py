"""A Redis Cluster master killed (SIGKILL) under two gateway processes while clients send in
a room whose topic that master carries: its replica takes over, both gateways subscribe the
topic on the new master, delivery goes on, and no acknowledged message is lost or duplicated
for anyone. This module has a cluster of its own (the test kills one of its nodes)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.cluster.conftest import master_of, shard_subscribers
from tests.cluster.services import RedisClusterServers
from tests.faults.traffic import Receiver, Sender, check_delivery, eventually, healthz, opener
from tests.gateway.conftest import Starter, World

pytestmark = pytest.mark.xdist_group("redis-cluster-failover")


async def test_master_killed_replica_takes_over_and_nothing_acked_is_lost(
    busy: World,
    db: asyncpg.Connection,
    start_gateway: Starter,
    redis_cluster: RedisClusterServers,
    cluster_env: dict[str, str],
    fast: dict[str, str],
    secret: str,
) -> None:
    world = busy
    one = await start_gateway(**fast, **cluster_env)
    two = await start_gateway(**fast, **cluster_env)
    both = [one, two]
    senders = [
        Sender("a", world.room, opener([one], secret, world.member)),
        Sender("b", world.room, opener([two], secret, world.other_member)),
    ]
    receivers = [
        Receiver("on-one", world.room, opener([one], secret, world.analyst)),
        Receiver("on-two", world.room, opener([two], secret, world.admin)),
    ]
    for receiver in receivers:
        await receiver.start()
    for sender in senders:
        sender.start()
    try:
        for sender in senders:
            await sender.acks(5)
        assert shard_subscribers(redis_cluster, world.room) == 2
        doomed = master_of(redis_cluster, world.room)

        await asyncio.to_thread(redis_cluster.kill, doomed)  # returns once a replica took over
        promoted = master_of(redis_cluster, world.room)
        assert promoted is not doomed

        # Both gateways move the room's topic to the promoted master ...
        await eventually(
            lambda: asyncio.to_thread(shard_subscribers, redis_cluster, world.room),
            2,
            30,
            "subscriptions on the promoted master",
        )
        for gw in both:
            await eventually(lambda gw=gw: healthz(gw), "ok", 30, "health after the failover")
        # ... and messages keep crossing between them.
        after = [len(s.acked) for s in senders]
        for sender, before in zip(senders, after, strict=True):
            await sender.acks(before + 10)
        crossing = list(senders[0].acked.values())[-1]
        await receivers[1].until(lambda: crossing in receivers[1].ids, 10, "one-to-two delivery")
        crossing = list(senders[1].acked.values())[-1]
        await receivers[0].until(lambda: crossing in receivers[0].ids, 10, "two-to-one delivery")

        for sender in senders:
            await sender.stop()
        assert all(s.reconnects == 0 for s in senders), "a sender lost its socket"
        assert not any(s.refused for s in senders), [s.refused for s in senders]
        await check_delivery(db, world.channel, senders, receivers)
        assert all(r.reconnects == 0 for r in receivers), "a receiver lost its socket"
    finally:
        for sender in senders:
            await sender.close()
        for receiver in receivers:
            await receiver.close()
