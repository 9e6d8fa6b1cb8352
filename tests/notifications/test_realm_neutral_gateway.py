"""In-app notifications of a realm other than analyst over a real gateway serving the analyst
and echo realms: a notification committed by notify() reaches the echo user's sockets on
`echo.user:<id>` and nobody else's; missed ones arrive on connect; marking read over the
socket tells every socket of that user, and never touches another user's notifications."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from kernel.notify import notify
from tests.echo_realm import REALM as ECHO
from tests.echo_realm.fixtures import (  # noqa: F401  (fixtures)
    ALICE,
    BOB,
    echo_dsn,
    echo_gateway,
    token,
)
from tests.factories import make_user
from tests.gateway.harness import GatewayProcess, WsClient


@pytest.fixture
async def db(echo_dsn: str) -> AsyncIterator[asyncpg.Connection]:  # noqa: F811
    conn = await asyncpg.connect(echo_dsn)
    yield conn
    await conn.close()


async def _open(
    gw: GatewayProcess, secret: str, user: str, realm: str = "echo"
) -> tuple[WsClient, dict]:
    ws = await WsClient.open(gw.url, token(secret, user, realm))
    await ws.expect("welcome")
    ack = await ws.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
    return ws, ack


async def _note(db: asyncpg.Connection, user: str, key: str) -> str:
    await notify(db, realm=ECHO, event_key=key, recipients=[user], notification_type="x", title=key)
    return str(
        await db.fetchval(
            "SELECT id FROM gateway.notifications WHERE realm = 'echo' AND idempotency_key = $1",
            f"{key}:{user}",
        )
    )


async def test_an_echo_notification_reaches_only_that_echo_users_sockets(
    db: asyncpg.Connection,
    echo_gateway: GatewayProcess,  # noqa: F811
    secret: str,
) -> None:
    analyst = await make_user(db)
    alice, _ = await _open(echo_gateway, secret, ALICE)
    bob, _ = await _open(echo_gateway, secret, BOB)
    trader, _ = await _open(echo_gateway, secret, str(analyst), "analyst")
    await notify(db, event_key="a1", recipients=[analyst], notification_type="x")  # analyst's
    for_bob = await _note(db, BOB, "b1")
    for_alice = await _note(db, ALICE, "a2")
    # NOTIFYs arrive in commit order: a misrouted earlier one would come first.
    frame = await alice.expect("notification")
    assert frame["channel"] == "echo.user:1" and frame["id"] == for_alice
    assert frame["title"] == "a2"
    bob_frame = await bob.expect("notification")
    assert (bob_frame["channel"], bob_frame["id"]) == ("echo.user:2", for_bob)
    analyst_frame = await trader.expect("notification")
    assert analyst_frame["channel"] == f"user:{analyst}"
    for ws in (alice, bob, trader):
        await ws.close()


async def test_missed_notifications_arrive_on_connect_and_read_reaches_every_socket(
    db: asyncpg.Connection,
    echo_gateway: GatewayProcess,  # noqa: F811
    secret: str,
) -> None:
    first, second = await _note(db, ALICE, "m1"), await _note(db, ALICE, "m2")
    bobs = await _note(db, BOB, "m3")
    phone, ack = await _open(echo_gateway, secret, ALICE)
    assert (ack["unread"], ack["missed"]) == (2, 2)
    missed = [await phone.expect("notification") for _ in range(2)]
    assert [(m["id"], m["missed"], m["channel"]) for m in missed] == [
        (first, True, "echo.user:1"),
        (second, True, "echo.user:1"),
    ]
    laptop, _ = await _open(echo_gateway, secret, ALICE)

    refused = await phone.call("read_notifications", ids=[bobs])
    assert refused["op"] == "error" and refused["code"] == "not_found"
    reply = await phone.ok("read_notifications", ids=[second])
    assert (reply["channel"], reply["marked"], reply["unread"]) == ("echo.user:1", 1, 1)
    for ws in (phone, laptop):
        event = await ws.expect(lambda f: f.get("kind") == "notifications_read")
        assert (event["channel"], event["ids"], event["unread"]) == ("echo.user:1", [second], 1)
    assert await db.fetchval(
        "SELECT read_at IS NULL FROM gateway.notifications WHERE id = $1::uuid", bobs
    )
    everything = await phone.ok("read_notifications", all=True)
    assert (everything["marked"], everything["unread"]) == (1, 0)
    for ws in (phone, laptop):
        await ws.close()
