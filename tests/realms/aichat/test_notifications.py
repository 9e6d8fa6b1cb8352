"""Quota notifications of the aichat realm: a send or a reply that takes a month's messages or
tokens past 80 % notifies `quota_warning`, past 100 % `quota_exceeded` (once each per month),
in the transaction that counts it: in-app on the user's sockets and in the realm's inbox,
an e-mail job for the verified address. The core's notification routes serve that inbox at
/v1/aichat/notifications..., to the caller only."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from kernel.db import connect
from kernel.tokens import sign_access_token
from realms.aichat.usage import plan_of, reserve_message
from tests.gateway.harness import GatewayProcess, WsClient
from tests.realms.aichat.provider_standin import ProviderStandIn
from tests.realms.aichat.world import make_conversation, make_user, socket


def _notification(kind: str) -> Any:
    return lambda f: f.get("op") == "notification" and f.get("notification_type") == kind


def _reply(f: dict[str, Any]) -> bool:
    return f.get("op") == "msg" and f.get("role") == "assistant"


async def _used(dsn: str, user: uuid.UUID, *, messages: int, tokens: int) -> None:
    conn = await connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO aichat.usage_tracking (user_id, billing_month, monthly_quota,"
            " messages_count, tokens_used) VALUES ($1,"
            " date_trunc('month', now() AT TIME ZONE 'UTC')::date, 1000000, $2, $3)",
            user,
            messages,
            tokens,
        )
    finally:
        await conn.close()


async def _inbox(dsn: str, user: uuid.UUID) -> list[asyncpg.Record]:
    conn = await connect(dsn)
    try:
        return await conn.fetch(
            "SELECT n.notification_type, n.message, n.priority,"
            " array(SELECT d.channel FROM gateway.notification_deliveries d"
            "       WHERE d.notification_id = n.id ORDER BY d.channel) AS jobs"
            " FROM gateway.notifications n WHERE n.realm = 'aichat' AND n.user_id = $1"
            " ORDER BY n.created_at, n.notification_type",
            str(user),
        )
    finally:
        await conn.close()


async def _joined(gw: GatewayProcess, secret: str, user: uuid.UUID, channel: str) -> WsClient:
    client = await socket(gw, secret, user)
    await client.ok("join", channel=channel)
    return client


async def test_crossing_80_percent_of_messages_and_tokens_warns_once(
    dsn: str, secret: str, aichat_gateway: GatewayProcess, standin: ProviderStandIn
) -> None:
    # Plus: 5000 messages and 1,000,000 tokens a month. The send takes the 4000th message
    # (80 %); its reply's 23 tokens take the month from 799,990 to 800,013 tokens.
    user = await make_user(dsn)
    await _used(dsn, user, messages=3999, tokens=799_990)
    channel = f"aichat.conv:{await make_conversation(dsn, user)}"
    client = await _joined(aichat_gateway, secret, user, channel)

    await client.ok("send", channel=channel, text="How far am I?")
    await client.expect(_reply)
    messages = await client.expect(_notification("quota_warning"))
    tokens = await client.expect(_notification("quota_warning"))
    assert {messages["title"], tokens["title"]} == {
        "80 % of your monthly messages quota used",
        "80 % of your monthly tokens quota used",
    }
    assert messages["channel"] == f"aichat.user:{user}"
    assert messages["action_url"] == "/v1/aichat/usage"
    stored = await _inbox(dsn, user)
    assert [(r["notification_type"], r["priority"]) for r in stored] == [
        ("quota_warning", "medium"),
        ("quota_warning", "medium"),
    ]
    assert all(list(r["jobs"]) == ["email"] for r in stored)  # verified address, no device
    assert all("resets" in r["message"] for r in stored)

    await client.ok("send", channel=channel, text="And now?")  # past 80 %, not crossing it
    await client.expect(_reply)
    assert len(await _inbox(dsn, user)) == 2
    assert client.take_all("notification") == []


async def test_the_last_message_of_the_month_notifies_quota_exceeded(
    dsn: str, secret: str, aichat_gateway: GatewayProcess, standin: ProviderStandIn
) -> None:
    user = await make_user(dsn)
    await _used(dsn, user, messages=4999, tokens=0)
    channel = f"aichat.conv:{await make_conversation(dsn, user)}"
    client = await _joined(aichat_gateway, secret, user, channel)

    await client.ok("send", channel=channel, text="One more")
    exceeded = await client.expect(_notification("quota_exceeded"))
    assert exceeded["priority"] == "high"
    assert "resets on" in exceeded["message"]
    await client.expect(_reply)
    refused = await client.call("send", channel=channel, text="Another?")
    assert refused["op"] == "error" and refused["code"] == "quota_exceeded"
    assert standin.calls == 1
    assert [r["notification_type"] for r in await _inbox(dsn, user)] == ["quota_exceeded"]


async def test_notification_routes_serve_the_callers_aichat_inbox_and_preferences(
    dsn: str, secret: str, aichat_api: TestClient
) -> None:
    user = await make_user(dsn)
    other = await make_user(dsn)

    def auth(who: uuid.UUID) -> dict[str, str]:
        return {"Authorization": f"Bearer {sign_access_token(secret, str(who), 'aichat', 600)}"}

    r = await aichat_api.put(
        "/v1/aichat/notifications/preferences",
        json={"category": "quota_warning", "channel": "email", "enabled": False},
        headers=auth(user),
    )
    assert r.status == 204, await r.text()
    await _used(dsn, user, messages=3999, tokens=0)
    conn = await connect(dsn)
    try:  # what a send taking the 4000th message of the month does
        async with conn.transaction():
            await reserve_message(conn, user, await plan_of(conn, user))
    finally:
        await conn.close()
    (stored,) = await _inbox(dsn, user)
    assert stored["notification_type"] == "quota_warning"
    assert list(stored["jobs"]) == []  # in-app only: e-mail is off for this category

    page = await (await aichat_api.get("/v1/aichat/notifications", headers=auth(user))).json()
    assert [n["notification_type"] for n in page["items"]] == ["quota_warning"]
    count = await aichat_api.get("/v1/aichat/notifications/unread-count", headers=auth(user))
    assert (await count.json())["unread"] == 1
    theirs = await aichat_api.get("/v1/aichat/notifications", headers=auth(other))
    assert (await theirs.json())["items"] == []
    r = await aichat_api.post(
        "/v1/aichat/notifications/read", json={"all": True}, headers=auth(other)
    )
    assert (await r.json())["marked"] == 0
    r = await aichat_api.post(
        "/v1/aichat/notifications/read", json={"all": True}, headers=auth(user)
    )
    assert r.status == 200 and (await r.json()) == {"marked": 1, "unread": 0}
