"""Fixtures of the fault tests: the gateway fixtures of tests/gateway (a world, gateway
processes), a redis-server of the test's own, and members enough to watch presence."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.factories import make_subscription, make_user
from tests.faults.services import RedisServer
from tests.gateway.conftest import World, start_gateway, world

__all__ = ["busy", "fast", "member", "own_redis", "start_gateway", "world"]

# Faults are seen within a second or two: Redis round trips bounded at 0.5 s, a heartbeat
# every 0.5 s, and a process silent for 3 s counts as dead. Senders send as fast as they
# are acknowledged: the frame budget is out of their way.
FAST = {
    "GATEWAY_REDIS_TIMEOUT": "0.5",
    "GATEWAY_HEARTBEAT": "0.5",
    "GATEWAY_NODE_TTL": "3",
    "GATEWAY_FRAMES_PER_SECOND": "10000",
    "GATEWAY_FRAME_BURST": "10000",
}


@pytest.fixture
def fast() -> dict[str, str]:
    return dict(FAST)


@pytest.fixture
async def own_redis() -> AsyncIterator[RedisServer]:
    """A redis-server this test may kill and pause (never the session's shared one)."""
    server = RedisServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def busy(db: asyncpg.Connection, world: World) -> World:
    """The world's room with a chat limit no sender reaches (the limiter is still asked)."""
    await db.execute(
        "UPDATE analyst.chat_channels SET message_rate_limit = 1000000 WHERE id = $1",
        world.channel,
    )
    return world


@pytest.fixture
def member(db: asyncpg.Connection, world: World):  # type: ignore[no-untyped-def]
    """Make another subscribed member of the world's room."""

    async def make() -> uuid.UUID:
        user = await make_user(db)
        await make_subscription(db, user, world.tier)
        return user

    return make
