"""Logout ends one sign-in session: its access tokens (their `sid` claim) are refused over
REST and on new sockets, the sockets opened with them close (4004), and the same user's
other session keeps its tokens, its refresh and its open socket."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from kernel.db import connect
from kernel.tokens import sign_access_token, verify_access_token
from tests.gateway.harness import GatewayProcess, WsClient
from tests.realms.aichat.world import make_conversation, make_user

CLOSE_ACCOUNT_DISABLED = 4004


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection that keeps the reference plans and providers (unlike `db` here)."""
    connection = await connect(dsn)
    yield connection
    await connection.close()


def _payload(token: str) -> dict[str, object]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def test_a_token_names_its_session_only_when_it_has_one(secret: str) -> None:
    plain = sign_access_token(secret, "u1", "aichat", 60)
    assert "sid" not in _payload(plain)  # tokens of other realms are unchanged
    assert verify_access_token(secret, plain).sid is None
    session = str(uuid.uuid4())
    assert (
        verify_access_token(
            secret, sign_access_token(secret, "u1", "aichat", 60, session_id=session)
        ).sid
        == session
    )


async def _login(api: TestClient, email: str, device: str) -> dict[str, str]:
    r = await api.post(
        "/v1/aichat/auth/login",
        json={"email": email, "password": "correct horse"},
        headers={"User-Agent": device},
    )
    assert r.status == 200, await r.text()
    return dict(await r.json())


async def _me(api: TestClient, token: str) -> int:
    r = await api.get("/v1/aichat/me", headers={"Authorization": f"Bearer {token}"})
    return r.status


async def test_logout_closes_only_the_sockets_of_its_session(
    aichat_api: TestClient,
    aichat_gateway: GatewayProcess,
    dsn: str,
    secret: str,
    conn: asyncpg.Connection,
) -> None:
    user = await make_user(dsn)
    email = await conn.fetchval("SELECT email FROM aichat.users WHERE id = $1", user)
    channel = f"aichat.conv:{await make_conversation(dsn, user)}"
    laptop = await _login(aichat_api, email, "laptop/1")
    phone = await _login(aichat_api, email, "phone/1")
    assert verify_access_token(secret, laptop["access_token"]).sid == laptop["session_id"]

    on_laptop = await WsClient.open(aichat_gateway.url, laptop["access_token"])
    on_phone = await WsClient.open(aichat_gateway.url, phone["access_token"])
    for client in (on_laptop, on_phone):
        await client.expect("welcome")
        await client.ok("join", channel=channel)

    r = await aichat_api.post(
        "/v1/aichat/auth/logout", json={"refresh_token": laptop["refresh_token"]}
    )
    assert r.status == 204
    assert await on_laptop.closed() == CLOSE_ACCOUNT_DISABLED

    # the phone's session is untouched: its socket still answers, its tokens still work
    assert (await on_phone.call("ping"))["op"] == "pong"
    assert (await on_phone.ok("send", channel=channel, text="still here?"))["op"] == "ok"
    assert await _me(aichat_api, phone["access_token"]) == 200
    r = await aichat_api.post(
        "/v1/aichat/auth/refresh", json={"refresh_token": phone["refresh_token"]}
    )
    assert r.status == 200
    assert await _me(aichat_api, (await r.json())["access_token"]) == 200

    # the laptop's are refused everywhere
    assert await _me(aichat_api, laptop["access_token"]) == 401
    r = await aichat_api.post(
        "/v1/aichat/auth/refresh", json={"refresh_token": laptop["refresh_token"]}
    )
    assert r.status == 401
    again = await WsClient.open(aichat_gateway.url, laptop["access_token"])
    refused = await again.expect("error")
    assert refused["code"] == "unauthorized" and "session has ended" in refused["message"]
    await again.closed()
    # ... and a socket of another session cannot take one over with `refresh`
    reply = await on_phone.call("refresh", token=laptop["access_token"])
    assert reply["op"] == "error" and reply["code"] == "unauthorized", reply
    assert "session has ended" in reply["message"]
    assert (await on_phone.call("ping"))["op"] == "pong"

    rows = await conn.fetch(
        "SELECT user_agent, is_active FROM aichat.sessions WHERE user_id = $1 ORDER BY user_agent",
        user,
    )
    assert [(r["user_agent"], r["is_active"]) for r in rows] == [
        ("laptop/1", False),
        ("phone/1", True),
    ]
    await on_phone.close()


async def test_logging_out_twice_or_with_an_unknown_token_changes_nothing(
    aichat_api: TestClient, dsn: str, conn: asyncpg.Connection
) -> None:
    user = await make_user(dsn)
    email = await conn.fetchval("SELECT email FROM aichat.users WHERE id = $1", user)
    laptop = await _login(aichat_api, email, "laptop/1")
    phone = await _login(aichat_api, email, "phone/1")
    body = {"refresh_token": laptop["refresh_token"]}
    for _ in range(2):
        r = await aichat_api.post("/v1/aichat/auth/logout", json=body)
        assert r.status == 204
    r = await aichat_api.post("/v1/aichat/auth/logout", json={"refresh_token": "x" * 43})
    assert r.status == 204
    assert await conn.fetchval("SELECT count(*) FROM gateway.session_revocations") == 1
    assert await _me(aichat_api, phone["access_token"]) == 200
