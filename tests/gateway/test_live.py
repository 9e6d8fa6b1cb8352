"""`community.live:` rooms: the stored room's join gates, messages broadcast to whoever is
joined and never written (no seq, no history, no stored-message ops), no place under
max_members, the channel's rate rule counted apart, revocation, and two processes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from tests.gateway.conftest import Starter, World, make_channel
from tests.gateway.harness import GatewayProcess, WsClient, token_for

ConnectAs = Callable[..., Awaitable[WsClient]]


def live(world: World) -> str:
    return f"community.live:{world.channel}"


def is_msg(channel: str) -> Callable[[dict], bool]:
    return lambda f: f.get("op") == "msg" and f.get("channel") == channel


async def test_a_live_message_reaches_every_member_and_is_not_stored(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    alice, bob = await connect_as(world.member), await connect_as(world.other_member)
    for ws in (alice, bob):
        ack = await ws.ok("join", channel=live(world))
        assert ack["role"] == "member" and ack["last_seq"] == 0
    sent = await alice.ok("send", channel=live(world), text="going live", client_id="c-1")
    assert "seq" not in sent and sent["id"] and sent["created_at"]
    for ws in (alice, bob):
        msg = await ws.expect(is_msg(live(world)))
        assert msg == {
            "op": "msg",
            "channel": live(world),
            "id": sent["id"],
            "user_id": str(world.member),
            "text": "going live",
            "type": "text",
            "created_at": sent["created_at"],
            "client_id": "c-1",
        }
    assert await db.fetchval("SELECT count(*) FROM analyst.chat_messages") == 0
    assert (
        await db.fetchval(
            "SELECT total_messages FROM analyst.chat_channels WHERE id = $1", world.channel
        )
        == 0
    )
    await alice.close()
    await bob.close()


async def test_the_stored_room_and_its_live_room_are_apart(
    world: World, connect_as: ConnectAs
) -> None:
    alice, bob = await connect_as(world.member), await connect_as(world.other_member)
    await alice.ok("join", channel=live(world))
    await alice.ok("join", channel=world.room)
    await bob.ok("join", channel=world.room)
    await alice.ok("send", channel=live(world), text="live only")
    await alice.ok("send", channel=world.room, text="stored")
    assert (await bob.expect("msg"))["text"] == "stored"
    assert (await alice.expect(is_msg(live(world))))["text"] == "live only"
    await bob.call("ping")
    assert bob.take_all(is_msg(live(world))) == []
    await alice.close()
    await bob.close()


async def test_joining_takes_the_stored_rooms_gates(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    outsider = await connect_as(world.outsider)
    refused = await outsider.call("join", channel=live(world))
    assert (refused["code"], refused["message"]) == (
        "forbidden",
        "joining needs an active subscription with chat access",
    )
    archived = await make_channel(db, world.analyst, is_archived=True)
    refused = await outsider.call("join", channel=f"community.live:{archived}")
    assert (refused["code"], refused["message"]) == ("forbidden", "channel is archived")
    missing = await outsider.call(
        "join", channel="community.live:00000000-0000-4000-8000-000000000000"
    )
    assert missing["code"] == "not_found"
    bad = await outsider.call("join", channel="community.live:nope")
    assert bad["code"] == "bad_request"
    analyst = await connect_as(world.analyst)
    assert (await analyst.ok("join", channel=live(world)))["role"] == "owner"
    await outsider.close()
    await analyst.close()


async def test_live_members_take_no_place_and_are_not_announced(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    await db.execute(
        "UPDATE analyst.chat_channels SET max_members = 1 WHERE id = $1", world.channel
    )
    alice, bob = await connect_as(world.member), await connect_as(world.other_member)
    await alice.ok("join", channel=world.room)  # the one place of the stored room
    await bob.ok("join", channel=live(world))  # still fine: live joins are not counted
    await alice.ok("join", channel=live(world))
    assert (
        await db.fetchval(
            "SELECT active_members_count FROM analyst.chat_channels WHERE id = $1", world.channel
        )
        == 1
    )
    await alice.call("ping")
    assert (
        alice.take_all(
            lambda f: f.get("kind") in ("joined", "left") and f.get("channel") == live(world)
        )
        == []
    )
    await alice.close()
    await bob.close()


@pytest.mark.parametrize(
    ("op", "fields"),
    [
        ("edit", {"id": "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b", "text": "x"}),
        ("delete", {"id": "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"}),
        ("pin", {"id": "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"}),
        ("unpin", {"id": "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"}),
        ("flag", {"id": "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b", "reason": "spam"}),
        ("read", {"seq": 1}),
        ("history", {}),
    ],
)
async def test_ops_on_stored_messages_are_forbidden(
    world: World, connect_as: ConnectAs, op: str, fields: dict[str, object]
) -> None:
    alice = await connect_as(world.member)
    await alice.ok("join", channel=live(world))
    refused = await alice.call(op, channel=live(world), **fields)
    assert (refused["code"], refused["message"]) == (
        "forbidden",
        "community.live: messages are not stored",
    )
    await alice.ok("send", channel=live(world), text="still served")
    await alice.close()


async def test_a_live_reply_and_a_live_resume_are_bad_requests(
    world: World, connect_as: ConnectAs
) -> None:
    alice = await connect_as(world.member)
    refused = await alice.call("join", channel=live(world), since=3)
    assert (refused["code"], refused["message"]) == (
        "bad_request",
        "community.live: channels have no seq to resume from",
    )
    await alice.ok("join", channel=live(world))
    refused = await alice.call(
        "send", channel=live(world), text="re", reply_to="6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"
    )
    assert refused["code"] == "bad_request" and "cannot reply" in refused["message"]
    await alice.close()


async def test_the_channels_rate_rule_applies_counted_apart_from_the_stored_room(
    world: World, connect_as: ConnectAs
) -> None:
    alice = await connect_as(world.member)  # the world's channel allows 10 per minute
    await alice.ok("join", channel=live(world))
    await alice.ok("join", channel=world.room)
    for n in range(10):
        await alice.ok("send", channel=live(world), text=f"live {n}")
    refused = await alice.call("send", channel=live(world), text="one too many")
    assert refused["code"] == "rate_limited" and refused["retry_after_ms"] > 0
    await alice.ok("send", channel=world.room, text="the stored room has its own budget")
    await alice.close()


async def test_a_member_whose_subscription_ends_is_removed_from_the_live_room(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    alice = await connect_as(world.member)
    await alice.ok("join", channel=live(world))
    await db.execute(
        "UPDATE analyst.subscriptions SET status = 'cancelled' WHERE id = $1", world.subscription
    )
    removed = await alice.expect(
        lambda f: f.get("kind") == "removed" and f.get("channel") == live(world)
    )
    assert removed["reason"]
    refused = await alice.call("send", channel=live(world), text="after")
    assert refused["code"] == "forbidden"
    await alice.close()


async def test_live_messages_cross_gateway_processes_once(
    world: World, start_gateway: Starter, redis_url: str, secret: str
) -> None:
    gateways: list[GatewayProcess] = [await start_gateway(REDIS_URL=redis_url) for _ in range(2)]
    sockets = []
    for gateway, user in zip(gateways, (world.member, world.other_member), strict=True):
        ws = await WsClient.open(gateway.url, token_for(secret, user))
        await ws.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
        await ws.ok("join", channel=live(world))
        sockets.append(ws)
    for n in range(3):
        await sockets[0].ok("send", channel=live(world), text=f"tick {n}")
    for ws in sockets:
        texts = [(await ws.expect(is_msg(live(world))))["text"] for _ in range(3)]
        assert texts == ["tick 0", "tick 1", "tick 2"]
        await ws.call("ping")
        assert ws.take_all(is_msg(live(world))) == []
        await ws.close()
