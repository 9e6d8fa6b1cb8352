"""Pipelined sends (issue 19, item 1): a socket's sends run while it keeps reading, share
group commits, and are still acknowledged in order, with channel order equal to the client's
send order; any other frame waits for the sends before it; a bounded number is in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from tests.gateway import conftest as gateway_fixtures
from tests.gateway.conftest import World, make_channel
from tests.gateway.harness import GatewayProcess, WsClient, token_for

world = gateway_fixtures.world
start_gateway = gateway_fixtures.start_gateway
gw = gateway_fixtures.gw
connect_as = gateway_fixtures.connect_as

Connect = Callable[..., Awaitable[WsClient]]


async def open_room(db: asyncpg.Connection, world: World) -> str:
    channel = await make_channel(
        db, world.analyst, is_rate_limited=False, require_subscription=False
    )
    return f"community:{channel}"


async def send_all(client: WsClient, room: str, texts: list[str]) -> list[int]:
    """Every send written to the socket before any ack is awaited."""
    return [await client.send("send", channel=room, text=t, client_id=t) for t in texts]


async def test_pipelined_sends_are_acked_in_order_and_stored_in_send_order(
    db: asyncpg.Connection, world: World, connect_as: Connect
) -> None:
    room = await open_room(db, world)
    sender, reader = await connect_as(world.member), await connect_as(world.other_member)
    for client in (sender, reader):
        await client.ok("join", channel=room)
    texts = [f"m{i:03}" for i in range(90)]  # within the frame burst (100)
    refs = await send_all(sender, room, texts)
    acks = [await sender.expect(lambda f: f.get("op") in ("ok", "error")) for _ in refs]
    assert [a["ref"] for a in acks] == refs  # in the order the frames arrived
    assert [a["seq"] for a in acks] == list(range(1, 91))
    received = [await reader.expect("msg") for _ in texts]
    assert [m["text"] for m in received] == texts
    stored = await db.fetch(
        "SELECT message FROM analyst.chat_messages WHERE channel_id = $1 ORDER BY seq",
        room.partition(":")[2],
    )
    assert [r["message"] for r in stored] == texts


async def test_a_frame_after_pipelined_sends_waits_for_them(
    db: asyncpg.Connection, world: World, connect_as: Connect
) -> None:
    room = await open_room(db, world)
    sender = await connect_as(world.member)
    await sender.ok("join", channel=room)
    await send_all(sender, room, [f"h{i}" for i in range(20)])
    history_ref = await sender.send("history", channel=room, limit=100)
    replies = [await sender.expect(lambda f: f.get("op") in ("ok", "error")) for _ in range(21)]
    assert replies[-1]["ref"] == history_ref
    assert [m["text"] for m in replies[-1]["messages"]] == [f"h{i}" for i in range(20)]


async def test_a_refused_send_in_the_pipeline_fails_alone_and_in_its_place(
    db: asyncpg.Connection, world: World, connect_as: Connect
) -> None:
    room = await open_room(db, world)
    sender = await connect_as(world.member)
    await sender.ok("join", channel=room)
    refs = await send_all(sender, room, ["a", "b"])
    bad = await sender.send(
        "send", channel=room, text="c", reply_to="00000000-0000-4000-8000-000000000000"
    )
    refs += [bad, *await send_all(sender, room, ["d", "e"])]
    replies = [await sender.expect(lambda f: f.get("op") in ("ok", "error")) for _ in refs]
    assert [r["ref"] for r in replies] == refs
    assert [r["op"] for r in replies] == ["ok", "ok", "error", "ok", "ok"]
    assert [r.get("seq") for r in replies] == [1, 2, None, 3, 4]


@pytest.mark.parametrize("pipeline", ["1", "3"])
async def test_a_small_pipeline_bound_still_delivers_everything_in_order(
    db: asyncpg.Connection,
    world: World,
    start_gateway: Callable[..., Awaitable[GatewayProcess]],
    secret: str,
    pipeline: str,
) -> None:
    room = await open_room(db, world)
    gateway = await start_gateway(GATEWAY_SEND_PIPELINE=pipeline)
    sender = await WsClient.open(gateway.url, token_for(secret, world.member))
    await sender.expect("welcome")
    await sender.ok("join", channel=room)
    texts = [f"p{i}" for i in range(50)]
    refs = await send_all(sender, room, texts)
    acks = await asyncio.gather(*(sender.reply(ref) for ref in refs))
    assert [a["seq"] for a in acks] == list(range(1, 51))
