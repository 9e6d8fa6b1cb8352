"""Profiles of the creator realm over the real api app: a public profile by id or username
that never shows private fields, the caller's own profile and its edits (a creator's prices
only for creators), and the soft deletion of an account, after which its tokens fail."""

from __future__ import annotations

import uuid

import asyncpg
from aiohttp.test_utils import TestClient

from tests.realms.creator.conftest import PASSWORD, Call, World, bearer, make_account

PRIVATE = ("email", "date_of_birth", "gender", "country", "region", "city", "timezone")


async def test_a_public_profile_by_id_or_username_shows_no_private_field(
    call: Call, db: asyncpg.Connection, world: World, api: TestClient, secret: str
) -> None:
    await db.execute(
        "UPDATE creator.user_profiles SET bio = 'hi', gender = 'secret-gender', country = 'FR',"
        " city = 'Secretville' WHERE user_id = $1",
        world.creator,
    )
    username, email = await db.fetchrow(
        "SELECT username, email FROM creator.users WHERE id = $1", world.creator
    )
    for key in (str(world.creator), username.upper()):
        response = await api.get(f"/v1/creator/profiles/{key}", headers=bearer(secret, world.fan))
        assert response.status == 200
        text = await response.text()
        for leaked in (email, "1990-01-01", "secret-gender", "Secretville", "preferences"):
            assert leaked not in text
        profile = await response.json()
        assert profile["id"] == str(world.creator) and profile["bio"] == "hi"
        assert not set(PRIVATE) & set(profile)
        assert profile["subscription_prices"] == {
            "monthly": 999,
            "yearly": None,
            "lifetime": None,
            "currency": "USD",
        }
        assert profile["is_subscribed"] is True and profile["is_following"] is False
    _, fan = await call("GET", f"/v1/creator/profiles/{world.fan}", world.stranger)
    assert fan["subscription_prices"] is None and fan["allow_messages_from"] is None
    assert (await call("GET", "/v1/creator/profiles/nobody_here", world.fan))[0] == 404
    assert (await call("GET", f"/v1/creator/profiles/{uuid.uuid4()}", world.fan))[0] == 404
    assert (await call("GET", "/v1/creator/profiles/no!", world.fan))[0] == 400


async def test_the_caller_edits_and_reads_their_own_profile(call: Call, world: World) -> None:
    edit = {
        "display_name": "Fan Number One",
        "bio": "I like things",
        "avatar_url": "https://img.example.com/a.png",
        "cover_image_url": "https://img.example.com/banner.png",
        "social_links": {"instagram": "https://instagram.com/fan"},
        "content_categories": ["fitness", "cooking"],
        "languages": ["en", "fr"],
        "country": "DE",
        "timezone": "Europe/Berlin",
    }
    status, mine = await call("PATCH", "/v1/creator/me/profile", world.fan, json=edit)
    assert status == 200, mine
    for key, value in edit.items():
        assert mine[key] == value
    assert mine["email"].endswith("@example.com") and mine["date_of_birth"] == "1990-01-01"
    _, public = await call("GET", f"/v1/creator/profiles/{world.fan}", world.stranger)
    assert public["display_name"] == "Fan Number One"
    assert public["cover_image_url"] == edit["cover_image_url"]
    status, mine = await call("PATCH", "/v1/creator/me/profile", world.fan, json={"bio": None})
    assert status == 200 and mine["bio"] is None and mine["display_name"] == "Fan Number One"
    for bad in ({"avatar_url": "javascript:alert(1)"}, {"country": "france"}, {"nope": 1}):
        assert (await call("PATCH", "/v1/creator/me/profile", world.fan, json=bad))[0] == 400


async def test_only_creators_set_prices_and_yearly_is_a_discount(call: Call, world: World) -> None:
    for price in ({"subscription_price": 500}, {"yearly_price": 5000}):
        status, _ = await call("PATCH", "/v1/creator/me/profile", world.fan, json=price)
        assert status == 400
    status, _ = await call(
        "PATCH", "/v1/creator/me/profile", world.creator, json={"yearly_price": 12 * 999}
    )
    assert status == 400
    status, mine = await call(
        "PATCH",
        "/v1/creator/me/profile",
        world.creator,
        json={"subscription_price": 1500, "yearly_price": 15000, "allow_messages_from": "everyone"},
    )
    assert status == 200
    assert mine["subscription_prices"]["monthly"] == 1500
    assert mine["subscription_prices"]["yearly"] == 15000
    assert mine["allow_messages_from"] == "everyone"
    status, mine = await call(
        "PATCH", "/v1/creator/me/profile", world.creator, json={"yearly_price": None}
    )
    assert status == 200 and mine["subscription_prices"]["yearly"] is None


async def test_a_deleted_account_is_gone_and_its_tokens_stop_working(
    call: Call, db: asyncpg.Connection, world: World, api: TestClient, secret: str
) -> None:
    name = f"u{uuid.uuid4().hex[:10]}"
    status, session = await call(
        "POST",
        "/v1/creator/auth/signup",
        json={
            "username": name,
            "email": f"{name}@example.com",
            "password": PASSWORD,
            "date_of_birth": "1990-01-01",
        },
    )
    assert status == 201
    user = uuid.UUID(session["user"]["id"])
    await db.execute(
        "UPDATE creator.users SET age_verified = true, age_verified_at = now() WHERE id = $1", user
    )
    status, body = await call(
        "POST",
        "/v1/creator/subscriptions",
        user,
        json={"creator_id": str(world.creator), "payment_token": "tok_ok"},
    )
    assert status == 201, body
    await call("POST", f"/v1/creator/creators/{world.creator}/follow", user)

    response = await api.delete("/v1/creator/me/account", headers=bearer(secret, user))
    assert response.status == 204
    assert (await call("GET", "/v1/creator/me", user))[0] == 401
    status, _ = await call(
        "POST", "/v1/creator/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert status == 401
    assert (await call("GET", f"/v1/creator/profiles/{user}", world.fan))[0] == 404
    assert (await call("GET", f"/v1/creator/profiles/{name}", world.fan))[0] == 404
    row = await db.fetchrow(
        "SELECT status, auto_renew FROM creator.subscriptions WHERE subscriber_id = $1", user
    )
    assert (row["status"], row["auto_renew"]) == ("cancelled", False)
    _, profile = await call("GET", f"/v1/creator/profiles/{world.creator}", world.fan)
    assert profile["follower_count"] == 0
    assert await db.fetchval("SELECT deleted_at IS NOT NULL FROM creator.users WHERE id = $1", user)


async def test_suspended_users_have_no_public_profile(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    banned = await make_account(db, account_type="creator")
    await db.execute("UPDATE creator.users SET account_status = 'banned' WHERE id = $1", banned)
    assert (await call("GET", f"/v1/creator/profiles/{banned}", world.fan))[0] == 404
