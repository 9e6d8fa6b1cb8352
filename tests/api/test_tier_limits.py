"""Tier limits over HTTP (issue 21 item 1): subscription_tiers.posts_per_day enforced when an
analyst posts (429 naming the tier, until the next IST day), also under concurrent posts;
priority_support ordering support tickets; features shown with subscriptions."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp.test_utils import TestClient

from tests.api.test_posts import World, make_world, refused, reply
from tests.factories import insert_row, make_subscription, make_tier, make_user

IST = ZoneInfo("Asia/Kolkata")
UPDATE = {"post_type": "update", "content": "Markets open flat"}


async def post(api: TestClient, world: World, audience: str, **fields: Any) -> Any:
    return await api.post(
        "/v1/posts", json={**UPDATE, "audience": audience, **fields}, headers=world.h(world.analyst)
    )


async def limit(db: asyncpg.Connection, tier: object, per_day: int | None) -> None:
    await db.execute(
        "UPDATE analyst.subscription_tiers SET posts_per_day = $2 WHERE id = $1", tier, per_day
    )


async def test_a_paid_tiers_daily_limit_refuses_the_next_post_that_reaches_it(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    world = await make_world(db, secret)
    await limit(db, world.paid_tier, 2)
    await reply(await post(api, world, "paid"), 201)
    await reply(await post(api, world, "both"), 201)
    response = await post(api, world, "paid")
    body = await reply(response, 429)
    error = body["error"]
    assert error["code"] == "rate_limited"
    assert "daily post limit" in error["message"] and "2 post(s) a day" in error["message"]
    details = error["details"]
    assert details["tier_id"] == str(world.paid_tier) and details["used_today"] == 2
    assert details["posts_per_day"] == 2 and details["retry_after_ms"] > 0
    resets = datetime.fromisoformat(details["resets_at"]).astimezone(IST)
    assert (resets.hour, resets.minute) == (0, 0)  # the next midnight in India
    assert 0 < int(response.headers["Retry-After"]) <= 24 * 3600
    await refused(await post(api, world, "both"), 429, "daily post limit")
    # A free post reaches only the free tier, which has no limit.
    await reply(await post(api, world, "free"), 201)
    assert (
        await db.fetchval("SELECT count(*) FROM analyst.posts WHERE analyst_id = $1", world.analyst)
        == 3
    )


async def test_the_free_tiers_limit_holds_for_free_posts_only(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    world = await make_world(db, secret)
    await limit(db, world.free_tier, 1)
    name = await db.fetchval(
        "SELECT tier_name FROM analyst.subscription_tiers WHERE id = $1", world.free_tier
    )
    await reply(await post(api, world, "free"), 201)
    await refused(await post(api, world, "free"), 429, repr(name))
    await refused(await post(api, world, "both"), 429)
    await reply(await post(api, world, "paid"), 201)


async def test_deleted_posts_count_and_yesterdays_do_not(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    world = await make_world(db, secret)
    await limit(db, world.paid_tier, 1)
    start_of_day = datetime.now(IST).replace(hour=0, minute=0, second=0, microsecond=0)
    await insert_row(
        db,
        "posts",
        {
            "analyst_id": world.analyst,
            "post_type": "update",
            "audience": "paid",
            "content": "last night",
            "created_at": start_of_day - timedelta(minutes=1),
        },
    )
    first = await reply(await post(api, world, "paid"), 201)
    await reply(await api.delete(f"/v1/posts/{first['id']}", headers=world.h(world.analyst)), 204)
    await refused(await post(api, world, "paid"), 429)  # posting is what is limited


async def test_inactive_deleted_and_unlimited_tiers_do_not_limit(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    world = await make_world(db, secret)
    await limit(db, world.paid_tier, None)
    await make_tier(db, world.analyst, posts_per_day=0, is_active=False)
    gone = await make_tier(db, world.analyst, posts_per_day=0)
    await db.execute("UPDATE analyst.subscription_tiers SET deleted_at = now() WHERE id = $1", gone)
    for _ in range(3):
        await reply(await post(api, world, "paid"), 201)


async def test_concurrent_posts_take_exactly_the_limit(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    world = await make_world(db, secret)
    await limit(db, world.paid_tier, 3)
    responses = await asyncio.gather(*(post(api, world, "paid") for _ in range(12)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] * 3 + [429] * 9
    assert (
        await db.fetchval("SELECT count(*) FROM analyst.posts WHERE analyst_id = $1", world.analyst)
        == 3
    )


async def test_changing_a_posts_audience_counts_it_for_the_tiers_it_then_reaches(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    world = await make_world(db, secret)
    await limit(db, world.paid_tier, 1)
    await reply(await post(api, world, "paid"), 201)
    free = await reply(await post(api, world, "free"), 201)
    path = f"/v1/posts/{free['id']}"
    await refused(
        await api.patch(path, json={"audience": "both"}, headers=world.h(world.analyst)), 429
    )
    edited = await reply(
        await api.patch(path, json={"title": "Open"}, headers=world.h(world.analyst)), 200
    )
    assert edited["audience"] == "free"


async def test_priority_support_tickets_come_first_within_their_priority(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    world = await make_world(db, secret)
    await db.execute(
        "UPDATE analyst.subscription_tiers SET priority_support = true WHERE id = $1",
        world.paid_tier,
    )

    async def open_ticket(user: object, priority: str) -> Any:
        return await reply(
            await api.post(
                "/v1/support/tickets",
                json={"subject": f"help {priority}", "priority": priority},
                headers=world.h(user),  # type: ignore[arg-type]
            ),
            201,
        )

    plain_high = await open_ticket(world.stranger, "high")
    plain_medium = await open_ticket(world.free, "medium")
    vip_medium = await open_ticket(world.paid, "medium")
    vip_low = await open_ticket(world.paid, "low")
    assert vip_medium["priority_support"] and not plain_medium["priority_support"]
    page = await reply(
        await api.get("/v1/support/queue?limit=2", headers=world.h(world.admin)), 200
    )
    rest = await reply(
        await api.get(
            f"/v1/support/queue?cursor={page['next_cursor']}", headers=world.h(world.admin)
        ),
        200,
    )
    order = [t["id"] for t in page["items"] + rest["items"]]
    assert order == [plain_high["id"], vip_medium["id"], plain_medium["id"], vip_low["id"]]
    only = await reply(
        await api.get("/v1/support/queue?priority_support=true", headers=world.h(world.admin)),
        200,
    )
    assert [t["id"] for t in only["items"]] == [vip_medium["id"], vip_low["id"]]
    # Staff's answers reach priority-support users at high priority.
    await reply(
        await api.post(
            f"/v1/support/tickets/{vip_medium['id']}/status",
            json={"status": "in_progress"},
            headers=world.h(world.admin),
        ),
        200,
    )
    assert (
        await db.fetchval(
            "SELECT priority FROM analyst.notifications WHERE user_id = $1", world.paid
        )
        == "high"
    )


async def test_subscriptions_show_their_tiers_terms_and_features(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    world = await make_world(db, secret)
    tier = await make_tier(
        db,
        world.analyst,
        features=["3 calls a day", "Weekly webinar"],
        posts_per_day=3,
        priority_support=True,
    )
    user = await make_user(db)
    await make_subscription(db, user, tier)
    mine = await reply(await api.get("/v1/subscriptions", headers=world.h(user)), 200)
    terms = mine["items"][0]["tier"]
    assert terms["features"] == ["3 calls a day", "Weekly webinar"]
    assert (terms["posts_per_day"], terms["priority_support"], terms["chat_access"]) == (
        3,
        True,
        True,
    )
