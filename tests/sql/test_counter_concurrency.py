"""Issue 21 item 4: every counter the seed documents stays equal to a count(*) after concurrent
writers. Each test runs writers on separate connections (asyncio.gather), each in its own
transactions, touching the same counter rows at once, then compares every counter with a
count over the rows it counts.

Counters covered: posts.bookmarks_count, posts.comments_count, analyst_profiles.total_posts,
total_reviews and avg_rating, total_subscribers and active_subscribers, monthly_revenue,
reviews.helpfulness_upvotes/downvotes, chat_channels.total_messages and
discount_codes.usage_count. (posts.views_count and invite_links.total_clicks count requests,
not rows: tests/api/test_request_counters.py.)"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from kernel.db import connect
from tests.factories import insert_row, make_analyst, make_tier, make_user

WRITERS = 8
Work = Callable[[asyncpg.Connection, int], Awaitable[None]]


@pytest.fixture
async def conns(dsn: str) -> AsyncIterator[list[asyncpg.Connection]]:
    opened = [await connect(dsn) for _ in range(WRITERS)]
    try:
        yield opened
    finally:
        for conn in opened:
            await conn.close()


async def concurrently(conns: list[asyncpg.Connection], rounds: int, work: Work) -> None:
    """`rounds` transactions on each connection, all connections at once."""

    async def writer(conn: asyncpg.Connection, n: int) -> None:
        for r in range(rounds):
            async with conn.transaction():
                await work(conn, n * rounds + r)

    await asyncio.gather(*(writer(c, n) for n, c in enumerate(conns)))


async def post_of(db: asyncpg.Connection, analyst: uuid.UUID) -> uuid.UUID:
    return await insert_row(
        db, "posts", {"analyst_id": analyst, "post_type": "update", "content": "x"}
    )


async def test_bookmarks_and_comments_counts_hold_under_concurrent_inserts_and_deletes(
    db: asyncpg.Connection, conns: list[asyncpg.Connection]
) -> None:
    analyst = await make_analyst(db)
    posts = [await post_of(db, analyst) for _ in range(3)]
    users = [await make_user(db) for _ in range(WRITERS * 6)]

    async def work(conn: asyncpg.Connection, i: int) -> None:
        post = posts[i % len(posts)]
        user = users[i]
        await conn.execute(
            "INSERT INTO analyst.bookmarks (user_id, post_id) VALUES ($1, $2)", user, post
        )
        comment = await conn.fetchval(
            "INSERT INTO analyst.post_comments (post_id, user_id, content)"
            " VALUES ($1, $2, 'hi') RETURNING id",
            post,
            user,
        )
        if i % 3 == 0:  # some go again in the same transaction, others in a later one
            await conn.execute(
                "DELETE FROM analyst.bookmarks WHERE user_id = $1 AND post_id = $2", user, post
            )
            await conn.execute(
                "UPDATE analyst.post_comments SET deleted_at = now() WHERE id = $1", comment
            )
        # Everyone also soft-deletes someone else's live comment, racing the others.
        await conn.execute(
            "UPDATE analyst.post_comments SET deleted_at = now() WHERE id = ("
            " SELECT id FROM analyst.post_comments WHERE deleted_at IS NULL AND post_id = $1"
            " ORDER BY created_at LIMIT 1)",
            post,
        )

    await concurrently(conns, 6, work)
    rows = await db.fetch(
        "SELECT p.bookmarks_count, p.comments_count,"
        " (SELECT count(*) FROM analyst.bookmarks b WHERE b.post_id = p.id) AS bookmarks,"
        " (SELECT count(*) FROM analyst.post_comments c WHERE c.post_id = p.id"
        "   AND c.deleted_at IS NULL) AS comments"
        " FROM analyst.posts p WHERE p.id = ANY($1::uuid[])",
        posts,
    )
    assert sum(r["bookmarks"] for r in rows) == WRITERS * 6 - WRITERS * 2
    for row in rows:
        assert row["bookmarks_count"] == row["bookmarks"]
        assert row["comments_count"] == row["comments"]


async def test_post_and_review_statistics_hold_under_concurrent_writers(
    db: asyncpg.Connection, conns: list[asyncpg.Connection]
) -> None:
    analyst = await make_analyst(db)
    reviewers = [await make_user(db) for _ in range(WRITERS * 4)]

    async def work(conn: asyncpg.Connection, i: int) -> None:
        post = await conn.fetchval(
            "INSERT INTO analyst.posts (analyst_id, post_type, content)"
            " VALUES ($1, 'update', 'x') RETURNING id",
            analyst,
        )
        await conn.execute(
            "INSERT INTO analyst.reviews (user_id, analyst_id, rating) VALUES ($1, $2, $3)",
            reviewers[i],
            analyst,
            i % 5 + 1,
        )
        if i % 4 == 0:
            await conn.execute("UPDATE analyst.posts SET deleted_at = now() WHERE id = $1", post)
            await conn.execute(
                "UPDATE analyst.reviews SET deleted_at = now()"
                " WHERE user_id = $1 AND analyst_id = $2",
                reviewers[i],
                analyst,
            )
        elif i % 4 == 1:
            await conn.execute(
                "UPDATE analyst.reviews SET rating = 5 WHERE user_id = $1 AND analyst_id = $2",
                reviewers[i],
                analyst,
            )

    await concurrently(conns, 4, work)
    row = await db.fetchrow(
        "SELECT p.total_posts, p.total_reviews, p.avg_rating,"
        " (SELECT count(*) FROM analyst.posts WHERE analyst_id = $1 AND deleted_at IS NULL)"
        "   AS posts,"
        " (SELECT count(*) FROM analyst.reviews WHERE analyst_id = $1 AND deleted_at IS NULL"
        "   AND is_approved) AS reviews,"
        " (SELECT coalesce(round(avg(rating), 2), 0) FROM analyst.reviews WHERE analyst_id = $1"
        "   AND deleted_at IS NULL AND is_approved) AS rating"
        " FROM analyst.analyst_profiles p WHERE p.user_id = $1",
        analyst,
    )
    assert row["posts"] == WRITERS * 4 * 3 // 4
    assert row["total_posts"] == row["posts"]
    assert row["total_reviews"] == row["reviews"] == WRITERS * 4 * 3 // 4
    assert row["avg_rating"] == row["rating"]


async def test_helpfulness_counters_hold_under_concurrent_votes_switches_and_withdrawals(
    db: asyncpg.Connection, conns: list[asyncpg.Connection]
) -> None:
    analyst = await make_analyst(db)
    reviews = [
        await insert_row(
            db, "reviews", {"user_id": await make_user(db), "analyst_id": analyst, "rating": 4}
        )
        for _ in range(2)
    ]
    voters = [await make_user(db) for _ in range(WRITERS * 5)]

    async def work(conn: asyncpg.Connection, i: int) -> None:
        review = reviews[i % 2]
        await conn.execute(
            "INSERT INTO analyst.review_votes AS v (review_id, user_id, vote)"
            " VALUES ($1, $2, $3) ON CONFLICT (review_id, user_id)"
            " DO UPDATE SET vote = EXCLUDED.vote WHERE v.vote <> EXCLUDED.vote",
            review,
            voters[i],
            "up" if i % 2 else "down",
        )
        if i % 5 == 0:
            await conn.execute(
                "UPDATE analyst.review_votes SET vote = CASE vote WHEN 'up' THEN 'down'"
                " ELSE 'up' END WHERE user_id = $1",
                voters[i],
            )
        if i % 7 == 0:
            await conn.execute("DELETE FROM analyst.review_votes WHERE user_id = $1", voters[i])

    await concurrently(conns, 5, work)
    rows = await db.fetch(
        "SELECT r.helpfulness_upvotes AS up, r.helpfulness_downvotes AS down,"
        " (SELECT count(*) FROM analyst.review_votes v WHERE v.review_id = r.id"
        "   AND v.vote = 'up') AS ups,"
        " (SELECT count(*) FROM analyst.review_votes v WHERE v.review_id = r.id"
        "   AND v.vote = 'down') AS downs"
        " FROM analyst.reviews r WHERE r.id = ANY($1::uuid[])",
        reviews,
    )
    for row in rows:
        assert (row["up"], row["down"]) == (row["ups"], row["downs"])
    assert sum(r["ups"] + r["downs"] for r in rows) > 0


async def test_subscriber_counts_revenue_and_code_usage_hold_under_concurrent_writers(
    db: asyncpg.Connection, conns: list[asyncpg.Connection]
) -> None:
    analyst = await make_analyst(db)
    monthly = await make_tier(db, analyst, price_monthly=99900)
    yearly = await make_tier(db, analyst, price_monthly=49900, price_yearly=499000)
    code = await insert_row(
        db,
        "discount_codes",
        {
            "analyst_id": analyst,
            "code": "RACE10",
            "discount_type": "percentage",
            "discount_value": 10,
        },
    )
    subscribers = [await make_user(db) for _ in range(WRITERS * 5)]
    rng = random.Random(21)
    prices = [rng.choice((99900, 49900, 1, 0)) for _ in subscribers]

    async def work(conn: asyncpg.Connection, i: int) -> None:
        cycle = "yearly" if i % 3 == 0 else "monthly"
        sub = await conn.fetchval(
            "INSERT INTO analyst.subscriptions (user_id, analyst_id, tier_id, status,"
            " billing_cycle, price_paid, final_price, discount_code_used)"
            " VALUES ($1, $2, $3, 'active', $4, $5, $6, $7) RETURNING id",
            subscribers[i],
            analyst,
            yearly if cycle == "yearly" else monthly,
            cycle,
            prices[i] + 1000,
            prices[i] if i % 2 else None,
            code if i % 4 == 0 else None,
        )
        if i % 5 == 0:
            await conn.execute(
                "UPDATE analyst.subscriptions SET status = 'cancelled' WHERE id = $1", sub
            )
        elif i % 5 == 1:
            await conn.execute(
                "UPDATE analyst.subscriptions SET deleted_at = now() WHERE id = $1", sub
            )
        elif i % 5 == 2:
            await conn.execute(
                "UPDATE analyst.subscriptions SET final_price = final_price + 7,"
                " billing_cycle = 'yearly' WHERE id = $1",
                sub,
            )

    await concurrently(conns, 5, work)
    row = await db.fetchrow(
        "SELECT p.total_subscribers, p.active_subscribers, p.monthly_revenue,"
        " analyst.calculate_analyst_monthly_revenue($1) AS revenue,"
        " (SELECT count(*) FROM analyst.subscriptions WHERE analyst_id = $1"
        "   AND deleted_at IS NULL) AS total,"
        " (SELECT count(*) FROM analyst.subscriptions WHERE analyst_id = $1"
        "   AND deleted_at IS NULL AND status = 'active') AS active"
        " FROM analyst.analyst_profiles p WHERE p.user_id = $1",
        analyst,
    )
    assert row["total_subscribers"] == row["total"] == WRITERS * 5 * 4 // 5
    assert row["active_subscribers"] == row["active"]
    assert row["monthly_revenue"] == row["revenue"] > 0
    usage = await db.fetchrow(
        "SELECT usage_count, (SELECT count(*) FROM analyst.subscriptions"
        " WHERE discount_code_used = $1) AS used FROM analyst.discount_codes WHERE id = $1",
        code,
    )
    assert usage["usage_count"] == usage["used"] == WRITERS * 5 // 4


async def test_channel_message_counts_hold_under_concurrent_sends_and_deletes(
    db: asyncpg.Connection, conns: list[asyncpg.Connection]
) -> None:
    analyst = await make_analyst(db)
    channel = await insert_row(
        db,
        "chat_channels",
        {"analyst_id": analyst, "channel_name": "Desk", "channel_type": "community"},
    )
    members = [await make_user(db) for _ in range(WRITERS)]

    async def work(conn: asyncpg.Connection, i: int) -> None:
        message = await conn.fetchval(
            "INSERT INTO analyst.chat_messages (channel_id, user_id, analyst_id, message)"
            " VALUES ($1, $2, $3, 'hello') RETURNING id",
            channel,
            members[i % WRITERS],
            analyst,
        )
        if i % 3 == 0:
            await conn.execute(
                "UPDATE analyst.chat_messages SET is_deleted = true WHERE id = $1", message
            )

    await concurrently(conns, 6, work)
    row = await db.fetchrow(
        "SELECT c.total_messages, (SELECT count(*) FROM analyst.chat_messages m"
        " WHERE m.channel_id = c.id AND NOT m.is_deleted) AS live"
        " FROM analyst.chat_channels c WHERE c.id = $1",
        channel,
    )
    assert row["total_messages"] == row["live"] == WRITERS * 6 - WRITERS * 2
