"""`cancel` across gateway processes: a reply streams on gateway A and the user cancels it
from a socket on gateway B (both on one Redis and one Postgres). B asks the cluster through
NOTIFY aichat_cancel; A stops the provider request and commits the partial reply once."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kernel.db import connect
from tests.conftest import free_port
from tests.gateway.harness import GatewayProcess, WsClient
from tests.realms.aichat.provider_standin import WORDS, ProviderStandIn
from tests.realms.aichat.world import make_conversation, make_user, socket


def _is(kind: str) -> Any:
    return lambda f: f.get("op") == "event" and f.get("kind") == kind


def _reply(f: dict[str, Any]) -> bool:
    return f.get("op") == "msg" and f.get("role") == "assistant"


@pytest.fixture
async def cluster(
    dsn: str, secret: str, redis_url: str, standin: ProviderStandIn
) -> AsyncIterator[tuple[GatewayProcess, GatewayProcess]]:
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "SWITCHBOARD_SECRET": secret,
        "SWITCHBOARD_REALMS": "aichat",
        "REDIS_URL": redis_url,
        "AICHAT_OPENAI_BASE_URL": standin.base_url,
        "AICHAT_CANCEL_WAIT": "1",
    }
    a = GatewayProcess({**env, "GATEWAY_PORT": str(free_port())})
    b = GatewayProcess({**env, "GATEWAY_PORT": str(free_port())})
    await a.start()
    await b.start()
    yield a, b
    for process in (a, b):
        await process.stop()
        print("".join(process.log))  # shown on failure


async def _joined(gw: GatewayProcess, secret: str, user: uuid.UUID, channel: str) -> WsClient:
    client = await socket(gw, secret, user)
    await client.ok("join", channel=channel)
    return client


async def _stalled_reply(
    standin: ProviderStandIn, on_a: WsClient, on_b: WsClient, channel: str
) -> str:
    """Send on A a prompt whose reply stalls after two words; both sockets saw a delta."""
    standin.script.append("stall")
    await on_a.ok("send", channel=channel, text="Write a long essay")
    delta = await on_a.expect(_is("delta"))
    assert (await on_b.expect(_is("delta")))["id"] == delta["id"]
    await standin.stalled.wait()
    return str(delta["id"])


async def test_cancel_on_another_gateway_stops_the_provider_and_commits_once(
    dsn: str,
    secret: str,
    cluster: tuple[GatewayProcess, GatewayProcess],
    standin: ProviderStandIn,
) -> None:
    a, b = cluster
    user = await make_user(dsn)
    channel = f"aichat.conv:{await make_conversation(dsn, user)}"
    on_a = await _joined(a, secret, user, channel)
    on_b = await _joined(b, secret, user, channel)
    reply_id = await _stalled_reply(standin, on_a, on_b, channel)

    cancelled = await on_b.ok("cancel", channel=channel, id=reply_id)
    assert cancelled["id"] == reply_id
    await asyncio.wait_for(standin.disconnected.wait(), 10)
    for client in (on_a, on_b):
        reply = await client.expect(_reply)
        assert reply["id"] == reply_id
        assert reply["partial"] is True and reply["finish_reason"] == "cancelled"
        assert reply["text"] == "".join(WORDS[:2])
    conn = await connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id, is_partial, finish_reason FROM aichat.messages WHERE role = 'assistant'"
        )
        assert [(str(r["id"]), r["is_partial"], r["finish_reason"]) for r in rows] == [
            (reply_id, True, "cancelled")
        ]
        assert await conn.fetchval("SELECT count(*) FROM aichat.token_usage") == 1
    finally:
        await conn.close()

    again = await on_b.call("cancel", channel=channel, id=reply_id)
    assert again["op"] == "error" and again["code"] == "conflict"
    assert standin.calls == 1


async def test_cancel_from_another_gateway_names_the_conversation_of_the_reply(
    dsn: str,
    secret: str,
    cluster: tuple[GatewayProcess, GatewayProcess],
    standin: ProviderStandIn,
) -> None:
    a, b = cluster
    user = await make_user(dsn)
    channel = f"aichat.conv:{await make_conversation(dsn, user)}"
    other_channel = f"aichat.conv:{await make_conversation(dsn, user)}"
    on_a = await _joined(a, secret, user, channel)
    on_b = await _joined(b, secret, user, channel)
    await on_b.ok("join", channel=other_channel)
    reply_id = await _stalled_reply(standin, on_a, on_b, channel)

    # The streaming process refuses a cancel that names another conversation ...
    wrong = await on_b.call("cancel", channel=other_channel, id=reply_id)
    assert wrong["op"] == "error" and wrong["code"] == "not_found"
    # ... and a reply id that streams nowhere is not found once the wait is over.
    unknown = await on_b.call("cancel", channel=channel, id=str(uuid.uuid4()))
    assert unknown["op"] == "error" and unknown["code"] == "not_found"
    assert not standin.disconnected.is_set()

    await on_b.ok("cancel", channel=channel, id=reply_id)
    reply = await on_a.expect(_reply)
    assert reply["id"] == reply_id and reply["finish_reason"] == "cancelled"
    await asyncio.wait_for(standin.disconnected.wait(), 10)
