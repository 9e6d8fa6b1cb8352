"""The core notification routes (kernel/web/notification_routes.py) as the echo realm serves
them at /v1/echo/...: the inbox in pages, marking read, preferences, settings, devices and
the e-mail links; and isolation: an echo user never sees nor changes a notification of
another user or another realm (even one whose user id has the same spelling), and a token of
another realm is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from api.app import create_app
from kernel.config import load_settings
from kernel.notify import notify
from kernel.realms import Realm, enabled_realms
from kernel.tracking import LinkClaim, sign_link
from tests.echo_realm import REALM as ECHO
from tests.echo_realm.fixtures import ALICE, BOB, echo_dsn, token  # noqa: F401  (fixture)
from tests.echo_realm.fixtures import ECHO as ECHO_REALMS
from tests.factories import make_user

TWIN = Realm(name="twin", schema="echo", summary="same ids as echo", user_id_type="bigint")


@pytest.fixture
async def db(echo_dsn: str) -> AsyncIterator[asyncpg.Connection]:  # noqa: F811
    conn = await asyncpg.connect(echo_dsn)
    yield conn
    await conn.close()


@pytest.fixture
async def api(
    echo_dsn: str,  # noqa: F811
    secret: str,
    aiohttp_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Any]:
    monkeypatch.setenv("SWITCHBOARD_REALMS", ECHO_REALMS)
    settings = load_settings({"DATABASE_URL": echo_dsn, "SWITCHBOARD_SECRET": secret})
    client = await aiohttp_client(create_app(settings, realms=enabled_realms()))
    yield client
    await client.close()


def bearer(secret: str, user: str, realm: str = "echo") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(secret, user, realm)}"}


async def _note(db: asyncpg.Connection, user: str, key: str, realm: Realm = ECHO) -> str:
    await notify(
        db, realm=realm, event_key=key, recipients=[user], notification_type="x", title=key
    )
    return str(
        await db.fetchval(
            "SELECT id FROM gateway.notifications WHERE realm = $1 AND idempotency_key = $2",
            realm.name,
            f"{key}:{user}",
        )
    )


async def test_the_inbox_pages_newest_first_and_shows_only_the_callers_own(
    db: asyncpg.Connection, api: Any, secret: str
) -> None:
    mine = [await _note(db, ALICE, f"n{n}") for n in range(3)]
    await _note(db, BOB, "bob")
    await _note(db, ALICE, "twin", realm=TWIN)  # user 1 of another realm
    me = bearer(secret, ALICE)
    first = await (await api.get("/v1/echo/notifications?limit=2", headers=me)).json()
    assert [n["id"] for n in first["items"]] == [mine[2], mine[1]]
    assert first["next_cursor"]
    rest = await (
        await api.get(f"/v1/echo/notifications?limit=2&cursor={first['next_cursor']}", headers=me)
    ).json()
    assert [n["id"] for n in rest["items"]] == [mine[0]] and rest["next_cursor"] is None
    count = await (await api.get("/v1/echo/notifications/unread-count", headers=me)).json()
    assert count == {"unread": 3}


async def test_marking_read_touches_only_the_callers_notifications_of_this_realm(
    db: asyncpg.Connection, api: Any, secret: str
) -> None:
    mine = await _note(db, ALICE, "a")
    bobs = await _note(db, BOB, "b")
    twins = await _note(db, ALICE, "t", realm=TWIN)
    me = bearer(secret, ALICE)
    for other in (bobs, twins):
        refused = await api.post(
            "/v1/echo/notifications/read", json={"ids": [other, mine]}, headers=me
        )
        assert refused.status == 404
    assert (
        await db.fetchval("SELECT count(*) FROM gateway.notifications WHERE read_at IS NOT NULL")
        == 0
    )
    both = await api.post(
        "/v1/echo/notifications/read", json={"ids": [mine], "all": True}, headers=me
    )
    assert both.status == 400
    marked = await api.post("/v1/echo/notifications/read", json={"ids": [mine]}, headers=me)
    assert await marked.json() == {"marked": 1, "unread": 0}
    unread = await (await api.get("/v1/echo/notifications?unread=true", headers=me)).json()
    assert unread["items"] == []
    bob_all = await api.post(
        "/v1/echo/notifications/read", json={"all": True}, headers=bearer(secret, BOB)
    )
    assert await bob_all.json() == {"marked": 1, "unread": 0}
    still = await db.fetchval(
        "SELECT read_at IS NULL FROM gateway.notifications WHERE id = $1::uuid", twins
    )
    assert still


async def test_a_token_of_another_realm_is_refused(
    db: asyncpg.Connection, api: Any, secret: str
) -> None:
    analyst = await make_user(db)
    response = await api.get(
        "/v1/echo/notifications", headers=bearer(secret, str(analyst), "analyst")
    )
    assert response.status == 403
    assert (await api.get("/v1/echo/notifications")).status == 401


async def test_preferences_settings_and_devices_of_the_caller(
    db: asyncpg.Connection, api: Any, secret: str
) -> None:
    me = bearer(secret, ALICE)
    put = await api.put(
        "/v1/echo/notifications/preferences",
        json={"category": "promo", "channel": "push", "enabled": False},
        headers=me,
    )
    assert put.status == 204
    got = await (await api.get("/v1/echo/notifications/preferences", headers=me)).json()
    assert got == [{"category": "promo", "channel": "push", "enabled": False}]
    assert (
        await (
            await api.get("/v1/echo/notifications/preferences", headers=bearer(secret, BOB))
        ).json()
        == []
    )

    assert await (await api.get("/v1/echo/notifications/settings", headers=me)).json() == {
        "time_zone": "UTC",
        "quiet_hours_start": None,
        "quiet_hours_end": None,
        "digest_at": "08:00",
    }
    quiet = {
        "time_zone": "Asia/Kolkata",
        "quiet_hours_start": "22:00",
        "quiet_hours_end": "07:00",
        "digest_at": "09:30",
    }
    assert (await api.put("/v1/echo/notifications/settings", json=quiet, headers=me)).status == 200
    assert await (await api.get("/v1/echo/notifications/settings", headers=me)).json() == quiet
    bad = await api.put(
        "/v1/echo/notifications/settings", json={"time_zone": "Mars/Base"}, headers=me
    )
    assert bad.status == 400

    device = {"token": "echo-device-token-1", "platform": "web"}
    created = await api.post("/v1/echo/devices", json=device, headers=me)
    assert created.status == 201
    row = await db.fetchrow("SELECT realm, user_id FROM gateway.push_devices")
    assert tuple(row) == ("echo", ALICE)
    gone = await api.delete(
        "/v1/echo/devices", json={"token": device["token"]}, headers=bearer(secret, BOB)
    )
    assert gone.status == 404  # not Bob's
    gone = await api.delete("/v1/echo/devices", json={"token": device["token"]}, headers=me)
    assert gone.status == 204
    assert await db.fetchval("SELECT count(*) FROM gateway.push_devices") == 0


async def test_email_links_work_on_their_realms_path_only(
    db: asyncpg.Connection, api: Any, secret: str
) -> None:
    nid = await _note(db, ALICE, "mail")
    claim = LinkClaim(k="click", u=ALICE, n=nid, url="https://shop.example/x", r="echo")
    link = sign_link(secret, claim)
    followed = await api.get(f"/v1/echo/notifications/email/click?t={link}", allow_redirects=False)
    assert followed.status == 303 and followed.headers["Location"] == "https://shop.example/x"
    assert await db.fetchval(
        "SELECT email_clicked FROM gateway.notifications WHERE id = $1::uuid", nid
    )
    opened = await api.get(f"/v1/echo/notifications/email/open?t={link}")
    assert opened.status == 200 and opened.content_type == "image/gif"
    # an analyst link (no realm named) is not an echo link
    analyst_link = sign_link(secret, LinkClaim(k="unsubscribe", u=ALICE, c="x"))
    refused = await api.get(f"/v1/echo/notifications/email/unsubscribe?t={analyst_link}")
    assert refused.status == 400
    unsubscribe = sign_link(secret, LinkClaim(k="unsubscribe", u=ALICE, c="x", r="echo"))
    done = await api.post(f"/v1/echo/notifications/email/unsubscribe?t={unsubscribe}")
    assert await done.json() == {"category": "x", "email": "off"}
    # and an echo link is not an analyst link on the analyst realm's unprefixed path
    foreign = await api.get(f"/v1/notifications/email/unsubscribe?t={unsubscribe}")
    assert foreign.status == 400
    assert "belongs to realm 'echo'" in (await foreign.json())["error"]["message"]
    prefs = await db.fetch(
        "SELECT realm, user_id, category, channel, enabled FROM gateway.notification_preferences"
    )
    assert [tuple(p) for p in prefs] == [("echo", ALICE, "x", "email", False)]


async def test_the_routes_are_documented_under_the_realm(api: Any) -> None:
    document = await (await api.get("/openapi.json")).json()
    for path in ("/v1/echo/notifications", "/v1/echo/notifications/read", "/v1/echo/devices"):
        assert path in document["paths"]
    assert "/v1/notifications/read" not in document["paths"]
