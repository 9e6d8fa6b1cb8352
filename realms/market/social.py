"""The market's social rules (seed 004, section 5): only sellers post stories and reels, a
story lives STORY_LIFETIME and counts each viewer once, likes and subscriptions are set-like
(idempotent both ways) and their counters stay exact under concurrency. Each function runs on
the caller's connection, in its transaction."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound

# "Expiration time (24h)": the seed's lifetime of a story; the job market_expire_stories
# switches off is_active after it, and every read already ignores expired stories.
STORY_LIFETIME = timedelta(hours=24)

# What "live" means for content: not soft-deleted and active (a story also not expired).
LIVE_STORY = "s.deleted_at IS NULL AND s.is_active AND s.expires_at > now()"
LIVE_REEL = "r.deleted_at IS NULL AND r.is_active"


def require_seller(role: str) -> None:
    """Only sellers post stories and reels; Forbidden for every other role."""
    if role != "seller":
        raise Forbidden("only sellers post stories and reels")


async def view_story(conn: asyncpg.Connection, story_id: int, viewer: int) -> tuple[int, bool]:
    """Record that `viewer` saw the story: (view count, whether this view counted). A viewer
    counts once (idx_story_views_unique; concurrent views of one viewer insert one row) and
    the author's own views never count. NotFound for an unknown or deleted story, Conflict
    for one that expired or was switched off."""
    story = await conn.fetchrow(
        "SELECT user_id, is_active AND expires_at > now() AS live FROM market.stories"
        " WHERE id = $1 AND deleted_at IS NULL",
        story_id,
    )
    if story is None:
        raise NotFound(f"story {story_id} does not exist")
    if not story["live"]:
        raise Conflict(f"story {story_id} has expired", details={"reason": "story_expired"})
    counted = False
    if story["user_id"] != viewer:
        counted = (
            await conn.fetchval(
                "INSERT INTO market.story_views (story_id, viewer_id) VALUES ($1, $2)"
                " ON CONFLICT (story_id, viewer_id) DO NOTHING RETURNING id",
                story_id,
                viewer,
            )
            is not None
        )
    # The count trigger ran in this statement's transaction; reading the row now sees it.
    count: int = await conn.fetchval(
        "SELECT view_count FROM market.stories WHERE id = $1", story_id
    )
    return count, counted


async def set_like(conn: asyncpg.Connection, reel_id: int, user: int, liked: bool) -> int:
    """Like (or unlike) a live reel, idempotently; returns its like count. reels.like_count is
    kept by the statement trigger of reel_likes, which locks the reel row: concurrent likes
    queue on it and each adds exactly one (the unique index refuses a second like of one
    user, which then adds nothing). NotFound for a reel that is not live."""
    if not await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM market.reels r WHERE r.id = $1 AND {LIVE_REEL})", reel_id
    ):
        raise NotFound(f"reel {reel_id} does not exist")
    if liked:
        await conn.execute(
            "INSERT INTO market.reel_likes (reel_id, user_id) VALUES ($1, $2)"
            " ON CONFLICT (reel_id, user_id) DO NOTHING",
            reel_id,
            user,
        )
    else:
        await conn.execute(
            "DELETE FROM market.reel_likes WHERE reel_id = $1 AND user_id = $2", reel_id, user
        )
    count: int = await conn.fetchval("SELECT like_count FROM market.reels WHERE id = $1", reel_id)
    return count


async def live_seller(conn: asyncpg.Connection, seller_id: int) -> None:
    """NotFound unless `seller_id` is an active, not deleted seller."""
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM market.users WHERE id = $1 AND role = 'seller'"
        " AND status = 'active' AND deleted_at IS NULL)",
        seller_id,
    ):
        raise NotFound(f"seller {seller_id} does not exist")


async def subscribe(
    conn: asyncpg.Connection, subscriber: int, seller_id: int, on: bool
) -> tuple[bool, int]:
    """Subscribe to (or unsubscribe from) a seller, idempotently: (subscribed, the seller's
    subscriber count). Only sellers can be subscribed to, and nobody subscribes to
    themselves (BadRequest)."""
    if subscriber == seller_id:
        raise BadRequest("you cannot subscribe to yourself")
    await live_seller(conn, seller_id)
    if on:
        await conn.execute(
            "INSERT INTO market.subscriptions (subscriber_id, subscribed_to_id) VALUES ($1, $2)"
            " ON CONFLICT (subscriber_id, subscribed_to_id) DO NOTHING",
            subscriber,
            seller_id,
        )
    else:
        await conn.execute(
            "DELETE FROM market.subscriptions WHERE subscriber_id = $1 AND subscribed_to_id = $2",
            subscriber,
            seller_id,
        )
    return on, await subscriber_count(conn, seller_id)


async def subscriber_count(conn: asyncpg.Connection | asyncpg.Pool, seller_id: int) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM market.subscriptions WHERE subscribed_to_id = $1", seller_id
    )
    return count
