"""Fixtures of the market schema tests.

- `world`: row factories (tests/realms/market/world.py) on `db`, the test's own fresh
  database (tests/conftest.py). Used by every test of a trigger, a function, a transaction
  boundary or concurrency.
- `txn` / `txworld`: a connection inside a transaction on a database shared by the test
  module, rolled back after each test. Only for the large table-driven constraint tests
  (one case per CHECK, NOT NULL, UNIQUE, foreign key ...), where a fresh database per case
  would cost a second each; nothing such a test does outlives it.
- `market_api`, `market_gateway`, `sock`: the realm's REST routes on a real api app and its
  channels on a real gateway process, both on the test's database (`dsn`), with `bearer`,
  `event` and `server_event` helpers.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from kernel.config import load_settings
from kernel.db import connect
from kernel.realms import enabled_realms
from kernel.tokens import sign_access_token
from tests.conftest import free_port
from tests.gateway.harness import Frame, GatewayProcess, WsClient
from tests.realms.market.world import World


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


async def _admin(base_dsn: str, sql: str) -> None:
    admin = await asyncpg.connect(with_database(base_dsn, "postgres"))
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def module_dsn(base_dsn: str, template_db: str) -> Iterator[str]:
    """A database with every migration applied, shared by one test module."""
    name = f"sb_mk_{uuid.uuid4().hex[:16]}"
    asyncio.run(_admin(base_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    yield with_database(base_dsn, name)
    asyncio.run(_admin(base_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def txn(module_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a transaction that is rolled back after the test."""
    conn = await connect(module_dsn)
    tr = conn.transaction()
    await tr.start()
    try:
        yield conn
    finally:
        await tr.rollback()
        await conn.close()


@pytest.fixture
def world(db: asyncpg.Connection) -> World:
    return World(db)


@pytest.fixture
def txworld(txn: asyncpg.Connection) -> World:
    return World(txn)


# -- the realm's routes and channels -------------------------------------------------------------
# `market_api`: the api app serving the market realm on the test's database (`dsn`);
# `market_gateway`: a real gateway process serving it; `sock(user)`: an authenticated socket.

MARKET = "market"


@pytest.fixture
async def market_api(dsn: str, aiohttp_client: Any, secret: str) -> AsyncIterator[TestClient]:
    settings = load_settings(
        {"DATABASE_URL": dsn, "SWITCHBOARD_SECRET": secret, "BCRYPT_ROUNDS": "4"}
    )
    realms = enabled_realms({"SWITCHBOARD_REALMS": MARKET})
    client: TestClient = await aiohttp_client(create_app(settings, realms=realms))
    yield client
    await client.close()  # before this test's database is dropped


@pytest.fixture
async def market_gateway(dsn: str, secret: str) -> AsyncIterator[GatewayProcess]:
    process = GatewayProcess(
        {
            **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
            "DATABASE_URL": dsn,
            "SWITCHBOARD_SECRET": secret,
            "SWITCHBOARD_REALMS": MARKET,
            "GATEWAY_PORT": str(free_port()),
        }
    )
    await process.start()
    yield process
    await process.stop()
    print("".join(process.log))  # shown on failure


def bearer(secret: str, user_id: int) -> dict[str, str]:
    token = sign_access_token(secret, str(user_id), MARKET, 600)
    return {"Authorization": f"Bearer {token}"}


Connect = Callable[[int], Awaitable[WsClient]]


@pytest.fixture
async def sock(market_gateway: GatewayProcess, secret: str) -> AsyncIterator[Connect]:
    """Open an authenticated market socket for a user (closed after the test)."""
    opened: list[WsClient] = []

    async def open_(user_id: int) -> WsClient:
        client = await WsClient.open(
            market_gateway.url, sign_access_token(secret, str(user_id), MARKET, 600)
        )
        opened.append(client)
        await client.expect("welcome")
        await client.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
        return client

    yield open_
    for client in opened:
        await client.close()


def event(kind: str, **fields: Any) -> Callable[[Frame], bool]:
    """Matches an `event` frame of `kind` whose fields have the given values."""
    return lambda f: (
        f.get("op") == "event"
        and f.get("kind") == kind
        and all(f.get(k) == v for k, v in fields.items())
    )


def server_event(event_name: str, **data: Any) -> Callable[[Frame], bool]:
    """Matches a server event (NOTIFYed by the database or the REST routes) by name and data."""
    return lambda f: (
        f.get("op") == "event"
        and f.get("kind") == "server"
        and f.get("name") == event_name
        and all((f.get("data") or {}).get(k) == v for k, v in data.items())
    )
