"""Bad input: every malformed, mistyped, oversized or excessive frame gets an `error` frame
with the documented code (and its ref), the socket keeps working, the process stays up, and
nothing already accepted is lost. Also the msgpack subprotocol."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.gateway.conftest import Starter, World
from tests.gateway.harness import Frame, GatewayProcess, WsClient, token_for

ConnectAs = Callable[..., Awaitable[WsClient]]

MSGPACK = Subprotocol("switchboard.v1.msgpack")
HARD_MAX_FRAME = 1 << 20
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
NO_SUCH_CHANNEL = "community:00000000-0000-0000-0000-000000000000"
SQLISH = "'); DROP TABLE analyst.users; --"


# --- helpers --------------------------------------------------------------------------------


async def open_as(gateway: GatewayProcess, secret: str, user: object) -> WsClient:
    """An authenticated JSON socket on `gateway`, past its welcome and user-stream ack."""
    client = await WsClient.open(gateway.url, token_for(secret, str(user)))
    await client.expect("welcome")
    await client.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
    return client


async def assert_still_works(client: WsClient) -> None:
    """The same socket answers a ping with a pong carrying its ref."""
    ref = await client.send("ping")
    pong = await client.reply(ref)
    assert pong["op"] == "pong", pong
    assert client.ws.close_code is None


async def assert_gateway_up(gateway: GatewayProcess, secret: str, user: object) -> None:
    """The process still accepts and serves a new socket."""
    assert gateway.proc is not None and gateway.proc.returncode is None
    other = await open_as(gateway, secret, user)
    await assert_still_works(other)
    await other.close()


def error_frame(frame: Frame, code: str) -> Frame:
    assert frame["op"] == "error", frame
    assert frame["code"] == code, frame
    assert frame["message"], frame
    return frame


# --- malformed and mistyped frames ----------------------------------------------------------

CHANNEL = "community:11111111-1111-1111-1111-111111111111"
UUID = "22222222-2222-2222-2222-222222222222"


def _json(frame: dict[str, Any]) -> str:
    return msgspec.json.encode(frame).decode()


BAD_FRAMES: list[Any] = [
    # (raw frame, code, ref echoed, a word the message must name)
    pytest.param("{", "bad_request", None, None, id="malformed_json"),
    pytest.param("", "bad_request", None, None, id="empty_frame"),
    pytest.param("[1, 2]", "bad_request", None, None, id="json_array"),
    pytest.param('"ping"', "bad_request", None, None, id="json_string"),
    pytest.param("null", "bad_request", None, None, id="json_null"),
    pytest.param('{"ref": 3}', "bad_request", 3, "op", id="no_op"),
    pytest.param('{"op": 5, "ref": 4}', "bad_request", 4, "op", id="op_not_a_string"),
    pytest.param('{"op":"explode","ref":7}', "bad_request", 7, "explode", id="unknown_op"),
    pytest.param(
        '{"op":"explode","ref":"r-7"}', "bad_request", "r-7", "explode", id="unknown_op_string_ref"
    ),
    pytest.param(
        _json({"op": "ping", "ref": 8, "surprise": 1}),
        "bad_request",
        8,
        "surprise",
        id="unknown_field",
    ),
    pytest.param(
        _json({"op": "join", "ref": 9, "channel": CHANNEL, "since": "5"}),
        "bad_request",
        9,
        "since",
        id="since_as_string",
    ),
    pytest.param(
        _json({"op": "join", "ref": 10, "channel": CHANNEL, "since": -1}),
        "bad_request",
        10,
        "since",
        id="since_negative",
    ),
    pytest.param(
        _json({"op": "history", "ref": 11, "channel": CHANNEL, "limit": 0}),
        "bad_request",
        11,
        "limit",
        id="limit_0",
    ),
    pytest.param(
        _json({"op": "history", "ref": 12, "channel": CHANNEL, "limit": 101}),
        "bad_request",
        12,
        "limit",
        id="limit_101",
    ),
    pytest.param(
        _json({"op": "send", "ref": 13, "channel": CHANNEL, "text": 5}),
        "bad_request",
        13,
        "text",
        id="text_as_number",
    ),
    pytest.param(
        _json({"op": "send", "ref": 14, "channel": CHANNEL, "text": ""}),
        "bad_request",
        14,
        "text",
        id="empty_text",
    ),
    pytest.param(
        _json({"op": "send", "ref": 15, "channel": CHANNEL, "text": "x" * 2001}),
        "bad_request",
        15,
        "text",
        id="text_of_2001_chars",
    ),
    pytest.param(
        _json({"op": "send", "ref": 16, "channel": CHANNEL, "text": "hi", "type": "shout"}),
        "bad_request",
        16,
        "type",
        id="unknown_type",
    ),
    pytest.param(
        _json({"op": "send", "ref": 17, "channel": CHANNEL, "text": "hi", "reply_to": "nope"}),
        "bad_request",
        17,
        "reply_to",
        id="reply_to_not_a_uuid",
    ),
    pytest.param(
        _json(
            {
                "op": "send",
                "ref": 18,
                "channel": CHANNEL,
                "text": "hi",
                "attachment_url": "javascript:alert(1)",
            }
        ),
        "bad_request",
        18,
        "attachment_url",
        id="attachment_url_not_http",
    ),
    pytest.param(
        _json({"op": "send", "ref": 19, "channel": CHANNEL}),
        "bad_request",
        19,
        "text",
        id="send_without_text",
    ),
    pytest.param(
        _json({"op": "edit", "ref": 20, "channel": CHANNEL, "id": "not-a-uuid", "text": "x"}),
        "bad_request",
        20,
        "id",
        id="id_not_a_uuid",
    ),
    pytest.param(
        _json({"op": "read", "ref": 21, "channel": CHANNEL, "seq": 2**60}),
        "bad_request",
        21,
        "seq",
        id="seq_too_large",
    ),
    pytest.param(
        _json({"op": "join", "ref": 22, "channel": "community:not-a-uuid"}),
        "bad_request",
        22,
        "not-a-uuid",
        id="channel_key_not_a_uuid",
    ),
    pytest.param(
        _json({"op": "join", "ref": 23, "channel": "nope:1"}),
        "not_found",
        23,
        "nope",
        id="unknown_namespace",
    ),
    pytest.param(
        _json({"op": "join", "ref": 24, "channel": "COMMUNITY:x y"}),
        "bad_request",
        24,
        "channel",
        id="malformed_channel_name",
    ),
    pytest.param(
        _json({"op": "join", "ref": 25, "channel": "community:"}),
        "bad_request",
        25,
        "channel",
        id="channel_without_key",
    ),
    pytest.param(
        _json({"op": "join", "ref": 26, "channel": 7}),
        "bad_request",
        26,
        "channel",
        id="channel_as_number",
    ),
    pytest.param(_json({"op": "ping", "ref": 1.5}), "bad_request", None, "ref", id="ref_as_float"),
]


@pytest.mark.parametrize(("raw", "code", "ref", "mentions"), BAD_FRAMES)
async def test_a_bad_frame_gets_an_error_with_its_ref_and_the_socket_keeps_working(
    world: World,
    gw: GatewayProcess,
    secret: str,
    connect_as: ConnectAs,
    raw: str,
    code: str,
    ref: int | str | None,
    mentions: str | None,
) -> None:
    client = await connect_as(world.member)
    await client.raw(raw)
    error = error_frame(await client.expect("error"), code)
    assert error.get("ref") == ref
    if mentions is not None:
        assert mentions in error["message"], error
    await assert_still_works(client)
    await assert_gateway_up(gw, secret, world.other_member)


async def test_a_binary_frame_that_is_not_msgpack_gets_bad_request(
    world: World, gw: GatewayProcess, secret: str, connect_as: ConnectAs
) -> None:
    client = await connect_as(world.member)
    await client.raw(b"\xc1\xc1\xc1")
    error_frame(await client.expect("error"), "bad_request")
    await assert_still_works(client)
    await assert_gateway_up(gw, secret, world.other_member)


async def test_text_of_exactly_2000_chars_is_accepted(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    client = await connect_as(world.member)
    await client.ok("join", channel=world.room)
    ack = await client.ok("send", channel=world.room, text="é" * 2000)
    stored = await db.fetchval(
        "SELECT message FROM analyst.chat_messages WHERE id = $1::uuid", ack["id"]
    )
    assert stored == "é" * 2000


async def test_sql_in_text_is_stored_verbatim_and_harms_nothing(
    world: World, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    users_before = await db.fetchval("SELECT count(*) FROM analyst.users")
    client = await connect_as(world.member)
    await client.ok("join", channel=world.room)
    ack = await client.ok("send", channel=world.room, text=SQLISH, client_id=SQLISH[:40])
    row = await db.fetchrow(
        "SELECT message, client_id FROM analyst.chat_messages WHERE id = $1::uuid", ack["id"]
    )
    assert row is not None
    assert (row["message"], row["client_id"]) == (SQLISH, SQLISH[:40])
    assert await db.fetchval("SELECT to_regclass('analyst.users') IS NOT NULL")
    assert await db.fetchval("SELECT count(*) FROM analyst.users") == users_before
    history = await client.ok("history", channel=world.room)
    assert [m["text"] for m in history["messages"]] == [SQLISH]
    reply = await client.call("join", channel="community:1');DROP")
    error_frame(reply, "bad_request")
    await assert_still_works(client)


# --- size limits ----------------------------------------------------------------------------


def _send_frame_of(size: int, channel: str, ref: int) -> str:
    """A `send` frame of exactly `size` bytes (ASCII) in `channel`."""
    empty = _json({"op": "send", "ref": ref, "channel": channel, "text": ""})
    frame = _json({"op": "send", "ref": ref, "channel": channel, "text": "x" * (size - len(empty))})
    assert len(frame.encode()) == size
    return frame


async def test_a_frame_over_the_configured_limit_is_too_large_and_the_socket_stays_open(
    world: World, start_gateway: Starter, secret: str
) -> None:
    gateway = await start_gateway(GATEWAY_MAX_FRAME_BYTES="1024")
    client = await open_as(gateway, secret, world.member)
    await client.ok("join", channel=world.room)

    await client.raw(_send_frame_of(1024, world.room, ref=101))  # at the limit: accepted
    assert (await client.reply(101))["op"] == "ok"

    await client.raw(
        _json({"op": "send", "ref": 102, "channel": world.room, "text": "y" * 1900})
    )  # ~2000 bytes
    error = error_frame(await client.expect("error"), "too_large")
    assert "1024" in error["message"]
    await client.raw(_send_frame_of(1025, world.room, ref=103))  # one byte over
    error_frame(await client.expect("error"), "too_large")

    await assert_still_works(client)
    await assert_gateway_up(gateway, secret, world.other_member)
    history = await client.ok("history", channel=world.room)
    assert len(history["messages"]) == 1  # the refused frames stored nothing


async def test_a_too_large_frame_is_answered_with_its_ref(
    world: World, start_gateway: Starter, secret: str
) -> None:
    gateway = await start_gateway(GATEWAY_MAX_FRAME_BYTES="1024")
    client = await open_as(gateway, secret, world.member)
    await client.raw(_send_frame_of(2000, world.room, ref=77))
    error = error_frame(await client.expect("error"), "too_large")
    assert error.get("ref") == 77, error


async def test_a_frame_over_one_mebibyte_closes_the_socket_with_1009(
    world: World, gw: GatewayProcess, secret: str, connect_as: ConnectAs
) -> None:
    client = await connect_as(world.member)
    with contextlib.suppress(ConnectionClosed):
        await client.raw("x" * (HARD_MAX_FRAME + 1))
    assert await client.closed() == CLOSE_TOO_BIG
    await assert_gateway_up(gw, secret, world.other_member)


# --- msgpack --------------------------------------------------------------------------------


class PackedSocket:
    """A raw socket on the msgpack subprotocol; asserts that every frame it gets is binary."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.inbox: list[Frame] = []
        self._ref = 0

    async def send(self, op: str, **fields: Any) -> int:
        self._ref += 1
        await self.ws.send(msgspec.msgpack.encode({"op": op, "ref": self._ref, **fields}))
        return self._ref

    async def expect(self, match: Callable[[Frame], bool], timeout: float = 10) -> Frame:
        for i, frame in enumerate(self.inbox):
            if match(frame):
                return self.inbox.pop(i)
        async with asyncio.timeout(timeout):
            while True:
                data = await self.ws.recv()
                assert isinstance(data, bytes), f"expected a binary frame, got text {data!r}"
                frame = msgspec.msgpack.decode(data)
                assert isinstance(frame, dict)
                if match(frame):
                    return frame
                self.inbox.append(frame)

    async def call(self, op: str, **fields: Any) -> Frame:
        return await self.expect(_reply_to(await self.send(op, **fields)))


