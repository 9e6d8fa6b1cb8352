"""Members who are not in a conversation are told of new messages by their realm's
notifications (push, and e-mail per preferences): one notification per unread streak, not
one per message, and never for a conversation they muted (issue 13, item 3). The analyst
realm's support conversations, real gateway, real database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg

from tests.gateway import conftest as gateway_fixtures
from tests.gateway.conftest import World, make_channel
from tests.gateway.harness import WsClient

world = gateway_fixtures.world
start_gateway = gateway_fixtures.start_gateway
gw = gateway_fixtures.gw
connect_as = gateway_fixtures.connect_as

Connect = Callable[..., Awaitable[WsClient]]
NOTIFIED = """
SELECT count(*) FROM analyst.notifications
 WHERE user_id = $1 AND notification_type = 'conversation_message'
"""


async def gone(db: asyncpg.Connection, channel: str, user: object) -> None:
    """Wait (bounded) until the user has no socket in the channel on any gateway."""
    async with asyncio.timeout(10):
        while await db.fetchval(  # noqa: ASYNC110 - the row is the event; no one signals it
            "SELECT count(*) FROM gateway.live_members WHERE channel = $1 AND user_id = $2",
            channel,
            str(user),
        ):
            await asyncio.sleep(0.05)


async def test_an_absent_member_is_told_once_per_unread_streak_and_never_when_muted(
    db: asyncpg.Connection, world: World, connect_as: Connect
) -> None:
    await make_channel(db, world.analyst, channel_type="support")
    for user in (world.analyst, world.member):  # reachable by push
        await db.execute(
            "INSERT INTO gateway.push_devices (realm, user_id, token, platform)"
            " VALUES ('analyst', $1::uuid, $2, 'ios')",
            user,
            f"device-{user}",
        )
    trader = await connect_as(world.member)
    opened = await trader.ok("create", kind="support", **{"with": str(world.analyst)})
    channel = opened["channel"]
    await trader.ok("join", channel=channel)
    for text in ("one", "two", "three"):
        await trader.ok("send", channel=channel, text=text)
    assert await db.fetchval(NOTIFIED, world.analyst) == 1  # collapsed: one per streak
    row = await db.fetchrow(
        "SELECT message, related_entity_type, send_in_app, send_push FROM analyst.notifications"
        " WHERE user_id = $1 AND notification_type = 'conversation_message'",
        world.analyst,
    )
    assert (row["message"], row["related_entity_type"], row["send_in_app"], row["send_push"]) == (
        "one",
        "conversation",
        False,
        True,
    )
    assert await db.fetchval(NOTIFIED, world.member) == 0  # never for one's own messages

    analyst = await connect_as(world.analyst)
    await analyst.ok("join", channel=channel)
    await analyst.ok("read", channel=channel, seq=3)
    await trader.ok("send", channel=channel, text="while you are here")
    assert await db.fetchval(NOTIFIED, world.analyst) == 1  # present: nothing to push

    await analyst.ok("read", channel=channel, seq=4)
    await analyst.close()
    await gone(db, channel, world.analyst)
    await trader.ok("send", channel=channel, text="a new streak")
    assert await db.fetchval(NOTIFIED, world.analyst) == 2

    analyst = await connect_as(world.analyst)
    await analyst.ok("join", channel=channel)
    await analyst.ok("read", channel=channel, seq=5)
    await analyst.ok("mute", channel=channel)
    await analyst.close()
    await gone(db, channel, world.analyst)
    await trader.ok("send", channel=channel, text="muted now")
    assert await db.fetchval(NOTIFIED, world.analyst) == 2
