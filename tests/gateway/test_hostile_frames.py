"""Hostile frames get documented errors and leave the socket usable (issue 18, items 1 and 6):
nesting deeper than the decoder goes, integers past what a ref may be, NUL characters in
text; and one client's bad message never fails another client's message."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgspec
import pytest

from tests.gateway import conftest as gateway_fixtures
from tests.gateway.conftest import World
from tests.gateway.harness import GatewayProcess, WsClient, token_for

world = gateway_fixtures.world
start_gateway = gateway_fixtures.start_gateway
gw = gateway_fixtures.gw
connect_as = gateway_fixtures.connect_as

Connect = Callable[..., Awaitable[WsClient]]
DEPTH = 30_000  # JSON frames of about 60 KB: under the 64 KiB frame limit


async def still_usable(client: WsClient) -> None:
    await client.send("ping")
    assert (await client.expect("pong"))["op"] == "pong"


@pytest.mark.parametrize(
    "frame",
    [
        '{"op":"send","ref":1,"channel":"community:x","text":' + "[" * DEPTH + "]" * DEPTH + "}",
        '{"op":"ping","ref":' + "[" * DEPTH + "]" * DEPTH + "}",
        '{"op":"ping","ref":' + '{"a":' * 10_000 + "1" + "}" * 10_000 + "}",
    ],
    ids=["deep_text", "deep_ref", "deep_object"],
)
async def test_deeply_nested_json_is_a_bad_request(
    world: World, connect_as: Connect, frame: str
) -> None:
    client = await connect_as(world.member)
    await client.raw(frame)
    error = await client.expect("error")
    assert error["code"] == "bad_request"
    await still_usable(client)


@pytest.mark.parametrize(
    "frame",
    [
        b"\x82\xa2op\xa4ping\xa3ref\xcf" + (2**64 - 1).to_bytes(8, "big"),
        b"\x82\xa2op\xa4ping\xa3ref" + b"\x91" * 50_000 + b"\xc0",  # under the frame limit
    ],
    ids=["ref_2_to_the_64", "deep_msgpack"],
)
async def test_hostile_msgpack_is_a_bad_request(
    gw: GatewayProcess, world: World, secret: str, frame: bytes
) -> None:
    client = await WsClient.open(
        gw.url, token_for(secret, world.member), subprotocols=["switchboard.v1.msgpack"]
    )
    await client.expect("welcome")
    await client.raw(frame)
    error = await client.expect("error")
    assert error["code"] == "bad_request"
    await client.raw(msgspec.msgpack.encode({"op": "ping", "ref": 5}))
    assert (await client.expect("pong"))["ref"] == 5


async def test_a_ref_larger_than_2_to_the_53_is_refused_not_echoed(
    world: World, connect_as: Connect
) -> None:
    client = await connect_as(world.member)
    await client.raw('{"op":"ping","ref":' + str(2**70) + "}")
    error = await client.expect("error")
    assert error["code"] == "bad_request" and "9007199254740992" in error["message"]
    await still_usable(client)


async def test_a_nul_in_one_users_text_fails_only_that_send(
    world: World, connect_as: Connect
) -> None:
    """Concurrent sends share group-commit batches; the NUL one is refused in decode and
    every other user's send in the same moment is stored."""
    bad, good = await connect_as(world.member), await connect_as(world.other_member)
    for client in (bad, good):
        await client.ok("join", channel=world.room)
    poisoned = [bad.call("send", channel=world.room, text=f"x\u0000{i}") for i in range(5)]
    clean = [good.call("send", channel=world.room, text=f"fine {i}") for i in range(5)]
    replies = await asyncio.gather(*poisoned, *clean)
    assert [r["code"] for r in replies[:5]] == ["bad_request"] * 5
    assert all(r["op"] == "ok" for r in replies[5:]), replies[5:]
    assert sorted(r["seq"] for r in replies[5:]) == [1, 2, 3, 4, 5]
    await still_usable(bad)
