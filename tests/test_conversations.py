"""The core's conversations (direct, group, support) over real sockets on a real gateway, for
the test-only echo realm (BIGINT user ids): opening, membership and roles, gap-free seq and
resume, read receipts, unread counts pushed to every socket of a user and kept across
reconnects, reactions, mentions, edits and deletes, the support queue, and bad input."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from kernel.db import connect
from tests.echo_realm.fixtures import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    analyst_user,
    connected,
    echo_dsn,
    echo_gateway,
)
from tests.gateway.harness import Frame, GatewayProcess, WsClient

__all__ = ["analyst_user", "echo_dsn", "echo_gateway"]  # fixtures used by name

Connect = Callable[[str], Awaitable[WsClient]]


@pytest.fixture
def sock(echo_gateway: GatewayProcess, secret: str) -> Connect:
    async def open_(user: str) -> WsClient:
        return await connected(echo_gateway, secret, user)

    return open_


def event(kind: str, **fields: Any) -> Callable[[Frame], bool]:
    return lambda f: (
        f.get("op") == "event"
        and f.get("kind") == kind
        and all(f.get(k) == v for k, v in fields.items())
    )


def msg(text: str) -> Callable[[Frame], bool]:
    return lambda f: f.get("op") == "msg" and f.get("text") == text


async def test_a_direct_conversation_is_one_per_pair_and_both_learn_of_it(sock: Connect) -> None:
    alice, bob = await sock(ALICE), await sock(BOB)
    opened = await alice.ok("create", kind="direct", **{"with": BOB})
    channel = opened["channel"]
    assert channel.startswith("echo.direct:") and opened["created"] is True
    told = await bob.expect(event("conversation_added", conversation=channel))
    assert (told["channel"], told["role"], told["by"]) == ("echo.user:2", "member", ALICE)
    again = await alice.ok("create", kind="direct", **{"with": BOB})
    reverse = await bob.ok("create", kind="direct", **{"with": ALICE})
    assert again["channel"] == reverse["channel"] == channel
    assert again["created"] is reverse["created"] is False
    joined = await bob.ok("join", channel=channel)
    assert {m["user_id"] for m in joined["members"]} == {ALICE, BOB}


async def test_unread_counts_reach_every_socket_and_receipts_reach_the_sender(
    sock: Connect,
) -> None:
    alice, bob_phone, bob_laptop = await sock(ALICE), await sock(BOB), await sock(BOB)
    channel = (await alice.ok("create", kind="direct", **{"with": BOB}))["channel"]
    await alice.ok("join", channel=channel)
    first = await alice.ok("send", channel=channel, text="one", client_id="m1")
    await alice.ok("send", channel=channel, text="two", client_id="m2")
    assert first["seq"] == 1
    for device in (bob_phone, bob_laptop):
        assert (await device.expect(event("unread", conversation=channel, unread=1)))["seq"] == 1
        assert (await device.expect(event("unread", conversation=channel, unread=2)))["seq"] == 2
    # a new socket learns the count from the list, without any event
    bob_tablet = await sock(BOB)
    (listed,) = (await bob_tablet.ok("conversations"))["conversations"]
    assert (listed["channel"], listed["unread"], listed["last_seq"]) == (channel, 2, 2)
    assert (await alice.ok("conversations"))["conversations"][0]["unread"] == 0
    await bob_phone.ok("join", channel=channel)
    assert (await bob_phone.ok("read", channel=channel, seq=2))["seq"] == 2
    receipt = await alice.expect(event("read", channel=channel))
    assert (receipt["user_id"], receipt["seq"]) == (BOB, 2)
    for device in (bob_phone, bob_laptop, bob_tablet):
        await device.expect(event("unread", conversation=channel, unread=0))
    members = (await alice.ok("join", channel=channel))["members"]
    assert {m["user_id"]: m["last_read_seq"] for m in members} == {ALICE: 2, BOB: 2}


async def test_read_positions_never_move_back_or_past_the_last_message(sock: Connect) -> None:
    alice, bob = await sock(ALICE), await sock(BOB)
    channel = (await alice.ok("create", kind="direct", **{"with": BOB}))["channel"]
    await alice.ok("join", channel=channel)
    await alice.ok("send", channel=channel, text="only")
    await bob.ok("join", channel=channel)
    assert (await bob.ok("read", channel=channel, seq=99))["seq"] == 1
    assert (await bob.ok("read", channel=channel, seq=0))["seq"] == 1


async def test_group_admins_manage_members_and_members_are_told_live(sock: Connect) -> None:
    alice, bob, carol, dave = (
        await sock(ALICE),
        await sock(BOB),
        await sock(CAROL),
        await sock(DAVE),
    )
    opened = await alice.ok("create", kind="group", members=[BOB, CAROL], title="desk")
    channel = opened["channel"]
    for member, role in ((alice, "admin"), (bob, "member"), (carol, "member")):
        told = await member.expect(event("conversation_added", conversation=channel))
        assert told["role"] == role
    await bob.ok("join", channel=channel)
    refused = await bob.call("add_members", channel=channel, users=[DAVE])
    assert (refused["op"], refused["code"]) == ("error", "forbidden")
    await alice.ok("join", channel=channel)
    assert (await alice.ok("add_members", channel=channel, users=[DAVE]))["users"] == [DAVE]
    await dave.expect(event("conversation_added", conversation=channel, role="member"))
    await bob.expect(event("members_added", channel=channel, ids=[DAVE]))
    await carol.ok("join", channel=channel)
    await alice.ok("remove_member", channel=channel, user_id=CAROL)
    removed = await carol.expect(event("removed", channel=channel))
    assert removed["reason"]
    refusal = await carol.call("send", channel=channel, text="still here?")
    assert refusal["code"] == "forbidden"
    rejoin = await carol.call("join", channel=channel)
    assert rejoin["code"] == "forbidden"
    await bob.ok("remove_member", channel=channel, user_id=BOB)  # anyone may leave


async def test_mentions_reach_the_mentioned_and_must_name_members(sock: Connect) -> None:
    alice, bob = await sock(ALICE), await sock(BOB)
    channel = (await alice.ok("create", kind="group", members=[BOB]))["channel"]
    await alice.ok("join", channel=channel)
    sent = await alice.ok("send", channel=channel, text="@bob look", mentions=[BOB])
    mention = await bob.expect(event("mention", conversation=channel))
    assert (mention["id"], mention["seq"], mention["by"]) == (sent["id"], sent["seq"], ALICE)
    await bob.ok("join", channel=channel, since=0)
    replayed = await bob.expect(msg("@bob look"))
    assert replayed["mentions"] == [BOB]
    outsider = await alice.call("send", channel=channel, text="@carol", mentions=[CAROL])
    assert (outsider["code"], outsider["message"]) == (
        "bad_request",
        "mentions must name members of this conversation",
    )


async def test_reactions_are_told_to_members_and_kept_in_history(sock: Connect) -> None:
    alice, bob = await sock(ALICE), await sock(BOB)
    channel = (await alice.ok("create", kind="direct", **{"with": BOB}))["channel"]
    await alice.ok("join", channel=channel)
    await bob.ok("join", channel=channel)
    sent = await alice.ok("send", channel=channel, text="shipped")
    await bob.ok("react", channel=channel, id=sent["id"], emoji="👍")
    added = await alice.expect(event("reaction", channel=channel, id=sent["id"]))
    assert (added["user_id"], added["emoji"], added["added"]) == (BOB, "👍", True)
    await alice.ok("react", channel=channel, id=sent["id"], emoji="👍")
    (stored,) = (await bob.ok("history", channel=channel))["messages"]
    assert stored["reactions"] == {"👍": [BOB, ALICE]}
    await bob.ok("react", channel=channel, id=sent["id"], emoji="👍", remove=True)
    gone = await alice.expect(event("reaction", channel=channel, added=False))
    assert gone["user_id"] == BOB
    (stored,) = (await bob.ok("history", channel=channel))["messages"]
    assert stored["reactions"] == {"👍": [ALICE]}


async def test_edits_deletes_replies_and_resume_without_gaps(sock: Connect) -> None:
    alice, bob = await sock(ALICE), await sock(BOB)
    channel = (await alice.ok("create", kind="direct", **{"with": BOB}))["channel"]
    await alice.ok("join", channel=channel)
    one = await alice.ok("send", channel=channel, text="one")
    two = await alice.ok("send", channel=channel, text="two", reply_to=one["id"])
    await bob.ok("join", channel=channel)
    edited = await alice.ok("edit", channel=channel, id=one["id"], text="one!")
    assert edited["seq"] == 1
    await bob.expect(event("edited", channel=channel, id=one["id"], text="one!"))
    forbidden = await bob.call("edit", channel=channel, id=two["id"], text="mine now")
    assert forbidden["code"] == "forbidden"
    await alice.ok("delete", channel=channel, id=two["id"])
    await bob.expect(event("deleted", channel=channel, id=two["id"]))
    await bob.close()
    three = await alice.ok(
        "send",
        channel=channel,
        text="map",
        type="location",
        attachment={"url": "https://maps.example/p", "mime_type": "application/geo+json"},
    )
    bob = await sock(BOB)
    resumed = await bob.ok("join", channel=channel, since=2)
    assert (resumed["replayed"], resumed["last_seq"]) == (1, 3)
    replay = await bob.expect(msg("map"))
    assert (replay["seq"], replay["type"], replay["id"]) == (3, "location", three["id"])
    assert replay["attachment"]["mime_type"] == "application/geo+json"
    history = (await bob.ok("history", channel=channel))["messages"]
    assert [(m["seq"], m["text"], m.get("deleted", False)) for m in history] == [
        (1, "one!", False),
        (2, "", True),
        (3, "map", False),
    ]
    assert history[1].get("reply_to") == one["id"]


async def test_a_retried_send_with_its_client_id_is_stored_once(sock: Connect) -> None:
    alice, bob = await sock(ALICE), await sock(BOB)
    channel = (await alice.ok("create", kind="direct", **{"with": BOB}))["channel"]
    await alice.ok("join", channel=channel)
    first = await alice.ok("send", channel=channel, text="pay", client_id="once")
    retry = await alice.ok("send", channel=channel, text="pay", client_id="once")
    assert (retry["id"], retry["seq"], retry["duplicate"]) == (first["id"], 1, True)
    assert (await bob.ok("conversations"))["conversations"][0]["last_seq"] == 1


async def test_any_staff_member_answers_the_support_queue(sock: Connect, echo_dsn: str) -> None:
    conn = await connect(echo_dsn)
    await conn.execute("UPDATE echo.users SET is_staff = true WHERE id = 4")
    await conn.close()
    alice, bob, dave = await sock(ALICE), await sock(BOB), await sock(DAVE)
    channel = (await alice.ok("create", kind="support", title="refund"))["channel"]
    await alice.ok("join", channel=channel)
    await alice.ok("send", channel=channel, text="where is my refund?")
    queue = (await dave.ok("conversations", kind="support"))["conversations"]
    assert [(c["channel"], c["role"], c["unread"]) for c in queue] == [(channel, "staff", 1)]
    assert (await bob.ok("conversations", kind="support"))["conversations"] == []
    assert (await dave.ok("join", channel=channel))["role"] == "staff"
    await dave.ok("send", channel=channel, text="on its way")
    assert (await alice.expect(msg("on its way")))["user_id"] == DAVE
    refused = await bob.call("join", channel=channel)
    assert refused["code"] == "forbidden"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"op": "create", "kind": "broadcast"}, "bad_request"),
        ({"op": "create", "kind": "direct"}, "bad_request"),
        ({"op": "create", "kind": "direct", "with": ALICE}, "bad_request"),
        ({"op": "create", "kind": "direct", "with": "999"}, "not_found"),
        ({"op": "create", "kind": "direct", "with": "x' OR 1=1 --"}, "bad_request"),
        ({"op": "create", "kind": "group", "with": BOB}, "bad_request"),
        ({"op": "create", "kind": "group", "members": []}, "bad_request"),
        ({"op": "create", "kind": "support", "members": [BOB]}, "bad_request"),
        ({"op": "create", "kind": "direct", "with": BOB, "extra": 1}, "bad_request"),
    ],
    ids=[
        "unknown_kind",
        "direct_without_peer",
        "direct_with_oneself",
        "direct_with_nobody",
        "sql_ish_peer",
        "group_with_peer",
        "group_without_members",
        "support_with_members",
        "unknown_field",
    ],
)
async def test_bad_conversation_requests_get_clear_errors(
    sock: Connect, frame: dict[str, Any], code: str
) -> None:
    alice = await sock(ALICE)
    await alice.send(frame.pop("op"), **frame)
    reply = await alice.expect(lambda f: f.get("op") in ("ok", "error"))
    assert (reply["op"], reply["code"]) == ("error", code), reply
    assert (await alice.ok("conversations"))["conversations"] == []


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"type": "sticker"}, "bad_request"),
        ({"attachment": {"url": "javascript:alert(1)", "mime_type": "image/png"}}, "bad_request"),
        ({"attachment": {"url": "https://x.example/a.png"}}, "bad_request"),
        ({"attachment_url": "https://x.example/a.png"}, "bad_request"),
        ({"mentions": ["not an id"]}, "bad_request"),
        ({"text": "nul \u0000 inside"}, "bad_request"),
    ],
    ids=[
        "unknown_type",
        "attachment_url_not_http",
        "attachment_without_mime_type",
        "bare_attachment_url",
        "mention_not_an_id",
        "nul_in_text",
    ],
)
async def test_bad_messages_are_refused_and_nothing_else_is_lost(
    sock: Connect, fields: dict[str, Any], code: str
) -> None:
    alice, bob = await sock(ALICE), await sock(BOB)
    channel = (await alice.ok("create", kind="direct", **{"with": BOB}))["channel"]
    await alice.ok("join", channel=channel)
    bad = await alice.call("send", channel=channel, **{"text": "hi", **fields})
    assert (bad["op"], bad["code"]) == ("error", code), bad
    good = await alice.ok("send", channel=channel, text="fine")
    assert good["seq"] == 1
    await bob.ok("join", channel=channel)
    assert [m["text"] for m in (await bob.ok("history", channel=channel))["messages"]] == ["fine"]


async def test_a_user_of_another_realm_reaches_no_conversation(
    echo_gateway: GatewayProcess, secret: str, sock: Connect, analyst_user: Any
) -> None:
    alice = await sock(ALICE)
    channel = (await alice.ok("create", kind="direct", **{"with": BOB}))["channel"]
    trader = await connected(echo_gateway, secret, str(analyst_user), realm="analyst")
    refusal = await trader.call("join", channel=channel)
    assert (refusal["code"], "realm" in refusal["message"]) == ("forbidden", True)
    nothing = await trader.call("create", kind="direct", **{"with": ALICE})
    assert nothing["code"] == "bad_request"  # the analyst realm keeps no core conversations
