"""The client libraries against real gateway processes, each scenario in three runtimes: the
Python client, the JS client in Node, and the JS client in headless Chromium (`driver`).

What is asserted is what an application sees through the client's API and callbacks: acks,
delivered messages (in seq order, no gap, no duplicate), states, unread counts.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.clients.conftest import LossyProxy, WebServer
from tests.clients.drivers import BrowserDriver, ClientError, Driver
from tests.gateway.conftest import Starter, World
from tests.gateway.harness import GatewayProcess, token_for


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [m["seq"] for m in messages]


def states(snapshot: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for s in snapshot["states"] if s["state"] == name]


# Node's own WebSocket (global in Node 22, flagged in Node 20) besides the `ws` package.
WITH_NODE_GLOBAL = pytest.mark.parametrize(
    "driver", ["python", "node", "node-global", "browser"], indirect=True
)


@WITH_NODE_GLOBAL
@pytest.mark.parametrize("fmt", ["json", "msgpack"])
async def test_send_is_acked_after_commit_and_received_by_the_other_member(
    driver: Driver, world: World, gw: GatewayProcess, web_server: WebServer, fmt: str
) -> None:
    url = web_server.token_url
    welcome = await driver.connect("a", gw.url, world.member, token_url=url, format=fmt)
    assert welcome["userId"] == str(world.member)
    assert welcome["userStream"] == f"user:{world.member}"
    await driver.connect("b", gw.url, world.other_member, token_url=url, format=fmt)
    joined = await driver.call("a", "join", channel=world.room)
    assert joined["role"] == "member" and joined["last_seq"] == 0
    await driver.call("b", "join", channel=world.room)

    ack = await driver.call("b", "send", channel=world.room, text="hello", clientId="c-1")
    assert ack["seq"] == 1 and ack["channel"] == world.room and not ack.get("duplicate")

    [received] = await driver.wait("a", "messages", 1, channel=world.room)
    assert received == {
        "channel": world.room,
        "seq": 1,
        "id": ack["id"],
        "user_id": str(world.other_member),
        "client_id": "c-1",
        "text": "hello",
    }
    # The sender gets its own message once too; unread counts only others' messages.
    [own] = await driver.wait("b", "messages", 1, channel=world.room)
    assert own["id"] == ack["id"]
    assert (await driver.snapshot("a"))["unread"][world.room] == 1
    assert (await driver.snapshot("b"))["unread"][world.room] == 0

    assert await driver.call("a", "read", channel=world.room, seq=1) == 1
    assert (await driver.snapshot("a"))["unread"][world.room] == 0

    users = await driver.call("a", "presence", channel=world.room)
    assert users == sorted([str(world.member), str(world.other_member)])
    page = await driver.call("a", "history", channel=world.room, limit=10)
    assert [(m["seq"], m["text"]) for m in page] == [(1, "hello")]

    await driver.call("b", "typing", channel=world.room)
    [typing] = await driver.wait("a", "events", 1, kind="typing", channel=world.room)
    assert typing["user_id"] == str(world.other_member)

    refused = await driver.attempt("b", "send", channel=f"community:{world.analyst}", text="x")
    assert refused["error"]["code"] == "forbidden"  # not joined: the promise is rejected

    if isinstance(driver, BrowserDriver):  # the page wrote each result into its DOM
        logged = await driver.dom_log()
        sends = [e["result"] for e in logged if e.get("method") == "send"]
        assert sends[0]["ok"]["seq"] == 1 and sends[1]["error"]["code"] == "forbidden"


async def test_resume_after_the_gateway_restarts_has_no_gap_and_no_duplicate(
    driver: Driver,
    world: World,
    start_gateway: Starter,
    redis_url: str,
    web_server: WebServer,
) -> None:
    """a's gateway is stopped (SIGTERM: drain, close 1001) while b, on another gateway, keeps
    sending; a's send made meanwhile waits; the gateway comes back on the same port and a
    resumes: every message once, in order, and its send acked."""
    g1 = await start_gateway(REDIS_URL=redis_url)
    g2 = await start_gateway(REDIS_URL=redis_url)
    url = web_server.token_url
    await driver.connect("a", g1.url, world.member, token_url=url)
    await driver.connect("b", g2.url, world.other_member, token_url=url)
    await driver.call("a", "join", channel=world.room)
    await driver.call("b", "join", channel=world.room)
    for i in range(1, 4):
        await driver.call("b", "send", channel=world.room, text=f"m{i}")
    await driver.wait("a", "messages", 3, channel=world.room)
    tokens_before = web_server.issued[str(world.member)]

    assert await g1.stop() == 0
    lost = (await driver.wait("a", "states", 1, state="reconnecting"))[0]
    assert lost["code"] == 1001
    for i in range(4, 7):  # committed while a is away
        await driver.call("b", "send", channel=world.room, text=f"m{i}")
    await driver.begin("a", "pending", "send", channel=world.room, text="from a", clientId="a-1")

    await start_gateway(REDIS_URL=redis_url, GATEWAY_PORT=str(g1.port))
    await driver.wait("a", "states", 2, state="connected", timeout=30)
    ack = await driver.result("pending")
    assert ack["seq"] == 7 and not ack.get("duplicate")
    await driver.call("b", "send", channel=world.room, text="m8")
    received = await driver.wait("a", "messages", 8, channel=world.room)
    assert seqs(received) == list(range(1, 9))
    assert [m["text"] for m in received] == [f"m{i}" for i in range(1, 7)] + ["from a", "m8"]
    assert len({m["id"] for m in received}) == 8

    snap = await driver.snapshot("a")
    assert len(snap["messages"]) == 8  # nothing more arrived (no duplicate)
    [rejoin] = [r for r in snap["rejoins"] if r["channel"] == world.room]
    assert rejoin["recovered"] is True and rejoin["replayed"] == 3
    assert snap["lastSeq"][world.room] == 8
    assert web_server.issued[str(world.member)] > tokens_before  # a fresh token to reconnect


async def test_duplicates_are_dropped_and_a_gap_is_filled_from_history(
    driver: Driver, world: World, gw: GatewayProcess, web_server: WebServer, make_proxy: Any
) -> None:
    proxy: LossyProxy = await make_proxy(gw.url)
    proxy.duplicate_msgs = True
    proxy.drop_seqs = {2}
    url = web_server.token_url
    await driver.connect("a", proxy.url, world.member, token_url=url)
    await driver.connect("b", gw.url, world.other_member, token_url=url)
    await driver.call("a", "join", channel=world.room)
    await driver.call("b", "join", channel=world.room)
    for i in range(1, 5):
        await driver.call("b", "send", channel=world.room, text=f"m{i}")
    received = await driver.wait("a", "messages", 4, channel=world.room)
    assert seqs(received) == [1, 2, 3, 4]
    assert received[1]["text"] == "m2"  # fetched with history: the proxy dropped it
    await driver.call("b", "send", channel=world.room, text="m5")
    received = await driver.wait("a", "messages", 5, channel=world.room)
    assert seqs(received) == [1, 2, 3, 4, 5]  # the duplicate of 4 came before 5 and was dropped
    assert proxy.dropped == [2] and proxy.duplicated >= 3  # 1, 3 and 4 at least
    assert (await driver.snapshot("a"))["unread"][world.room] == 5


@WITH_NODE_GLOBAL
async def test_an_unacknowledged_send_is_retried_with_its_client_id(
    driver: Driver,
    world: World,
    gw: GatewayProcess,
    web_server: WebServer,
    make_proxy: Any,
    db: asyncpg.Connection,
) -> None:
    """The ack of a committed send is lost with the connection: the client reconnects and
    resends with the same client_id, and gets the original seq back as a duplicate."""
    proxy: LossyProxy = await make_proxy(gw.url)
    proxy.cut_after_send_ack = True
    url = web_server.token_url
    await driver.connect("a", proxy.url, world.member, token_url=url)
    await driver.connect("b", gw.url, world.other_member, token_url=url)
    await driver.call("a", "join", channel=world.room)
    await driver.call("b", "join", channel=world.room)

    ack = await driver.call("a", "send", channel=world.room, text="once", clientId="retry-1")
    [lost_ack] = proxy.swallowed
    assert ack["duplicate"] is True
    assert (ack["id"], ack["seq"]) == (lost_ack["id"], lost_ack["seq"]) == (ack["id"], 1)
    assert proxy.connections == 2

    await driver.call("b", "send", channel=world.room, text="after")
    mine = await driver.wait("a", "messages", 2, channel=world.room)
    assert seqs(mine) == [1, 2] and mine[0]["client_id"] == "retry-1"
    theirs = await driver.wait("b", "messages", 2, channel=world.room)
    assert seqs(theirs) == [1, 2]
    stored = await db.fetchval(
        "SELECT count(*) FROM analyst.chat_messages WHERE client_id = 'retry-1'"
    )
    assert stored == 1
    snap = await driver.snapshot("a")
    assert len(states(snap, "connected")) == 2
    assert states(snap, "reconnecting")[0]["code"] == 1006


async def test_the_token_provider_refreshes_before_expiry(
    driver: Driver, world: World, start_gateway: Starter, web_server: WebServer, secret: str
) -> None:
    """Tokens live 3 s (2 to 3 s: `exp` is in whole seconds) and the gateway's grace is 2 s: a
    client with a provider refreshes at 80% of each lifetime and keeps its one socket; one
    with a fixed token is closed (4002), cannot reconnect with it (4001) and gives up."""
    g = await start_gateway(GATEWAY_REFRESH_GRACE="2")
    first = await driver.connect("a", g.url, world.member, token_url=web_server.token_url, ttl=3)
    fixed = token_for(secret, world.other_member, ttl=3)
    await driver.connect("b", g.url, world.other_member, token=fixed)
    await driver.call("a", "join", channel=world.room)

    # connect + 4 refreshes, each at least 1.5 s after the one before: past the first
    # token's expiry plus the grace (at most 5 s after connecting).
    await web_server.wait_issued(world.member, 5, timeout=40)
    ack = await driver.call("a", "send", channel=world.room, text="still here")
    assert ack["seq"] == 1
    snap = await driver.snapshot("a")
    assert snap["sessionId"] == first["sessionId"]
    assert len(states(snap, "connected")) == 1 and not states(snap, "reconnecting")
    assert not [e for e in snap["events"] if e.get("kind") == "token_expired"]

    closed = (await driver.wait("b", "states", 1, state="closed", timeout=30))[0]
    assert closed["code"] == 4001
    b = await driver.snapshot("b")
    assert [e["kind"] for e in b["events"] if e.get("kind") == "token_expired"] == ["token_expired"]
    assert [s["code"] for s in states(b, "reconnecting")] == [4002]
    assert b["errors"][-1]["code"] == "unauthorized"
    refused = await driver.attempt("b", "ping")
    assert refused["error"]["code"] == "closed"


async def test_a_refused_token_fails_connect(
    driver: Driver, world: World, gw: GatewayProcess
) -> None:
    with pytest.raises(ClientError) as refused:
        await driver.connect("a", gw.url, world.member, token="not-a-token")
    assert refused.value.code == "unauthorized"
    assert "malformed" in refused.value.message
    assert (await driver.snapshot("a"))["state"] == "closed"


async def test_notifications_missed_and_live_with_the_unread_badge(
    driver: Driver, world: World, gw: GatewayProcess, web_server: WebServer, db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO analyst.notifications (user_id, notification_type, title)"
        " SELECT $1, 'new_post', 'Post ' || g FROM generate_series(1, 2) g",
        world.member,
    )
    await driver.connect("a", gw.url, world.member, token_url=web_server.token_url)
    missed = await driver.wait("a", "notifications", 2)
    assert sorted(n["title"] for n in missed) == ["Post 1", "Post 2"]
    assert all(n["missed"] for n in missed)
    assert (await driver.snapshot("a"))["notificationsUnread"] == 2

    await db.execute(
        "INSERT INTO analyst.notifications (user_id, notification_type, title)"
        " VALUES ($1, 'new_post', 'Live')",
        world.member,
    )
    live = (await driver.wait("a", "notifications", 3))[2]
    assert live["title"] == "Live" and not live.get("missed")
    assert (await driver.snapshot("a"))["notificationsUnread"] == 3

    marked = await driver.call("a", "readNotifications")
    assert marked == {"marked": 3, "unread": 0}
    assert (await driver.snapshot("a"))["notificationsUnread"] == 0
    await driver.wait("a", "events", 1, kind="notifications_read")


async def test_resume_past_the_replay_limit_pages_the_hole_from_history(
    driver: Driver,
    world: World,
    start_gateway: Starter,
    web_server: WebServer,
    db: asyncpg.Connection,
) -> None:
    """More than 1000 messages were missed: the server replays nothing (recovered: false) and
    the client fetches them with history before delivering anything newer."""
    g = await start_gateway()
    await driver.connect("a", g.url, world.member, token_url=web_server.token_url)
    await driver.call("a", "join", channel=world.room)
    await driver.call("a", "send", channel=world.room, text="first")
    await driver.wait("a", "messages", 1, channel=world.room)

    await g.stop()
    await driver.wait("a", "states", 1, state="reconnecting")
    await db.execute(
        "INSERT INTO analyst.chat_messages (channel_id, user_id, analyst_id, message)"
        " SELECT $1, $2, $3, 'bulk ' || g FROM generate_series(1, 1100) g",
        world.channel,
        world.other_member,
        world.analyst,
    )
    await start_gateway(GATEWAY_PORT=str(g.port))
    received = await driver.wait("a", "messages", 1101, channel=world.room, timeout=60)
    assert seqs(received) == list(range(1, 1102))
    assert received[-1]["text"] == "bulk 1100"
    snap = await driver.snapshot("a")
    [rejoin] = snap["rejoins"]
    assert rejoin["recovered"] is False and rejoin["replayed"] == 0
    assert snap["unread"][world.room] == 1100
