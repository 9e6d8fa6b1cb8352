"""What only the Python client has: coroutine callbacks run in order on their own task (so
they may await the client's requests), the async context manager, leave and parse_channel."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from switchboard_client import Backoff, SwitchboardClient, SwitchboardError, parse_channel

from tests.gateway.conftest import Starter, World, make_channel
from tests.gateway.harness import GatewayProcess, token_for


async def test_a_coroutine_callback_may_await_the_clients_own_requests(
    world: World, gw: GatewayProcess, secret: str
) -> None:
    """An echo bot: each message from someone else is answered from inside the callback."""
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with (
        SwitchboardClient(gw.url, token_for(secret, world.member)) as bot,
        SwitchboardClient(gw.url, token_for(secret, world.other_member)) as user,
    ):

        async def echo(message: dict[str, Any]) -> None:
            if message["user_id"] != bot.user_id:
                ack = await bot.send(message["channel"], "echo: " + message["text"])
                await replies.put(ack)

        bot.on("message", echo)
        received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        user.on("message", received.put_nowait)
        await bot.join(world.room)
        await user.join(world.room)
        for text in ("one", "two", "three"):
            await user.send(world.room, text)
        acks = [await asyncio.wait_for(replies.get(), 10) for _ in range(3)]
        seqs = [a["seq"] for a in acks]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3  # one at a time, in order
        texts = [(await asyncio.wait_for(received.get(), 10))["text"] for _ in range(6)]
        echoes = [t for t in texts if t.startswith("echo: ")]
        assert echoes == ["echo: one", "echo: two", "echo: three"]
    assert bot.state == "closed" and user.state == "closed"


async def test_a_left_channel_is_not_rejoined_after_a_reconnect(
    world: World, start_gateway: Starter, secret: str, db: asyncpg.Connection
) -> None:
    g = await start_gateway()
    other_room = f"community:{await make_channel(db, world.analyst)}"
    rejoined: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with SwitchboardClient(
        g.url, lambda: token_for(secret, world.member), backoff=Backoff(0.05, 0.5)
    ) as a:
        a.on("rejoin", rejoined.put_nowait)
        await a.join(world.room)
        await a.join(other_room)
        await a.leave(world.room)
        assert a.channels == [other_room]
        await g.stop()
        await start_gateway(GATEWAY_PORT=str(g.port))
        first = await asyncio.wait_for(rejoined.get(), 30)
        assert first["channel"] == other_room and first["recovered"] is True
        await a.ping()  # replies come in request order: every rejoin's reply came before
        assert rejoined.empty()
        assert a.channels == [other_room]
        assert await a.presence(other_room) == [str(world.member)]
        try:
            await a.history(world.room)
        except SwitchboardError as exc:
            assert exc.code == "forbidden"  # not joined on the new socket
        else:
            raise AssertionError("history of a left channel was answered")


def test_parse_channel_names_the_namespace_and_the_realm() -> None:
    assert parse_channel("community:abc").namespace == "community"
    live = parse_channel("community.live:abc")
    assert (live.namespace, live.key, live.realm) == ("community.live", "abc", None)
    assert parse_channel("academy.user:u1").realm == "academy"