def _first(_frame: Frame) -> bool:
    return True


def _reply_to(ref: int) -> Callable[[Frame], bool]:
    return lambda f: f.get("ref") == ref and f.get("op") in ("ok", "error", "pong")


async def test_the_msgpack_subprotocol_speaks_binary_msgpack_both_ways(
    world: World, gw: GatewayProcess, secret: str, connect_as: ConnectAs
) -> None:
    listener = await connect_as(world.other_member)
    await listener.ok("join", channel=world.room)

    ws = await connect(
        f"{gw.url}?token={token_for(secret, world.member)}",
        compression=None,
        subprotocols=[MSGPACK],
    )
    assert ws.subprotocol == MSGPACK
    packed = PackedSocket(ws)
    welcome = await packed.expect(_first)
    assert welcome["op"] == "welcome" and welcome["user_id"] == str(world.member)
    stream = await packed.expect(_first)
    assert (stream["op"], stream["channel"]) == ("ok", f"user:{world.member}")

    joined = await packed.call("join", channel=world.room)
    assert joined["op"] == "ok" and joined["role"] == "member", joined

    ack = await packed.call("send", channel=world.room, text="packed", client_id="m1")
    assert ack["op"] == "ok" and ack["seq"] == 1, ack
    echo = await packed.expect(lambda f: f.get("op") == "msg")
    assert (echo["id"], echo["text"], echo["client_id"]) == (ack["id"], "packed", "m1")

    # A JSON member of the same channel gets it as JSON, and the reverse way works too.
    got = await listener.expect("msg")
    assert (got["id"], got["text"]) == (ack["id"], "packed")
    await listener.ok("send", channel=world.room, text="from json")
    other = await packed.expect(lambda f: f.get("op") == "msg" and f.get("seq") == 2)
    assert other["text"] == "from json"
    history = await packed.call("history", channel=world.room)
    assert [m["text"] for m in history["messages"]] == ["packed", "from json"]

    # Bad msgpack gets a msgpack error, and the socket goes on.
    error = await packed.call("explode")
    assert (error["op"], error["code"]) == ("error", "bad_request")
    await ws.send(b"\xc1")
    error = await packed.expect(lambda f: f.get("op") == "error")
    assert error["code"] == "bad_request"
    assert (await packed.call("ping"))["op"] == "pong"
    await ws.close()


