"""Comments on posts over HTTP (issue 21 item 4): who may comment and read a thread, edits and
deletes, the notification to the post's analyst, moderation of a reported comment, and
posts.comments_count equal to the live comments after concurrent writers."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.api.test_posts import World, make_world, publish, refused, reply


@pytest.fixture
async def world(db: asyncpg.Connection, secret: str) -> World:
    return await make_world(db, secret)


async def comment(api: TestClient, world: World, post_id: str, user: uuid.UUID, text: str) -> Any:
    return await reply(
        await api.post(
            f"/v1/posts/{post_id}/comments", json={"content": text}, headers=world.h(user)
        ),
        201,
    )


async def live_count(db: asyncpg.Connection, post_id: str) -> tuple[int, int]:
    """(comments_count, count(*) of live comments) of the post."""
    row = await db.fetchrow(
        "SELECT p.comments_count, (SELECT count(*) FROM analyst.post_comments c"
        " WHERE c.post_id = p.id AND c.deleted_at IS NULL) AS live"
        " FROM analyst.posts p WHERE p.id = $1::uuid",
        post_id,
    )
    return row["comments_count"], row["live"]


async def test_readers_comment_and_the_thread_reads_oldest_first(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    post = await publish(api, world)
    first = await comment(api, world, post["id"], world.stranger, "Nice entry")
    second = await comment(api, world, post["id"], world.analyst, "Thanks, watch 2450")
    assert first["by_analyst"] is False and second["by_analyst"] is True
    thread = await reply(
        await api.get(f"/v1/posts/{post['id']}/comments?limit=1", headers=world.h(world.paid)),
        200,
    )
    assert [c["id"] for c in thread["items"]] == [first["id"]]
    rest = await reply(
        await api.get(
            f"/v1/posts/{post['id']}/comments?cursor={thread['next_cursor']}",
            headers=world.h(world.paid),
        ),
        200,
    )
    assert [c["id"] for c in rest["items"]] == [second["id"]] and rest["next_cursor"] is None
    one = await reply(
        await api.get(f"/v1/comments/{first['id']}", headers=world.h(world.free)), 200
    )
    assert one["content"] == "Nice entry"
    seen = await reply(await api.get(f"/v1/posts/{post['id']}", headers=world.h(world.free)), 200)
    assert seen["comments_count"] == 2
    assert await live_count(db, post["id"]) == (2, 2)


async def test_the_posts_analyst_is_notified_of_others_comments_only(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    post = await publish(api, world, title="Reliance breakout")
    created = await comment(api, world, post["id"], world.paid, "In at 2500")
    await comment(api, world, post["id"], world.analyst, "Good")
    notes = await db.fetch(
        "SELECT notification_type, title, message, related_entity_id"
        " FROM analyst.notifications WHERE user_id = $1 AND notification_type = 'new_comment'",
        world.analyst,
    )
    assert len(notes) == 1
    assert notes[0]["title"] == "New comment on Reliance breakout"
    assert notes[0]["message"] == "In at 2500"
    assert str(notes[0]["related_entity_id"]) == created["id"]


async def test_paid_threads_are_closed_to_those_who_cannot_read_the_post(
    api: TestClient, world: World
) -> None:
    post = await publish(api, world, audience="paid")
    path = f"/v1/posts/{post['id']}/comments"
    await comment(api, world, post["id"], world.paid, "Paid subscribers only")
    for outsider in (world.free, world.stranger):
        await refused(
            await api.post(path, json={"content": "hi"}, headers=world.h(outsider)), 403, "paid"
        )
        await refused(await api.get(path, headers=world.h(outsider)), 403)
    assert (await api.get(path, headers=world.h(world.admin))).status == 200
    missing = f"/v1/posts/{uuid.uuid4()}/comments"
    await refused(await api.post(missing, json={"content": "x"}, headers=world.h(world.paid)), 404)
    for bad in ({"content": ""}, {"content": "   "}, {"content": "x" * 2001}, {}):
        await refused(await api.post(path, json=bad, headers=world.h(world.paid)), 400)


async def test_authors_edit_and_authors_analysts_and_admins_delete(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    post = await publish(api, world)
    mine = await comment(api, world, post["id"], world.paid, "first take")
    path = f"/v1/comments/{mine['id']}"
    edited = await reply(
        await api.patch(path, json={"content": "second take"}, headers=world.h(world.paid)), 200
    )
    assert edited["content"] == "second take" and edited["edited_at"] is not None
    for other in (world.analyst, world.admin, world.stranger):
        await refused(
            await api.patch(path, json={"content": "no"}, headers=world.h(other)), 403, "author"
        )
    await refused(await api.delete(path, headers=world.h(world.stranger)), 403)
    await reply(await api.delete(path, headers=world.h(world.paid)), 204)
    await refused(await api.delete(path, headers=world.h(world.paid)), 404)  # deleting twice
    await refused(await api.get(path, headers=world.h(world.paid)), 404)
    by_analyst = await comment(api, world, post["id"], world.stranger, "spam spam")
    await reply(
        await api.delete(
            f"/v1/comments/{by_analyst['id']}?reason=off+topic", headers=world.h(world.analyst)
        ),
        204,
    )
    row = await db.fetchrow(
        "SELECT deleted_by, deletion_reason FROM analyst.post_comments WHERE id = $1::uuid",
        by_analyst["id"],
    )
    assert (row["deleted_by"], row["deletion_reason"]) == (world.analyst, "off topic")
    by_admin = await comment(api, world, post["id"], world.stranger, "again")
    await reply(
        await api.delete(f"/v1/comments/{by_admin['id']}", headers=world.h(world.admin)), 204
    )
    assert await live_count(db, post["id"]) == (0, 0)


async def test_a_reported_comment_is_removed_by_moderation(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    post = await publish(api, world)
    bad = await comment(api, world, post["id"], world.stranger, "buy my course, link in bio")
    flag = await reply(
        await api.post(
            "/v1/moderation/flags",
            json={"entity_type": "comment", "entity_id": bad["id"], "reason": "spam"},
            headers=world.h(world.paid),
        ),
        201,
    )
    own = await api.post(
        "/v1/moderation/flags",
        json={"entity_type": "comment", "entity_id": bad["id"], "reason": "spam"},
        headers=world.h(world.stranger),
    )
    assert own.status == 400
    await reply(
        await api.post(
            f"/v1/moderation/queue/{flag['id']}/action",
            json={"action": "content_removed", "notes": "promotion"},
            headers=world.h(world.admin),
        ),
        200,
    )
    row = await db.fetchrow(
        "SELECT deleted_at, deleted_by, deletion_reason FROM analyst.post_comments"
        " WHERE id = $1::uuid",
        bad["id"],
    )
    assert row["deleted_at"] is not None and row["deleted_by"] == world.admin
    assert row["deletion_reason"] == "moderation: spam"
    assert await live_count(db, post["id"]) == (0, 0)
    notice = await db.fetchval(
        "SELECT notification_type FROM analyst.notifications WHERE user_id = $1",
        world.stranger,
    )
    assert notice == "moderation_action"


async def test_comments_count_equals_the_live_comments_after_concurrent_writers(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    post = await publish(api, world)
    users = [world.paid, world.free, world.stranger, world.rival, world.analyst]
    created = await asyncio.gather(
        *(
            api.post(
                f"/v1/posts/{post['id']}/comments",
                json={"content": f"comment {i}"},
                headers=world.h(users[i % len(users)]),
            )
            for i in range(40)
        )
    )
    ids = [(await reply(r, 201))["id"] for r in created]
    assert await live_count(db, post["id"]) == (40, 40)
    # Concurrent deletes, each comment deleted twice at once: one wins, one gets 404.
    deletes = await asyncio.gather(
        *(
            api.delete(f"/v1/comments/{cid}", headers=world.h(world.admin))
            for cid in ids[:15]
            for _ in range(2)
        ),
        *(
            api.post(
                f"/v1/posts/{post['id']}/comments",
                json={"content": "late"},
                headers=world.h(world.paid),
            )
            for _ in range(10)
        ),
    )
    statuses = sorted(r.status for r in deletes)
    assert statuses.count(204) == 15 and statuses.count(404) == 15 and statuses.count(201) == 10
    assert await live_count(db, post["id"]) == (35, 35)
