"""Moderation acts live: a message removed by a moderator (REST) disappears on every open
socket, and an account that is suspended, banned, deactivated or deleted loses its sockets at
once (close 4004), whatever path changed it. Real gateway processes, real api, one database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from api.app import create_app
from kernel.config import load_settings
from kernel.tokens import sign_access_token
from tests.factories import make_user
from tests.gateway import conftest as gateway_fixtures
from tests.gateway.conftest import World
from tests.gateway.harness import GatewayProcess, WsClient

world = gateway_fixtures.world
start_gateway = gateway_fixtures.start_gateway
gw = gateway_fixtures.gw
connect_as = gateway_fixtures.connect_as

Connect = Callable[..., Awaitable[WsClient]]


@pytest.fixture
async def api(dsn: str, secret: str, aiohttp_client: Any) -> AsyncIterator[Any]:
    settings = load_settings({"DATABASE_URL": dsn, "SWITCHBOARD_SECRET": secret})
    client = await aiohttp_client(create_app(settings))
    yield client
    await client.close()


def bearer(secret: str, user: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_access_token(secret, str(user), 'analyst', 600)}"}


async def test_a_message_a_moderator_removes_disappears_on_every_open_socket(
    api: Any, db: asyncpg.Connection, world: World, connect_as: Connect, secret: str
) -> None:
    author, watcher = await connect_as(world.member), await connect_as(world.other_member)
    for client in (author, watcher):
        await client.ok("join", channel=world.room)
    sent = await author.ok("send", channel=world.room, text="buy now, guaranteed 500%")
    reporter = await make_user(db)
    admin = await make_user(db, user_type="admin")
    flag = await api.post(
        "/v1/moderation/flags",
        json={"entity_type": "chat_message", "entity_id": sent["id"], "reason": "spam"},
        headers=bearer(secret, reporter),
    )
    assert flag.status == 201, await flag.text()
    acted = await api.post(
        f"/v1/moderation/queue/{(await flag.json())['id']}/action",
        json={"action": "content_removed", "notes": "pump"},
        headers=bearer(secret, admin),
    )
    assert acted.status == 200, await acted.text()
    for client in (author, watcher):
        gone = await client.expect(lambda f: f.get("op") == "event" and f.get("kind") == "deleted")
        assert (gone["id"], gone["seq"], gone["by"]) == (sent["id"], sent["seq"], str(admin))


async def test_a_deleted_message_is_announced_once_to_each_socket(
    world: World, connect_as: Connect
) -> None:
    author, watcher = await connect_as(world.member), await connect_as(world.other_member)
    for client in (author, watcher):
        await client.ok("join", channel=world.room)
    sent = await author.ok("send", channel=world.room, text="oops")
    await author.ok("delete", channel=world.room, id=sent["id"])
    await watcher.expect(lambda f: f.get("kind") == "deleted")
    marker = await author.ok("send", channel=world.room, text="after")
    await watcher.expect(lambda f: f.get("op") == "msg" and f.get("id") == marker["id"])
    assert watcher.take_all(lambda f: f.get("kind") == "deleted") == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("UPDATE analyst.users SET is_active = false WHERE id = $1", "account deactivated"),
        ("UPDATE analyst.users SET deleted_at = now() WHERE id = $1", "account deleted"),
    ],
    ids=["deactivated", "soft_deleted"],
)
async def test_an_account_that_stops_being_usable_loses_every_socket(
    db: asyncpg.Connection,
    world: World,
    connect_as: Connect,
    start_gateway: Callable[..., Awaitable[GatewayProcess]],
    change: str,
    reason: str,
) -> None:
    elsewhere = await start_gateway()
    phone = await connect_as(world.member)
    laptop = await connect_as(world.member, elsewhere)
    bystander = await connect_as(world.other_member)
    await db.execute(change, world.member)
    assert await phone.closed() == 4004
    assert await laptop.closed() == 4004
    assert phone.ws.close_reason == reason
    assert (await bystander.ok("join", channel=world.room))["op"] == "ok"


async def test_a_user_banned_by_a_moderator_loses_the_socket_and_cannot_come_back(
    api: Any,
    db: asyncpg.Connection,
    world: World,
    connect_as: Connect,
    gw: GatewayProcess,
    secret: str,
) -> None:
    member = await connect_as(world.member)
    reporter = await make_user(db)
    admin = await make_user(db, user_type="admin")
    flag = await api.post(
        "/v1/moderation/flags",
        json={"entity_type": "user", "entity_id": str(world.member), "reason": "harassment"},
        headers=bearer(secret, reporter),
    )
    assert flag.status == 201, await flag.text()
    acted = await api.post(
        f"/v1/moderation/queue/{(await flag.json())['id']}/action",
        json={"action": "user_banned", "notes": "abuse"},
        headers=bearer(secret, admin),
    )
    assert acted.status == 200, await acted.text()
    assert await member.closed() == 4004
    again = await WsClient.open(
        gw.url, sign_access_token(secret, str(world.member), "analyst", 600)
    )
    refusal = await again.expect("error")
    assert refusal["code"] == "unauthorized"


@pytest.mark.parametrize("outcome", ["resolved", "dismissed"])
async def test_the_reporter_learns_at_once_that_their_report_was_closed(
    api: Any,
    db: asyncpg.Connection,
    world: World,
    connect_as: Connect,
    secret: str,
    outcome: str,
) -> None:
    reporter = await connect_as(world.other_member)
    admin = await make_user(db, user_type="admin")
    flag = await api.post(
        "/v1/moderation/flags",
        json={"entity_type": "user", "entity_id": str(world.member), "reason": "spam"},
        headers=bearer(secret, world.other_member),
    )
    assert flag.status == 201, await flag.text()
    closed = await api.post(
        f"/v1/moderation/queue/{(await flag.json())['id']}/resolve",
        json={"outcome": outcome, "notes": "looked into it"},
        headers=bearer(secret, admin),
    )
    assert closed.status == 200, await closed.text()
    told = await reporter.expect("notification")
    assert told["notification_type"] == "report_closed"
    assert outcome in told["title"]