async def test_a_refused_msgpack_socket_gets_a_msgpack_error_then_4001(
    world: World, gw: GatewayProcess
) -> None:
    ws = await connect(f"{gw.url}?token=not-a-token", compression=None, subprotocols=[MSGPACK])
    error = await PackedSocket(ws).expect(_first)
    assert (error["op"], error["code"]) == ("error", "unauthorized")
    await asyncio.wait_for(ws.wait_closed(), 10)
    assert ws.close_code == 4001


# --- frame budget ---------------------------------------------------------------------------


async def test_a_flood_of_frames_is_rate_limited_and_the_socket_stays_open(
    world: World, start_gateway: Starter, secret: str
) -> None:
    gateway = await start_gateway(GATEWAY_FRAMES_PER_SECOND="5", GATEWAY_FRAME_BURST="5")
    client = await open_as(gateway, secret, world.member)
    for _ in range(20):
        await client.send("ping")
    answers = [await client.expect(lambda f: f.get("op") in ("pong", "error")) for _ in range(20)]
    pongs = [f for f in answers if f["op"] == "pong"]
    limited = [f for f in answers if f["op"] == "error"]
    assert 5 <= len(pongs) < 20
    assert limited
    for error in limited:
        assert error["code"] == "rate_limited", error
        assert error["retry_after_ms"] > 0, error
    # Honouring retry_after_ms is enough to be served again (the wait is the server's advice).
    await asyncio.sleep(max(e["retry_after_ms"] for e in limited) / 1000)
    await assert_still_works(client)
    await assert_gateway_up(gateway, secret, world.other_member)


