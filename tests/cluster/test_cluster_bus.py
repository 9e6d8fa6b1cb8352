"""ClusterBus on its own: two buses (two processes' worth) on a real cluster. Envelopes reach
the other bus on topics of every master, in order; and when a master hands its slots to its
replica while staying up (CLUSTER FAILOVER: the connection never breaks, only the server's
own SUNSUBSCRIBE says so), the subscriptions follow the slots and delivery goes on. This
module has a cluster of its own (the test moves masters around)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio.cluster import RedisCluster

from gateway.bus import RedisHealth
from gateway.bus_cluster import ClusterBus
from tests.cluster.conftest import master_of, shard_subscribers
from tests.cluster.services import RedisClusterServers
from tests.faults.traffic import eventually

pytestmark = pytest.mark.xdist_group("redis-cluster-bus")


class Inbox:
    """What a bus's handler was given, awaitable; and how often it asked for a resync."""

    def __init__(self) -> None:
        self.got: list[tuple[str, int, bytes]] = []
        self.resyncs = 0
        self._changed = asyncio.Condition()

    def handler(self, channel: str, seq: int, _sent_at: float, payload: bytes) -> None:
        self.got.append((channel, seq, payload))
        asyncio.get_running_loop().create_task(self._notify())

    def resync(self) -> None:
        self.resyncs += 1

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def has(self, item: tuple[str, int, bytes], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: item in self.got)


@pytest.fixture
async def buses(
    redis_cluster: RedisClusterServers,
) -> AsyncIterator[tuple[ClusterBus, ClusterBus, Inbox]]:
    """A publishing bus and a subscribing bus; the inbox of the subscribing one."""
    inbox = Inbox()
    made = [
        ClusterBus(RedisCluster.from_url(redis_cluster.url), timeout_s=0.5, health=RedisHealth())
        for _ in range(2)
    ]
    await made[0].start(lambda *_: None)
    await made[1].start(inbox.handler, inbox.resync)
    yield made[0], made[1], inbox
    for bus in made:
        await bus.close()


def _rooms_per_master(servers: RedisClusterServers) -> dict[int, str]:
    rooms: dict[int, str] = {}
    for i in range(500):
        room = f"test.room:{i}"
        rooms.setdefault(master_of(servers, room).port, room)
    assert len(rooms) == servers.masters
    return rooms


async def test_envelopes_reach_the_other_bus_on_every_master_in_order(
    buses: tuple[ClusterBus, ClusterBus, Inbox], redis_cluster: RedisClusterServers
) -> None:
    sender, receiver, inbox = buses
    rooms = list(_rooms_per_master(redis_cluster).values())
    for room in rooms:
        await receiver.subscribe(room)
        assert shard_subscribers(redis_cluster, room) == 1
    await sender.publish_many(
        [(room, seq, f"{room}/{seq}".encode()) for seq in range(1, 51) for room in rooms]
    )
    for room in rooms:
        await inbox.has((room, 50, f"{room}/50".encode()))
        assert [s for c, s, _ in inbox.got if c == room] == list(range(1, 51))
    await receiver.unsubscribe(rooms[0])
    await sender.publish(rooms[1], 51, b"after")  # the unsubscribe went out before it
    await inbox.has((rooms[1], 51, b"after"))
    assert shard_subscribers(redis_cluster, rooms[0]) == 0


async def test_subscriptions_follow_slots_handed_to_a_replica(
    buses: tuple[ClusterBus, ClusterBus, Inbox], redis_cluster: RedisClusterServers
) -> None:
    sender, receiver, inbox = buses
    room = "test.room:handover"
    await receiver.subscribe(room)
    await sender.publish(room, 1, b"before")
    await inbox.has((room, 1, b"before"))
    old = master_of(redis_cluster, room)
    replica = redis_cluster.replica_of(old)
    assert redis_cluster.cli(replica, "CLUSTER", "FAILOVER").strip() == "OK"
    await asyncio.to_thread(
        redis_cluster.wait_for,
        "the replica to be master",
        lambda: master_of(redis_cluster, room) is replica,
    )
    # The old master is still up: only its SUNSUBSCRIBE tells the bus the slot moved.
    await eventually(
        lambda: asyncio.to_thread(shard_subscribers, redis_cluster, room),
        1,
        60,  # the bus re-reads the slot map until the cluster's view has converged
        "the subscription on the new master",
    )
    assert inbox.resyncs >= 1  # what was published meanwhile is read back from Postgres
    await sender.publish(room, 2, b"after")
    await inbox.has((room, 2, b"after"))
