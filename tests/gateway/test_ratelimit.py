"""The gateway's chat rate limit is the rule of analyst.check_chat_rate_limit, step for step."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
import redis.asyncio as aioredis

from gateway.ratelimit import (
    ChatRateLimiter,
    FrameBudget,
    MemoryChatRateLimiter,
    RedisChatRateLimiter,
)
from tests.gateway.conftest import World, make_channel
from tests.gateway.harness import WsClient

Connect = Callable[..., Awaitable[WsClient]]

# Simulated send attempts (ms): a burst past the limit, attempts inside and exactly at the
# window's edge, a quiet spell, and a second burst.
ATTEMPTS_MS = [
    0,
    100,
    200,
    300,
    400,
    500,
    30_000,
    59_999,
    60_000,
    60_050,
    60_100,
    60_200,
    60_300,
    60_400,
    61_000,
    119_999,
    120_000,
    120_001,
    180_500,
    180_501,
    180_502,
]
LIMIT = 4


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[ChatRateLimiter]:
    if request.param == "memory":
        yield MemoryChatRateLimiter()
        return
    client = aioredis.from_url(request.getfixturevalue("redis_url"))
    await client.flushdb()
    yield RedisChatRateLimiter(client)
    await client.aclose()


async def _sql_allows(
    db: asyncpg.Connection,
    sent: dict[uuid.UUID, int],
    now_ms: int,
    user: uuid.UUID,
    channel: uuid.UUID,
) -> bool:
    """check_chat_rate_limit at simulated time now_ms: every stored message is re-dated
    relative to the transaction's now(), then the function is asked in that transaction."""
    async with db.transaction():
        if sent:
            await db.execute(
                "UPDATE analyst.chat_messages m SET created_at = now() - make_interval("
                " secs => (($1::bigint - s.at) / 1000.0)::double precision)"
                " FROM unnest($2::uuid[], $3::bigint[]) AS s(id, at) WHERE m.id = s.id",
                now_ms,
                list(sent),
                list(sent.values()),
            )
        allowed = await db.fetchval(
            "SELECT analyst.check_chat_rate_limit($1, $2, $3)", user, channel, LIMIT
        )
    return bool(allowed)


async def test_gateway_limiter_and_sql_function_agree_at_every_step(
    world: World, db: asyncpg.Connection, limiter: ChatRateLimiter
) -> None:
    sent: dict[uuid.UUID, int] = {}
    verdicts: list[tuple[int, bool, bool]] = []
    for now_ms in ATTEMPTS_MS:
        sql = await _sql_allows(db, sent, now_ms, world.member, world.channel)
        verdict = await limiter.hit(str(world.member), str(world.channel), LIMIT, now_ms)
        verdicts.append((now_ms, sql, verdict.allowed))
        if verdict.allowed:
            message_id = await db.fetchval(
                "INSERT INTO analyst.chat_messages (channel_id, user_id, analyst_id, message)"
                " VALUES ($1, $2, $3, 'x') RETURNING id",
                world.channel,
                world.member,
                world.analyst,
            )
            sent[message_id] = now_ms
    assert [(t, s) for t, s, _ in verdicts] == [(t, g) for t, _, g in verdicts]
    # The sequence really exercised both answers, and the window's edge.
    allowed = {t for t, s, _ in verdicts if s}
    assert {0, 300, 60_000, 120_000}.issubset(allowed)
    assert {400, 59_999, 60_400, 119_999}.isdisjoint(allowed)


async def test_limiter_is_per_user_and_per_channel(limiter: ChatRateLimiter) -> None:
    for _ in range(LIMIT):
        assert (await limiter.hit("u1", "c1", LIMIT, 1000)).allowed
    refused = await limiter.hit("u1", "c1", LIMIT, 1000)
    assert not refused.allowed and refused.retry_after_ms == 60_001
    assert (await limiter.hit("u2", "c1", LIMIT, 1000)).allowed
    assert (await limiter.hit("u1", "c2", LIMIT, 1000)).allowed
    assert (await limiter.hit("u1", "c1", LIMIT, 61_001)).allowed


async def test_send_over_the_channel_limit_gets_rate_limited_with_retry_after(
    world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    await db.execute("UPDATE analyst.chat_channels SET message_rate_limit = 3")
    other_room = await make_channel(
        db, world.analyst, require_subscription=False, message_rate_limit=3
    )
    alice = await connect_as(world.member)
    bob = await connect_as(world.other_member)
    for client in (alice, bob):
        await client.ok("join", channel=world.room)
    await alice.ok("join", channel=f"community:{other_room}")
    for i in range(3):
        await alice.ok("send", channel=world.room, text=f"ok {i}")
    refused = await alice.call("send", channel=world.room, text="one too many")
    assert refused["code"] == "rate_limited"
    assert 0 < refused["retry_after_ms"] <= 60_001
    assert (await bob.call("send", channel=world.room, text="mine"))["op"] == "ok"
    assert (await alice.call("send", channel=f"community:{other_room}", text="x"))["op"] == "ok"
    stored = await db.fetchval(
        "SELECT count(*) FROM analyst.chat_messages WHERE user_id = $1 AND channel_id = $2",
        world.member,
        world.channel,
    )
    assert stored == 3
    assert not await db.fetchval(
        "SELECT analyst.check_chat_rate_limit($1, $2, 3)", world.member, world.channel
    )


async def test_unlimited_channel_accepts_more_than_the_default(
    world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    await db.execute(
        "UPDATE analyst.chat_channels SET is_rate_limited = false, message_rate_limit = 1"
    )
    alice = await connect_as(world.member)
    await alice.ok("join", channel=world.room)
    for i in range(3):
        await alice.ok("send", channel=world.room, text=f"free {i}")


def test_frame_budget_refuses_past_the_burst_and_says_when_to_retry() -> None:
    budget = FrameBudget(rate=10, burst=3)
    assert [budget.take() for _ in range(3)] == [0, 0, 0]
    wait = budget.take()
    assert 0 < wait <= 101
