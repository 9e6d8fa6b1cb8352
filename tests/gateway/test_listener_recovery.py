"""Every LISTEN reconnects and re-checks what it missed (issue 18, item 2): the shared
listener (kernel/listen.py) against a real Postgres whose backend is killed, and a real
gateway whose membership changes still arrive, or are caught up, after its listener lost the
connection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg

from kernel.listen import Listener
from tests.gateway import conftest as gateway_fixtures
from tests.gateway.conftest import World
from tests.gateway.harness import GatewayProcess, WsClient

world = gateway_fixtures.world
start_gateway = gateway_fixtures.start_gateway
gw = gateway_fixtures.gw
connect_as = gateway_fixtures.connect_as

Connect = Callable[..., Awaitable[WsClient]]
KILL_LISTENERS = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
 WHERE datname = current_database() AND application_name = $1
"""


async def test_the_listener_reconnects_listens_again_and_resyncs(
    dsn: str, db: asyncpg.Connection
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    resynced = asyncio.Event()

    async def resync() -> None:
        resynced.set()

    listener = Listener(dsn, "test-listener")
    listener.on("sb_test", lambda _c, _p, _ch, payload: heard.put_nowait(payload))
    listener.on_resync(resync)
    await listener.start()
    try:
        await db.execute("SELECT pg_notify('sb_test', 'before')")
        assert await asyncio.wait_for(heard.get(), 10) == "before"
        assert await db.fetchval(KILL_LISTENERS, "test-listener") == 1
        await asyncio.wait_for(resynced.wait(), 20)
        assert listener.reconnects == 1
        await db.execute("SELECT pg_notify('sb_test', 'after')")
        assert await asyncio.wait_for(heard.get(), 10) == "after"
    finally:
        await listener.close()


async def test_a_lapsed_membership_is_heard_after_the_gateway_listener_reconnected(
    db: asyncpg.Connection, world: World, connect_as: Connect, gw: GatewayProcess
) -> None:
    member = await connect_as(world.member)
    await member.ok("join", channel=world.room)
    assert await db.fetchval(KILL_LISTENERS, "switchboard-listen") == 1
    await gw.logged("event=listen_resynced")
    await db.execute(
        "UPDATE analyst.subscriptions SET status = 'cancelled' WHERE id = $1", world.subscription
    )
    removed = await member.expect(lambda f: f.get("kind") == "removed")
    assert "subscription" in removed["reason"]


async def test_a_change_made_while_the_gateway_was_deaf_is_caught_up(
    db: asyncpg.Connection, world: World, connect_as: Connect, gw: GatewayProcess
) -> None:
    member = await connect_as(world.member)
    await member.ok("join", channel=world.room)
    # One round trip: the listener is killed and the subscription cancelled before the
    # gateway can reconnect (it waits at least 0.5 s): that NOTIFY is lost for good.
    async with db.transaction():
        assert await db.fetchval(KILL_LISTENERS, "switchboard-listen") == 1
        await db.execute(
            "UPDATE analyst.subscriptions SET status = 'cancelled' WHERE id = $1",
            world.subscription,
        )
    removed = await member.expect(lambda f: f.get("kind") == "removed", timeout=20)
    assert "subscription" in removed["reason"]
    await gw.logged("event=memberships_revalidated")
