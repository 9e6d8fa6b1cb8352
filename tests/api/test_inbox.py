"""The notifications inbox over HTTP: one's own in-app notifications, newest first, the unread
count, and marking read; another user's notifications are never seen nor changed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from kernel.tokens import sign_access_token
from tests.factories import insert_row, make_user


def _auth(secret: str, user_id: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_access_token(secret, str(user_id), 'analyst', 600)}"}


async def _json(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json() if status != 204 else None


async def _notification(db: asyncpg.Connection, user_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    values = {"user_id": user_id, "notification_type": "new_post", "title": "New call", **fields}
    return await insert_row(db, "notifications", values)


async def _unread(api: TestClient, secret: str, user_id: uuid.UUID) -> int:
    body = await _json(await api.get("/v1/inbox/unread-count", headers=_auth(secret, user_id)), 200)
    return int(body["unread"])


async def test_inbox_lists_ones_own_in_app_notifications_newest_first(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user, other = await make_user(db), await make_user(db)
    now = datetime.now(UTC)
    old = await _notification(db, user, created_at=now - timedelta(hours=2))
    new = await _notification(db, user, created_at=now - timedelta(hours=1), title="Urgent")
    await _notification(db, user, send_in_app=False)  # e-mail only: not in the inbox
    await _notification(db, other)
    page = await _json(await api.get("/v1/inbox/notifications", headers=_auth(secret, user)), 200)
    assert [n["id"] for n in page["items"]] == [str(new), str(old)]
    assert page["items"][0]["title"] == "Urgent" and page["items"][0]["read_at"] is None
    assert page["next_cursor"] is None


async def test_inbox_comes_in_pages_with_a_stable_cursor(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user = await make_user(db)
    start = datetime.now(UTC) - timedelta(days=1)
    ids = [await _notification(db, user, created_at=start + timedelta(minutes=i)) for i in range(5)]
    headers = _auth(secret, user)
    first = await _json(await api.get("/v1/inbox/notifications?limit=3", headers=headers), 200)
    await _notification(db, user)  # arrives between the pages: page two does not shift
    second = await _json(
        await api.get(
            "/v1/inbox/notifications",
            params={"limit": 3, "cursor": first["next_cursor"]},
            headers=headers,
        ),
        200,
    )
    got = [n["id"] for n in first["items"] + second["items"]]
    assert got == [str(i) for i in reversed(ids)] and second["next_cursor"] is None
    bad = await api.get("/v1/inbox/notifications?cursor=WzFd", headers=headers)
    assert "cursor" in (await _json(bad, 400))["error"]["message"]
    big = await api.get("/v1/inbox/notifications?limit=101", headers=headers)
    assert "limit" in (await _json(big, 400))["error"]["message"]


async def test_unread_filter_and_count_leave_out_read_notifications(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user, other = await make_user(db), await make_user(db)
    unread = await _notification(db, user)
    await _notification(db, user, status="read", read_at=datetime.now(UTC))
    await _notification(db, other)
    page = await _json(
        await api.get("/v1/inbox/notifications?unread=true", headers=_auth(secret, user)), 200
    )
    assert [n["id"] for n in page["items"]] == [str(unread)]
    assert await _unread(api, secret, user) == 1
    bad = await api.get("/v1/inbox/notifications?unread=maybe", headers=_auth(secret, user))
    assert "unread" in (await _json(bad, 400))["error"]["message"]


async def test_marking_read_sets_status_and_read_at_once(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user = await make_user(db)
    notification = await _notification(db, user, status="sent")
    url = f"/v1/inbox/notifications/{notification}/read"
    first = await _json(await api.post(url, headers=_auth(secret, user)), 200)
    assert first["status"] == "read" and first["read_at"]
    again = await _json(await api.post(url, headers=_auth(secret, user)), 200)
    assert again["read_at"] == first["read_at"]
    assert await _unread(api, secret, user) == 0


async def test_another_users_notification_cannot_be_marked_read(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    owner, stranger = await make_user(db), await make_user(db)
    notification = await _notification(db, owner)
    headers = _auth(secret, stranger)
    response = await api.post(f"/v1/inbox/notifications/{notification}/read", headers=headers)
    assert response.status == 404
    missing = await api.post(f"/v1/inbox/notifications/{uuid.uuid4()}/read", headers=headers)
    assert missing.status == 404
    malformed = await api.post("/v1/inbox/notifications/xyz/read", headers=headers)
    assert malformed.status == 400
    row = await db.fetchrow(
        "SELECT status, read_at FROM analyst.notifications WHERE id = $1", notification
    )
    assert tuple(row) == ("pending", None)


async def test_mark_all_read_touches_only_ones_own_unread_notifications(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user, other = await make_user(db), await make_user(db)
    earlier = datetime.now(UTC) - timedelta(days=3)
    for _ in range(3):
        await _notification(db, user)
    already = await _notification(db, user, status="read", read_at=earlier)
    await _notification(db, other)
    marked = await _json(await api.post("/v1/inbox/read-all", headers=_auth(secret, user)), 200)
    assert marked == {"marked": 3}
    assert await _unread(api, secret, user) == 0
    assert await _unread(api, secret, other) == 1
    kept = await db.fetchval("SELECT read_at FROM analyst.notifications WHERE id = $1", already)
    assert kept == earlier
    assert (
        await db.fetchval(
            "SELECT count(*) FROM analyst.notifications WHERE user_id = $1 AND status = 'read'",
            user,
        )
        == 4
    )


async def test_inbox_needs_a_login(api: TestClient) -> None:
    for method, path in (
        ("GET", "/v1/inbox/notifications"),
        ("GET", "/v1/inbox/unread-count"),
        ("POST", f"/v1/inbox/notifications/{uuid.uuid4()}/read"),
        ("POST", "/v1/inbox/read-all"),
    ):
        assert (await api.request(method, path)).status == 401, path
