"""The server API for trusted backends (api/server_api.py) against real gateway processes:
authenticated by SERVER_API_KEY only, it publishes events to channels, disconnects users,
lists presence and revokes memberships, on every gateway."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from api.app import create_app
from kernel.config import load_settings
from kernel.realms import enabled_realms
from kernel.tokens import sign_access_token
from tests.echo_realm.fixtures import (
    ALICE,
    BOB,
    ECHO,
    connected,
    echo_dsn,
    echo_gateway,
    token,
)
from tests.gateway.harness import GatewayProcess, WsClient

__all__ = ["echo_dsn", "echo_gateway"]  # fixtures used by name

KEY = "server-key-" + "k" * 40
HEADERS = {"X-Api-Key": KEY}


async def _client(dsn: str, secret: str, aiohttp_client: Any, **env: str) -> Any:
    settings = load_settings({"DATABASE_URL": dsn, "SWITCHBOARD_SECRET": secret, **env})
    realms = enabled_realms({"SWITCHBOARD_REALMS": ECHO})
    return await aiohttp_client(create_app(settings, realms=realms))


@pytest.fixture
async def server_api(echo_dsn: str, secret: str, aiohttp_client: Any) -> AsyncIterator[Any]:
    client = await _client(echo_dsn, secret, aiohttp_client, SERVER_API_KEY=KEY)
    yield client
    await client.close()


async def test_only_the_server_key_opens_the_server_api(
    server_api: Any, echo_dsn: str, secret: str, aiohttp_client: Any
) -> None:
    body = {"channel": "echo.room:1", "name": "ping"}
    missing = await server_api.post("/v1/server/publish", json=body)
    assert (missing.status, (await missing.json())["error"]["code"]) == (401, "unauthorized")
    wrong = await server_api.post("/v1/server/publish", json=body, headers={"X-Api-Key": "x" * 51})
    assert wrong.status == 401
    user = await server_api.post(
        "/v1/server/publish",
        json=body,
        headers={"Authorization": f"Bearer {token(secret, ALICE, 'echo')}"},
    )
    assert (user.status, (await user.json())["error"]["code"]) == (403, "forbidden")
    disabled = await _client(echo_dsn, secret, aiohttp_client)
    off = await disabled.post("/v1/server/publish", json=body, headers=HEADERS)
    assert off.status == 404  # without SERVER_API_KEY the server API does not exist
    document = await (await disabled.get("/openapi.json")).json()
    assert not [path for path in document["paths"] if path.startswith("/v1/server/")]


async def test_a_published_event_reaches_the_sockets_joined_to_the_channel(
    server_api: Any, echo_gateway: GatewayProcess, secret: str
) -> None:
    alice = await connected(echo_gateway, secret, ALICE)
    await alice.ok("join", channel="echo.room:1")
    response = await server_api.post(
        "/v1/server/publish",
        json={"channel": "echo.room:1", "name": "deploy.done", "data": {"version": 7}},
        headers=HEADERS,
    )
    assert (response.status, await response.json()) == (202, {"notified": True})
    event = await alice.expect(lambda f: f.get("op") == "event" and f.get("kind") == "server")
    assert (event["channel"], event["name"], event["data"]) == (
        "echo.room:1",
        "deploy.done",
        {"version": 7},
    )


async def test_disconnect_closes_every_socket_of_the_user_or_one_session(
    server_api: Any, echo_gateway: GatewayProcess, secret: str
) -> None:
    phone = await connected(echo_gateway, secret, ALICE)
    laptop = await connected(echo_gateway, secret, ALICE)
    bob = await connected(echo_gateway, secret, BOB)
    tablet = await WsClient.open(echo_gateway.url, token(secret, ALICE, "echo"))
    tablet_session = (await tablet.expect("welcome"))["session_id"]
    one = await server_api.post(
        "/v1/server/disconnect",
        json={"realm": "echo", "user_id": ALICE, "session_id": tablet_session},
        headers=HEADERS,
    )
    assert one.status == 202
    assert await tablet.closed() == 4003
    assert (await phone.ok("conversations"))["op"] == "ok"
    every = await server_api.post(
        "/v1/server/disconnect", json={"realm": "echo", "user_id": ALICE}, headers=HEADERS
    )
    assert every.status == 202
    assert await phone.closed() == 4003
    assert await laptop.closed() == 4003
    assert (await bob.ok("conversations"))["op"] == "ok"


async def test_presence_lists_the_users_in_a_channel(
    server_api: Any, echo_gateway: GatewayProcess, secret: str
) -> None:
    alice = await connected(echo_gateway, secret, ALICE)
    bob = await connected(echo_gateway, secret, BOB)
    await alice.ok("join", channel="echo.room:1")
    await bob.ok("join", channel="echo.room:1")
    response = await server_api.get(
        "/v1/server/presence", params={"channel": "echo.room:1"}, headers=HEADERS
    )
    assert await response.json() == {"channel": "echo.room:1", "users": [ALICE, BOB]}


async def test_revoke_removes_a_conversation_member_and_ejects_their_sockets(
    server_api: Any, echo_gateway: GatewayProcess, secret: str
) -> None:
    alice = await connected(echo_gateway, secret, ALICE)
    bob = await connected(echo_gateway, secret, BOB)
    channel = (await alice.ok("create", kind="group", members=[BOB]))["channel"]
    await bob.ok("join", channel=channel)
    response = await server_api.post(
        "/v1/server/revoke",
        json={"realm": "echo", "user_id": BOB, "channel": channel},
        headers=HEADERS,
    )
    assert await response.json() == {"notified": True, "removed": True}
    await bob.expect(lambda f: f.get("kind") == "removed" and f.get("channel") == channel)
    assert (await bob.call("join", channel=channel))["code"] == "forbidden"


async def test_revoke_ejects_a_room_member_whose_gate_decides_the_next_join(
    server_api: Any, echo_gateway: GatewayProcess, secret: str
) -> None:
    alice = await connected(echo_gateway, secret, ALICE)
    await alice.ok("join", channel="echo.room:1")
    response = await server_api.post(
        "/v1/server/revoke",
        json={"realm": "echo", "user_id": ALICE, "channel": "echo.room:1"},
        headers=HEADERS,
    )
    assert await response.json() == {"notified": True, "removed": False}
    removed = await alice.expect(lambda f: f.get("kind") == "removed")
    assert removed["reason"] == "membership revoked by the server"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/server/publish", {"channel": "Echo.Room:1", "name": "x"}, 400),
        (
            "/v1/server/publish",
            {"channel": "echo.room:1", "name": "x", "data": {"b": "x" * 5000}},
            413,
        ),
        ("/v1/server/publish", {"channel": "echo.room:1", "name": "x", "extra": 1}, 400),
        ("/v1/server/disconnect", {"realm": "nowhere", "user_id": "1"}, 400),
        ("/v1/server/disconnect", {"realm": "echo", "user_id": "1'; DROP TABLE x; --"}, 400),
        ("/v1/server/revoke", {"realm": "echo", "user_id": "1", "channel": "echo.group:nope"}, 400),
    ],
    ids=[
        "channel_not_canonical",
        "data_too_large",
        "unknown_field",
        "unserved_realm",
        "sql_ish_user",
        "conversation_key_not_uuid",
    ],
)
async def test_bad_server_calls_get_documented_errors(
    server_api: Any, path: str, body: dict[str, Any], status: int
) -> None:
    response = await server_api.post(path, json=body, headers=HEADERS)
    assert response.status == status
    assert "error" in await response.json()


async def test_the_server_operations_are_documented_with_their_key_and_errors(
    server_api: Any,
) -> None:
    document = await (await server_api.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["serverKey"]["name"] == "X-Api-Key"
    for path, method in (
        ("/v1/server/publish", "post"),
        ("/v1/server/disconnect", "post"),
        ("/v1/server/presence", "get"),
        ("/v1/server/revoke", "post"),
    ):
        operation = document["paths"][path][method]
        assert operation["security"] == [{"serverKey": []}]
        assert {"401", "403", "503"} <= set(operation["responses"])


async def test_revoking_tokens_closes_sockets_and_refuses_older_tokens_everywhere(
    server_api: Any, echo_gateway: GatewayProcess, secret: str
) -> None:
    alice = await connected(echo_gateway, secret, ALICE)
    old = token(secret, ALICE, "echo")
    response = await server_api.post(
        "/v1/server/revoke-tokens", json={"realm": "echo", "user_id": ALICE}, headers=HEADERS
    )
    valid_from = (await response.json())["valid_from"]
    assert await alice.closed() == 4004
    assert alice.ws.close_reason == "sessions revoked"
    refused = await WsClient.open(echo_gateway.url, old)
    assert (await refused.expect("error"))["message"] == "token was revoked: sign in again"
    rest = await server_api.get("/v1/echo/rooms", headers={"Authorization": f"Bearer {old}"})
    assert rest.status == 401
    fresh = sign_access_token(secret, ALICE, "echo", 600, now=valid_from)
    again = await WsClient.open(echo_gateway.url, fresh)
    assert (await again.expect("welcome"))["user_id"] == ALICE
    ok = await server_api.get("/v1/echo/rooms", headers={"Authorization": f"Bearer {fresh}"})
    assert ok.status == 200


@pytest.mark.parametrize(
    ("ttl", "now_shift", "message"),
    [
        (3601, 0, "token lives longer than the maximum of 3600 s"),
        (600, 3600, "token is issued in the future"),
    ],
    ids=["lifetime_over_the_maximum", "issued_in_the_future"],
)
async def test_tokens_past_the_maximum_lifetime_or_from_the_future_are_refused(
    server_api: Any,
    echo_gateway: GatewayProcess,
    secret: str,
    ttl: int,
    now_shift: int,
    message: str,
) -> None:
    bad = sign_access_token(secret, ALICE, "echo", ttl, now=time.time() + now_shift)
    client = await WsClient.open(echo_gateway.url, bad)
    assert (await client.expect("error"))["message"] == message
    rest = await server_api.get("/v1/echo/rooms", headers={"Authorization": f"Bearer {bad}"})
    assert (rest.status, (await rest.json())["error"]["message"]) == (401, message)
