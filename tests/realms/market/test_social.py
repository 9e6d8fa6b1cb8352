"""Social features (4008): stories.view_count, reels.like_count and reels.comment_count kept by
market.maintain_counter() (one update per parent per statement, soft deletes counted), replies
on the same reel, and a story's 24-hour lifetime."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from tests.realms.market.world import World, rejected


async def count(w: World, table: str, column: str, row_id: int) -> int:
    value: int = await w.value(table, column, row_id)
    return value


async def test_a_story_lives_24_hours_by_default(txworld: World) -> None:
    story = await txworld.story()
    row = await txworld.get("stories", story)
    assert row["expires_at"] - row["created_at"] == timedelta(hours=24)


async def test_story_view_count_is_the_number_of_viewers(txworld: World) -> None:
    story = await txworld.story()
    viewers = [await txworld.buyer() for _ in range(3)]
    for viewer in viewers:
        await txworld.story_view(story, viewer)
    assert await count(txworld, "stories", "view_count", story) == 3
    await txworld.db.execute(
        "DELETE FROM market.story_views WHERE story_id = $1 AND viewer_id = $2", story, viewers[0]
    )
    assert await count(txworld, "stories", "view_count", story) == 2


async def test_reel_like_count_follows_likes_and_unlikes(txworld: World) -> None:
    reel = await txworld.reel()
    likers = [await txworld.buyer() for _ in range(4)]
    for user in likers:
        await txworld.reel_like(reel, user)
    await txworld.db.execute(
        "DELETE FROM market.reel_likes WHERE reel_id = $1 AND user_id = ANY ($2)", reel, likers[:3]
    )
    assert await count(txworld, "reels", "like_count", reel) == 1


async def test_moving_a_like_moves_the_count(txworld: World) -> None:
    a, b = await txworld.reel(), await txworld.reel()
    like = await txworld.reel_like(a)
    await txworld.db.execute("UPDATE market.reel_likes SET reel_id = $2 WHERE id = $1", like, b)
    assert (await count(txworld, "reels", "like_count", a),
            await count(txworld, "reels", "like_count", b)) == (0, 1)  # fmt: skip


async def test_reel_comment_count_counts_live_comments_and_replies(txworld: World) -> None:
    reel = await txworld.reel()
    comment = await txworld.reel_comment(reel)
    reply = await txworld.reel_comment(reel, parent_id=comment)
    assert await count(txworld, "reels", "comment_count", reel) == 2
    await txworld.db.execute(
        "UPDATE market.reel_comments SET deleted_at = now() WHERE id = $1", reply
    )
    assert await count(txworld, "reels", "comment_count", reel) == 1
    await txworld.db.execute("DELETE FROM market.reel_comments WHERE id = $1", reply)
    assert await count(txworld, "reels", "comment_count", reel) == 1  # was already not counted
    await txworld.db.execute(
        "UPDATE market.reel_comments SET deleted_at = now() WHERE id = $1", comment
    )
    await txworld.db.execute("UPDATE market.reel_comments SET deleted_at = NULL WHERE id = $1",
                             comment)  # fmt: skip
    assert await count(txworld, "reels", "comment_count", reel) == 1


async def test_a_comment_inserted_as_deleted_is_not_counted(txworld: World) -> None:
    reel = await txworld.reel()
    await txworld.reel_comment(reel, deleted_at=await txworld.db.fetchval("SELECT now()"))
    assert await count(txworld, "reels", "comment_count", reel) == 0


async def test_editing_a_comment_leaves_the_count_alone(txworld: World) -> None:
    reel = await txworld.reel()
    comment = await txworld.reel_comment(reel)
    await txworld.db.execute(
        "UPDATE market.reel_comments SET content = 'edited', like_count = 3 WHERE id = $1",
        comment,
    )
    assert await count(txworld, "reels", "comment_count", reel) == 1


async def test_counters_never_go_below_zero(txworld: World) -> None:
    reel = await txworld.reel()
    like = await txworld.reel_like(reel)
    await txworld.db.execute("UPDATE market.reels SET like_count = 0 WHERE id = $1", reel)
    await txworld.db.execute("DELETE FROM market.reel_likes WHERE id = $1", like)
    assert await count(txworld, "reels", "like_count", reel) == 0


async def test_a_bulk_insert_updates_each_parent_once(txworld: World) -> None:
    a, b = await txworld.story(), await txworld.story()
    pending = (
        "SELECT n_tup_upd FROM pg_stat_xact_user_tables"
        " WHERE schemaname = 'market' AND relname = 'stories'"
    )
    viewers = [await txworld.buyer() for _ in range(20)]
    before = await txworld.db.fetchval(pending)
    await txworld.db.execute(
        "INSERT INTO market.story_views (story_id, viewer_id)"
        " SELECT s, v FROM unnest($1::bigint[]) s CROSS JOIN unnest($2::bigint[]) v",
        [a, b],
        viewers,
    )
    assert await txworld.db.fetchval(pending) - before == 2
    assert await count(txworld, "stories", "view_count", a) == 20
    assert await count(txworld, "stories", "view_count", b) == 20


async def test_a_reply_is_on_the_same_reel_as_its_comment(txworld: World) -> None:
    comment = await txworld.reel_comment()
    await rejected(
        txworld.db,
        txworld.reel_comment(reel_id=await txworld.reel(), parent_id=comment),
        asyncpg.ForeignKeyViolationError,
        "reel_comments_parent_on_same_reel",
    )
