"""Fixtures for the operations tests: the api application on this test's database with the
environment a test chooses (CORS_ORIGINS, say)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from kernel.config import load_settings

ApiStarter = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def start_api(dsn: str, secret: str, aiohttp_client: Any) -> AsyncIterator[ApiStarter]:
    """`await start_api(CORS_ORIGINS=...)`: an in-process api over this test's database."""
    clients: list[TestClient] = []

    async def start(**env: str) -> TestClient:
        settings = load_settings(
            {"DATABASE_URL": dsn, "SWITCHBOARD_SECRET": secret, "BCRYPT_ROUNDS": "4", **env}
        )
        client: TestClient = await aiohttp_client(create_app(settings))
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()  # before this test's database is dropped
