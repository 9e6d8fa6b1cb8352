"""/v1/creator/analytics over the real api app: a creator's revenue from the rollup job's rows
(hourly and daily, totals per currency and revenue type), their content's engagement and their
audience in a window; only the creator (or staff naming them) may read them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest

from kernel.jobs import SystemClock
from realms.creator import jobs
from tests.realms.creator.conftest import Call, World, make_account
from tests.realms.creator.rows import completed, insert, make_published_content, make_transaction


async def rollup(db: asyncpg.Connection) -> None:
    async with db.transaction():
        await jobs.revenue_rollup(db, SystemClock())


@pytest.fixture
async def paid(db: asyncpg.Connection, world: World) -> None:
    """A completed tip (1,000) and subscription payment (999) to the creator, a pending tip,
    and another creator's tip, rolled up by the job."""
    subscription = await db.fetchval(
        "SELECT id FROM creator.subscriptions WHERE subscriber_id = $1", world.fan
    )
    await completed(
        db, await make_transaction(db, world.fan, world.creator, "tip", 1000, platform_fee=200)
    )
    await completed(
        db,
        await make_transaction(
            db,
            world.fan,
            world.creator,
            "subscription",
            999,
            platform_fee=200,
            subscription_id=subscription,
        ),
    )
    await make_transaction(db, world.fan, world.creator, "tip", 5000, platform_fee=1000)
    other = await make_account(db, account_type="creator", subscription_price=100)
    await completed(db, await make_transaction(db, world.fan, other, "tip", 700, platform_fee=140))
    await rollup(db)


async def test_a_creator_reads_their_revenue_by_day_and_hour_with_totals(
    call: Call, world: World, paid: None
) -> None:
    status, revenue = await call("GET", "/v1/creator/analytics/revenue", world.creator)
    assert status == 200, revenue
    assert revenue["creator_id"] == str(world.creator) and revenue["period"] == "day"
    [total] = revenue["totals"]
    assert total == {
        "currency": "USD",
        "gross_amount": 1999,
        "platform_fee": 400,
        "net_amount": 1599,
        "transaction_count": 2,
    }
    by_type = {t["revenue_type"]: t["net_amount"] for t in revenue["by_type"]}
    assert by_type == {"subscription": 799, "tip": 800}
    assert len(revenue["series"]) == 2
    status, hourly = await call("GET", "/v1/creator/analytics/revenue?period=hour", world.creator)
    assert status == 200 and hourly["totals"] == revenue["totals"]
    assert len(hourly["series"]) == 2
    # a window before the payments has none
    start = quote((datetime.now(UTC) - timedelta(days=20)).isoformat())
    end = quote((datetime.now(UTC) - timedelta(days=10)).isoformat())
    status, empty = await call(
        "GET", f"/v1/creator/analytics/revenue?from={start}&to={end}", world.creator
    )
    assert status == 200 and empty["totals"] == [] and empty["series"] == []


async def test_analytics_are_for_the_creator_they_describe(
    call: Call, world: World, db: asyncpg.Connection, paid: None
) -> None:
    other = await make_account(db, account_type="creator", subscription_price=100)
    for path in ("revenue", "content", "audience"):
        status, answer = await call("GET", f"/v1/creator/analytics/{path}", world.fan)
        assert status == 403, answer
        status, answer = await call(
            "GET", f"/v1/creator/analytics/{path}?creator_id={world.creator}", other
        )
        assert status == 403, answer
        status, answer = await call("GET", f"/v1/creator/analytics/{path}", world.moderator)
        assert status == 403, answer  # staff name the creator
        status, answer = await call(
            "GET", f"/v1/creator/analytics/{path}?creator_id={world.fan}", world.moderator
        )
        assert status == 404, answer
    status, seen = await call(
        "GET", f"/v1/creator/analytics/revenue?creator_id={world.creator}", world.moderator
    )
    assert status == 200 and seen["totals"][0]["net_amount"] == 1599


async def event(db: asyncpg.Connection, table: str, **fields: Any) -> uuid.UUID:
    return await insert(db, table, **fields)


