"""In-app delivery: a notification committed by notify() reaches the user's open sockets on a
real gateway as a `notification` frame on user:<id>, once per socket, on one or two gateway
processes; nobody else sees it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from kernel.inbox import unread_count
from kernel.notify import notify
from tests.gateway.conftest import Starter
from tests.gateway.harness import GatewayProcess, WsClient
from tests.notifications.conftest import recipient

Connect = Callable[..., Awaitable[WsClient]]


async def _note(db: asyncpg.Connection, users: list[uuid.UUID], key: str, **kw: object) -> None:
    fields: dict[str, object] = {"notification_type": "new_post", "title": key, **kw}
    await notify(db, event_key=key, recipients=users, **fields)  # type: ignore[arg-type]


async def test_a_notification_reaches_the_users_socket_at_commit(
    db: asyncpg.Connection, connect_as: Connect
) -> None:
    user = await recipient(db)
    ws = await connect_as(user)
    await _note(
        db,
        [user],
        "Breakout",
        message="NIFTY above 22,000",
        action_url="https://app.example/p/1",
        priority="high",
    )
    frame = await ws.expect("notification")
    row = await db.fetchrow("SELECT id, created_at FROM analyst.notifications")
    assert frame == {
        "op": "notification",
        "channel": f"user:{user}",
        "id": str(row["id"]),
        "notification_type": "new_post",
        "title": "Breakout",
        "message": "NIFTY above 22,000",
        "action_url": "https://app.example/p/1",
        "priority": "high",
        "created_at": row["created_at"].isoformat(),
    }
    await ws.close()


async def test_nothing_reaches_other_users_nor_notifications_without_in_app(
    db: asyncpg.Connection, connect_as: Connect
) -> None:
    user, other = await recipient(db), await recipient(db)
    ws, ws_other = await connect_as(user), await connect_as(other)
    async with db.transaction():
        await _note(db, [user], "one")
        await _note(db, [user], "e-mail only", send_in_app=False)
    await _note(db, [other], "for other")
    await _note(db, [user], "two")
    # one listener, in commit order: what arrives before a later frame was all there is
    assert (await ws.expect("notification"))["title"] == "one"
    assert (await ws.expect("notification"))["title"] == "two"
    assert (await ws_other.expect("notification"))["title"] == "for other"
    assert ws.take_all("notification") == [] and ws_other.take_all("notification") == []
    await ws.close()
    await ws_other.close()


async def test_every_socket_of_the_user_gets_it_once(
    db: asyncpg.Connection, connect_as: Connect
) -> None:
    user = await recipient(db)
    sockets = [await connect_as(user) for _ in range(3)]
    await _note(db, [user], "fan")
    await _note(db, [user], "marker")
    for ws in sockets:
        assert [(await ws.expect("notification"))["title"] for _ in range(2)] == ["fan", "marker"]
        assert ws.take_all("notification") == []
        await ws.close()


async def test_two_gateway_processes_with_redis_deliver_once_per_socket(
    db: asyncpg.Connection, start_gateway: Starter, redis_url: str, secret: str
) -> None:
    from tests.gateway.harness import token_for

    gateways: list[GatewayProcess] = [
        await start_gateway(REDIS_URL=redis_url, GATEWAY_PROCESSES="1") for _ in range(2)
    ]
    user = await recipient(db)
    sockets = []
    for gateway in gateways:
        ws = await WsClient.open(gateway.url, token_for(secret, user))
        await ws.expect("welcome")
        await ws.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
        sockets.append(ws)
    await _note(db, [user], "everywhere")
    await _note(db, [user], "marker")
    for ws in sockets:
        titles = [(await ws.expect("notification"))["title"] for _ in range(2)]
        assert titles == ["everywhere", "marker"]
        assert ws.take_all("notification") == []
        await ws.close()


async def test_unread_count_counts_unread_in_app_notifications(db: asyncpg.Connection) -> None:
    user = await recipient(db)
    for key in ("a", "b", "c"):
        await _note(db, [user], key)
    await _note(db, [user], "mail", send_in_app=False)
    await db.execute("UPDATE analyst.notifications SET read_at = now() WHERE title = 'a'")
    assert await unread_count(db, user) == 2
