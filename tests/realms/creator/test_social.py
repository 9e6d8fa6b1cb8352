"""realms/creator/sql/3002: creator.follows, creator.likes, creator.comments."""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.realms.creator.rows import (
    column,
    db_now,
    fails,
    insert,
    make_content,
    make_creator,
    make_user,
    rejects,
)

# -- follows ------------------------------------------------------------------------------------


async def test_follow_defaults_to_notifications_on(db: asyncpg.Connection) -> None:
    follow_id = await insert(
        db, "follows", follower_id=await make_user(db), following_id=await make_creator(db)
    )
    row = await db.fetchrow("SELECT * FROM creator.follows WHERE id = $1", follow_id)
    assert (row["notify_on_new_content"], row["notify_on_live"]) == (True, True)
    assert row["unfollowed_at"] is None


async def test_a_user_follows_a_creator_once(db: asyncpg.Connection) -> None:
    fan, creator_id = await make_user(db), await make_creator(db)
    await insert(db, "follows", follower_id=fan, following_id=creator_id)
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "follows_follower_id_following_id_key",
        "follows",
        follower_id=fan,
        following_id=creator_id,
    )


async def test_nobody_follows_themselves(db: asyncpg.Connection) -> None:
    user_id = await make_creator(db)
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "follows_not_self",
        "follows",
        follower_id=user_id,
        following_id=user_id,
    )


@pytest.mark.parametrize("side", ["follower_id", "following_id"])
async def test_follow_of_unknown_user_is_rejected(db: asyncpg.Connection, side: str) -> None:
    fields = {"follower_id": await make_user(db), "following_id": await make_creator(db)}
    fields[side] = uuid4()
    await rejects(db, asyncpg.ForeignKeyViolationError, f"follows_{side}_fkey", "follows", **fields)


@pytest.mark.parametrize("deleted", ["follower", "followed"])
async def test_hard_deleting_either_user_deletes_the_follow(
    db: asyncpg.Connection, deleted: str
) -> None:
    fan, creator_id = await make_user(db), await make_creator(db)
    await insert(db, "follows", follower_id=fan, following_id=creator_id)
    await db.execute(
        "DELETE FROM creator.users WHERE id = $1", fan if deleted == "follower" else creator_id
    )
    assert await db.fetchval("SELECT count(*) FROM creator.follows") == 0


async def test_unfollow_and_refollow_keep_one_row(db: asyncpg.Connection) -> None:
    past = await db_now(db, "-1 day")
    follow_id = await insert(
        db,
        "follows",
        follower_id=await make_user(db),
        following_id=await make_creator(db),
        updated_at=past,
    )
    await db.execute("UPDATE creator.follows SET unfollowed_at = now() WHERE id = $1", follow_id)
    assert await column(db, "follows", "unfollowed_at", follow_id) is not None
    assert await column(db, "follows", "updated_at", follow_id) > past
    await db.execute("UPDATE creator.follows SET unfollowed_at = NULL WHERE id = $1", follow_id)
    assert await db.fetchval("SELECT count(*) FROM creator.follows") == 1


# -- likes --------------------------------------------------------------------------------------


async def test_a_user_likes_a_content_once(db: asyncpg.Connection) -> None:
    fan = await make_user(db)
    content_id = await make_content(db, await make_creator(db))
    await insert(db, "likes", user_id=fan, content_id=content_id)
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "likes_user_id_content_id_key",
        "likes",
        user_id=fan,
        content_id=content_id,
    )


@pytest.mark.parametrize("side", ["user_id", "content_id"])
async def test_like_of_unknown_user_or_content_is_rejected(
    db: asyncpg.Connection, side: str
) -> None:
    fields = {
        "user_id": await make_user(db),
        "content_id": await make_content(db, await make_creator(db)),
    }
    fields[side] = uuid4()
    await rejects(db, asyncpg.ForeignKeyViolationError, f"likes_{side}_fkey", "likes", **fields)


@pytest.mark.parametrize("deleted", ["user", "content"])
async def test_likes_go_with_their_user_or_content(db: asyncpg.Connection, deleted: str) -> None:
    fan = await make_user(db)
    content_id = await make_content(db, await make_creator(db))
    await insert(db, "likes", user_id=fan, content_id=content_id)
    if deleted == "user":
        await db.execute("DELETE FROM creator.users WHERE id = $1", fan)
    else:
        await db.execute("DELETE FROM creator.content WHERE id = $1", content_id)
    assert await db.fetchval("SELECT count(*) FROM creator.likes") == 0


# -- comments -----------------------------------------------------------------------------------


class Thread:
    def __init__(self, db: asyncpg.Connection, creator_id: UUID, content_id: UUID) -> None:
        self.db, self.creator_id, self.content_id = db, creator_id, content_id

    async def comment(self, user_id: UUID, body: str | None = "nice", **fields: object) -> UUID:
        fields.setdefault("content_id", self.content_id)
        return await insert(self.db, "comments", user_id=user_id, body=body, **fields)


@pytest.fixture
async def thread(db: asyncpg.Connection) -> Thread:
    creator_id = await make_creator(db)
    return Thread(db, creator_id, await make_content(db, creator_id))


async def test_comment_defaults(db: asyncpg.Connection, thread: Thread) -> None:
    row = await db.fetchrow(
        "SELECT * FROM creator.comments WHERE id = $1", await thread.comment(await make_user(db))
    )
    assert row["moderation_status"] == "approved"
    assert (row["is_pinned"], row["is_by_creator"]) == (False, False)
    assert row["parent_comment_id"] is None and row["deleted_at"] is None


