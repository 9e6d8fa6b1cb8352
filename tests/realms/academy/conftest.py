"""Fixtures of the academy tests: schema rows (`rows`, as the owner), the api application
serving realm academy on this test's database (`academy_api`), users with tokens, and a real
gateway process serving realm academy (`gateway`) with the sockets a test opened (`sockets`)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from kernel.config import load_settings
from kernel.realms import enabled_realms
from kernel.tokens import sign_access_token
from tests.conftest import free_port
from tests.gateway.harness import GatewayProcess, WsClient
from tests.realms.academy.helpers import Rows


@pytest.fixture
def rows(db: asyncpg.Connection) -> Rows:
    return Rows(db)


@pytest.fixture
async def academy_api(dsn: str, aiohttp_client: Any, secret: str) -> AsyncIterator[TestClient]:
    settings = load_settings(
        {
            "DATABASE_URL": dsn,
            "SWITCHBOARD_SECRET": secret,
            "BCRYPT_ROUNDS": "4",
            "DB_POOL_MAX": "20",
        }
    )
    realms = enabled_realms({"SWITCHBOARD_REALMS": "academy"})
    client: TestClient = await aiohttp_client(create_app(settings, realms=realms))
    yield client
    await client.close()  # before this test's database is dropped


class Academy:
    """Users of the academy realm and their bearer headers, made as the owner."""

    def __init__(self, rows: Rows, secret: str) -> None:
        self.rows = rows
        self.secret = secret

    def auth(self, user_id: UUID) -> dict[str, str]:
        token = sign_access_token(self.secret, str(user_id), "academy", 600)
        return {"Authorization": f"Bearer {token}"}

    async def user(self, *, admin: bool = False, **fields: Any) -> tuple[UUID, dict[str, str]]:
        user_id = await self.rows.user(admin=admin, **fields)
        await self.rows.db.execute("INSERT INTO academy.user_profiles (id) VALUES ($1)", user_id)
        return user_id, self.auth(user_id)


@pytest.fixture
def academy(rows: Rows, secret: str) -> Academy:
    return Academy(rows, secret)


@pytest.fixture
async def gateway(dsn: str, secret: str) -> AsyncIterator[GatewayProcess]:
    process = GatewayProcess(
        {
            **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
            "DATABASE_URL": dsn,
            "SWITCHBOARD_SECRET": secret,
            "SWITCHBOARD_REALMS": "academy",
            "GATEWAY_PORT": str(free_port()),
        }
    )
    await process.start()
    yield process
    await process.stop()
    print("".join(process.log))  # shown on failure


@pytest.fixture
async def sockets() -> AsyncIterator[list[WsClient]]:
    opened: list[WsClient] = []
    yield opened
    for client in opened:
        await client.close()