async def test_content_engagement_in_a_window_most_viewed_first(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    quiet = await make_published_content(db, world.creator, title="Quiet")
    popular = await make_published_content(db, world.creator, title="Popular")
    others = await make_published_content(
        db, await make_account(db, account_type="creator", subscription_price=1)
    )
    for viewer, seconds in ((world.fan, 30), (world.fan, 10), (world.stranger, 5)):
        await event(
            db,
            "content_analytics",
            content_id=popular,
            user_id=viewer,
            event_type="view",
            view_duration_seconds=seconds,
        )
    await event(db, "content_analytics", content_id=popular, user_id=world.fan, event_type="like")
    await event(db, "content_analytics", content_id=quiet, user_id=world.fan, event_type="view")
    await event(db, "content_analytics", content_id=quiet, event_type="share")
    await event(db, "content_analytics", content_id=others, event_type="view")
    await event(
        db,
        "content_analytics",
        content_id=quiet,
        event_type="view",
        created_at=datetime.now(UTC) - timedelta(days=60),
    )
    status, report = await call("GET", "/v1/creator/analytics/content", world.creator)
    assert status == 200, report
    first, second = report["items"]
    assert first["content_id"] == str(popular) and first["title"] == "Popular"
    assert (first["views"], first["unique_viewers"], first["view_seconds"], first["likes"]) == (
        3,
        2,
        45,
        1,
    )
    assert second["content_id"] == str(quiet)
    assert (second["views"], second["shares"]) == (1, 1)  # the old view is outside the window
    assert report["totals"]["views"] == 4 and report["totals"]["likes"] == 1
    status, top = await call("GET", "/v1/creator/analytics/content?limit=1", world.creator)
    assert [i["content_id"] for i in top["items"]] == [str(popular)]
    assert top["totals"] == report["totals"]


async def test_audience_counts_followers_subscribers_and_events(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    await insert(db, "follows", follower_id=world.fan, following_id=world.creator)
    await insert(
        db,
        "follows",
        follower_id=world.stranger,
        following_id=world.creator,
        unfollowed_at=datetime.now(UTC),
    )
    for country, device in (("US", "mobile"), ("US", "desktop"), ("FR", "mobile")):
        await event(
            db,
            "user_analytics",
            user_id=world.stranger,
            target_user_id=world.creator,
            event_type="profile_view",
            country=country,
            device_type=device,
        )
    await event(
        db,
        "user_analytics",
        user_id=world.fan,
        target_user_id=world.creator,
        event_type="subscription",
    )
    await event(db, "user_analytics", user_id=world.creator, event_type="login")
    status, audience = await call("GET", "/v1/creator/analytics/audience", world.creator)
    assert status == 200, audience
    assert (audience["followers"], audience["active_subscribers"]) == (1, 1)
    assert audience["events"] == [
        {"key": "profile_view", "count": 3},
        {"key": "subscription", "count": 1},
    ]
    assert audience["countries"][0] == {"key": "US", "count": 2}
    assert {"key": "mobile", "count": 2} in audience["devices"]


@pytest.mark.parametrize(
    "query",
    [
        "from=2025-01-01T00:00:00",  # no offset
        "to=0.5",
        "from=2025-02-30T00:00:00Z",
        "period=week",
        "limit=0",
    ],
)
async def test_a_malformed_window_is_a_bad_request(call: Call, world: World, query: str) -> None:
    path = "content" if query.startswith("limit") else "revenue"
    status, answer = await call("GET", f"/v1/creator/analytics/{path}?{query}", world.creator)
    assert status == 400 and answer["error"]["code"] == "bad_request", answer


async def test_a_window_is_clamped_and_states_what_it_read(call: Call, world: World) -> None:
    status, wide = await call(
        "GET",
        "/v1/creator/analytics/revenue?period=hour&from=2025-01-01T00:00:00Z"
        "&to=2025-03-01T00:00:00%2B01:00",
        world.creator,
    )
    assert status == 200, wide
    assert (wide["start"], wide["end"]) == ("2025-01-28T23:00:00Z", "2025-02-28T23:00:00Z")
    status, backwards = await call(
        "GET",
        "/v1/creator/analytics/revenue?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z",
        world.creator,
    )
    assert status == 200 and backwards["start"] == backwards["end"] == "2025-01-01T00:00:00Z"
    status, early = await call(
        "GET", "/v1/creator/analytics/audience?to=0001-01-01T00:00:00Z", world.creator
    )
    assert status == 200 and early["events"] == [], early
