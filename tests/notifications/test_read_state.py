"""Read state across a user's sockets (issue 5, item 2): on connect a socket gets the unread
count and the newest unread notifications it missed; marking notifications read through the
socket (`read_notifications`) or the REST inbox reaches every socket of the user, on every
gateway process, as a `notifications_read` event; nobody else hears of it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from kernel.tokens import sign_access_token
from tests.api.conftest import api, sms, smtp_sink  # noqa: F401  (fixtures)
from tests.factories import insert_row, make_user
from tests.gateway.conftest import Starter
from tests.gateway.harness import GatewayProcess, WsClient, token_for

Connect = Callable[..., Awaitable[WsClient]]
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


async def _notification(
    db: asyncpg.Connection, user: uuid.UUID, n: int, **fields: Any
) -> uuid.UUID:
    """Notification number n of a user, created n minutes after T0 (so order is known)."""
    values = {
        "user_id": user,
        "notification_type": "new_post",
        "title": f"Post {n}",
        "created_at": T0 + timedelta(minutes=n),
        **fields,
    }
    return await insert_row(db, "notifications", values)


async def _open(gateway: GatewayProcess, secret: str, user: uuid.UUID) -> tuple[WsClient, dict]:
    """A socket and its user-stream ack (welcome consumed)."""
    ws = await WsClient.open(gateway.url, token_for(secret, user))
    await ws.expect("welcome")
    ack = await ws.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
    return ws, ack


async def _quiet(ws: WsClient, kind: str) -> None:
    """Nothing of `kind` is waiting: a ping's reply comes after every frame written before."""
    await ws.call("ping")
    assert ws.take_all(lambda f: f.get("op") == kind or f.get("kind") == kind) == []


def _read_event(ws: WsClient) -> Awaitable[dict]:
    return ws.expect(lambda f: f.get("kind") == "notifications_read")


# --- on connect ---------------------------------------------------------------------------


async def test_on_connect_a_socket_gets_the_unread_count_and_the_newest_unread_ones(
    db: asyncpg.Connection, start_gateway: Starter, secret: str
) -> None:
    gateway = await start_gateway(GATEWAY_MISSED_NOTIFICATIONS="3")
    user, other = await make_user(db), await make_user(db)
    ids = [await _notification(db, user, n, message=f"m{n}") for n in range(1, 5)]
    await _notification(db, user, 5, read_at=T0, status="read")
    await _notification(db, user, 6, send_in_app=False)
    await _notification(db, other, 7)

    ws, ack = await _open(gateway, secret, user)
    assert (ack["unread"], ack["missed"]) == (4, 3)
    missed = [await ws.expect("notification") for _ in range(3)]
    assert missed == [
        {
            "op": "notification",
            "channel": f"user:{user}",
            "id": str(ids[n - 1]),
            "notification_type": "new_post",
            "title": f"Post {n}",
            "message": f"m{n}",
            "priority": "medium",
            "created_at": (T0 + timedelta(minutes=n)).isoformat(),
            "missed": True,
        }
        for n in (2, 3, 4)  # the newest three, oldest first
    ]
    await _quiet(ws, "notification")
    await ws.close()


async def test_with_nothing_unread_a_socket_gets_no_missed_notifications(
    db: asyncpg.Connection, gw: GatewayProcess, secret: str
) -> None:
    user = await make_user(db)
    await _notification(db, user, 1, read_at=T0, status="read")
    ws, ack = await _open(gw, secret, user)
    assert (ack["unread"], ack["missed"]) == (0, 0)
    await _quiet(ws, "notification")
    await ws.close()


async def test_missed_notifications_can_be_turned_off_leaving_the_count(
    db: asyncpg.Connection, start_gateway: Starter, secret: str
) -> None:
    gateway = await start_gateway(GATEWAY_MISSED_NOTIFICATIONS="0")
    user = await make_user(db)
    for n in (1, 2):
        await _notification(db, user, n)
    ws, ack = await _open(gateway, secret, user)
    assert (ack["unread"], ack["missed"]) == (2, 0)
    await _quiet(ws, "notification")
    await ws.close()


# --- marking read through the socket -------------------------------------------------------


async def test_read_over_one_socket_shows_on_every_socket_of_the_user_only(
    db: asyncpg.Connection, connect_as: Connect
) -> None:
    user, other = await make_user(db), await make_user(db)
    ids = [await _notification(db, user, n) for n in (1, 2, 3)]
    phone, laptop, stranger = (
        await connect_as(user),
        await connect_as(user),
        await connect_as(other),
    )

    reply = await phone.ok("read_notifications", ids=[str(ids[1]), str(ids[0]), str(ids[1])])
    assert reply["channel"] == f"user:{user}"
    assert (reply["marked"], reply["unread"]) == (2, 1)
    for ws in (phone, laptop):
        event = await _read_event(ws)
        assert event == {
            "op": "event",
            "channel": f"user:{user}",
            "kind": "notifications_read",
            "ids": [str(ids[0]), str(ids[1])],  # in creation order
            "unread": 1,
        }
    rows = await db.fetch(
        "SELECT id, status, read_at IS NOT NULL AS read FROM analyst.notifications ORDER BY title"
    )
    assert [(r["status"], r["read"]) for r in rows] == [
        ("read", True),
        ("read", True),
        ("pending", False),
    ]
    await _quiet(stranger, "notifications_read")
    for ws in (phone, laptop, stranger):
        await ws.close()


