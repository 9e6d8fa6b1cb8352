"""`creator.live:<id>` over real gateway processes: who may join a stream (live only, premium
needs paid or complimentary access, verified ages), unstored chat, and viewer counts kept
right across two gateway processes (300 joins and leaves) and after one is killed, pushed
to the room as `viewers` events about once a second, with stream_access sessions."""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

import asyncpg

from kernel.tokens import sign_access_token
from tests.gateway.harness import GatewayProcess, WsClient
from tests.realms.creator.conftest import Connect, Starter, World, make_account


async def make_stream(
    db: asyncpg.Connection, creator: uuid.UUID, *, status: str = "live", price: int | None = None
) -> str:
    stream_id = await db.fetchval(
        "INSERT INTO creator.live_streams (creator_id, title, status, is_premium, price)"
        " VALUES ($1, 'Friday live', $2, $3, $4) RETURNING id",
        creator,
        status,
        price is not None,
        price,
    )
    return f"creator.live:{stream_id}"


async def _refused(client: WsClient, channel: str) -> str:
    frame = await client.call("join", channel=channel)
    assert frame["op"] == "error" and frame["code"] == "forbidden", frame
    return str(frame["message"])


async def test_who_may_join_a_stream_and_its_chat(
    world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    scheduled = await make_stream(db, world.creator, status="scheduled")
    creator = await connect_as(world.creator)
    fan = await connect_as(world.fan)
    joined = await creator.ok("join", channel=scheduled)
    assert joined["role"] == "owner"
    assert "not live" in await _refused(fan, scheduled)

    free = await make_stream(db, world.creator)
    await creator.ok("join", channel=free)
    assert (await fan.ok("join", channel=free))["role"] == "member"
    moderator = await connect_as(world.moderator)
    assert (await moderator.ok("join", channel=free))["role"] == "admin"
    unverified = await connect_as(await make_account(db, verified=False))
    assert "verified age" in await _refused(unverified, free)

    # chat: broadcast to the room, never stored
    sent = await fan.ok("send", channel=free, text="hello stream")
    heard = await creator.expect(lambda f: f.get("op") == "msg" and f.get("id") == sent["id"])
    assert heard["text"] == "hello stream" and heard["user_id"] == str(world.fan)
    history = await fan.call("history", channel=free)
    assert history["op"] == "error"
    await db.execute(
        "UPDATE creator.live_streams SET chat_enabled = false WHERE id = $1",
        uuid.UUID(free.split(":")[1]),
    )
    closed = await fan.expect(lambda f: f.get("op") == "event" and f.get("name") == "chat")
    assert closed["channel"] == free and closed["data"] == {"enabled": False}
    refused = await fan.call("send", channel=free, text="muted")
    assert refused["op"] == "error" and refused["code"] == "forbidden"
    await db.execute(
        "UPDATE creator.live_streams SET chat_enabled = true WHERE id = $1",
        uuid.UUID(free.split(":")[1]),
    )
    await fan.expect(lambda f: f.get("op") == "event" and f.get("data") == {"enabled": True})
    assert (await fan.ok("send", channel=free, text="open again"))["id"]

    premium = await make_stream(db, world.creator, price=499)
    assert "premium" in await _refused(fan, premium)
    await db.execute(
        "INSERT INTO creator.stream_access (live_stream_id, user_id, access_type)"
        " VALUES ($1, $2, 'complimentary')",
        uuid.UUID(premium.split(":")[1]),
        world.fan,
    )
    assert (await fan.ok("join", channel=premium))["role"] == "member"
    assert "premium" in await _refused(await connect_as(world.stranger), premium)
    for client in (creator, fan, moderator, unverified):
        await client.close()


async def _viewers_event(client: WsClient, current: int) -> dict[str, Any]:
    return await client.expect(
        lambda f: f.get("kind") == "viewers" and f["data"]["current"] == current, timeout=30
    )


async def test_viewer_counts_across_two_gateways_and_after_one_is_killed(
    world: World,
    start_gateway: Starter,
    redis_url: str,
    secret: str,
    db: asyncpg.Connection,
) -> None:
    env = {"REDIS_URL": redis_url, "GATEWAY_HEARTBEAT": "0.5", "GATEWAY_NODE_TTL": "3"}
    gateways = [await start_gateway(**env), await start_gateway(**env)]
    channel = await make_stream(db, world.creator)
    stream_id = uuid.UUID(channel.split(":")[1])

    async def socket(user: uuid.UUID, gateway: GatewayProcess) -> WsClient:
        client = await WsClient.open(
            gateway.url, sign_access_token(secret, str(user), "creator", 600)
        )
        await client.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
        return client

    observer = await socket(world.creator, gateways[0])
    await observer.ok("join", channel=channel)  # the creator: in the room, not a viewer
    stay = [await make_account(db) for _ in range(100)]
    visit = [await make_account(db) for _ in range(100)]
    stayers = [await socket(u, gateways[i % 2]) for i, u in enumerate(stay)]
    visitors = [await socket(u, gateways[i % 2]) for i, u in enumerate(visit)]

    # 200 joins at once over two processes, then 100 leaves: 300 changes
    await asyncio.gather(*(c.ok("join", channel=channel) for c in [*stayers, *visitors]))
    await _viewers_event(observer, 200)
    await asyncio.gather(*(c.ok("leave", channel=channel) for c in visitors))
    event = await _viewers_event(observer, 100)
    assert event["data"]["peak"] == 200
    row = await db.fetchrow(
        "SELECT current_viewers, peak_viewers FROM creator.live_streams WHERE id = $1", stream_id
    )
    assert (row["current_viewers"], row["peak_viewers"]) == (100, 200)
    pushed = observer.take_all(lambda f: f.get("kind") == "viewers")
    assert len(pushed) < 60, "viewer counts are pushed about once a second, not per join"
    watching = await db.fetch(
        "SELECT user_id FROM creator.stream_access WHERE live_stream_id = $1"
        " AND last_joined_at IS NOT NULL"
        " AND (last_left_at IS NULL OR last_left_at < last_joined_at)",
        stream_id,
    )
    assert {r["user_id"] for r in watching} == set(stay)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM creator.stream_access"
            " WHERE live_stream_id = $1 AND join_count = 1",
            stream_id,
        )
        == 200
    )

    # the second gateway dies without a word: its 50 viewers are gone once it is swept
    await gateways[1].stop(signal.SIGKILL)
    await _viewers_event(observer, 50)
    assert (
        await db.fetchval(
            "SELECT current_viewers FROM creator.live_streams WHERE id = $1", stream_id
        )
        == 50
    )
    survivors = {u for i, u in enumerate(stay) if i % 2 == 0}
    watching = await db.fetch(
        "SELECT user_id FROM creator.stream_access WHERE live_stream_id = $1"
        " AND (last_left_at IS NULL OR last_left_at < last_joined_at)",
        stream_id,
    )
    assert {r["user_id"] for r in watching} == survivors
    for client in [observer, *stayers[::2], *visitors[::2]]:
        await client.close()
