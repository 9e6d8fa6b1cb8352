"""Sending, fan-out, idempotency, history, resume, edit/delete/pin/flag, read and typing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from tests.gateway.conftest import World
from tests.gateway.harness import GatewayProcess, WsClient, token_for

Connect = Callable[..., Awaitable[WsClient]]


async def _pair(world: World, connect_as: Connect) -> tuple[WsClient, WsClient]:
    alice = await connect_as(world.member)
    bob = await connect_as(world.other_member)
    await alice.ok("join", channel=world.room)
    await bob.ok("join", channel=world.room)
    return alice, bob


async def test_send_is_acked_after_commit_and_fans_out_to_members(
    world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    alice, bob = await _pair(world, connect_as)
    ack = await alice.ok("send", channel=world.room, text="hello", client_id="c1")
    row = await db.fetchrow(
        "SELECT message, seq, user_id FROM analyst.chat_messages WHERE id = $1::uuid", ack["id"]
    )
    assert row is not None and row["message"] == "hello" and row["seq"] == ack["seq"] == 1
    got = await bob.expect("msg")
    assert (got["text"], got["seq"], got["user_id"]) == ("hello", 1, str(world.member))
    assert got["channel"] == world.room and got["client_id"] == "c1"
    echo = await alice.expect("msg")
    assert echo["id"] == ack["id"]


async def test_sequence_is_gap_free_and_in_order_for_concurrent_senders(
    world: World, connect_as: Connect
) -> None:
    alice, bob = await _pair(world, connect_as)
    watcher = await connect_as(world.analyst)
    await watcher.ok("join", channel=world.room)
    await asyncio.gather(
        *(
            c.ok("send", channel=world.room, text=f"{c is alice}-{i}")
            for i in range(5)
            for c in (alice, bob)
        )
    )
    seqs = [(await watcher.expect("msg"))["seq"] for _ in range(10)]
    assert seqs == list(range(1, 11))


async def test_retried_send_with_same_client_id_gets_original_ack_and_no_second_row(
    world: World, connect_as: Connect, db: asyncpg.Connection, gw: GatewayProcess, secret: str
) -> None:
    alice = await connect_as(world.member)
    await alice.ok("join", channel=world.room)
    first = await alice.ok("send", channel=world.room, text="once", client_id="retry-1")
    again = await alice.ok("send", channel=world.room, text="once", client_id="retry-1")
    assert (again["id"], again["seq"], again["duplicate"]) == (first["id"], first["seq"], True)
    await alice.close()
    # The retry may come on a new socket after a reconnect.
    back = await connect_as(world.member)
    await back.ok("join", channel=world.room)
    third = await back.ok("send", channel=world.room, text="once", client_id="retry-1")
    assert third["id"] == first["id"]
    assert await db.fetchval("SELECT count(*) FROM analyst.chat_messages") == 1


async def test_same_client_id_from_another_user_is_a_different_message(
    world: World, connect_as: Connect
) -> None:
    alice, bob = await _pair(world, connect_as)
    a = await alice.ok("send", channel=world.room, text="a", client_id="same")
    b = await bob.ok("send", channel=world.room, text="b", client_id="same")
    assert a["id"] != b["id"] and not b.get("duplicate", False)


async def test_reply_to_must_be_a_message_of_the_same_channel(
    world: World, connect_as: Connect
) -> None:
    alice = await connect_as(world.member)
    await alice.ok("join", channel=world.room)
    first = await alice.ok("send", channel=world.room, text="question")
    reply = await alice.ok("send", channel=world.room, text="answer", reply_to=first["id"])
    msg = await alice.expect(lambda f: f.get("op") == "msg" and f["id"] == reply["id"])
    assert msg["reply_to"] == first["id"]
    bad = await alice.call("send", channel=world.room, text="x", reply_to=str(uuid.uuid4()))
    assert (bad["op"], bad["code"]) == ("error", "bad_request")


async def test_only_admins_and_the_analyst_send_system_messages(
    world: World, connect_as: Connect
) -> None:
    alice = await connect_as(world.member)
    owner = await connect_as(world.analyst)
    await alice.ok("join", channel=world.room)
    await owner.ok("join", channel=world.room)
    refused = await alice.call("send", channel=world.room, text="sys", type="system")
    assert refused["code"] == "forbidden"
    assert (await owner.call("send", channel=world.room, text="sys", type="system"))["op"] == "ok"


async def test_history_pages_by_sequence_in_both_directions(
    world: World, connect_as: Connect
) -> None:
    alice = await connect_as(world.member)
    await alice.ok("join", channel=world.room)
    for i in range(1, 6):
        await alice.ok("send", channel=world.room, text=f"m{i}")
    latest = await alice.ok("history", channel=world.room, limit=2)
    assert [m["seq"] for m in latest["messages"]] == [4, 5]
    older = await alice.ok("history", channel=world.room, before=4, limit=2)
    assert [m["text"] for m in older["messages"]] == ["m2", "m3"]
    newer = await alice.ok("history", channel=world.room, after=2, limit=2)
    assert [m["seq"] for m in newer["messages"]] == [3, 4]
    both = await alice.call("history", channel=world.room, after=1, before=3)
    assert both["code"] == "bad_request"


async def test_resume_with_since_replays_exactly_what_was_missed_then_goes_live(
    world: World, connect_as: Connect
) -> None:
    alice, bob = await _pair(world, connect_as)
    for i in range(3):
        await alice.ok("send", channel=world.room, text=f"before-{i}")
    seen = [(await bob.expect("msg"))["seq"] for _ in range(3)]
    await bob.close()
    for i in range(3):
        await alice.ok("send", channel=world.room, text=f"missed-{i}")
    bob = await connect_as(world.other_member)
    ack = await bob.ok("join", channel=world.room, since=seen[-1])
    assert (ack["replayed"], ack["recovered"], ack["last_seq"]) == (3, True, 6)
    replayed = bob.take_all("msg")
    assert [m["text"] for m in replayed] == ["missed-0", "missed-1", "missed-2"]
    await alice.ok("send", channel=world.room, text="live")
    assert (await bob.expect("msg"))["seq"] == 7


async def test_resume_during_concurrent_sends_has_no_gap_and_no_duplicate(
    world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    await db.execute("UPDATE analyst.chat_channels SET is_rate_limited = false")
    alice, bob = await _pair(world, connect_as)
    await alice.ok("send", channel=world.room, text="first")
    await bob.expect("msg")
    await bob.close()

    async def chatter() -> None:
        for i in range(40):
            await alice.ok("send", channel=world.room, text=f"c{i}")

    sender = asyncio.create_task(chatter())
    await asyncio.sleep(0)  # let the first sends start before the resume
    bob = await connect_as(world.other_member)
    await bob.ok("join", channel=world.room, since=1)
    await sender
    seqs: list[int] = []
    while not seqs or seqs[-1] < 41:
        seqs.append((await bob.expect("msg"))["seq"])
    assert seqs == list(range(2, 42))


async def test_resume_beyond_the_replay_limit_reports_not_recovered(
    world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO analyst.chat_messages (channel_id, user_id, analyst_id, message)"
        " SELECT $1, $2, $3, 'bulk ' || g FROM generate_series(1, 1001) g",
        world.channel,
        world.member,
        world.analyst,
    )
    bob = await connect_as(world.other_member)
    ack = await bob.ok("join", channel=world.room, since=0)
    assert (ack["recovered"], ack["replayed"], ack["last_seq"]) == (False, 0, 1001)
    assert bob.take_all("msg") == []


async def test_author_edits_and_members_see_the_edit(world: World, connect_as: Connect) -> None:
    alice, bob = await _pair(world, connect_as)
    sent = await alice.ok("send", channel=world.room, text="tpyo")
    await alice.ok("edit", channel=world.room, id=sent["id"], text="typo")
    event = await bob.expect(lambda f: f.get("op") == "event" and f["kind"] == "edited")
    assert (event["id"], event["text"], event["by"]) == (sent["id"], "typo", str(world.member))
    refused = await bob.call("edit", channel=world.room, id=sent["id"], text="mine now")
    assert refused["code"] == "forbidden"
    history = await bob.ok("history", channel=world.room)
    assert history["messages"][0]["text"] == "typo" and history["messages"][0]["edited_at"]


async def test_delete_is_soft_and_allowed_to_author_analyst_and_admin_only(
    world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    alice, bob = await _pair(world, connect_as)
    owner = await connect_as(world.analyst)
    await owner.ok("join", channel=world.room)
    one = await alice.ok("send", channel=world.room, text="one")
    two = await alice.ok("send", channel=world.room, text="two")
    assert (await bob.call("delete", channel=world.room, id=one["id"]))["code"] == "forbidden"
    await alice.ok("delete", channel=world.room, id=one["id"], reason="oops")
    await owner.ok("delete", channel=world.room, id=two["id"], reason="spam")
    event = await bob.expect(lambda f: f.get("kind") == "deleted" and f["id"] == two["id"])
    assert (event["by"], event["reason"]) == (str(world.analyst), "spam")
    row = await db.fetchrow(
        "SELECT is_deleted, deleted_by, deletion_reason FROM"
        " analyst.chat_messages WHERE id = $1::uuid",
        two["id"],
    )
    assert tuple(row) == (True, world.analyst, "spam")
    again = await alice.call("delete", channel=world.room, id=one["id"])
    assert again["code"] == "conflict"
    shown = (await bob.ok("history", channel=world.room))["messages"]
    assert [(m["deleted"], m["text"]) for m in shown] == [(True, ""), (True, "")]
    assert (await alice.call("edit", channel=world.room, id=one["id"], text="x"))["code"] == (
        "conflict"
    )


async def test_admin_who_joined_may_delete_any_message(world: World, connect_as: Connect) -> None:
    alice = await connect_as(world.member)
    admin = await connect_as(world.admin)
    await alice.ok("join", channel=world.room)
    assert (await admin.ok("join", channel=world.room))["role"] == "admin"
    sent = await alice.ok("send", channel=world.room, text="bad")
    await admin.ok("delete", channel=world.room, id=sent["id"], reason="rules")


async def test_pin_and_unpin_by_the_analyst_only(
    world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    alice, bob = await _pair(world, connect_as)
    owner = await connect_as(world.analyst)
    await owner.ok("join", channel=world.room)
    sent = await alice.ok("send", channel=world.room, text="pin me")
    assert (await alice.call("pin", channel=world.room, id=sent["id"]))["code"] == "forbidden"
    await owner.ok("pin", channel=world.room, id=sent["id"])
    event = await bob.expect(lambda f: f.get("kind") == "pinned")
    assert (event["id"], event["by"]) == (sent["id"], str(world.analyst))
    row = await db.fetchrow(
        "SELECT is_pinned, pinned_by FROM analyst.chat_messages WHERE id = $1::uuid", sent["id"]
    )
    assert tuple(row) == (True, world.analyst)
    await owner.ok("unpin", channel=world.room, id=sent["id"])
    await bob.expect(lambda f: f.get("kind") == "unpinned")
    assert not await db.fetchval(
        "SELECT is_pinned FROM analyst.chat_messages WHERE id = $1::uuid", sent["id"]
    )
    missing = await owner.call("pin", channel=world.room, id=str(uuid.uuid4()))
    assert missing["code"] == "not_found"


async def test_flag_marks_the_message_and_opens_one_moderation_case(
    world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    alice, bob = await _pair(world, connect_as)
    sent = await alice.ok("send", channel=world.room, text="buy my course")
    own = await alice.call("flag", channel=world.room, id=sent["id"], reason="spam")
    assert own["code"] == "forbidden"
    await bob.ok("flag", channel=world.room, id=sent["id"], reason="spam", description="ad")
    await bob.ok("flag", channel=world.room, id=sent["id"], reason="spam")
    row = await db.fetchrow(
        "SELECT is_flagged, flagged_by, flagged_reason FROM"
        " analyst.chat_messages WHERE id = $1::uuid",
        sent["id"],
    )
    assert tuple(row) == (True, world.other_member, "spam")
    cases = await db.fetch(
        "SELECT reported_by, flagged_entity_type, flag_reason, status FROM analyst.moderation_flags"
    )
    assert [tuple(c) for c in cases] == [(world.other_member, "chat_message", "spam", "pending")]


async def test_read_position_is_stored_monotonic_and_announced(
    world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    alice, bob = await _pair(world, connect_as)
    for i in range(3):
        await alice.ok("send", channel=world.room, text=f"r{i}")
    assert (await bob.ok("read", channel=world.room, seq=2))["seq"] == 2
    event = await alice.expect(lambda f: f.get("kind") == "read")
    assert (event["user_id"], event["seq"]) == (str(world.other_member), 2)
    assert (await bob.ok("read", channel=world.room, seq=1))["seq"] == 2
    beyond = await bob.call("read", channel=world.room, seq=99)
    assert beyond["code"] == "bad_request"
    stored = await db.fetchval(
        "SELECT last_read_seq FROM gateway.channel_reads WHERE channel = $1 AND user_id = $2",
        world.room,
        str(world.other_member),
    )
    assert stored == 2


async def test_typing_reaches_other_members_with_an_expiry(
    world: World, connect_as: Connect
) -> None:
    alice, bob = await _pair(world, connect_as)
    assert await alice.send("typing", channel=world.room)
    event = await bob.expect(lambda f: f.get("kind") == "typing")
    assert event["user_id"] == str(world.member) and event["expires_in_ms"] > 0


async def test_ping_gets_pong_with_the_same_ref(world: World, connect_as: Connect) -> None:
    alice = await connect_as(world.member)
    pong = await alice.call("ping")
    assert pong["op"] == "pong" and pong["server_time"] > 0


async def test_message_to_a_users_stream_reaches_only_that_user(
    world: World, gw: GatewayProcess, secret: str
) -> None:
    alice = await WsClient.open(gw.url, token_for(secret, world.member))
    await alice.expect("welcome")
    ack = await alice.expect(lambda f: f.get("op") == "ok")
    assert ack["channel"] == f"user:{world.member}" and ack["role"] == "self"


async def test_the_user_stream_ack_on_connect_carries_the_unread_count(
    world: World, gw: GatewayProcess, secret: str, db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO analyst.notifications (user_id, notification_type, title, message)"
        " SELECT $1, 'new_post', 'Post ' || g, 'x' FROM generate_series(1, 3) g",
        world.member,
    )
    await db.execute(
        "UPDATE analyst.notifications SET read_at = now(), status = 'read' WHERE title = 'Post 1'"
    )
    alice = await WsClient.open(gw.url, token_for(secret, world.member))
    ack = await alice.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
    assert ack["unread"] == 2
