"""Message references (docs/protocol.md §5, "Message references"): a frame's `id` or `reply_to`
is a UUID, or a positive 64-bit integer as a JSON number or its decimal string, decoded with
the frame; each channel takes the kind its namespace keeps its messages by, and the other kind
is a `bad_request` naming which, before any store sees it. The socket stays open and other
clients are unaffected."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
import pytest

from gateway import protocol as p
from kernel.conversation import checked_ref, message_id_kind
from kernel.errors import BadRequest
from tests.echo_realm.fixtures import ALICE, BOB, connected, echo_dsn, echo_gateway
from tests.gateway.conftest import World
from tests.gateway.harness import Frame, GatewayProcess, WsClient

__all__ = ["echo_dsn", "echo_gateway"]  # fixtures used by name

Connect = Callable[..., Awaitable[WsClient]]
MAX = 2**63 - 1
SOME_UUID = uuid.UUID("6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b")
# Neither a UUID nor an integer 1..2^63-1 (nor its canonical decimal string).
NOT_IDS: list[Any] = [
    *(0, -1, 2**63, "9223372036854775808", 1.5, 1.0, "12abc", "\u0000", "007", "", "0"),
    *(True, None, [1], {"id": 1}, "{6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b}"),
]


def _edit(message_id: Any) -> bytes:
    frame = {"op": "edit", "ref": 1, "channel": "market.chat:1", "id": message_id, "text": "x"}
    return msgspec.json.encode(frame)


@pytest.mark.parametrize(
    ("given", "value"),
    [
        (5, 5),
        ("5", 5),
        (MAX, MAX),
        (str(MAX), MAX),
        (str(SOME_UUID), SOME_UUID),
        (str(SOME_UUID).upper(), SOME_UUID),
        (SOME_UUID.hex, SOME_UUID),
    ],
)
def test_a_message_id_decodes_to_a_uuid_or_a_positive_64_bit_integer(
    given: Any, value: uuid.UUID | int
) -> None:
    frame = p.decode_client_frame(_edit(given), binary=False)
    assert isinstance(frame, p.Edit)
    assert frame.id.value == value and type(frame.id.value) is type(value)
    send = {"op": "send", "channel": "market.chat:1", "text": "re", "reply_to": given}
    decoded = p.decode_client_frame(msgspec.json.encode(send), binary=False)
    assert isinstance(decoded, p.Send) and decoded.reply_to == p.MessageId(value)


@pytest.mark.parametrize("given", NOT_IDS, ids=repr)
def test_anything_else_is_refused_in_decode_naming_the_field(given: Any) -> None:
    with pytest.raises(BadRequest) as refused:
        p.decode_client_frame(_edit(given), binary=False)
    assert refused.value.message == (
        f"Expected a message id: a UUID, or an integer from 1 to {MAX} - at `$.id`"
    )
    assert refused.value.details["ref"] == 1
    send = msgspec.json.encode({"op": "send", "channel": "c:1", "text": "re", "reply_to": given})
    if given is None:  # `reply_to` is optional: null is no reply
        frame = p.decode_client_frame(send, binary=False)
        assert isinstance(frame, p.Send) and frame.reply_to is None
        return
    with pytest.raises(BadRequest, match=r"at `\$\.reply_to`"):
        p.decode_client_frame(send, binary=False)


def test_msgpack_takes_integers_and_a_16_byte_bin_as_a_uuid() -> None:
    for given, value in ((SOME_UUID.bytes, SOME_UUID), (MAX, MAX), ("42", 42)):
        raw = msgspec.msgpack.encode({"op": "delete", "channel": "c:1", "id": given})
        frame = p.decode_client_frame(raw, binary=True)
        assert isinstance(frame, p.Delete) and frame.id.value == value
    with pytest.raises(BadRequest, match="Expected a message id"):
        raw = msgspec.msgpack.encode({"op": "delete", "channel": "c:1", "id": b"short"})
        p.decode_client_frame(raw, binary=True)


def test_each_namespace_takes_the_kind_of_id_it_declares() -> None:
    class Declares:
        message_ids = "bigint"

    class Misdeclares:
        message_ids = "text"

    assert message_id_kind(object()) == "uuid"  # the default: the core's and UUID realms'
    assert message_id_kind(Declares()) == "bigint"
    with pytest.raises(TypeError):
        message_id_kind(Misdeclares())
    assert checked_ref("market.chat", "bigint", 7) == 7
    assert checked_ref("community", "uuid", SOME_UUID) == SOME_UUID
    with pytest.raises(BadRequest, match=r"message ids in market\.chat are integers"):
        checked_ref("market.chat", "bigint", SOME_UUID)
    with pytest.raises(BadRequest, match="message ids in community are UUIDs"):
        checked_ref("community", "uuid", 7)


# --- over a real gateway ------------------------------------------------------------------------


def _error(code: str, text: str) -> Callable[[Frame], bool]:
    return lambda f: f.get("op") == "error" and f.get("code") == code and text in f["message"]


async def test_an_integer_in_an_analyst_channel_is_a_bad_request_and_nothing_else_changes(
    world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    alice, bob = await connect_as(world.member), await connect_as(world.other_member)
    await alice.ok("join", channel=world.room)
    await bob.ok("join", channel=world.room)
    sent = await alice.ok("send", channel=world.room, text="hello")
    await bob.expect(lambda f: f.get("op") == "msg" and f["id"] == sent["id"])
    wrong_kind: list[tuple[str, dict[str, Any]]] = [
        ("edit", {"id": 1, "text": "x"}),
        ("edit", {"id": str(MAX), "text": "x"}),
        ("delete", {"id": 7}),
        ("pin", {"id": 7}),
        ("flag", {"id": 7, "reason": "spam"}),
        ("send", {"text": "re", "reply_to": 1}),
    ]
    for op, fields in wrong_kind:
        refused = await alice.call(op, channel=world.room, **fields)
        assert _error("bad_request", "message ids in community are UUIDs")(refused), (op, refused)
    for bad in NOT_IDS:
        refused = await alice.call("edit", channel=world.room, id=bad, text="x")
        assert _error("bad_request", "at `$.id`")(refused), (bad, refused)
    # The socket is still open and its UUIDs still work; the other member saw only that.
    await alice.ok("edit", channel=world.room, id=sent["id"], text="hello, world")
    edited = await bob.expect(lambda f: f.get("kind") == "edited")
    assert (edited["id"], edited["text"]) == (sent["id"], "hello, world")
    later = await bob.ok("send", channel=world.room, text="still here")
    assert later["seq"] == 2  # the refused reply took no seq
    for client in (alice, bob):
        await client.expect(lambda f: f.get("op") == "msg" and f["text"] == "still here")
    changes = ("edited", "deleted", "pinned", "unpinned")
    assert bob.take_all(lambda f: f.get("op") == "msg" or f.get("kind") in changes) == []
    stored = await db.fetch(
        "SELECT message, is_deleted, is_pinned, is_flagged FROM analyst.chat_messages"
        " WHERE channel_id = $1 ORDER BY seq",
        world.channel,
    )
    assert [tuple(r) for r in stored] == [
        ("hello, world", False, False, False),
        ("still here", False, False, False),
    ]


async def test_one_realm_keeps_bigint_rooms_next_to_uuid_conversations(
    echo_gateway: GatewayProcess, secret: str
) -> None:
    """echo.room declares BIGINT message ids (9003); the core's echo.direct keeps UUIDs."""
    alice = await connected(echo_gateway, secret, ALICE)
    bob = await connected(echo_gateway, secret, BOB)
    await alice.ok("join", channel="echo.room:1")
    await bob.ok("join", channel="echo.room:1")
    first = await alice.ok("send", channel="echo.room:1", text="question")
    assert first["id"].isdigit()
    answer = await bob.ok("send", channel="echo.room:1", text="answer", reply_to=int(first["id"]))
    got = await alice.expect(lambda f: f.get("op") == "msg" and f["text"] == "answer")
    assert got["reply_to"] == first["id"] and got["id"] == answer["id"]
    # A client echoes back the id as it received it: a decimal string.
    await bob.ok("send", channel="echo.room:1", text="again", reply_to=first["id"])
    refused = await bob.call("send", channel="echo.room:1", text="x", reply_to=str(SOME_UUID))
    assert _error("bad_request", "message ids in echo.room are integers")(refused), refused
    missing = await bob.call("send", channel="echo.room:1", text="x", reply_to=MAX)
    assert _error("bad_request", "reply_to is not a message of this room")(missing), missing
    # The integer reaches the store, which keeps plain messages: its own refusal, not the kind's.
    edit = await bob.call("edit", channel="echo.room:1", id=int(first["id"]), text="x")
    assert _error("forbidden", "plain messages")(edit), edit
    history = await alice.ok("history", channel="echo.room:1")
    assert [(m["text"], m.get("reply_to")) for m in history["messages"]] == [
        ("question", None),
        ("answer", first["id"]),
        ("again", first["id"]),
    ]

    direct = (await alice.ok("create", kind="direct", **{"with": BOB}))["channel"]
    await alice.ok("join", channel=direct)
    said = await alice.ok("send", channel=direct, text="hi")
    refused = await alice.call("react", channel=direct, id=1, emoji="👍")
    assert _error("bad_request", "message ids in echo.direct are UUIDs")(refused), refused
    await alice.ok("react", channel=direct, id=said["id"], emoji="👍")
    for client in (alice, bob):
        await client.close()
