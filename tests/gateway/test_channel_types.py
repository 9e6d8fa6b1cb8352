"""channel_type has a meaning (issue 21, item 5): a premium room is for subscribers whatever
require_subscription says; a support channel is not a room but the analyst's promise of one
to one support conversations (the core's `support` kind); and max_members limits concurrent
participants across every gateway process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from tests.gateway import conftest as gateway_fixtures
from tests.gateway.conftest import World, make_channel
from tests.gateway.harness import GatewayProcess, WsClient

world = gateway_fixtures.world
start_gateway = gateway_fixtures.start_gateway
gw = gateway_fixtures.gw
connect_as = gateway_fixtures.connect_as

Connect = Callable[..., Awaitable[WsClient]]


def room(channel: object) -> str:
    return f"community:{channel}"


async def test_a_premium_room_needs_a_subscription_even_without_require_subscription(
    db: asyncpg.Connection, world: World, connect_as: Connect
) -> None:
    premium = await make_channel(
        db, world.analyst, channel_type="premium", require_subscription=False
    )
    refused = await (await connect_as(world.outsider)).call("join", channel=room(premium))
    assert refused["code"] == "forbidden"
    assert "subscription" in refused["message"]
    assert (await (await connect_as(world.member)).ok("join", channel=room(premium)))["role"] == (
        "member"
    )
    owner = await connect_as(world.analyst)
    assert (await owner.ok("join", channel=room(premium)))["role"] == "owner"


async def test_a_room_made_premium_loses_its_unsubscribed_members_at_once(
    db: asyncpg.Connection, world: World, connect_as: Connect
) -> None:
    open_room = await make_channel(db, world.analyst, require_subscription=False)
    outsider, member = await connect_as(world.outsider), await connect_as(world.member)
    for client in (outsider, member):
        await client.ok("join", channel=room(open_room))
    await db.execute(
        "UPDATE analyst.chat_channels SET channel_type = 'premium' WHERE id = $1", open_room
    )
    removed = await outsider.expect(lambda f: f.get("kind") == "removed")
    assert "subscription" in removed["reason"]
    await member.ok("send", channel=room(open_room), text="still here")


async def test_a_support_channel_is_not_a_room_for_traders(
    db: asyncpg.Connection, world: World, connect_as: Connect
) -> None:
    support = await make_channel(db, world.analyst, channel_type="support")
    refused = await (await connect_as(world.member)).call("join", channel=room(support))
    assert refused["code"] == "forbidden"
    assert "support conversation" in refused["message"]
    assert (await (await connect_as(world.analyst)).ok("join", channel=room(support)))["op"] == "ok"


async def test_a_subscriber_opens_support_with_the_analyst_who_answers_live(
    db: asyncpg.Connection, world: World, connect_as: Connect
) -> None:
    await make_channel(db, world.analyst, channel_type="support")
    trader, analyst = await connect_as(world.member), await connect_as(world.analyst)
    opened = await trader.ok(
        "create", kind="support", title="my order", **{"with": str(world.analyst)}
    )
    channel = opened["channel"]
    assert channel.startswith("analyst.support:")
    told = await analyst.expect(lambda f: f.get("kind") == "conversation_added")
    assert (told["conversation"], told["role"]) == (channel, "staff")
    await trader.ok("join", channel=channel)
    await trader.ok("send", channel=channel, text="where is my call?")
    assert (await analyst.ok("join", channel=channel))["role"] == "staff"
    await analyst.ok("send", channel=channel, text="in an hour")
    reply = await trader.expect(lambda f: f.get("op") == "msg" and f.get("text") == "in an hour")
    assert reply["user_id"] == str(world.analyst)
    admin = await connect_as(world.admin)
    queue = (await admin.ok("conversations", kind="support"))["conversations"]
    assert channel in {c["channel"] for c in queue}


async def test_support_from_an_analyst_needs_a_subscription_and_a_support_channel(
    db: asyncpg.Connection, world: World, connect_as: Connect
) -> None:
    outsider, member = await connect_as(world.outsider), await connect_as(world.member)
    no_channel = await member.call("create", kind="support", **{"with": str(world.analyst)})
    assert (no_channel["code"], no_channel["message"]) == (
        "forbidden",
        f"user {world.analyst} keeps no support channel",
    )
    await make_channel(db, world.analyst, channel_type="support")
    unsubscribed = await outsider.call("create", kind="support", **{"with": str(world.analyst)})
    assert unsubscribed["code"] == "forbidden" and "subscription" in unsubscribed["message"]
    direct = await member.call("create", kind="direct", **{"with": str(world.analyst)})
    assert direct["code"] == "bad_request"  # the analyst realm keeps support conversations only


async def test_max_members_counts_participants_across_gateway_processes(
    db: asyncpg.Connection,
    world: World,
    connect_as: Connect,
    start_gateway: Callable[..., Awaitable[GatewayProcess]],
) -> None:
    await db.execute(
        "UPDATE analyst.chat_channels SET max_members = 1 WHERE id = $1", world.channel
    )
    elsewhere = await start_gateway()
    first = await connect_as(world.member)
    await first.ok("join", channel=world.room)
    second = await connect_as(world.other_member, elsewhere)
    refused = await second.call("join", channel=world.room)
    assert refused["code"] == "forbidden" and "full" in refused["message"]
    await first.ok("leave", channel=world.room)
    await second.ok("join", channel=world.room)
