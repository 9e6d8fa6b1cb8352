"""Assistant conversations on a real gateway with the stand-in provider: a reply streams as
`delta` events to every socket of the user in the conversation and is committed once with
the provider's token counts; a provider failure mid-stream commits a partial reply; `cancel`
stops the provider request; quotas hold under concurrent sends; bad input is refused."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from kernel.db import connect
from tests.gateway.harness import GatewayProcess, WsClient
from tests.realms.aichat.provider_standin import MODEL, USAGE, WORDS, ProviderStandIn
from tests.realms.aichat.world import make_conversation, make_user, socket


def _is(kind: str) -> Any:
    return lambda f: f.get("op") == "event" and f.get("kind") == kind


def _reply(f: dict[str, Any]) -> bool:
    return f.get("op") == "msg" and f.get("role") == "assistant"


async def _joined(gw: GatewayProcess, secret: str, user: uuid.UUID, channel: str) -> WsClient:
    client = await socket(gw, secret, user)
    await client.ok("join", channel=channel)
    return client


async def test_reply_streams_to_both_sockets_and_is_committed_once_with_provider_usage(
    dsn: str, secret: str, aichat_gateway: GatewayProcess, standin: ProviderStandIn
) -> None:
    user = await make_user(dsn)
    conv = await make_conversation(dsn, user)
    channel = f"aichat.conv:{conv}"
    first, second = [await _joined(aichat_gateway, secret, user, channel) for _ in range(2)]
    sent = await first.ok("send", channel=channel, text="Hello?", client_id="c-1")
    assert sent["seq"] == 1
    for client in (first, second):
        reply = await client.expect(_reply)
        deltas = client.take_all(_is("delta"))
        assert [d["index"] for d in deltas] == list(range(len(WORDS)))
        assert "".join(d["text"] for d in deltas) == "".join(WORDS)
        assert {d["id"] for d in deltas} == {reply["id"]}
        assert reply["text"] == "".join(WORDS) and reply["seq"] == 2
        assert (reply["prompt_tokens"], reply["completion_tokens"]) == (17, 6)
        assert reply["model"] == MODEL and "partial" not in reply  # omitted when false
    assert standin.calls == 1
    assert standin.requests[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    conn = await connect(dsn)
    try:
        rows = await conn.fetch("SELECT * FROM aichat.messages WHERE role = 'assistant'")
        assert len(rows) == 1 and rows[0]["token_count"] == USAGE["total_tokens"]
        usage = await conn.fetchrow("SELECT * FROM aichat.token_usage")
        assert (usage["provider"], usage["prompt_tokens"], usage["completion_tokens"]) == (
            "openai",
            17,
            6,
        )
        assert usage["message_id"] == rows[0]["id"]
        tracked = await conn.fetchrow("SELECT * FROM aichat.usage_tracking")
        assert (tracked["tokens_used"], tracked["messages_count"]) == (23, 1)
        counts = await conn.fetchrow("SELECT * FROM aichat.conversations")
        assert (counts["message_count"], counts["token_count"]) == (2, 23)
    finally:
        await conn.close()
    again = await first.ok("send", channel=channel, text="Hello?", client_id="c-1")
    assert again["duplicate"] is True and standin.calls == 1


async def test_failure_mid_stream_commits_a_partial_reply_and_reports_it(
    dsn: str, secret: str, aichat_gateway: GatewayProcess, standin: ProviderStandIn
) -> None:
    user = await make_user(dsn)
    channel = f"aichat.conv:{await make_conversation(dsn, user)}"
    client = await _joined(aichat_gateway, secret, user, channel)
    standin.script.append("cut")
    await client.ok("send", channel=channel, text="Tell me more")
    failed = await client.expect(_is("reply_failed"))
    assert failed["code"] == "unavailable" and failed["retry_after_ms"] > 0
    reply = await client.expect(_reply)
    assert reply["partial"] is True and reply["finish_reason"] == "error"
    assert reply["text"] == "".join(WORDS[:2]) and reply["id"] == failed["id"]


async def test_cancel_stops_the_provider_request_and_commits_what_was_generated(
    dsn: str, secret: str, aichat_gateway: GatewayProcess, standin: ProviderStandIn
) -> None:
    user = await make_user(dsn)
    channel = f"aichat.conv:{await make_conversation(dsn, user)}"
    client = await _joined(aichat_gateway, secret, user, channel)
    standin.script.append("stall")
    await client.ok("send", channel=channel, text="Write a long essay")
    delta = await client.expect(_is("delta"))
    await standin.stalled.wait()
    await client.ok("cancel", channel=channel, id=delta["id"])
    reply = await client.expect(_reply)
    assert reply["partial"] is True and reply["finish_reason"] == "cancelled"
    assert reply["text"] == "".join(WORDS[:2])
    await asyncio.wait_for(standin.disconnected.wait(), 10)


async def test_fifty_concurrent_sends_with_ten_messages_left_make_ten_provider_calls(
    dsn: str, secret: str, aichat_gateway: GatewayProcess, standin: ProviderStandIn
) -> None:
    user = await make_user(dsn)
    conn = await connect(dsn)
    try:  # the Plus plan allows 5000 messages a month: 4990 are used
        await conn.execute(
            "INSERT INTO aichat.usage_tracking (user_id, billing_month, monthly_quota,"
            " messages_count) VALUES ($1, date_trunc('month', now() AT TIME ZONE 'UTC')::date,"
            " 1000000, 4990)",
            user,
        )
    finally:
        await conn.close()
    channels = [f"aichat.conv:{await make_conversation(dsn, user)}" for _ in range(5)]
    clients = [await socket(aichat_gateway, secret, user) for _ in range(5)]
    for client, channel in zip(clients, channels, strict=True):
        await client.ok("join", channel=channel)
    answers = await asyncio.gather(
        *(
            clients[i % 5].call("send", channel=channels[i % 5], text=f"question {i}")
            for i in range(50)
        )
    )
    accepted = [a for a in answers if a["op"] == "ok"]
    refused = [a for a in answers if a["op"] == "error"]
    assert len(accepted) == 10 and len(refused) == 40
    assert {a["code"] for a in refused} == {"quota_exceeded"}
    assert "resets on" in refused[0]["message"]
    replies = 0  # every accepted send gets its reply
    for i, client in enumerate(clients):
        mine = sum(1 for a in accepted if a["channel"] == channels[i])
        for _ in range(mine):
            await client.expect(_reply)
            replies += 1
    assert replies == 10 and standin.calls == 10


async def test_bad_input_is_refused_before_any_provider_call(
    dsn: str, secret: str, aichat_gateway: GatewayProcess, standin: ProviderStandIn
) -> None:
    user = await make_user(dsn)
    channel = f"aichat.conv:{await make_conversation(dsn, user)}"
    client = await _joined(aichat_gateway, secret, user, channel)
    big = await client.call("send", channel=channel, text="€" * 1500)  # 4,500 bytes
    assert big["op"] == "error" and big["code"] == "too_large"

    standin.script.append("500")  # the provider is down: the first send learns it
    await client.ok("send", channel=channel, text="anyone there?")
    failed = await client.expect(_is("reply_failed"))
    assert failed["code"] == "unavailable"
    down = await client.call("send", channel=channel, text="and now?")
    assert down["op"] == "error" and down["code"] == "unavailable"
    assert down["retry_after_ms"] > 0
    assert standin.calls == 1
    history = await client.ok("history", channel=channel)
    assert [m["text"] for m in history["messages"]] == ["anyone there?"]  # nothing lost

    other = await make_user(dsn)
    stranger = await socket(aichat_gateway, secret, other)
    refused = await stranger.call("join", channel=channel)
    assert refused["op"] == "error" and refused["code"] == "forbidden"
