"""Several gateway processes over Redis, slow consumers, graceful shutdown, health, metrics."""

from __future__ import annotations

import asyncio
import signal
import urllib.request
from collections.abc import Awaitable, Callable

import asyncpg

from tests.gateway.conftest import Starter, World
from tests.gateway.harness import GatewayProcess, WsClient, token_for

Connect = Callable[..., Awaitable[WsClient]]


async def _open(gateway: GatewayProcess, secret: str, user: object) -> WsClient:
    client = await WsClient.open(gateway.url, token_for(secret, str(user)))
    await client.expect("welcome")
    await client.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
    return client


async def test_two_gateway_processes_share_fan_out_order_and_rate_limits(
    world: World, start_gateway: Starter, redis_url: str, secret: str, db: asyncpg.Connection
) -> None:
    await db.execute("UPDATE analyst.chat_channels SET message_rate_limit = 4")
    one = await start_gateway(REDIS_URL=redis_url)
    two = await start_gateway(REDIS_URL=redis_url)
    alice = await _open(one, secret, world.member)
    bob = await _open(two, secret, world.other_member)
    watcher = await _open(two, secret, world.analyst)
    for client in (alice, bob, watcher):
        await client.ok("join", channel=world.room)
    await asyncio.gather(
        *(alice.ok("send", channel=world.room, text=f"a{i}") for i in range(2)),
        *(bob.ok("send", channel=world.room, text=f"b{i}") for i in range(2)),
    )
    for client in (alice, bob, watcher):
        seqs = [(await client.expect("msg"))["seq"] for _ in range(4)]
        assert seqs == [1, 2, 3, 4]
    # Two sends on process one, two more on process two: the fifth anywhere is refused.
    await alice.ok("send", channel=world.room, text="a2")
    await alice.ok("send", channel=world.room, text="a3")
    await bob.ok("send", channel=world.room, text="b2")
    await bob.ok("send", channel=world.room, text="b3")
    assert (await bob.call("send", channel=world.room, text="b4"))["code"] == "rate_limited"
    assert (await alice.call("send", channel=world.room, text="a4"))["code"] == "rate_limited"
    presence = await watcher.ok("presence", channel=world.room)
    assert set(presence["users"]) == {
        str(world.member),
        str(world.other_member),
        str(world.analyst),
    }


async def test_a_slow_consumer_is_closed_with_4008_and_others_keep_receiving(
    world: World, start_gateway: Starter, secret: str, db: asyncpg.Connection
) -> None:
    await db.execute("UPDATE analyst.chat_channels SET is_rate_limited = false")
    gw = await start_gateway(
        GATEWAY_SLOW_CONSUMER_BYTES="65536",
        GATEWAY_FRAMES_PER_SECOND="100000",
        GATEWAY_FRAME_BURST="100000",
    )
    sender = await _open(gw, secret, world.member)
    fast = await _open(gw, secret, world.analyst)
    slow = await WsClient.open(gw.url, token_for(secret, world.other_member), max_queue=None)
    for client in (sender, fast, slow):
        await client.ok("join", channel=world.room)
    slow.ws.transport.pause_reading()  # stops reading: the server's buffer for it fills up
    big = "\U0001f600" * 2000  # 8,000 bytes of UTF-8
    count = 0
    while not await gw_metric(gw, "switchboard_slow_consumer_closes_total"):
        await asyncio.gather(*(sender.ok("send", channel=world.room, text=big) for _ in range(50)))
        count += 50
        assert count < 5000, "the slow consumer was never detected"
    slow.ws.transport.resume_reading()
    assert await slow.closed(timeout=30) == 4008
    last = await fast.expect(lambda f: f.get("op") == "msg" and f["seq"] == count, timeout=30)
    assert last["seq"] == count
    # The closed consumer resumes with `since` and gets what it missed.
    again = await _open(gw, secret, world.other_member)
    ack = await again.ok("join", channel=world.room, since=count - 3)
    assert ack["replayed"] == 3


def _status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - http to loopback
        return int(reply.status)


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def gw_metric(gw: GatewayProcess, name: str) -> float:
    """A metric's value read from the gateway's /metrics endpoint."""
    return await asyncio.to_thread(_metric, gw.port, name)


