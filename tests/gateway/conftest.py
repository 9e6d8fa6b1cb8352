"""Fixtures for gateway tests: a populated analyst world and gateway processes over it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import pytest

from tests.conftest import free_port
from tests.factories import make_analyst, make_subscription, make_tier, make_user
from tests.gateway.harness import GatewayProcess, WsClient, token_for


@dataclass
class World:
    analyst: uuid.UUID
    admin: uuid.UUID
    member: uuid.UUID
    other_member: uuid.UUID
    outsider: uuid.UUID
    tier: uuid.UUID
    subscription: uuid.UUID
    channel: uuid.UUID

    @property
    def room(self) -> str:
        return f"community:{self.channel}"


async def make_channel(db: asyncpg.Connection, analyst: uuid.UUID, **fields: object) -> uuid.UUID:
    values: dict[str, object] = {
        "analyst_id": analyst,
        "channel_name": "Room",
        "channel_type": "community",
        **fields,
    }
    cols = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    channel_id = await db.fetchval(
        f"INSERT INTO analyst.chat_channels ({cols}) VALUES ({params}) RETURNING id",
        *values.values(),
    )
    assert isinstance(channel_id, uuid.UUID)
    return channel_id


@pytest.fixture
async def world(db: asyncpg.Connection) -> World:
    analyst = await make_analyst(db)
    admin = await make_user(db, user_type="admin")
    member = await make_user(db)
    other = await make_user(db)
    outsider = await make_user(db)
    tier = await make_tier(db, analyst, chat_access=True)
    sub = await make_subscription(db, member, tier)
    await make_subscription(db, other, tier)
    channel = await make_channel(db, analyst, message_rate_limit=10)
    return World(analyst, admin, member, other, outsider, tier, sub, channel)


Starter = Callable[..., Awaitable[GatewayProcess]]


@pytest.fixture
async def start_gateway(dsn: str, secret: str) -> AsyncIterator[Starter]:
    """Start gateway processes on this test's database; all are stopped afterwards."""
    started: list[GatewayProcess] = []

    async def start(**env: str) -> GatewayProcess:
        full = {
            **os.environ,
            "DATABASE_URL": dsn,
            "SWITCHBOARD_SECRET": secret,
            "GATEWAY_PORT": str(free_port()),
            "LOG_LEVEL": "INFO",
            **env,
        }
        full.pop("REDIS_URL", None) if "REDIS_URL" not in env else None
        process = GatewayProcess(full, fixed_port="GATEWAY_PORT" in env)
        await process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        await process.stop()
        print(f"--- gateway :{process.port} log ---\n" + "".join(process.log))  # shown on failure


@pytest.fixture
async def gw(start_gateway: Starter) -> GatewayProcess:
    return await start_gateway()


@pytest.fixture
def connect_as(gw: GatewayProcess, secret: str) -> Callable[..., Awaitable[WsClient]]:
    """Open an authenticated socket for a user and wait for its welcome."""

    async def open_(user: uuid.UUID, gateway: GatewayProcess | None = None) -> WsClient:
        client = await WsClient.open((gateway or gw).url, token_for(secret, user))
        welcome = await client.expect("welcome")
        assert welcome["user_id"] == str(user)
        await client.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
        return client

    return open_
