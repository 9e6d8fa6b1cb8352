"""Muting in chat acts live (issue 21, item 6): a muted member keeps reading but every send
is `forbidden` until the mute ends or is lifted, and their open sockets learn both at once.
Real api, real gateway, one database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from api.app import create_app
from kernel.config import load_settings
from kernel.tokens import sign_access_token
from tests.factories import make_analyst
from tests.gateway import conftest as gateway_fixtures
from tests.gateway.conftest import World, make_channel
from tests.gateway.harness import WsClient

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


async def test_a_muted_member_reads_but_cannot_send_until_the_mute_is_lifted(
    api: Any, world: World, connect_as: Connect, secret: str
) -> None:
    muted, other = await connect_as(world.member), await connect_as(world.other_member)
    for client in (muted, other):
        await client.ok("join", channel=world.room)
    created = await api.post(
        "/v1/moderation/mutes",
        json={"user_id": str(world.member), "channel_id": str(world.channel), "minutes": 30},
        headers=bearer(secret, world.admin),
    )
    assert created.status == 201, await created.text()
    told = await muted.expect(lambda f: f.get("kind") == "muted")
    assert told["channel"] == world.room and told["at"]
    refused = await muted.call("send", channel=world.room, text="let me speak")
    assert refused["code"] == "forbidden"
    assert refused["message"].startswith("you are muted in this channel until ")
    await other.ok("send", channel=world.room, text="still open")
    assert (await muted.expect(lambda f: f.get("op") == "msg"))["text"] == "still open"
    lifted = await api.delete(
        f"/v1/moderation/mutes/{(await created.json())['id']}",
        headers=bearer(secret, world.admin),
    )
    assert lifted.status == 204
    await muted.expect(lambda f: f.get("kind") == "unmuted")
    await muted.ok("send", channel=world.room, text="thanks")


async def test_a_member_muted_everywhere_joins_and_reads_but_sends_nowhere(
    api: Any, world: World, connect_as: Connect, secret: str
) -> None:
    response = await api.post(
        "/v1/moderation/mutes",
        json={"user_id": str(world.member), "reason": "cooling off"},
        headers=bearer(secret, world.admin),
    )
    assert response.status == 201
    member = await connect_as(world.member)
    await member.ok("join", channel=world.room)
    refused = await member.call("send", channel=world.room, text="hello?")
    assert refused["message"] == "you are muted in this channel until lifted"
    listed = await api.get("/v1/moderation/mutes", headers=bearer(secret, world.admin))
    assert [m["user_id"] for m in await listed.json()] == [str(world.member)]


async def test_an_analyst_mutes_only_in_their_own_channels(
    api: Any, db: asyncpg.Connection, world: World, secret: str
) -> None:
    headers = bearer(secret, world.analyst)
    own = await api.post(
        "/v1/moderation/mutes",
        json={"user_id": str(world.member), "channel_id": str(world.channel)},
        headers=headers,
    )
    assert own.status == 201
    elsewhere = await make_channel(db, await make_analyst(db))
    foreign = await api.post(
        "/v1/moderation/mutes",
        json={"user_id": str(world.member), "channel_id": str(elsewhere)},
        headers=headers,
    )
    assert foreign.status == 403
    everywhere = await api.post(
        "/v1/moderation/mutes", json={"user_id": str(world.member)}, headers=headers
    )
    assert everywhere.status == 403
    trader = await api.post(
        "/v1/moderation/mutes",
        json={"user_id": str(world.other_member), "channel_id": str(world.channel)},
        headers=bearer(secret, world.member),
    )
    assert trader.status == 403


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"user_id": "admin"}, 400),
        ({"user_id": str(uuid.uuid4())}, 404),
        ({"user_id": "not-a-uuid"}, 400),
        ({"user_id": "member", "minutes": 0}, 400),
        ({"user_id": "member", "minutes": 10**9}, 400),
        ({"user_id": "member", "reason": "a\u0000b"}, 400),
    ],
    ids=["an_admin", "nobody", "bad_id", "zero_minutes", "huge_minutes", "nul_reason"],
)
async def test_bad_mutes_get_clear_errors(
    api: Any, world: World, secret: str, body: dict[str, Any], status: int
) -> None:
    named = {"admin": str(world.admin), "member": str(world.member)}
    body = {**body, "user_id": named.get(body["user_id"], body["user_id"])}
    response = await api.post(
        "/v1/moderation/mutes", json=body, headers=bearer(secret, world.admin)
    )
    assert response.status == status
    assert "error" in await response.json()
