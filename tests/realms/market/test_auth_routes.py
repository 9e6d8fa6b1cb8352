"""/v1/market/auth and /v1/market/me over the real api: sign-up and sign-in by e-mail or
phone, session rows that keep digests only, refresh rotation, logout, and blocked or deleted
users refused (REST and socket); user_lookup_sql and contact_sql of the realm."""

from __future__ import annotations

import hashlib
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from realms.market import REALM
from tests.realms.market.world import World

PASSWORD = "correct horse battery"


async def signup(api: TestClient, **fields: Any) -> dict[str, Any]:
    body = {
        "email": "dilnoza@example.uz",
        "password": PASSWORD,
        "first_name": "Dilnoza",
        "last_name": "Yusupova",
        **fields,
    }
    resp = await api.post("/v1/market/auth/signup", json=body)
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def test_signup_issues_a_market_token_and_records_a_session(
    market_api: TestClient, db: asyncpg.Connection
) -> None:
    session = await signup(market_api, phone="+998901234567", role="seller")
    user = session["user"]
    assert (user["role"], user["status"], user["phone"]) == ("seller", "active", "+998901234567")
    me = await market_api.get(
        "/v1/market/me", headers={"Authorization": f"Bearer {session['access_token']}"}
    )
    assert me.status == 200 and (await me.json())["id"] == user["id"]
    row = await db.fetchrow(
        "SELECT token, refresh_token, expires_at > now() AS live FROM market.user_sessions"
        " WHERE user_id = $1",
        user["id"],
    )
    assert row["live"]
    # digests, never the tokens themselves
    assert row["token"] == hashlib.sha256(session["access_token"].encode()).hexdigest()
    assert row["refresh_token"] == hashlib.sha256(session["refresh_token"].encode()).hexdigest()


async def test_the_same_email_in_other_case_cannot_sign_up_twice(market_api: TestClient) -> None:
    await signup(market_api)
    again = await market_api.post(
        "/v1/market/auth/signup",
        json={
            "email": "DILNOZA@example.uz",
            "password": PASSWORD,
            "first_name": "D",
            "last_name": "Y",
        },
    )
    assert again.status == 409


async def test_admins_cannot_sign_up(market_api: TestClient) -> None:
    resp = await market_api.post(
        "/v1/market/auth/signup",
        json={
            "email": "boss@example.uz",
            "password": PASSWORD,
            "first_name": "B",
            "last_name": "S",
            "role": "admin",
        },
    )
    assert resp.status == 400


async def test_login_by_email_or_phone_and_wrong_password(market_api: TestClient) -> None:
    await signup(market_api, phone="+998901112233")
    by_email = await market_api.post(
        "/v1/market/auth/login", json={"email": "Dilnoza@Example.uz", "password": PASSWORD}
    )
    by_phone = await market_api.post(
        "/v1/market/auth/login", json={"phone": "+998901112233", "password": PASSWORD}
    )
    wrong = await market_api.post(
        "/v1/market/auth/login", json={"phone": "+998901112233", "password": "nope-nope"}
    )
    both = await market_api.post(
        "/v1/market/auth/login",
        json={"email": "dilnoza@example.uz", "phone": "+998901112233", "password": PASSWORD},
    )
    assert (by_email.status, by_phone.status, wrong.status, both.status) == (200, 200, 401, 400)


async def test_refresh_rotates_and_logout_ends_the_session(market_api: TestClient) -> None:
    first = await signup(market_api)
    rotated = await market_api.post(
        "/v1/market/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert rotated.status == 200
    second = await rotated.json()
    replay = await market_api.post(
        "/v1/market/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert replay.status == 401
    out = await market_api.post(
        "/v1/market/auth/logout", json={"refresh_token": second["refresh_token"]}
    )
    assert out.status == 204
    after = await market_api.post(
        "/v1/market/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert after.status == 401


async def test_blocked_and_deleted_users_cannot_sign_in_or_refresh(
    market_api: TestClient, db: asyncpg.Connection
) -> None:
    session = await signup(market_api)
    user_id = session["user"]["id"]
    auth = {"Authorization": f"Bearer {session['access_token']}"}
    await db.execute("UPDATE market.users SET status = 'suspended' WHERE id = $1", user_id)
    login = await market_api.post(
        "/v1/market/auth/login", json={"email": "dilnoza@example.uz", "password": PASSWORD}
    )
    assert login.status == 403
    assert "suspended" in (await login.json())["error"]["message"]
    refresh = await market_api.post(
        "/v1/market/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refresh.status == 403
    assert (await market_api.get("/v1/market/me", headers=auth)).status == 401
    await db.execute(
        "UPDATE market.users SET status = 'active', deleted_at = now() WHERE id = $1", user_id
    )
    login = await market_api.post(
        "/v1/market/auth/login", json={"email": "dilnoza@example.uz", "password": PASSWORD}
    )
    assert login.status == 401
    assert (await market_api.get("/v1/market/me", headers=auth)).status == 401


async def test_a_market_token_is_refused_on_another_realms_routes(
    market_api: TestClient, world: World, secret: str
) -> None:
    session = await signup(market_api)
    # the analyst realm is not served by this app: an unknown realm in the path is 404
    resp = await market_api.get(
        "/v1/analyst/me", headers={"Authorization": f"Bearer {session['access_token']}"}
    )
    assert resp.status == 404


async def test_user_lookup_and_contact_sql(world: World, db: asyncpg.Connection) -> None:
    active = await world.seller()
    banned = await world.buyer(status="banned")
    gone = await world.buyer(deleted_at=await db.fetchval("SELECT now()"))
    assert REALM.user_lookup_sql and REALM.contact_sql
    row = await db.fetchrow(REALM.user_lookup_sql, active)
    assert (row["user_type"], row["active"]) == ("seller", True)
    assert (await db.fetchrow(REALM.user_lookup_sql, banned))["active"] is False
    assert await db.fetchrow(REALM.user_lookup_sql, gone) is None
    contacts = {r["id"]: r for r in await db.fetch(REALM.contact_sql, [active, banned, gone])}
    assert contacts[active]["active"] and not contacts[banned]["active"]
    assert not contacts[gone]["active"]
    assert contacts[active]["email"].endswith("@example.com")
