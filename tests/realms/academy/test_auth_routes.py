"""Sign-up and login issue the core's access tokens for realm academy; the token's user is
looked up in academy.users (deleted or banned accounts are refused)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from aiohttp.test_utils import TestClient

from kernel.tokens import verify_access_token

SIGNUP = "/v1/academy/auth/signup"
LOGIN = "/v1/academy/auth/login"


async def test_signup_issues_an_academy_token_and_creates_profile_and_streak(
    academy_api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    r = await academy_api.post(
        SIGNUP, json={"email": "Ada@Example.com", "password": "correct horse", "full_name": "Ada"}
    )
    assert r.status == 201, await r.text()
    body = await r.json()
    claims = verify_access_token(secret, body["access_token"])
    assert claims.realm == "academy" and claims.sub == body["user"]["id"]
    assert (
        await db.fetchval(
            "SELECT full_name FROM academy.user_profiles WHERE id = $1::uuid", claims.sub
        )
        == "Ada"
    )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM academy.user_streaks WHERE user_id = $1::uuid", claims.sub
        )
        == 1
    )
    stored = await db.fetchval(
        "SELECT encrypted_password FROM academy.users WHERE id = $1::uuid", claims.sub
    )
    assert stored.startswith("$2") and "correct horse" not in stored

    me = await academy_api.get(
        "/v1/academy/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status == 200
    assert (await me.json())["profile"]["full_name"] == "Ada"


async def test_signup_twice_with_the_same_email_in_any_case_is_a_conflict(
    academy_api: TestClient,
) -> None:
    first = await academy_api.post(SIGNUP, json={"email": "b@x.io", "password": "password1"})
    assert first.status == 201
    again = await academy_api.post(SIGNUP, json={"email": "B@X.io", "password": "password2"})
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "conflict"


async def test_login_with_the_right_password_only(academy_api: TestClient, secret: str) -> None:
    await academy_api.post(SIGNUP, json={"email": "c@x.io", "password": "password1"})
    wrong = await academy_api.post(LOGIN, json={"email": "c@x.io", "password": "password2"})
    assert wrong.status == 401
    nobody = await academy_api.post(LOGIN, json={"email": "z@x.io", "password": "password1"})
    assert nobody.status == 401
    ok = await academy_api.post(LOGIN, json={"email": "C@x.io", "password": "password1"})
    assert ok.status == 200
    assert verify_access_token(secret, (await ok.json())["access_token"]).realm == "academy"


async def test_banned_or_deleted_accounts_cannot_log_in_nor_use_their_token(
    academy_api: TestClient, db: asyncpg.Connection
) -> None:
    r = await academy_api.post(SIGNUP, json={"email": "d@x.io", "password": "password1"})
    token = (await r.json())["access_token"]
    await db.execute(
        "UPDATE academy.users SET banned_until = $1 WHERE email = 'd@x.io'",
        datetime.now(UTC) + timedelta(days=1),
    )
    login = await academy_api.post(LOGIN, json={"email": "d@x.io", "password": "password1"})
    assert login.status == 401
    me = await academy_api.get("/v1/academy/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 401


async def test_an_academy_token_is_refused_on_another_realms_route(
    academy_api: TestClient,
) -> None:
    r = await academy_api.post(SIGNUP, json={"email": "e@x.io", "password": "password1"})
    token = (await r.json())["access_token"]
    other = await academy_api.get("/v1/analyst/me", headers={"Authorization": f"Bearer {token}"})
    assert other.status in (401, 404)  # analyst is not served by this app


async def test_bad_input_is_a_bad_request(academy_api: TestClient) -> None:
    short = await academy_api.post(SIGNUP, json={"email": "f@x.io", "password": "short"})
    assert short.status == 400
    bad_email = await academy_api.post(SIGNUP, json={"email": "nope", "password": "password1"})
    assert bad_email.status == 400
