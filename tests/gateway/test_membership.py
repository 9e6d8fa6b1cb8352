"""Membership: the join gates of `community:` channels and `user:` streams, what a non-member
may not do, live member counts and presence, revocation the moment the database says so,
and the joined/left/removed events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.factories import make_analyst, make_subscription, make_tier, make_user
from tests.gateway.conftest import World, make_channel
from tests.gateway.harness import Frame, GatewayProcess, WsClient

ConnectAs = Callable[..., Awaitable[WsClient]]

NON_ACTIVE_STATUSES = ["cancelled", "expired", "suspended", "pending_payment"]


# --- helpers --------------------------------------------------------------------------------


def room(channel: uuid.UUID) -> str:
    return f"community:{channel}"


def refused(frame: Frame, code: str) -> Frame:
    assert frame["op"] == "error", frame
    assert frame["code"] == code, frame
    return frame


async def join_refused(client: WsClient, channel: str, code: str) -> Frame:
    ref = await client.send("join", channel=channel)
    reply = refused(await client.reply(ref), code)
    assert reply["ref"] == ref
    return reply


async def subscriber(
    db: asyncpg.Connection, tier: uuid.UUID, status: str = "active", **fields: object
) -> uuid.UUID:
    """A new user holding a subscription to `tier` with `status`."""
    user = await make_user(db)
    await make_subscription(db, user, tier, status=status, **fields)
    return user


async def members_count(db: asyncpg.Connection, channel: uuid.UUID) -> int:
    value = await db.fetchval(
        "SELECT active_members_count FROM analyst.chat_channels WHERE id = $1", channel
    )
    return int(value)


async def count_becomes(
    db: asyncpg.Connection, channel: uuid.UUID, expected: int, timeout: float = 10
) -> None:
    """Poll the count (nothing outside the gateway can await a socket's clean-up)."""
    async with asyncio.timeout(timeout):
        while await members_count(db, channel) != expected:  # noqa: ASYNC110 - no event
            await asyncio.sleep(0.02)


def event(kind: str, channel: str, user: uuid.UUID | None = None) -> Callable[[Frame], bool]:
    return lambda f: (
        f.get("op") == "event"
        and f.get("kind") == kind
        and f.get("channel") == channel
        and (user is None or f.get("user_id") == str(user))
    )


# --- gates: the channel -----------------------------------------------------------------------


async def test_join_refused_for_a_channel_that_does_not_exist(
    world: World, connect_as: ConnectAs
) -> None:
    client = await connect_as(world.member)
    await join_refused(client, room(uuid.uuid4()), "not_found")


@pytest.mark.parametrize("who", ["member", "analyst", "admin"])
async def test_join_refused_for_a_soft_deleted_channel(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection, who: str
) -> None:
    await db.execute("UPDATE analyst.chat_channels SET deleted_at = now()")
    client = await connect_as(getattr(world, who))
    await join_refused(client, world.room, "not_found")


@pytest.mark.parametrize("change", ["is_active = false", "is_archived = true"])
@pytest.mark.parametrize("who", ["member", "analyst", "admin"])
async def test_join_refused_for_an_inactive_or_archived_channel_even_to_its_analyst_and_admins(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection, change: str, who: str
) -> None:
    await db.execute(f"UPDATE analyst.chat_channels SET {change}")
    client = await connect_as(getattr(world, who))
    await join_refused(client, world.room, "forbidden")


# --- gates: the subscription ----------------------------------------------------------------


async def test_join_refused_without_a_subscription(world: World, connect_as: ConnectAs) -> None:
    client = await connect_as(world.outsider)
    reply = await join_refused(client, world.room, "forbidden")
    assert "subscription" in reply["message"]


@pytest.mark.parametrize("status", NON_ACTIVE_STATUSES)
async def test_join_refused_without_an_active_subscription(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection, status: str
) -> None:
    user = await subscriber(db, world.tier, status)
    client = await connect_as(user)
    await join_refused(client, world.room, "forbidden")


@pytest.mark.parametrize(
    "fields",
    [
        {"expires_at": datetime.now(UTC) - timedelta(minutes=1)},
        {"deleted_at": datetime.now(UTC)},
    ],
    ids=["active_but_past_expires_at", "active_but_soft_deleted"],
)
async def test_join_refused_with_a_lapsed_active_subscription(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection, fields: dict[str, object]
) -> None:
    user = await subscriber(db, world.tier, "active", **fields)
    client = await connect_as(user)
    await join_refused(client, world.room, "forbidden")


async def test_join_refused_with_a_subscription_to_another_analyst(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    elsewhere = await make_tier(db, await make_analyst(db), chat_access=True)
    user = await subscriber(db, elsewhere)
    client = await connect_as(user)
    await join_refused(client, world.room, "forbidden")


@pytest.mark.parametrize(
    "tier_fields",
    [{"chat_access": False}, {"deleted_at": datetime.now(UTC)}],
    ids=["tier_without_chat_access", "soft_deleted_tier"],
)
async def test_join_refused_when_the_tier_gives_no_chat(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection, tier_fields: dict[str, Any]
) -> None:
    tier = await make_tier(db, world.analyst, **tier_fields)
    user = await subscriber(db, tier)
    client = await connect_as(user)
    await join_refused(client, world.room, "forbidden")


@pytest.mark.parametrize(("tier_order", "allowed"), [(1, False), (2, True), (3, True)])
async def test_join_needs_a_tier_at_or_above_the_channels_minimum_tier(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection, tier_order: int, allowed: bool
) -> None:
    tiers = {order: await make_tier(db, world.analyst, tier_order=order) for order in (1, 2, 3)}
    channel = await make_channel(db, world.analyst, minimum_tier_required=tiers[2])
    user = await subscriber(db, tiers[tier_order])
    client = await connect_as(user)
    if allowed:
        reply = await client.ok("join", channel=room(channel))
        assert reply["role"] == "member"
    else:
        await join_refused(client, room(channel), "forbidden")


async def test_any_user_joins_a_channel_that_requires_no_subscription(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    channel = await make_channel(db, world.analyst, require_subscription=False)
    client = await connect_as(world.outsider)
    reply = await client.ok("join", channel=room(channel))
    assert (reply["channel"], reply["role"]) == (room(channel), "member")


@pytest.mark.parametrize(("who", "role"), [("analyst", "owner"), ("admin", "admin")])
async def test_the_channels_analyst_and_admins_always_join(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection, who: str, role: str
) -> None:
    top = await make_tier(db, world.analyst, tier_order=9)
    channel = await make_channel(db, world.analyst, minimum_tier_required=top, max_members=1)
    occupant = await subscriber(db, top)
    await (await connect_as(occupant)).ok("join", channel=room(channel))  # now it is full
    client = await connect_as(getattr(world, who))
    reply = await client.ok("join", channel=room(channel))
    assert reply["role"] == role


async def test_another_analyst_is_not_privileged_in_this_channel(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    client = await connect_as(await make_analyst(db))
    await join_refused(client, world.room, "forbidden")


async def test_joining_twice_is_ok_and_keeps_the_role(world: World, connect_as: ConnectAs) -> None:
    client = await connect_as(world.member)
    first = await client.ok("join", channel=world.room)
    second = await client.ok("join", channel=world.room)
    assert first["role"] == second["role"] == "member"


# --- max_members ----------------------------------------------------------------------------


async def test_a_full_channel_refuses_the_next_member_but_not_its_analyst_or_admins(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    await db.execute("UPDATE analyst.chat_channels SET max_members = 1")
    first = await connect_as(world.member)
    await first.ok("join", channel=world.room)

    second = await connect_as(world.other_member)
    reply = await join_refused(second, world.room, "forbidden")
    assert "full" in reply["message"]

    for user in (world.analyst, world.admin):
        await (await connect_as(user)).ok("join", channel=world.room)
    # the member's own second socket is the same member, not one more
    first_again = await connect_as(world.member)
    await first_again.ok("join", channel=world.room)
    await join_refused(second, world.room, "forbidden")  # still full


async def test_a_place_is_freed_only_when_the_member_left_on_every_socket(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    await db.execute("UPDATE analyst.chat_channels SET max_members = 1")
    tab1, tab2 = await connect_as(world.member), await connect_as(world.member)
    await tab1.ok("join", channel=world.room)
    await tab2.ok("join", channel=world.room)
    second = await connect_as(world.other_member)
    await tab1.ok("leave", channel=world.room)
    await join_refused(second, world.room, "forbidden")
    await tab2.ok("leave", channel=world.room)
    await second.ok("join", channel=world.room)
    await join_refused(tab1, world.room, "forbidden")


async def test_the_analyst_and_admins_do_not_count_against_max_members(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    await db.execute("UPDATE analyst.chat_channels SET max_members = 1")
    for user in (world.analyst, world.admin):
        await (await connect_as(user)).ok("join", channel=world.room)
    member = await connect_as(world.member)
    await member.ok("join", channel=world.room)  # the one member place is still free


# --- user streams ---------------------------------------------------------------------------


async def test_a_user_may_join_their_own_stream_again(world: World, connect_as: ConnectAs) -> None:
    client = await connect_as(world.member)
    reply = await client.ok("join", channel=f"user:{world.member}")
    assert reply["role"] == "self"


async def test_a_user_may_not_join_another_users_stream(
    world: World, connect_as: ConnectAs
) -> None:
    client = await connect_as(world.member)
    await join_refused(client, f"user:{world.other_member}", "forbidden")


async def test_the_own_user_stream_cannot_be_left(world: World, connect_as: ConnectAs) -> None:
    client = await connect_as(world.member)
    refused(await client.call("leave", channel=f"user:{world.member}"), "bad_request")
    await client.ok("join", channel=f"user:{world.member}")  # still joined: plain ok


@pytest.mark.parametrize("whose", ["own", "other"])
async def test_sending_to_a_user_stream_is_forbidden(
    world: World, connect_as: ConnectAs, whose: str
) -> None:
    client = await connect_as(world.member)
    target = world.member if whose == "own" else world.other_member
    refused(await client.call("send", channel=f"user:{target}", text="hi"), "forbidden")


# --- what a non-member may not do -----------------------------------------------------------

MESSAGE_ID = "33333333-3333-3333-3333-333333333333"


NON_MEMBER_OPS: list[tuple[str, dict[str, object]]] = [
    ("send", {"text": "hi"}),
    ("edit", {"id": MESSAGE_ID, "text": "hi"}),
    ("delete", {"id": MESSAGE_ID}),
    ("pin", {"id": MESSAGE_ID}),
    ("unpin", {"id": MESSAGE_ID}),
    ("flag", {"id": MESSAGE_ID, "reason": "spam"}),
    ("typing", {}),
    ("read", {"seq": 0}),
    ("history", {}),
    ("presence", {}),
]


@pytest.mark.parametrize(("op", "fields"), NON_MEMBER_OPS, ids=[op for op, _ in NON_MEMBER_OPS])
async def test_channel_ops_without_join_are_forbidden(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection, op: str, fields: dict[str, object]
) -> None:
    insider = await connect_as(world.other_member)
    await insider.ok("join", channel=world.room)
    await insider.ok("send", channel=world.room, text="inside")
    client = await connect_as(world.member)  # entitled, but has not joined
    ref = await client.send(op, channel=world.room, **fields)
    reply = refused(await client.reply(ref), "forbidden")
    assert reply["ref"] == ref
    assert await db.fetchval("SELECT count(*) FROM analyst.chat_messages") == 1


async def test_leaving_a_channel_never_joined_is_not_found(
    world: World, connect_as: ConnectAs
) -> None:
    client = await connect_as(world.member)
    refused(await client.call("leave", channel=world.room), "not_found")
    await client.ok("join", channel=world.room)
    await client.ok("leave", channel=world.room)
    refused(await client.call("leave", channel=world.room), "not_found")


# --- counts and presence --------------------------------------------------------------------


async def test_active_members_count_follows_joins_leaves_and_closes(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    assert await members_count(db, world.channel) == 0
    alice_tab1 = await connect_as(world.member)
    await alice_tab1.ok("join", channel=world.room)
    assert await members_count(db, world.channel) == 1
    alice_tab2 = await connect_as(world.member)
    await alice_tab2.ok("join", channel=world.room)
    assert await members_count(db, world.channel) == 1  # one user, two sockets: counted once
    bob = await connect_as(world.other_member)
    await bob.ok("join", channel=world.room)
    assert await members_count(db, world.channel) == 2

    await bob.ok("leave", channel=world.room)
    assert await members_count(db, world.channel) == 1
    await bob.ok("join", channel=world.room)
    assert await members_count(db, world.channel) == 2

    await alice_tab1.close()  # alice is still there on her other socket
    await bob.close()
    await count_becomes(db, world.channel, 1)
    await alice_tab2.close()
    await count_becomes(db, world.channel, 0)


async def test_presence_lists_the_joined_users(world: World, connect_as: ConnectAs) -> None:
    alice = await connect_as(world.member)
    bob = await connect_as(world.other_member)
    analyst = await connect_as(world.analyst)
    await connect_as(world.admin)  # connected, but not in the channel
    for client in (alice, bob, analyst):
        await client.ok("join", channel=world.room)
    reply = await alice.ok("presence", channel=world.room)
    assert sorted(reply["users"]) == sorted(
        str(u) for u in (world.member, world.other_member, world.analyst)
    )

    await bob.ok("leave", channel=world.room)
    reply = await alice.ok("presence", channel=world.room)
    assert sorted(reply["users"]) == sorted(str(u) for u in (world.member, world.analyst))


# --- joined / left events -------------------------------------------------------------------


async def test_joined_and_left_events_reach_the_other_members(
    world: World, connect_as: ConnectAs
) -> None:
    alice = await connect_as(world.member)
    await alice.ok("join", channel=world.room)
    bob = await connect_as(world.other_member)
    await bob.ok("join", channel=world.room)
    await alice.expect(event("joined", world.room, world.other_member))

    await bob.ok("leave", channel=world.room)
    await alice.expect(event("left", world.room, world.other_member))

    await bob.ok("join", channel=world.room)
    await alice.expect(event("joined", world.room, world.other_member))
    await bob.close()
    await alice.expect(event("left", world.room, world.other_member))


async def test_a_second_socket_of_a_present_user_announces_neither_joined_nor_left(
    world: World, connect_as: ConnectAs
) -> None:
    watcher = await connect_as(world.other_member)
    await watcher.ok("join", channel=world.room)
    tab1, tab2 = await connect_as(world.member), await connect_as(world.member)
    await tab1.ok("join", channel=world.room)
    await watcher.expect(event("joined", world.room, world.member))
    await tab2.ok("join", channel=world.room)
    # A later event as a marker: announcements are published in the order they happen.
    analyst = await connect_as(world.analyst)
    await analyst.ok("join", channel=world.room)
    await watcher.expect(event("joined", world.room, world.analyst))
    assert not watcher.take_all(event("joined", world.room, world.member))

    await tab1.ok("leave", channel=world.room)
    await analyst.ok("leave", channel=world.room)
    await watcher.expect(event("left", world.room, world.analyst))
    assert not watcher.take_all(event("left", world.room, world.member))
    presence = await watcher.ok("presence", channel=world.room)
    assert str(world.member) in presence["users"]

    await tab2.ok("leave", channel=world.room)  # the last socket: now alice has left
    await watcher.expect(event("left", world.room, world.member))


# --- revocation -----------------------------------------------------------------------------


async def _two_members_joined(world: World, connect_as: ConnectAs) -> tuple[WsClient, WsClient]:
    alice = await connect_as(world.member)
    bob = await connect_as(world.other_member)
    await alice.ok("join", channel=world.room)
    await bob.ok("join", channel=world.room)
    return alice, bob


async def _assert_removed(
    client: WsClient, channel: str, user: uuid.UUID, witness: WsClient | None = None
) -> None:
    removed = await client.expect(event("removed", channel))
    assert removed.get("reason"), removed
    reply = await client.call("send", channel=channel, text="still here?")
    refused(reply, "forbidden")
    if witness is not None:
        await witness.expect(event("left", channel, user))


REVOKING_CHANGES = [
    pytest.param(
        "UPDATE analyst.subscriptions SET status = 'cancelled' WHERE id = $1", id="cancelled"
    ),
    pytest.param("UPDATE analyst.subscriptions SET status = 'expired' WHERE id = $1", id="expired"),
    pytest.param(
        "UPDATE analyst.subscriptions SET status = 'suspended' WHERE id = $1", id="suspended"
    ),
    pytest.param(
        "UPDATE analyst.subscriptions SET status = 'pending_payment' WHERE id = $1",
        id="pending_payment",
    ),
    pytest.param(
        "UPDATE analyst.subscriptions SET deleted_at = now() WHERE id = $1", id="soft_deleted"
    ),
    pytest.param("DELETE FROM analyst.subscriptions WHERE id = $1", id="deleted"),
]


@pytest.mark.parametrize("change", REVOKING_CHANGES)
async def test_a_member_whose_subscription_ends_is_removed_at_once(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection, change: str
) -> None:
    alice, bob = await _two_members_joined(world, connect_as)
    await db.execute(change, world.subscription)
    await _assert_removed(alice, world.room, world.member, witness=bob)
    assert await members_count(db, world.channel) == 1  # `left` follows the recount
    await bob.ok("send", channel=world.room, text="unaffected")
    refused(await alice.call("join", channel=world.room), "forbidden")  # and cannot come back


async def test_a_subscription_lapsing_by_its_expires_at_alone_removes_the_member(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    # Reaching expires_at changes no row, so nothing is announced: the gateway must notice.
    await db.execute(
        "UPDATE analyst.subscriptions SET expires_at = now() + interval '1.5 seconds'"
        " WHERE id = $1",
        world.subscription,
    )
    alice, bob = await _two_members_joined(world, connect_as)
    await _assert_removed(alice, world.room, world.member, witness=bob)
    assert (
        await db.fetchval(
            "SELECT status FROM analyst.subscriptions WHERE id = $1", world.subscription
        )
        == "active"
    )  # no job has run: the gateway went by the time itself
    await bob.ok("send", channel=world.room, text="unaffected")


async def test_a_subscription_renewed_before_it_lapses_keeps_the_member(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection, gw: GatewayProcess
) -> None:
    await db.execute(
        "UPDATE analyst.subscriptions SET expires_at = now() + interval '1.5 seconds'"
        " WHERE id = $1",
        world.subscription,
    )
    alice = await connect_as(world.member)
    await alice.ok("join", channel=world.room)
    await db.execute(  # renewed: the end moves a month on (no NOTIFY for this)
        "UPDATE analyst.subscriptions SET expires_at = now() + interval '30 days' WHERE id = $1",
        world.subscription,
    )
    await gw.logged("event=membership_kept")  # the check at the old end ran, and kept her
    await alice.ok("send", channel=world.room, text="still a member")
    assert alice.take_all(event("removed", world.room)) == []


async def test_every_socket_of_a_revoked_member_is_removed(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    tabs = [await connect_as(world.member) for _ in range(2)]
    for tab in tabs:
        await tab.ok("join", channel=world.room)
    await db.execute(
        "UPDATE analyst.subscriptions SET status = 'cancelled' WHERE id = $1", world.subscription
    )
    for tab in tabs:
        await _assert_removed(tab, world.room, world.member)
    await count_becomes(db, world.channel, 0)


async def test_moving_to_a_tier_without_chat_access_removes_the_member(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    alice, bob = await _two_members_joined(world, connect_as)
    no_chat = await make_tier(db, world.analyst, chat_access=False)
    await db.execute(
        "UPDATE analyst.subscriptions SET tier_id = $2 WHERE id = $1", world.subscription, no_chat
    )
    await _assert_removed(alice, world.room, world.member, witness=bob)
    await bob.ok("send", channel=world.room, text="unaffected")


@pytest.mark.parametrize(
    "change",
    ["is_archived = true", "is_active = false", "deleted_at = now()"],
    ids=["archived", "deactivated", "soft_deleted"],
)
async def test_closing_a_channel_removes_every_member_including_analyst_and_admins(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection, change: str
) -> None:
    users = (world.member, world.other_member, world.analyst, world.admin)
    clients = [await connect_as(user) for user in users]
    for client in clients:
        await client.ok("join", channel=world.room)
    await db.execute(f"UPDATE analyst.chat_channels SET {change} WHERE id = $1", world.channel)
    for client, user in zip(clients, users, strict=True):
        await _assert_removed(client, world.room, user)
    await count_becomes(db, world.channel, 0)


async def test_requiring_a_subscription_removes_only_the_unsubscribed(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    channel = await make_channel(db, world.analyst, require_subscription=False)
    stranger = await connect_as(world.outsider)
    member = await connect_as(world.member)
    for client in (stranger, member):
        await client.ok("join", channel=room(channel))
    await db.execute(
        "UPDATE analyst.chat_channels SET require_subscription = true WHERE id = $1", channel
    )
    await _assert_removed(stranger, room(channel), world.outsider, witness=member)
    await member.ok("send", channel=room(channel), text="still in")


async def test_raising_the_minimum_tier_removes_members_below_it(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    premium = await make_tier(db, world.analyst, tier_order=5)
    rich = await subscriber(db, premium)
    member = await connect_as(world.member)  # on world.tier (order 0)
    patron = await connect_as(rich)
    for client in (member, patron):
        await client.ok("join", channel=world.room)
    await db.execute(
        "UPDATE analyst.chat_channels SET minimum_tier_required = $2 WHERE id = $1",
        world.channel,
        premium,
    )
    await _assert_removed(member, world.room, world.member, witness=patron)
    await patron.ok("send", channel=world.room, text="still in")


async def test_a_subscription_change_elsewhere_leaves_the_member_alone(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    other_tier = await make_tier(db, await make_analyst(db))
    elsewhere = await make_subscription(db, world.member, other_tier)
    alice, bob = await _two_members_joined(world, connect_as)
    await db.execute(
        "UPDATE analyst.subscriptions SET status = 'cancelled' WHERE id = $1", elsewhere
    )
    # Cancel bob's too, as a marker: once bob is removed, alice's notice was handled as well.
    await db.execute(
        "UPDATE analyst.subscriptions SET status = 'cancelled' WHERE user_id = $1",
        world.other_member,
    )
    await _assert_removed(bob, world.room, world.other_member, witness=alice)
    await alice.ok("send", channel=world.room, text="unaffected")
    assert not alice.take_all(event("removed", world.room))


# --- one channel, one name ------------------------------------------------------------------


def _spellings(channel: uuid.UUID) -> list[str]:
    return [f"community:{str(channel).upper()}", f"community:{channel.hex}"]


@pytest.mark.parametrize("spelling", [0, 1], ids=["upper_case", "without_hyphens"])
async def test_max_members_cannot_be_bypassed_by_spelling_the_channel_id_differently(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection, spelling: int
) -> None:
    await db.execute("UPDATE analyst.chat_channels SET max_members = 1")
    first = await connect_as(world.member)
    await first.ok("join", channel=world.room)
    second = await connect_as(world.other_member)
    reply = await second.call("join", channel=_spellings(world.channel)[spelling])
    assert reply["op"] == "error", f"the full channel admitted a second member: {reply}"
    assert reply["code"] == "forbidden", reply
    assert "full" in reply["message"]


async def test_a_socket_may_join_at_most_100_channels(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    rows = await db.fetch(
        "INSERT INTO analyst.chat_channels (analyst_id, channel_name, channel_type,"
        " require_subscription) SELECT $1, 'Room ' || n, 'community', false"
        " FROM generate_series(1, 100) AS n RETURNING id",
        world.analyst,
    )
    client = await connect_as(world.outsider)
    channels = [room(r["id"]) for r in rows]
    for channel in channels[:99]:  # the user stream is the 100th
        await client.ok("join", channel=channel)
    refused(await client.call("join", channel=channels[99]), "bad_request")
    await client.ok("leave", channel=channels[0])
    await client.ok("join", channel=channels[99])
