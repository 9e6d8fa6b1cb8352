"""Account deletion over HTTP (issue 21 item 7): a user deletes their own account with their
password, or an admin deletes one; the account is soft-deleted and anonymised, its personal
traces removed, its subscriptions cancelled, its tokens refused; an analyst's business closes;
deleting twice gets its documented error."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from kernel.db import connect
from realms.analyst.credentials import hash_password, issue_refresh_token
from realms.analyst.routes.accounts import DELETED_ANALYST_NAME, deleted_email
from tests.api.test_posts import World, make_world, publish, reply
from tests.api.test_tier_limits import UPDATE
from tests.factories import insert_row, make_subscription, make_tier, make_user

PASSWORD = "correct horse battery"


async def with_password(db: asyncpg.Connection, user: uuid.UUID) -> None:
    await db.execute(
        "UPDATE analyst.users SET password_hash = $2 WHERE id = $1",
        user,
        await hash_password(PASSWORD, 4),
    )


async def delete_me(api: TestClient, world: World, user: uuid.UUID, password: str) -> Any:
    return await api.delete("/v1/me", json={"password": password}, headers=world.h(user))


async def test_a_trader_deletes_their_account_and_everything_personal_goes(
    api: TestClient, db: asyncpg.Connection, secret: str, dsn: str
) -> None:
    world = await make_world(db, secret)
    user = world.paid
    await with_password(db, user)
    email = await db.fetchval("SELECT email FROM analyst.users WHERE id = $1", user)
    post = await publish(api, world)
    await reply(
        await api.post("/v1/bookmarks", json={"post_id": post["id"]}, headers=world.h(user)), 201
    )
    comment = await reply(
        await api.post(
            f"/v1/posts/{post['id']}/comments", json={"content": "hi"}, headers=world.h(user)
        ),
        201,
    )
    review = await insert_row(
        db, "reviews", {"user_id": user, "analyst_id": world.analyst, "rating": 5}
    )
    refresh = await issue_refresh_token(db, user, 3600)
    await db.execute(
        "INSERT INTO gateway.push_devices (realm, user_id, platform, token)"
        " VALUES ('analyst', $1::uuid, 'web', 'tok')",
        user,
    )
    await insert_row(db, "notifications", {"user_id": user, "notification_type": "new_post"})
    await insert_row(
        db,
        "otp_verifications",
        {"user_id": user, "email": email, "otp_code": "123456", "purpose": "login"},
    )
    listener = await connect(dsn)
    heard: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    await listener.add_listener(
        "sb_membership", lambda *args: heard.put_nowait(json.loads(args[-1]))
    )

    await reply(await delete_me(api, world, user, PASSWORD), 204)

    async with asyncio.timeout(10):
        notices = [await heard.get()]
        while not any(n.get("kind") == "account" for n in notices):
            notices.append(await heard.get())
    await listener.close()
    assert {"kind": "account", "realm": "analyst", "user_id": str(user)}.items() <= next(
        n for n in notices if n.get("kind") == "account"
    ).items()
    assert any(n.get("kind") == "subscription" for n in notices)  # removed from gated rooms

    row = await db.fetchrow("SELECT * FROM analyst.users WHERE id = $1", user)
    assert row["deleted_at"] is not None and not row["is_active"]
    assert row["email"] == deleted_email(user) and row["phone"] is None
    assert not row["password_hash"].startswith("$2")
    assert (await api.get("/v1/me", headers=world.h(user))).status == 401
    again = await reply(await delete_me(api, world, user, PASSWORD), 401)  # deleting twice
    assert again["error"]["code"] == "unauthorized"
    refreshed = await api.post("/v1/auth/refresh", json={"refresh_token": refresh})
    assert refreshed.status == 401
    counts = await db.fetchrow(
        "SELECT (SELECT count(*) FROM analyst.bookmarks WHERE user_id = $1) AS bookmarks,"
        " (SELECT count(*) FROM analyst.notifications WHERE user_id = $1) AS notifications,"
        " (SELECT count(*) FROM analyst.otp_verifications WHERE user_id = $1) AS otps,"
        " (SELECT count(*) FROM gateway.push_devices WHERE user_id = $1::text) AS devices,"
        " (SELECT count(*) FROM gateway.refresh_tokens WHERE user_id = $1"
        "   AND revoked_at IS NULL) AS tokens,"
        " (SELECT count(*) FROM analyst.subscriptions WHERE user_id = $1"
        "   AND status = 'active') AS active",
        user,
    )
    assert dict(counts) == dict.fromkeys(counts.keys(), 0)
    assert await db.fetchval(
        "SELECT deleted_at IS NOT NULL FROM analyst.reviews WHERE id = $1", review
    )
    kept = await db.fetchrow(
        "SELECT user_id, deleted_at FROM analyst.post_comments WHERE id = $1::uuid",
        comment["id"],
    )
    assert (kept["user_id"], kept["deleted_at"]) == (user, None)  # the thread stays whole
    # The address is free again.
    await make_user(db, email=email)


async def test_a_wrong_password_deletes_nothing(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    world = await make_world(db, secret)
    await with_password(db, world.paid)
    body = await reply(await delete_me(api, world, world.paid, "not it"), 403)
    assert "password" in body["error"]["message"]
    assert await db.fetchval(
        "SELECT deleted_at IS NULL AND is_active FROM analyst.users WHERE id = $1", world.paid
    )
    assert (await api.get("/v1/me", headers=world.h(world.paid))).status == 200


async def test_an_analysts_deletion_closes_their_business(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    world = await make_world(db, secret)
    await with_password(db, world.analyst)
    await db.execute(
        "UPDATE analyst.analyst_profiles SET verification_status = 'approved',"
        " bio = 'Ten years on the desk', is_featured = true, feature_position = 1"
        " WHERE user_id = $1",
        world.analyst,
    )
    await reply(await api.post("/v1/posts", json=UPDATE, headers=world.h(world.analyst)), 201)
    channel = await insert_row(
        db,
        "chat_channels",
        {"analyst_id": world.analyst, "channel_name": "Desk", "channel_type": "community"},
    )
    await db.execute(
        "UPDATE analyst.subscriptions SET price_paid = 99900 WHERE analyst_id = $1", world.analyst
    )
    before = await db.fetchval(
        "SELECT monthly_revenue FROM analyst.analyst_profiles WHERE user_id = $1", world.analyst
    )
    assert before > 0

    await reply(await delete_me(api, world, world.analyst, PASSWORD), 204)

    profile = await db.fetchrow(
        "SELECT * FROM analyst.analyst_profiles WHERE user_id = $1", world.analyst
    )
    assert profile["deleted_at"] is not None and profile["display_name"] == DELETED_ANALYST_NAME
    assert profile["bio"] is None and not profile["is_featured"]
    assert profile["feature_position"] is None
    assert (profile["active_subscribers"], profile["monthly_revenue"], profile["total_posts"]) == (
        0,
        0,
        0,
    )
    subs = await db.fetch(
        "SELECT status FROM analyst.subscriptions WHERE analyst_id = $1", world.analyst
    )
    assert {s["status"] for s in subs} == {"cancelled"}
    assert not await db.fetchval(
        "SELECT bool_or(is_active OR deleted_at IS NULL) FROM analyst.subscription_tiers"
        " WHERE analyst_id = $1",
        world.analyst,
    )
    assert await db.fetchval(
        "SELECT is_archived AND NOT is_active FROM analyst.chat_channels WHERE id = $1", channel
    )
    listed = await reply(await api.get("/v1/featured/analysts", headers=world.h(world.free)), 200)
    assert listed == []


async def test_admins_delete_accounts_and_deleting_twice_is_a_conflict(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    world = await make_world(db, secret)
    analyst = world.analyst
    tier = await make_tier(db, analyst)
    target = await make_user(db)
    await make_subscription(db, target, tier)
    path = f"/v1/admin/users/{target}"
    await reply(await api.delete(path, headers=world.h(world.admin)), 204)
    twice = await reply(await api.delete(path, headers=world.h(world.admin)), 409)
    assert "already deleted" in twice["error"]["message"]
    other_admin = await make_user(db, user_type="admin")
    await reply(
        await api.delete(f"/v1/admin/users/{other_admin}", headers=world.h(world.admin)), 403
    )
    await reply(
        await api.delete(f"/v1/admin/users/{uuid.uuid4()}", headers=world.h(world.admin)), 404
    )
    assert (await api.delete(path, headers=world.h(world.paid))).status == 403
    assert (await api.get("/v1/me", headers=world.h(target))).status == 401
