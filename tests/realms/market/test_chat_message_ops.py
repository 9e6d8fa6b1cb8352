"""Messages of `market.chat:<id>` named by their BIGINT ids over real sockets on a real gateway:
replies within the chat, edits by the author (is_edited; updated_at as edited_at), soft
deletes by the author or a chat admin, each told to the chat's members as `edited` /
`deleted`; no reactions, pins or flags; and message ids that are UUIDs, out of range or not
ids at all refused as `bad_request` with the socket kept open and other clients unaffected."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg

from tests.gateway.harness import Frame, WsClient
from tests.realms.market.conftest import Connect, event
from tests.realms.market.world import World


def msg(**fields: Any) -> Callable[[Frame], bool]:
    return lambda f: f.get("op") == "msg" and all(f.get(k) == v for k, v in fields.items())


def error(code: str, text: str = "") -> Callable[[Frame], bool]:
    return lambda f: f.get("op") == "error" and f.get("code") == code and text in f["message"]


async def group(world: World, admin: int, *members: int) -> str:
    """A group chat of `admin` (its admin) and `members`; its channel."""
    chat = await world.chat(created_by=admin, type="group")
    await world.participant(chat, admin, role="admin")
    for member in members:
        await world.participant(chat, member)
    return f"market.chat:{chat}"


async def joined(sock: Connect, channel: str, *users: int) -> list[WsClient]:
    clients = [await sock(user) for user in users]
    for client in clients:
        await client.ok("join", channel=channel)
    return clients


async def test_a_reply_names_a_message_of_the_same_chat(
    sock: Connect, world: World, db: asyncpg.Connection
) -> None:
    seller, buyer = await world.seller(), await world.buyer()
    channel = await group(world, seller, buyer)
    elsewhere = await world.message(await world.chat(created_by=seller), seller)
    s, b = await joined(sock, channel, seller, buyer)
    asked = await b.ok("send", channel=channel, text="Is it in stock?")
    answer = await s.ok("send", channel=channel, text="Yes", reply_to=int(asked["id"]))
    got = await b.expect(msg(seq=2))
    assert (got["reply_to"], got["id"]) == (asked["id"], answer["id"])
    # An id as the server sent it (a decimal string) names the same message.
    await s.ok("send", channel=channel, text="In blue too", reply_to=asked["id"])
    refused = await s.call("send", channel=channel, text="x", reply_to=elsewhere)
    assert error("bad_request", "reply_to is not a message of this chat")(refused), refused
    missing = await s.call("send", channel=channel, text="x", reply_to=2**63 - 1)
    assert error("bad_request", "reply_to is not a message of this chat")(missing), missing
    after = await s.ok("send", channel=channel, text="Anything else?")
    assert after["seq"] == 4  # refused replies take no seq
    rows = await db.fetch(
        "SELECT seq, reply_to_id FROM market.messages WHERE chat_id = $1 ORDER BY seq",
        int(channel.partition(":")[2]),
    )
    asked_id = int(asked["id"])
    assert [tuple(r) for r in rows] == [(1, None), (2, asked_id), (3, asked_id), (4, None)]
    page = await b.ok("history", channel=channel)
    assert [m.get("reply_to") for m in page["messages"]] == [None, asked["id"], asked["id"], None]


async def test_the_author_edits_a_message_and_every_member_hears_it(
    sock: Connect, world: World, db: asyncpg.Connection
) -> None:
    seller, buyer = await world.seller(), await world.buyer()
    channel = await group(world, seller, buyer)
    s, b = await joined(sock, channel, seller, buyer)
    sent = await b.ok("send", channel=channel, text="tpyo")
    done = await b.ok("edit", channel=channel, id=int(sent["id"]), text="typo")
    assert (done["id"], done["seq"]) == (sent["id"], 1)
    edited = await s.expect(event("edited", id=sent["id"]))
    assert (edited["text"], edited["by"], edited["seq"]) == ("typo", str(buyer), 1)
    row = await db.fetchrow(
        "SELECT content, is_edited, updated_at FROM market.messages WHERE id = $1",
        int(sent["id"]),
    )
    assert (row["content"], row["is_edited"]) == ("typo", True)
    assert edited["at"] == row["updated_at"].isoformat()
    shown = (await s.ok("history", channel=channel))["messages"][0]
    assert (shown["text"], shown["edited_at"]) == ("typo", edited["at"])
    # Even a chat admin edits only their own messages.
    theirs = await s.call("edit", channel=channel, id=sent["id"], text="mine now")
    assert error("forbidden", "only the author may edit")(theirs), theirs
    unknown = await b.call("edit", channel=channel, id=2**63 - 1, text="x")
    assert error("not_found")(unknown), unknown
    blank = await b.call("edit", channel=channel, id=sent["id"], text="   ")
    assert error("bad_request", "refused by storage")(blank), blank
    assert (
        await db.fetchval("SELECT content FROM market.messages WHERE id = $1", int(sent["id"]))
        == "typo"
    )


async def test_the_author_or_a_chat_admin_deletes_softly(
    sock: Connect, world: World, db: asyncpg.Connection
) -> None:
    seller, buyer, other = await world.seller(), await world.buyer(), await world.buyer()
    channel = await group(world, seller, buyer, other)
    s, b, o = await joined(sock, channel, seller, buyer, other)
    one = await b.ok("send", channel=channel, text="one")
    two = await b.ok("send", channel=channel, text="two")
    refused = await o.call("delete", channel=channel, id=one["id"])
    assert error("forbidden", "only the author or an admin")(refused), refused
    await b.ok("delete", channel=channel, id=one["id"], reason="oops")
    told = await o.expect(event("deleted", id=one["id"]))
    assert (told["by"], told["reason"], told["seq"]) == (str(buyer), "oops", 1)
    await s.ok("delete", channel=channel, id=int(two["id"]))  # the group's admin
    told = await o.expect(event("deleted", id=two["id"]))
    assert (told["by"], told["seq"]) == (str(seller), 2)
    rows = await db.fetch(
        "SELECT is_deleted, content FROM market.messages WHERE id = ANY ($1::bigint[])"
        " ORDER BY seq",
        [int(one["id"]), int(two["id"])],
    )
    assert [tuple(r) for r in rows] == [(True, "one"), (True, "two")]  # soft: the row stays
    again = await b.call("delete", channel=channel, id=one["id"])
    assert error("conflict", "deleted")(again), again
    late_edit = await b.call("edit", channel=channel, id=one["id"], text="x")
    assert error("conflict", "deleted")(late_edit), late_edit
    shown = (await o.ok("history", channel=channel))["messages"]
    assert [(m["seq"], m["deleted"], m["text"]) for m in shown] == [(1, True, ""), (2, True, "")]


async def test_market_chats_keep_no_reactions_pins_or_flags(sock: Connect, world: World) -> None:
    seller, buyer = await world.seller(), await world.buyer()
    channel = await group(world, seller, buyer)
    s, b = await joined(sock, channel, seller, buyer)
    sent = await b.ok("send", channel=channel, text="hi")
    reacted = await s.call("react", channel=channel, id=sent["id"], emoji="👍")
    assert error("forbidden", "market chats keep no reactions")(reacted), reacted
    pinned = await s.call("pin", channel=channel, id=sent["id"])
    assert error("forbidden", "no pins")(pinned), pinned
    flagged = await s.call("flag", channel=channel, id=sent["id"], reason="spam")
    assert error("forbidden", "not flagged")(flagged), flagged


async def test_bad_message_ids_are_bad_requests_and_other_clients_are_unaffected(
    sock: Connect, world: World, db: asyncpg.Connection
) -> None:
    seller, buyer = await world.seller(), await world.buyer()
    channel = await group(world, seller, buyer)
    s, b = await joined(sock, channel, seller, buyer)
    first = await b.ok("send", channel=channel, text="first")
    wrong: list[tuple[Any, str]] = [
        (str(uuid.uuid4()), "message ids in market.chat are integers"),
        *((bad, "Expected a message id") for bad in (0, -5, 2**63, "9223372036854775808")),
        *((bad, "Expected a message id") for bad in (1.5, "12abc", "\u0000", "", [7])),
    ]

    async def talk() -> list[Frame]:  # the seller chats on while the buyer sends bad ids
        return [await s.ok("send", channel=channel, text=f"s{i}") for i in range(5)]

    async def misname() -> None:
        for given, text in wrong:
            for op, fields in (
                ("edit", {"id": given, "text": "x"}),
                ("delete", {"id": given}),
                ("react", {"id": given, "emoji": "x"}),
                ("send", {"text": "x", "reply_to": given}),
            ):
                refused = await b.call(op, channel=channel, **fields)
                assert error("bad_request", text)(refused), (op, given, refused)

    said, _ = await asyncio.gather(talk(), misname())
    assert [m["seq"] for m in said] == [2, 3, 4, 5, 6]
    for i in range(5):
        await b.expect(msg(seq=i + 2, text=f"s{i}"))
    # The socket is still open and its own message untouched.
    last = await b.ok("send", channel=channel, text="still here")
    assert last["seq"] == 7
    await s.expect(msg(seq=7))
    rows = await db.fetch(
        "SELECT content, is_edited, is_deleted FROM market.messages WHERE chat_id = $1"
        " ORDER BY seq",
        int(channel.partition(":")[2]),
    )
    texts = ["first", *(f"s{i}" for i in range(5)), "still here"]
    assert [tuple(r) for r in rows] == [(t, False, False) for t in texts]
    assert first["seq"] == 1
