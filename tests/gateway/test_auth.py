"""Authentication: the token (query string or first `auth` frame), refusals with 4001, the
welcome and the automatic user stream, token expiry with its grace (4002) and `refresh`."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import msgspec
import pytest
from websockets.typing import Subprotocol

from kernel.tokens import verify_access_token
from tests.factories import make_user
from tests.gateway.conftest import Starter, World
from tests.gateway.harness import Frame, GatewayProcess, WsClient, token_for

ConnectAs = Callable[..., Awaitable[WsClient]]

CLOSE_UNAUTHORIZED = 4001
CLOSE_TOKEN_EXPIRED = 4002
OTHER_SECRET = "another-secret-" + "y" * 40


# --- helpers --------------------------------------------------------------------------------


async def next_frame(client: WsClient, timeout: float = 10) -> Frame:
    """The next frame in arrival order (whatever it is)."""
    return await client.expect(lambda _f: True, timeout)


async def open_with_auth_frame(url: str, token: str) -> WsClient:
    client = await WsClient.open(url)
    await client.send("auth", token=token)
    return client


async def open_authenticated(url: str, token: str, via: str) -> WsClient:
    if via == "query":
        return await WsClient.open(url, token)
    return await open_with_auth_frame(url, token)


async def assert_welcomed(client: WsClient, user: uuid.UUID) -> Frame:
    """The welcome comes first, then the ack of the automatic join of `user:<id>`."""
    welcome = await next_frame(client)
    assert welcome["op"] == "welcome", welcome
    assert welcome["user_id"] == str(user)
    joined = await next_frame(client)
    assert joined["op"] == "ok", joined
    assert joined["channel"] == f"user:{user}"
    assert joined["role"] == "self"
    return welcome


async def assert_refused(client: WsClient) -> Frame:
    """An `error` frame with code unauthorized (and nothing before it), then close 4001."""
    error = await next_frame(client)
    assert error["op"] == "error", error
    assert error["code"] == "unauthorized"
    assert error["message"]
    assert "ref" not in error
    assert await client.closed() == CLOSE_UNAUTHORIZED
    assert client.ws.close_reason == error["message"][:120]
    assert not any(f.get("op") == "welcome" for f in client.inbox)
    return error


async def assert_usable(client: WsClient) -> None:
    ref = await client.send("ping")
    pong = await client.reply(ref)
    assert pong["op"] == "pong", pong


# --- welcome --------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["query", "auth_frame"])
async def test_a_valid_token_gets_welcome_then_the_user_stream(
    world: World, start_gateway: Starter, secret: str, via: str
) -> None:
    gateway = await start_gateway(GATEWAY_MAX_FRAME_BYTES="4096", GATEWAY_FRAMES_PER_SECOND="7")
    token = token_for(secret, world.member)
    before_ms = int(time.time() * 1000)
    client = await open_authenticated(gateway.url, token, via)
    welcome = await assert_welcomed(client, world.member)
    after_ms = int(time.time() * 1000)

    assert welcome["realm"] == "analyst"
    assert welcome["expires_at"] == verify_access_token(secret, token).exp
    assert re.fullmatch(r"[0-9a-f]{32}", welcome["session_id"]), welcome
    assert before_ms - 1000 <= welcome["server_time"] <= after_ms + 1000
    assert welcome["max_frame_bytes"] == 4096
    assert welcome["frames_per_second"] == 7
    await assert_usable(client)
    await client.close()


async def test_each_socket_gets_its_own_session_id(
    world: World, gw: GatewayProcess, secret: str
) -> None:
    first = await WsClient.open(gw.url, token_for(secret, world.member))
    second = await WsClient.open(gw.url, token_for(secret, world.member))
    one = await assert_welcomed(first, world.member)
    two = await assert_welcomed(second, world.member)
    assert one["session_id"] != two["session_id"]


async def test_the_json_subprotocol_is_accepted_and_speaks_text_frames(
    world: World, gw: GatewayProcess, secret: str
) -> None:
    client = await WsClient.open(
        gw.url, token_for(secret, world.member), subprotocols=[Subprotocol("switchboard.v1.json")]
    )
    assert client.ws.subprotocol == "switchboard.v1.json"
    raw = await client.ws.recv()
    assert isinstance(raw, str)
    assert msgspec.json.decode(raw)["op"] == "welcome"


# --- refusals at connect --------------------------------------------------------------------


async def test_no_token_and_no_auth_frame_within_the_timeout_is_unauthorized(
    world: World, start_gateway: Starter
) -> None:
    gateway = await start_gateway(GATEWAY_AUTH_TIMEOUT="0.5")
    client = await WsClient.open(gateway.url)
    started = time.monotonic()
    error = await asyncio.wait_for(client.expect("error"), 10)
    assert error["code"] == "unauthorized"
    assert error["message"] == "no `auth` frame within 0.5 s"
    await asyncio.wait_for(client.ws.wait_closed(), 10)
    assert client.ws.close_code == CLOSE_UNAUTHORIZED
    assert time.monotonic() - started < 5  # the configured 0.5 s, not the 5 s default


async def _bad_token(kind: str, db: asyncpg.Connection, secret: str) -> str:
    user = await make_user(db)
    match kind:
        case "garbage":
            return "not-a-token"
        case "three_garbage_parts":
            return "a.b.c"
        case "signed_with_another_secret":
            return token_for(OTHER_SECRET, user)
        case "payload_of_another_token":
            header, _, signature = token_for(secret, user).split(".")
            other_payload = token_for(secret, await make_user(db)).split(".")[1]
            return f"{header}.{other_payload}.{signature}"
        case "unknown_user":
            return token_for(secret, uuid.uuid4())
        case "subject_not_a_uuid":
            return token_for(secret, "not-a-uuid")
        case "inactive_user":
            return token_for(secret, await make_user(db, is_active=False))
        case "soft_deleted_user":
            return token_for(secret, await make_user(db, deleted_at=datetime.now(UTC)))
        case "realm_not_served":
            return token_for(secret, user, realm="nowhere")
        case "expired":
            return token_for(secret, user, ttl=-1)
    raise AssertionError(kind)


BAD_TOKENS = {  # kind -> the documented refusal message
    "garbage": "token is malformed",
    "three_garbage_parts": "token signature is invalid",
    "signed_with_another_secret": "token signature is invalid",
    "payload_of_another_token": "token signature is invalid",
    "unknown_user": "user does not exist",
    "subject_not_a_uuid": "token subject is not a user id",
    "inactive_user": "user is not active",
    "soft_deleted_user": "user does not exist",
    "realm_not_served": "realm 'nowhere' is not served here",
    "expired": "token has expired",
}


@pytest.mark.parametrize("via", ["query", "auth_frame"])
@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_a_bad_token_is_refused_with_4001(
    db: asyncpg.Connection, gw: GatewayProcess, secret: str, kind: str, via: str
) -> None:
    client = await open_authenticated(gw.url, await _bad_token(kind, db, secret), via)
    error = await assert_refused(client)
    assert error["message"] == BAD_TOKENS[kind]


@pytest.mark.parametrize(
    "first",
    [
        '{"op":"ping","ref":1}',
        '{"op":"join","ref":1,"channel":"community:00000000-0000-0000-0000-000000000000"}',
        '{"op":"refresh","ref":1,"token":"TOKEN"}',
        '{"op":"auth"}',
        '{"op":"auth","token":""}',
        '{"op":"explode"}',
        "{",
        "[]",
        b"\xc1\x00",
    ],
    ids=[
        "ping",
        "join",
        "refresh",
        "auth_without_token",
        "auth_empty_token",
        "unknown_op",
        "malformed_json",
        "array",
        "binary_garbage",
    ],
)
async def test_a_first_frame_that_is_not_auth_is_refused_with_4001(
    world: World, gw: GatewayProcess, secret: str, first: str | bytes
) -> None:
    client = await WsClient.open(gw.url)
    if isinstance(first, str):
        first = first.replace("TOKEN", token_for(secret, world.member))
    await client.raw(first)
    error = await assert_refused(client)
    assert error["message"].startswith("the first frame must be `auth`"), error


async def test_a_refused_socket_does_not_take_the_gateway_down(
    world: World, gw: GatewayProcess, connect_as: ConnectAs
) -> None:
    refused = await WsClient.open(gw.url, "not-a-token")
    await assert_refused(refused)
    client = await connect_as(world.member)
    await assert_usable(client)


# --- frames after the welcome ---------------------------------------------------------------


@pytest.mark.parametrize("via", ["query", "auth_frame"])
async def test_a_second_auth_frame_after_welcome_is_a_bad_request(
    world: World, gw: GatewayProcess, secret: str, via: str
) -> None:
    client = await open_authenticated(gw.url, token_for(secret, world.member), via)
    await assert_welcomed(client, world.member)
    reply = await client.call("auth", token=token_for(secret, world.member))
    assert reply["op"] == "error" and reply["code"] == "bad_request", reply
    await assert_usable(client)


async def test_refresh_with_a_fresh_token_of_the_same_user_is_ok(
    world: World, connect_as: ConnectAs, secret: str
) -> None:
    client = await connect_as(world.member)
    fresh = token_for(secret, world.member, ttl=1200)
    reply = await client.ok("refresh", token=fresh)
    assert reply["expires_at"] == verify_access_token(secret, fresh).exp
    await assert_usable(client)


async def _bad_refresh_token(kind: str, world: World, secret: str) -> str:
    match kind:
        case "another_users_token":
            return token_for(secret, world.other_member)
        case "same_user_other_realm":
            return token_for(secret, world.member, realm="academy")
        case "expired":
            return token_for(secret, world.member, ttl=-1)
        case "signed_with_another_secret":
            return token_for(OTHER_SECRET, world.member)
        case "garbage":
            return "not-a-token"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "another_users_token",
        "same_user_other_realm",
        "expired",
        "signed_with_another_secret",
        "garbage",
    ],
)
async def test_refresh_with_a_bad_token_is_unauthorized_and_the_socket_stays_open(
    world: World, connect_as: ConnectAs, secret: str, kind: str
) -> None:
    client = await connect_as(world.member)
    ref = await client.send("refresh", token=await _bad_refresh_token(kind, world, secret))
    reply = await client.reply(ref)
    assert reply["op"] == "error" and reply["code"] == "unauthorized", reply
    assert reply["ref"] == ref
    await assert_usable(client)
    assert client.ws.close_code is None


# --- expiry while connected -----------------------------------------------------------------

GRACE_S = 1.0


async def _expiring_client(
    start_gateway: Starter, secret: str, user: uuid.UUID
) -> tuple[GatewayProcess, WsClient]:
    gateway = await start_gateway(GATEWAY_REFRESH_GRACE=f"{GRACE_S:g}")
    client = await WsClient.open(gateway.url, token_for(secret, user, ttl=2))
    await assert_welcomed(client, user)
    return gateway, client


def _is_token_expired(user: uuid.UUID) -> Callable[[Frame], bool]:
    return lambda f: (
        f.get("op") == "event"
        and f.get("kind") == "token_expired"
        and f.get("channel") == f"user:{user}"
    )


async def test_an_expired_token_is_announced_then_the_socket_closes_with_4002(
    world: World, start_gateway: Starter, secret: str
) -> None:
    _, client = await _expiring_client(start_gateway, secret, world.member)
    event = await client.expect(_is_token_expired(world.member), timeout=10)
    assert event["expires_in_ms"] == int(GRACE_S * 1000)
    announced = time.monotonic()
    assert await client.closed(timeout=10) == CLOSE_TOKEN_EXPIRED
    assert time.monotonic() - announced >= GRACE_S - 0.2  # the grace was given


async def test_a_refresh_within_the_grace_keeps_the_socket_open(
    world: World, start_gateway: Starter, secret: str
) -> None:
    _, client = await _expiring_client(start_gateway, secret, world.member)
    await client.expect(_is_token_expired(world.member), timeout=10)
    fresh = token_for(secret, world.member, ttl=600)
    reply = await client.ok("refresh", token=fresh)
    assert reply["expires_at"] == verify_access_token(secret, fresh).exp

    # The thing awaited is the absence of a close: past the grace it must still be open.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.ws.wait_closed(), GRACE_S + 1)
    assert client.ws.close_code is None
    await assert_usable(client)
    assert not any(_is_token_expired(world.member)(f) for f in client.inbox)


async def test_a_refused_refresh_does_not_stop_the_expiry(
    world: World, start_gateway: Starter, secret: str
) -> None:
    _, client = await _expiring_client(start_gateway, secret, world.member)
    await client.expect(_is_token_expired(world.member), timeout=10)
    reply = await client.call("refresh", token=token_for(secret, world.other_member))
    assert reply["op"] == "error" and reply["code"] == "unauthorized", reply
    assert await client.closed(timeout=10) == CLOSE_TOKEN_EXPIRED