async def test_reading_again_changes_nothing_and_tells_nobody(
    db: asyncpg.Connection, connect_as: Connect
) -> None:
    user = await make_user(db)
    first, second = await _notification(db, user, 1), await _notification(db, user, 2)
    ws, other_socket = await connect_as(user), await connect_as(user)
    await ws.ok("read_notifications", ids=[str(first)])
    read_at = await db.fetchval("SELECT read_at FROM analyst.notifications WHERE id = $1", first)
    again = await ws.ok("read_notifications", ids=[str(first)])
    assert (again["marked"], again["unread"]) == (0, 1)
    assert (
        await db.fetchval("SELECT read_at FROM analyst.notifications WHERE id = $1", first)
        == read_at
    )
    await ws.ok("read_notifications", ids=[str(second)])  # a marker after the no-op
    for socket in (ws, other_socket):
        assert (await _read_event(socket))["ids"] == [str(first)]
        assert (await _read_event(socket))["ids"] == [str(second)]
        await socket.close()


async def test_read_all_over_the_socket(db: asyncpg.Connection, connect_as: Connect) -> None:
    user, other = await make_user(db), await make_user(db)
    ids = [await _notification(db, user, n) for n in (1, 2)]
    await _notification(db, user, 3, read_at=T0, status="read")
    theirs = await _notification(db, other, 4)
    ws = await connect_as(user)
    reply = await ws.ok("read_notifications", all=True)
    assert (reply["marked"], reply["unread"]) == (2, 0)
    assert (await _read_event(ws))["ids"] == [str(i) for i in ids]
    assert (
        await db.fetchval("SELECT read_at FROM analyst.notifications WHERE id = $1", theirs) is None
    )
    await ws.close()


async def test_more_than_100_read_at_once_name_no_ids_and_clients_refetch(
    db: asyncpg.Connection, connect_as: Connect
) -> None:
    user = await make_user(db)
    await db.execute(
        "INSERT INTO analyst.notifications (user_id, notification_type, title)"
        " SELECT $1, 'new_post', 'n' || g FROM generate_series(1, 101) g",
        user,
    )
    ws = await connect_as(user)
    assert (await ws.ok("read_notifications", all=True))["marked"] == 101
    event = await _read_event(ws)
    assert "ids" not in event and event["unread"] == 0
    await ws.close()


async def test_read_on_one_gateway_process_reaches_sockets_on_another(
    db: asyncpg.Connection, start_gateway: Starter, redis_url: str, secret: str
) -> None:
    gateways = [await start_gateway(REDIS_URL=redis_url) for _ in range(2)]
    user = await make_user(db)
    note = await _notification(db, user, 1)
    here, _ = await _open(gateways[0], secret, user)
    there, _ = await _open(gateways[1], secret, user)
    await here.ok("read_notifications", ids=[str(note)])
    await here.ok("read_notifications", all=True)  # nothing left: a no-op, no event
    for ws in (here, there):
        assert (await _read_event(ws))["ids"] == [str(note)]
    marker = await _notification(db, user, 2)
    await there.ok("read_notifications", ids=[str(marker)])
    for ws in (here, there):
        assert (await _read_event(ws))["ids"] == [str(marker)]  # exactly one event before
        await ws.close()


async def test_a_msgpack_socket_marks_read_too(
    db: asyncpg.Connection, gw: GatewayProcess, secret: str
) -> None:
    from websockets.typing import Subprotocol

    user = await make_user(db)
    note = await _notification(db, user, 1)
    ws = await WsClient.open(
        gw.url, token_for(secret, user), subprotocols=[Subprotocol("switchboard.v1.msgpack")]
    )
    assert ws.binary
    await ws.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
    reply = await ws.ok("read_notifications", ids=[str(note)])
    assert (reply["marked"], reply["unread"]) == (1, 0)
    assert (await _read_event(ws))["ids"] == [str(note)]
    await ws.close()


# --- bad input -----------------------------------------------------------------------------

_BAD_FRAMES: list[tuple[dict[str, Any], str]] = [
    ({}, "either `ids`"),
    ({"all": False}, "either `ids`"),
    ({"all": True, "ids": ["6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"]}, "either `ids`"),
    ({"ids": []}, "length >= 1"),
    ({"ids": [str(uuid.uuid4()) for _ in range(101)]}, "length <= 100"),
    ({"ids": ["not-a-uuid"]}, "Invalid UUID"),
    ({"ids": ["' OR 1=1 --"]}, "Invalid UUID"),
    ({"ids": "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"}, "Expected `array | null`, got `str`"),
    ({"all": "yes"}, "Expected `bool`"),
    ({"all": True, "channel": "user:x"}, "unknown field `channel`"),
]


