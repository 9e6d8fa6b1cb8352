"""Sign-up, login and refresh of the creator realm over the real api app: adults only,
creator tokens only work on creator routes, and suspended or banned accounts neither sign in
nor keep using their tokens."""

from __future__ import annotations

import uuid
from datetime import date

import asyncpg

from tests.realms.creator.conftest import PASSWORD, Call, World


def _signup(**fields: object) -> dict[str, object]:
    name = f"u{uuid.uuid4().hex[:10]}"
    return {
        "username": name,
        "email": f"{name}@Example.com",
        "password": PASSWORD,
        "date_of_birth": "1995-06-01",
        **fields,
    }


async def test_signup_creates_an_unverified_fan_and_signs_in(call: Call) -> None:
    status, body = await call("POST", "/v1/creator/auth/signup", json=_signup())
    assert status == 201, body
    assert body["user"]["account_type"] == "fan"
    assert body["user"]["age_verified"] is False
    assert body["user"]["email"].endswith("@example.com")  # stored lower-case
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    status, me = await call("GET", "/v1/creator/me", headers=headers)
    assert status == 200 and me["id"] == body["user"]["id"]


async def test_signup_refuses_minors(call: Call) -> None:
    today = date.today()
    minor = date(today.year - 17, today.month, 1).isoformat()
    status, body = await call("POST", "/v1/creator/auth/signup", json=_signup(date_of_birth=minor))
    assert status == 400 and "18" in body["error"]["message"]


async def test_signup_refuses_a_taken_username_case_insensitively(call: Call) -> None:
    first = _signup()
    assert (await call("POST", "/v1/creator/auth/signup", json=first))[0] == 201
    again = _signup(username=str(first["username"]).upper())
    status, body = await call("POST", "/v1/creator/auth/signup", json=again)
    assert status == 409, body


async def test_only_creators_set_a_subscription_price(call: Call) -> None:
    status, _ = await call("POST", "/v1/creator/auth/signup", json=_signup(subscription_price=500))
    assert status == 400
    status, body = await call(
        "POST",
        "/v1/creator/auth/signup",
        json=_signup(account_type="creator", subscription_price=500),
    )
    assert status == 201 and body["user"]["subscription_price"] == 500


async def test_login_by_username_or_email(call: Call) -> None:
    fields = _signup()
    await call("POST", "/v1/creator/auth/signup", json=fields)
    for login in (fields["username"], str(fields["email"]).lower()):
        status, body = await call(
            "POST", "/v1/creator/auth/login", json={"login": login, "password": PASSWORD}
        )
        assert status == 200, body
    status, _ = await call(
        "POST", "/v1/creator/auth/login", json={"login": fields["username"], "password": "nope"}
    )
    assert status == 401


async def test_suspended_and_banned_accounts_cannot_sign_in_nor_use_their_tokens(
    call: Call, db: asyncpg.Connection
) -> None:
    fields = _signup()
    _, session = await call("POST", "/v1/creator/auth/signup", json=fields)
    user = uuid.UUID(session["user"]["id"])
    headers = {"Authorization": f"Bearer {session['access_token']}"}
    await db.execute(
        "UPDATE creator.users SET account_status = 'suspended',"
        " suspended_until = now() + interval '3 days' WHERE id = $1",
        user,
    )
    status, body = await call(
        "POST", "/v1/creator/auth/login", json={"login": fields["username"], "password": PASSWORD}
    )
    assert status == 403 and "suspended until" in body["error"]["message"]
    assert (await call("GET", "/v1/creator/me", headers=headers))[0] == 401
    refreshed = await call(
        "POST", "/v1/creator/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refreshed[0] == 403
    await db.execute(
        "UPDATE creator.users SET account_status = 'banned', suspended_until = NULL WHERE id = $1",
        user,
    )
    status, body = await call(
        "POST", "/v1/creator/auth/login", json={"login": fields["username"], "password": PASSWORD}
    )
    assert status == 403 and body["error"]["message"] == "account is banned"


async def test_refresh_rotates_the_token(call: Call) -> None:
    _, session = await call("POST", "/v1/creator/auth/signup", json=_signup())
    token = {"refresh_token": session["refresh_token"]}
    status, fresh = await call("POST", "/v1/creator/auth/refresh", json=token)
    assert status == 200 and fresh["refresh_token"] != session["refresh_token"]
    assert (await call("POST", "/v1/creator/auth/refresh", json=token))[0] == 401


async def test_a_token_of_another_realm_is_forbidden_here(
    call: Call, world: World, secret: str
) -> None:
    from kernel.tokens import sign_access_token

    other = sign_access_token(secret, str(world.fan), "analyst", 600)
    status, _ = await call("GET", "/v1/creator/me", headers={"Authorization": f"Bearer {other}"})
    assert status in (401, 403)