async def test_graceful_shutdown_acks_accepted_sends_and_closes_with_1001(
    world: World, start_gateway: Starter, secret: str, db: asyncpg.Connection
) -> None:
    gw = await start_gateway()
    alice = await _open(gw, secret, world.member)
    await alice.ok("join", channel=world.room)
    refs = [await alice.send("send", channel=world.room, text=f"last words {i}") for i in range(5)]
    assert gw.proc is not None
    gw.proc.send_signal(signal.SIGTERM)
    replies = [await alice.reply(ref) for ref in refs]
    assert await alice.closed() == 1001
    assert await gw.stop() == 0
    acked = [r["id"] for r in replies if r["op"] == "ok"]
    refused = [r for r in replies if r["op"] == "error"]
    assert all(r["code"] == "unavailable" for r in refused)
    stored = await db.fetchval("SELECT count(*) FROM analyst.chat_messages")
    assert stored == len(acked)


async def test_health_and_metrics_endpoints(
    world: World, gw: GatewayProcess, connect_as: Connect
) -> None:
    assert await asyncio.to_thread(_status, f"http://127.0.0.1:{gw.port}/healthz") == 200
    alice = await connect_as(world.member)
    await alice.ok("join", channel=world.room)
    await alice.ok("send", channel=world.room, text="count me")
    await alice.expect("msg")
    assert await gw_metric(gw, "switchboard_connections") == 1
    assert await gw_metric(gw, "switchboard_messages_in_total") == 1
    assert await gw_metric(gw, "switchboard_deliveries_total") >= 1
    assert await gw_metric(gw, "switchboard_fanout_latency_seconds_count") >= 1


async def test_gateway_processes_share_one_port_and_one_room(
    world: World, start_gateway: Starter, redis_url: str, secret: str, db: asyncpg.Connection
) -> None:
    await db.execute("UPDATE analyst.chat_channels SET is_rate_limited = false")
    gw = await start_gateway(REDIS_URL=redis_url, GATEWAY_PROCESSES="2")
    await gw.logged("event=listening", times=2)  # the second process is serving too
    users = [world.member, world.other_member, world.analyst, world.admin]
    clients: list[WsClient] = []
    # The kernel spreads connections over the processes by hash: keep connecting until both
    # hold members (40 sockets all landing on one process has odds of 2 in 10^12).
    while len(clients) < 40:
        client = await _open(gw, secret, users[len(clients) % len(users)])
        await client.ok("join", channel=world.room)
        clients.append(client)
        if await db.fetchval("SELECT count(DISTINCT node_id) FROM gateway.live_members") == 2:
            break
    assert await db.fetchval("SELECT count(DISTINCT node_id) FROM gateway.live_members") == 2
    sent = await clients[0].ok("send", channel=world.room, text="to everyone on both")
    for client in clients:
        got = await client.expect("msg")
        assert got["id"] == sent["id"]


async def test_presence_and_member_counts_expire_when_a_gateway_process_dies(
    world: World, start_gateway: Starter, redis_url: str, secret: str, db: asyncpg.Connection
) -> None:
    fast = {"REDIS_URL": redis_url, "GATEWAY_HEARTBEAT": "0.2", "GATEWAY_NODE_TTL": "1"}
    doomed = await start_gateway(**fast)
    survivor = await start_gateway(**fast)
    alice = await _open(doomed, secret, world.member)
    bob = await _open(survivor, secret, world.other_member)
    await alice.ok("join", channel=world.room)
    await bob.ok("join", channel=world.room)
    before = await bob.ok("presence", channel=world.room)
    assert set(before["users"]) == {str(world.member), str(world.other_member)}
    assert await db.fetchval("SELECT active_members_count FROM analyst.chat_channels") == 2
    assert doomed.proc is not None
    doomed.proc.kill()  # no goodbye: only the missing heartbeat can tell
    # Nothing announces a death: ask until the survivor's sweep has removed alice.
    users: list[str] = before["users"]
    for _ in range(100):
        users = (await bob.ok("presence", channel=world.room))["users"]
        if users == [str(world.other_member)]:
            break
        await asyncio.sleep(0.1)
    assert users == [str(world.other_member)]
    for _ in range(100):
        if await db.fetchval("SELECT active_members_count FROM analyst.chat_channels") == 1:
            break
        await asyncio.sleep(0.1)
    assert await db.fetchval("SELECT active_members_count FROM analyst.chat_channels") == 1