@pytest.mark.parametrize(("fields", "fragment"), _BAD_FRAMES)
async def test_a_malformed_read_notifications_is_refused_and_changes_nothing(
    db: asyncpg.Connection, connect_as: Connect, fields: dict[str, Any], fragment: str
) -> None:
    user = await make_user(db)
    await _notification(db, user, 1)
    ws = await connect_as(user)
    error = await ws.call("read_notifications", **fields)
    assert error["op"] == "error" and error["code"] == "bad_request", error
    assert fragment in error["message"], error
    assert (
        await db.fetchval("SELECT count(*) FROM analyst.notifications WHERE read_at IS NULL") == 1
    )
    await _quiet(ws, "notifications_read")  # and the socket is still served
    await ws.close()


async def test_anothers_or_an_unknown_notification_is_not_found_and_nothing_changes(
    db: asyncpg.Connection, connect_as: Connect
) -> None:
    user, other = await make_user(db), await make_user(db)
    mine = await _notification(db, user, 1)
    theirs = await _notification(db, other, 2)
    no_in_app = await _notification(db, user, 3, send_in_app=False)
    ws = await connect_as(user)
    for foreign in (theirs, uuid.uuid4(), no_in_app):
        error = await ws.call("read_notifications", ids=[str(mine), str(foreign)])
        assert (error["op"], error["code"]) == ("error", "not_found"), error
        assert error["message"] == f"no notification {foreign}"
    assert (
        await db.fetchval("SELECT count(*) FROM analyst.notifications WHERE read_at IS NULL") == 3
    )
    await _quiet(ws, "notifications_read")
    await ws.close()


# --- marking read through the REST inbox ---------------------------------------------------


async def test_read_through_the_rest_inbox_shows_on_the_users_sockets(
    db: asyncpg.Connection,
    connect_as: Connect,
    api: TestClient,  # noqa: F811
    secret: str,
) -> None:
    user = await make_user(db)
    ids = [await _notification(db, user, n) for n in (1, 2, 3)]
    ws = await connect_as(user)
    headers = {"Authorization": f"Bearer {sign_access_token(secret, str(user), 'analyst', 600)}"}

    response = await api.post(f"/v1/inbox/notifications/{ids[1]}/read", headers=headers)
    assert response.status == 200, await response.text()
    assert await _read_event(ws) == {
        "op": "event",
        "channel": f"user:{user}",
        "kind": "notifications_read",
        "ids": [str(ids[1])],
        "unread": 2,
    }
    response = await api.post("/v1/inbox/read-all", headers=headers)
    assert (await response.json())["marked"] == 2
    event = await _read_event(ws)
    assert (event["ids"], event["unread"]) == ([str(ids[0]), str(ids[2])], 0)
    await ws.close()


# --- the NOTIFY itself ---------------------------------------------------------------------


async def test_the_trigger_notifies_once_per_user_and_only_when_read_at_is_first_set(
    db: asyncpg.Connection, dsn: str
) -> None:
    a, b = await make_user(db), await make_user(db)
    a1, a2 = await _notification(db, a, 1), await _notification(db, a, 2)
    b1 = await _notification(db, b, 3)
    mail_only = await _notification(db, b, 4, send_in_app=False)
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    listener = await asyncpg.connect(dsn)
    try:
        await listener.add_listener(
            "sb_notification_read", lambda *args: heard.put_nowait(json.loads(args[-1]))
        )
        await db.execute("UPDATE analyst.notifications SET push_sent = true")  # not a read
        await db.execute(
            "UPDATE analyst.notifications SET read_at = now() WHERE id = $1", mail_only
        )
        await db.execute(
            "UPDATE analyst.notifications SET read_at = now() WHERE id = ANY($1::uuid[])",
            [a2, a1, b1],
        )
        await db.execute("UPDATE analyst.notifications SET read_at = now()")  # already read
        await db.execute("UPDATE analyst.notifications SET read_at = NULL WHERE id = $1", b1)
        await db.execute("UPDATE analyst.notifications SET read_at = now() WHERE id = $1", b1)
        got = [await asyncio.wait_for(heard.get(), 10) for _ in range(3)]
    finally:
        await listener.close()
    first_statement = sorted(got[:2], key=lambda n: n["user_id"] != str(a))
    assert first_statement == [
        {"realm": "analyst", "user_id": str(a), "ids": [str(a1), str(a2)]},
        {"realm": "analyst", "user_id": str(b), "ids": [str(b1)]},
    ]
    assert got[2] == {
        "realm": "analyst",
        "user_id": str(b),
        "ids": [str(b1)],
    }  # the marker: nothing came between