async def test_a_rate_limited_frame_is_answered_with_its_ref(
    world: World, start_gateway: Starter, secret: str
) -> None:
    gateway = await start_gateway(GATEWAY_FRAMES_PER_SECOND="5", GATEWAY_FRAME_BURST="5")
    client = await open_as(gateway, secret, world.member)
    refs = [await client.send("ping") for _ in range(20)]
    answers = [await client.expect(lambda f: f.get("op") in ("pong", "error")) for _ in range(20)]
    assert any(f["op"] == "error" for f in answers)  # the budget did refuse some
    answered = [f.get("ref") for f in answers]
    unanswered = sorted(set(refs) - set(answered))
    assert not unanswered, f"requests {unanswered} got no answer carrying their ref: {answers}"


async def test_a_connection_that_keeps_flooding_is_closed_with_1008(
    world: World, start_gateway: Starter, secret: str
) -> None:
    gateway = await start_gateway(GATEWAY_FRAMES_PER_SECOND="1", GATEWAY_FRAME_BURST="1")
    client = await open_as(gateway, secret, world.member)
    with contextlib.suppress(ConnectionClosed):
        for _ in range(200):
            await client.send("ping")
    assert await client.closed() == CLOSE_POLICY
    assert client.take_all(lambda f: f.get("code") == "rate_limited")
    await assert_gateway_up(gateway, secret, world.other_member)


