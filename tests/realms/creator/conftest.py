"""Fixtures of the creator realm's REST and socket tests: the api app serving the creator realm
on this test's database, gateway processes serving it, and a small world (a creator, a
subscribed fan, an unsubscribed fan, a moderator), all age-verified and active."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from kernel.config import load_settings
from kernel.realms import enabled_realms
from kernel.tokens import sign_access_token
from tests.conftest import free_port
from tests.gateway.harness import GatewayProcess, WsClient

REALMS = "creator"
PASSWORD = "correct horse battery"


async def make_account(
    db: asyncpg.Connection,
    *,
    account_type: str = "fan",
    verified: bool = True,
    password_hash: str | None = None,
    **fields: Any,
) -> uuid.UUID:
    """An active creator.users row (age-verified unless told otherwise) with a profile."""
    name = f"u{uuid.uuid4().hex[:12]}"
    values: dict[str, Any] = {
        "username": name,
        "email": f"{name}@example.com",
        "password_hash": password_hash or "$2b$04$" + "a" * 53,
        "account_type": account_type,
        "date_of_birth": date(1990, 1, 1),
        "age_verified": verified,
        "age_verified_at": await db.fetchval("SELECT now()") if verified else None,
        **fields,
    }
    cols = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    user_id = await db.fetchval(
        f"INSERT INTO creator.users ({cols}) VALUES ({params}) RETURNING id", *values.values()
    )
    await db.execute("INSERT INTO creator.user_profiles (user_id) VALUES ($1)", user_id)
    assert isinstance(user_id, uuid.UUID)
    return user_id


async def subscribe(db: asyncpg.Connection, fan: uuid.UUID, creator: uuid.UUID) -> uuid.UUID:
    sub_id = await db.fetchval(
        "INSERT INTO creator.subscriptions (subscriber_id, creator_id, subscription_type, status,"
        " price, started_at, current_period_start, expires_at)"
        " VALUES ($1, $2, 'monthly', 'active', 999, now(), now(), now() + interval '30 days')"
        " RETURNING id",
        fan,
        creator,
    )
    assert isinstance(sub_id, uuid.UUID)
    return sub_id


@dataclass
class World:
    creator: uuid.UUID
    fan: uuid.UUID
    stranger: uuid.UUID
    moderator: uuid.UUID


@pytest.fixture
async def world(db: asyncpg.Connection) -> World:
    creator = await make_account(db, account_type="creator", subscription_price=999)
    fan = await make_account(db)
    stranger = await make_account(db)
    moderator = await make_account(db, account_type="moderator")
    await subscribe(db, fan, creator)
    return World(creator, fan, stranger, moderator)


def bearer(secret: str, user: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_access_token(secret, str(user), 'creator', 600)}"}


@pytest.fixture
async def api(dsn: str, aiohttp_client: Any, secret: str) -> AsyncIterator[TestClient]:
    settings = load_settings(
        {"DATABASE_URL": dsn, "SWITCHBOARD_SECRET": secret, "BCRYPT_ROUNDS": "4"}
    )
    app = create_app(settings, realms=enabled_realms({"SWITCHBOARD_REALMS": REALMS}))
    client: TestClient = await aiohttp_client(app)
    yield client
    await client.close()  # before this test's database is dropped


Call = Callable[..., Awaitable[tuple[int, Any]]]


@pytest.fixture
def call(api: TestClient, secret: str) -> Call:
    """call(method, path, user=None, json=None) -> (status, decoded body)."""

    async def run(
        method: str, path: str, user: uuid.UUID | None = None, json: Any = None, **kw: Any
    ) -> tuple[int, Any]:
        headers = {**(bearer(secret, user) if user is not None else {}), **kw.pop("headers", {})}
        response = await api.request(method, path, headers=headers, json=json, **kw)
        return response.status, await response.json()

    return run


Starter = Callable[..., Awaitable[GatewayProcess]]


@pytest.fixture
async def start_gateway(dsn: str, secret: str) -> AsyncIterator[Starter]:
    """Gateway processes serving the creator realm on this test's database."""
    started: list[GatewayProcess] = []

    async def start(**env: str) -> GatewayProcess:
        full = {
            **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
            "DATABASE_URL": dsn,
            "SWITCHBOARD_SECRET": secret,
            "SWITCHBOARD_REALMS": REALMS,
            "GATEWAY_PORT": str(free_port()),
            **env,
        }
        process = GatewayProcess(full, fixed_port="GATEWAY_PORT" in env)
        await process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        await process.stop()
        print(f"--- gateway :{process.port} log ---\n" + "".join(process.log))  # on failure


@pytest.fixture
async def gw(start_gateway: Starter) -> GatewayProcess:
    return await start_gateway()


Connect = Callable[..., Awaitable[WsClient]]


@pytest.fixture
def connect_as(gw: GatewayProcess, secret: str) -> Connect:
    """An authenticated creator-realm socket for `user`, past its welcome."""

    async def open_(user: uuid.UUID, gateway: GatewayProcess | None = None) -> WsClient:
        token = sign_access_token(secret, str(user), "creator", 600)
        client = await WsClient.open((gateway or gw).url, token)
        welcome = await client.expect("welcome")
        assert welcome["user_id"] == str(user) and welcome["realm"] == "creator"
        await client.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
        return client

    return open_