@pytest.mark.parametrize("body", ["", "x" * 2001])
async def test_comment_body_outside_1_to_2000_characters_is_rejected(
    db: asyncpg.Connection, thread: Thread, body: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await thread.comment(await make_user(db), body)
    assert info.value.constraint_name == "comments_body_length"


async def test_only_a_deleted_comment_may_lose_its_body(
    db: asyncpg.Connection, thread: Thread
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await thread.comment(await make_user(db), None)
    assert info.value.constraint_name == "comments_body_length"
    assert await thread.comment(await make_user(db), None, deleted_at=await db_now(db))


async def test_comment_of_2000_characters_is_accepted(
    db: asyncpg.Connection, thread: Thread
) -> None:
    assert await thread.comment(await make_user(db), "ü" * 2000)


@pytest.mark.parametrize("status", ["hidden", "pending", ""])
async def test_undocumented_comment_moderation_status_is_rejected(
    db: asyncpg.Connection, thread: Thread, status: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await thread.comment(await make_user(db), moderation_status=status)
    assert info.value.constraint_name == "comments_moderation_status_valid"


async def test_reply_is_threaded_under_its_parent(db: asyncpg.Connection, thread: Thread) -> None:
    parent = await thread.comment(await make_user(db))
    reply = await thread.comment(thread.creator_id, parent_comment_id=parent)
    assert await column(db, "comments", "parent_comment_id", reply) == parent


async def test_reply_to_a_comment_on_other_content_is_rejected(
    db: asyncpg.Connection, thread: Thread
) -> None:
    elsewhere = await make_content(db, thread.creator_id)
    parent = await thread.comment(await make_user(db), content_id=elsewhere)
    with pytest.raises(asyncpg.ForeignKeyViolationError) as info:
        await thread.comment(await make_user(db), parent_comment_id=parent)
    assert info.value.constraint_name == "comments_parent_comment_id_fkey"


async def test_comment_cannot_be_its_own_parent(db: asyncpg.Connection, thread: Thread) -> None:
    own_id = uuid4()
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await thread.comment(await make_user(db), id=own_id, parent_comment_id=own_id)
    assert info.value.constraint_name == "comments_not_own_parent"


async def test_hard_deleting_a_comment_deletes_its_replies(
    db: asyncpg.Connection, thread: Thread
) -> None:
    parent = await thread.comment(await make_user(db))
    await thread.comment(await make_user(db), parent_comment_id=parent)
    await db.execute("DELETE FROM creator.comments WHERE id = $1", parent)
    assert await db.fetchval("SELECT count(*) FROM creator.comments") == 0


async def test_hard_deleting_content_deletes_its_comments(
    db: asyncpg.Connection, thread: Thread
) -> None:
    await thread.comment(await make_user(db))
    await db.execute("DELETE FROM creator.content WHERE id = $1", thread.content_id)
    assert await db.fetchval("SELECT count(*) FROM creator.comments") == 0


async def test_hard_deleting_a_commenter_fails(db: asyncpg.Connection, thread: Thread) -> None:
    fan = await make_user(db)
    await thread.comment(fan)
    await fails(
        db,
        asyncpg.ForeignKeyViolationError,
        "comments_user_id_fkey",
        "DELETE FROM creator.users WHERE id = $1",
        fan,
    )


async def test_hard_deleting_the_deleting_moderator_clears_deleted_by(
    db: asyncpg.Connection, thread: Thread
) -> None:
    moderator = await make_user(db, "moderator")
    comment_id = await thread.comment(
        await make_user(db), deleted_at=await db_now(db), deleted_by=moderator
    )
    await db.execute("DELETE FROM creator.users WHERE id = $1", moderator)
    assert await column(db, "comments", "deleted_by", comment_id) is None


async def test_creator_comment_is_marked_and_a_fan_cannot_claim_it(
    db: asyncpg.Connection, thread: Thread
) -> None:
    by_creator = await thread.comment(thread.creator_id)
    forged = await thread.comment(await make_user(db), is_by_creator=True)
    assert await column(db, "comments", "is_by_creator", by_creator) is True
    assert await column(db, "comments", "is_by_creator", forged) is False
    await db.execute("UPDATE creator.comments SET is_by_creator = true WHERE id = $1", forged)
    assert await column(db, "comments", "is_by_creator", forged) is False


async def test_creator_comments_and_pins_sort_first(db: asyncpg.Connection, thread: Thread) -> None:
    fan_comment = await thread.comment(await make_user(db))
    creator_comment = await thread.comment(thread.creator_id)
    pinned = await thread.comment(await make_user(db), is_pinned=True)
    ordered = await db.fetch(
        "SELECT id FROM creator.comments WHERE content_id = $1"
        " ORDER BY is_pinned DESC, is_by_creator DESC, created_at DESC",
        thread.content_id,
    )
    assert [r["id"] for r in ordered] == [pinned, creator_comment, fan_comment]


async def test_comment_update_moves_updated_at(db: asyncpg.Connection, thread: Thread) -> None:
    past = await db_now(db, "-1 hour")
    comment_id = await thread.comment(await make_user(db), updated_at=past, created_at=past)
    await db.execute("UPDATE creator.comments SET body = 'edited' WHERE id = $1", comment_id)
    assert await column(db, "comments", "updated_at", comment_id) > past