# --- nothing accepted is lost ---------------------------------------------------------------


async def test_a_message_acked_before_a_burst_of_bad_frames_is_still_there_after(
    world: World, gw: GatewayProcess, secret: str, connect_as: ConnectAs, db: asyncpg.Connection
) -> None:
    client = await connect_as(world.member)
    await client.ok("join", channel=world.room)
    ack = await client.ok("send", channel=world.room, text="before the storm", client_id="b1")

    storm = [param.values[0] for param in BAD_FRAMES] + [b"\xc1"]
    for raw in storm:
        await client.raw(raw)
    for _ in storm:
        await client.expect("error")
    with contextlib.suppress(ConnectionClosed):
        await client.raw("x" * (HARD_MAX_FRAME + 1))
    assert await client.closed() == CLOSE_TOO_BIG

    reader = await connect_as(world.member)
    await reader.ok("join", channel=world.room)
    history = await reader.ok("history", channel=world.room)
    assert [(m["id"], m["text"]) for m in history["messages"]] == [(ack["id"], "before the storm")]
    assert (
        await db.fetchval(
            "SELECT count(*) FROM analyst.chat_messages WHERE channel_id = $1", world.channel
        )
        == 1
    )
    # and a resend with the same client_id is recognised, not stored twice
    again = await reader.ok("send", channel=world.room, text="before the storm", client_id="b1")
    assert (again["id"], again["duplicate"]) == (ack["id"], True)
    await assert_gateway_up(gw, secret, world.other_member)


@pytest.mark.parametrize("spelling", ["upper_case", "without_hyphens"])
async def test_a_differently_spelled_channel_id_names_the_same_channel(
    world: World, connect_as: ConnectAs, spelling: str
) -> None:
    alias = (
        f"community:{str(world.channel).upper()}"
        if spelling == "upper_case"
        else f"community:{world.channel.hex}"
    )
    alice = await connect_as(world.member)
    await alice.ok("join", channel=world.room)
    bob = await connect_as(world.other_member)
    joined = await bob.ok("join", channel=alias)
    assert joined["channel"] == world.room  # replies carry the canonical form
    again = await bob.ok("join", channel=world.room)  # already joined under that name
    assert "last_seq" not in again

    ack = await alice.ok("send", channel=world.room, text="one room")
    got = await bob.expect("msg")
    assert (got["id"], got["channel"]) == (ack["id"], world.room)
    reply = await bob.ok("send", channel=alias, text="same room")
    assert reply["channel"] == world.room
    back = await alice.expect(lambda f: f.get("op") == "msg" and f.get("id") == reply["id"])
    assert back["channel"] == world.room
    presence = await alice.ok("presence", channel=alias)
    assert sorted(presence["users"]) == sorted([str(world.member), str(world.other_member)])
