"""Postgres restarted (stopped like an operator would, then started) under two gateway
processes while clients send. It is a private cluster started by this module, never the
shared test cluster. Sends during the outage are refused with `unavailable` on sockets that
stay open, and retried with their client_id; nothing acknowledged is lost or duplicated;
and a socket that closed while Postgres was away leaves no ghost presence or count once the
gateway re-asserts its members."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
import pytest

from kernel.db import connect
from tests.factories import make_subscription, make_user
from tests.faults.services import PrivatePostgres
from tests.faults.traffic import Receiver, Sender, check_delivery, eventually, live_members, opener
from tests.gateway.conftest import Starter, World


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def dsn(private_pg: PrivatePostgres) -> str:
    """This module's database lives in its own cluster (overrides tests/conftest.py)."""
    return private_pg.dsn


@pytest.fixture
async def fresh(dsn: str) -> AsyncIterator[Callable[[], Awaitable[asyncpg.Connection]]]:
    """Connections opened after the restart (the `db` fixture's died with it)."""
    opened: list[asyncpg.Connection] = []

    async def open_() -> asyncpg.Connection:
        opened.append(await connect(dsn))
        return opened[-1]

    yield open_
    for conn in opened:
        await conn.close()


async def test_postgres_restarted_while_clients_send(
    busy: World,
    db: asyncpg.Connection,
    private_pg: PrivatePostgres,
    fresh: Callable[[], Awaitable[asyncpg.Connection]],
    start_gateway: Starter,
    redis_url: str,
    secret: str,
    fast: dict[str, str],
) -> None:
    world = busy
    leaver: uuid.UUID = await make_user(db)
    await make_subscription(db, leaver, world.tier)
    await db.close()  # it would die with the restart
    one = await start_gateway(REDIS_URL=redis_url, **fast)
    two = await start_gateway(REDIS_URL=redis_url, **fast)
    senders = [
        Sender("a", world.room, opener([one], secret, world.member)),
        Sender("b", world.room, opener([two], secret, world.other_member)),
    ]
    receivers = [
        Receiver("on-one", world.room, opener([one], secret, world.analyst)),
        Receiver("on-two", world.room, opener([two], secret, world.admin)),
    ]
    gone = Receiver("leaver", world.room, opener([one], secret, leaver))
    await gone.start()
    for receiver in receivers:
        await receiver.start()
    for sender in senders:
        sender.start()
    here = {str(world.member), str(world.other_member), str(world.analyst), str(world.admin)}
    try:
        for sender in senders:
            await sender.acks(5)
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(private_pg.stop, "fast")
        stopped_at = loop.time()
        try:
            for sender in senders:
                await sender.until(lambda s=sender: s.refused["unavailable"] >= 3, 20, "refusals")
            await gone.close()  # its presence row cannot be deleted now
            # Down longer than GATEWAY_NODE_TTL (3 s): the first process back sweeps the
            # other, which must notice and put its members back.
            await asyncio.sleep(max(0.0, stopped_at + 4 - loop.time()))
        finally:
            await asyncio.to_thread(private_pg.start)
        after = [len(s.acked) for s in senders]
        for sender, before in zip(senders, after, strict=True):
            await sender.acks(before + 10)
        for sender in senders:
            await sender.stop()
        assert all(s.reconnects == 0 for s in senders), "a socket was lost to the outage"
        assert all(set(s.refused) == {"unavailable"} for s in senders)
        check = await fresh()
        await check_delivery(check, world.channel, senders, receivers)
        await eventually(lambda: live_members(check, world.room), here, 15, "presence")
        count = "SELECT active_members_count FROM analyst.chat_channels WHERE id = $1"
        await eventually(lambda: check.fetchval(count, world.channel), len(here), 10, "count")
        presence = await receivers[1].client.ok("presence", channel=world.room)  # type: ignore[union-attr]
        assert set(presence["users"]) == here
    finally:
        for sender in senders:
            await sender.close()
        for receiver in receivers:
            await receiver.close()
