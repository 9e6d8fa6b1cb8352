"""Fixtures of the test-only echo realm: a database migrated for analyst and echo with three
echo users (Alice and Bob share room 1; Carol is in no room), a gateway process serving both
realms, and authenticated sockets."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from kernel.db import connect
from kernel.migrate import SQL_DIR, migrate
from kernel.realms import enabled_realms
from kernel.tokens import sign_access_token
from tests.conftest import free_port
from tests.factories import make_user
from tests.gateway.harness import GatewayProcess, WsClient

ROOT = Path(__file__).resolve().parents[2]
ECHO = "analyst,tests.echo_realm"
ALICE, BOB, CAROL, DAVE = "1", "2", "3", "4"  # BIGINT ids, as echo.users' identity assigns them


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        raise AssertionError("a job run by hand never sleeps")


@pytest.fixture
async def echo_dsn(empty_dsn: str) -> str:
    """A database migrated for the analyst and echo realms: Alice and Bob share room 1;
    Carol is in no room."""
    conn = await connect(empty_dsn)
    try:
        realms = enabled_realms({"SWITCHBOARD_REALMS": ECHO})
        await migrate(conn, [SQL_DIR, *realms.sql_dirs()])
        await conn.execute(
            "INSERT INTO echo.users (name) VALUES ('alice'), ('bob'), ('carol'), ('dave');"
            "INSERT INTO echo.rooms (title) VALUES ('lobby');"
            "INSERT INTO echo.room_members VALUES (1, 1), (1, 2);"
        )
    finally:
        await conn.close()
    return empty_dsn


@pytest.fixture
async def analyst_user(echo_dsn: str) -> uuid.UUID:
    conn = await connect(echo_dsn)
    try:
        return await make_user(conn)
    finally:
        await conn.close()


@pytest.fixture
async def echo_gateway(echo_dsn: str, secret: str) -> AsyncIterator[GatewayProcess]:
    process = GatewayProcess(
        {
            **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
            "DATABASE_URL": echo_dsn,
            "SWITCHBOARD_SECRET": secret,
            "SWITCHBOARD_REALMS": ECHO,
            "GATEWAY_PORT": str(free_port()),
        }
    )
    await process.start()
    yield process
    await process.stop()
    print("".join(process.log))  # shown on failure


def token(secret: str, user: str | uuid.UUID, realm: str) -> str:
    return sign_access_token(secret, str(user), realm, 600)


async def connected(gw: GatewayProcess, secret: str, user: str, realm: str = "echo") -> WsClient:
    client = await WsClient.open(gw.url, token(secret, user, realm))
    await client.expect("welcome")
    await client.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
    return client
