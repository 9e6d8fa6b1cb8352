"""Devices, preferences, settings, e-mail tracking links and the internal notify endpoint."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from kernel.tokens import sign_access_token
from kernel.tracking import CLICK_PATH, OPEN_PATH, UNSUBSCRIBE_PATH, LinkClaim, sign_link
from tests.factories import make_analyst, make_subscription, make_tier, make_user


def bearer(secret: str, user: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_access_token(secret, str(user), 'analyst', 600)}"}


async def _status(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return None if status in (204, 303) else await response.json()


async def _notification(db: asyncpg.Connection, user: uuid.UUID) -> uuid.UUID:
    notification_id = await db.fetchval(
        "INSERT INTO analyst.notifications (user_id, notification_type, title)"
        " VALUES ($1, 'new_post', 'A post') RETURNING id",
        user,
    )
    assert isinstance(notification_id, uuid.UUID)
    return notification_id


async def test_devices_are_registered_moved_between_users_and_forgotten(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    alice, bob = await make_user(db), await make_user(db)
    device = {"token": "fcm-token-" + "x" * 20, "platform": "android", "app_version": "1.2"}
    await _status(await api.post("/v1/me/devices", json=device, headers=bearer(secret, alice)), 201)
    await _status(await api.post("/v1/me/devices", json=device, headers=bearer(secret, bob)), 201)
    owner = await db.fetchval(
        "SELECT user_id::uuid FROM gateway.push_devices WHERE token = $1", device["token"]
    )
    assert owner == bob  # a token belongs to the last user who registered it
    await _status(
        await api.post(
            "/v1/me/devices/forget", json={"token": device["token"]}, headers=bearer(secret, alice)
        ),
        404,
    )
    await _status(
        await api.post(
            "/v1/me/devices/forget", json={"token": device["token"]}, headers=bearer(secret, bob)
        ),
        204,
    )
    assert await db.fetchval("SELECT count(*) FROM gateway.push_devices") == 0
    bad = await api.post(
        "/v1/me/devices", json={**device, "platform": "symbian"}, headers=bearer(secret, alice)
    )
    assert (await _status(bad, 400))["error"]["code"] == "bad_request"


async def test_preferences_and_settings_round_trip_and_are_validated(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    me = bearer(secret, await make_user(db))
    await _status(
        await api.put(
            "/v1/me/notification-preferences",
            headers=me,
            json={"category": "new_post", "channel": "email", "enabled": False},
        ),
        204,
    )
    listed = await _status(await api.get("/v1/me/notification-preferences", headers=me), 200)
    assert listed == [{"category": "new_post", "channel": "email", "enabled": False}]
    assert (await _status(await api.get("/v1/me/notification-settings", headers=me), 200))[
        "time_zone"
    ] == "UTC"
    wanted = {
        "time_zone": "Asia/Kolkata",
        "quiet_hours_start": "22:00",
        "quiet_hours_end": "07:00",
        "digest_at": "08:30",
    }
    await _status(await api.put("/v1/me/notification-settings", json=wanted, headers=me), 200)
    assert await _status(await api.get("/v1/me/notification-settings", headers=me), 200) == wanted
    for bad, fragment in (
        ({"time_zone": "Mars/Olympus"}, "time zone"),
        ({"quiet_hours_start": "22:00"}, "both"),
        ({"digest_at": "25:00"}, "digest_at"),
    ):
        body = await _status(
            await api.put("/v1/me/notification-settings", json=bad, headers=me), 400
        )
        assert fragment in body["error"]["message"]


async def test_open_pixel_marks_the_email_opened_and_a_forged_one_records_nothing(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user = await make_user(db)
    notification = await _notification(db, user)
    forged = sign_link(
        "another-secret-" + "y" * 30, LinkClaim(k="open", u=str(user), n=str(notification))
    )
    response = await api.get(OPEN_PATH, params={"t": forged})
    assert response.status == 200 and response.content_type == "image/gif"
    assert not await db.fetchval("SELECT email_opened FROM analyst.notifications")
    token = sign_link(secret, LinkClaim(k="open", u=str(user), n=str(notification)))
    assert (await api.get(OPEN_PATH, params={"t": token})).status == 200
    assert await db.fetchval(
        "SELECT email_opened AND email_opened_at IS NOT NULL FROM analyst.notifications"
    )


async def test_click_link_records_the_click_and_redirects(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user = await make_user(db)
    notification = await _notification(db, user)
    token = sign_link(
        secret,
        LinkClaim(k="click", u=str(user), n=str(notification), url="https://example.com/posts/1"),
    )
    response = await api.get(CLICK_PATH, params={"t": token}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "https://example.com/posts/1"
    assert await db.fetchval("SELECT email_clicked FROM analyst.notifications")
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert (await api.get(CLICK_PATH, params={"t": tampered}, allow_redirects=False)).status in (
        400,
        401,
    )


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_unsubscribe_turns_email_off_for_the_category(
    api: TestClient, db: asyncpg.Connection, secret: str, method: str
) -> None:
    user = await make_user(db)
    token = sign_link(secret, LinkClaim(k="unsubscribe", u=str(user), c="new_post"))
    body = await _status(await api.request(method, UNSUBSCRIBE_PATH, params={"t": token}), 200)
    assert body == {"category": "new_post", "email": "off"}
    row = await db.fetchrow(
        "SELECT channel, enabled FROM gateway.notification_preferences"
        " WHERE user_id = $1::uuid::text AND category = 'new_post'",
        user,
    )
    assert tuple(row) == ("email", False)


async def test_internal_endpoint_creates_notifications_for_admins_only(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    admin, trader = await make_user(db, user_type="admin"), await make_user(db)
    analyst = await make_analyst(db)
    await make_subscription(db, trader, await make_tier(db, analyst))
    body = {
        "event_key": "system:maintenance:1",
        "notification_type": "system_notice",
        "title": "Maintenance tonight",
        "audience": {"name": "analyst_active_subscribers", "id": str(analyst)},
    }
    await _status(
        await api.post("/v1/internal/notifications", json=body, headers=bearer(secret, trader)), 403
    )
    made = await _status(
        await api.post("/v1/internal/notifications", json=body, headers=bearer(secret, admin)), 201
    )
    assert made == {"created": 1}
    again = await _status(
        await api.post("/v1/internal/notifications", json=body, headers=bearer(secret, admin)), 201
    )
    assert again == {"created": 0}  # the same event never notifies twice
    assert await db.fetchval("SELECT user_id FROM analyst.notifications") == trader
    both = {**body, "user_ids": [str(trader)]}
    await _status(
        await api.post("/v1/internal/notifications", json=both, headers=bearer(secret, admin)), 400
    )
