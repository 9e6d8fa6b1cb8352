"""Follows, likes and comments of the creator realm over the real api app: idempotent
follow/unfollow and like/unlike whose counts stay exact under 50 concurrent requests,
threaded comments with their authority rules (author edits, creator pins and deletes, staff
delete), and nothing of locked content reachable through them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.realms.creator.conftest import Call, World, bearer, make_account


async def _post(db: asyncpg.Connection, creator: uuid.UUID, **fields: Any) -> uuid.UUID:
    content_id = await db.fetchval(
        "INSERT INTO creator.content (creator_id, content_type, body, status, published_at,"
        " moderation_status, is_subscriber_only) VALUES ($1, 'text', 'hello', 'published',"
        " now(), 'approved', $2) RETURNING id",
        creator,
        fields.get("subscribers_only", False),
    )
    assert isinstance(content_id, uuid.UUID)
    return content_id


async def _delete(api: TestClient, secret: str, user: uuid.UUID, path: str) -> int:
    response = await api.delete(path, headers=bearer(secret, user))
    return response.status


async def test_follow_and_unfollow_are_idempotent_and_counted(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    path = f"/v1/creator/creators/{world.creator}/follow"
    for _ in range(2):
        status, state = await call("POST", path, world.fan, json={"notify_on_live": False})
        assert status == 200, state
        assert state["following"] is True and state["follower_count"] == 1
        assert state["notify_on_live"] is False and state["notify_on_new_content"] is True
    _, page = await call("GET", "/v1/creator/me/following", world.fan)
    assert [f["user_id"] for f in page["items"]] == [str(world.creator)]
    _, page = await call("GET", "/v1/creator/me/followers", world.creator)
    assert [f["user_id"] for f in page["items"]] == [str(world.fan)]
    for _ in range(2):
        status, state = await call("DELETE", path, world.fan)
        assert status == 200 and state["following"] is False and state["follower_count"] == 0
    # the seed keeps the row with unfollowed_at; a re-follow clears it
    assert await db.fetchval(
        "SELECT unfollowed_at IS NOT NULL FROM creator.follows WHERE follower_id = $1", world.fan
    )
    _, state = await call("POST", path, world.fan)
    assert state["following"] is True and state["follower_count"] == 1
    _, profile = await call("GET", f"/v1/creator/profiles/{world.creator}", world.fan)
    assert profile["is_following"] is True and profile["follower_count"] == 1


async def test_only_other_creators_are_followed(call: Call, world: World) -> None:
    assert (await call("POST", f"/v1/creator/creators/{world.fan}/follow", world.stranger))[
        0
    ] == 400
    assert (await call("POST", f"/v1/creator/creators/{world.creator}/follow", world.creator))[
        0
    ] == 400
    assert (await call("POST", f"/v1/creator/creators/{uuid.uuid4()}/follow", world.fan))[0] == 404


async def test_fifty_concurrent_follows_and_likes_are_counted_exactly(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    content_id = await _post(db, world.creator)
    fans = [await make_account(db) for _ in range(50)]
    follow = f"/v1/creator/creators/{world.creator}/follow"
    like = f"/v1/creator/content/{content_id}/like"
    results = await asyncio.gather(
        *(call("POST", follow, fan) for fan in fans), *(call("POST", like, fan) for fan in fans)
    )
    assert all(status == 200 for status, _ in results)
    _, profile = await call("GET", f"/v1/creator/profiles/{world.creator}", world.fan)
    assert profile["follower_count"] == 50
    _, item = await call("GET", f"/v1/creator/content/{content_id}", world.fan)
    assert item["like_count"] == 50

    # half of them take it back while the same user likes 20 times at once
    results = await asyncio.gather(
        *(call("DELETE", follow, fan) for fan in fans[:25]),
        *(call("DELETE", like, fan) for fan in fans[:25]),
        *(call("POST", like, world.fan) for _ in range(20)),
    )
    assert all(status == 200 for status, _ in results)
    _, profile = await call("GET", f"/v1/creator/profiles/{world.creator}", world.fan)
    assert profile["follower_count"] == 25
    _, item = await call("GET", f"/v1/creator/content/{content_id}", world.fan)
    assert item["like_count"] == 26 and item["liked"] is True
    assert (
        await db.fetchval(
            "SELECT count(*) FROM creator.content_analytics WHERE content_id = $1"
            " AND event_type = 'like'",
            content_id,
        )
        == 51
    )


async def test_locked_content_cannot_be_liked_or_commented(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    content_id = await _post(db, world.creator, subscribers_only=True)
    path = f"/v1/creator/content/{content_id}"
    assert (await call("POST", f"{path}/like", world.stranger))[0] == 403
    assert (await call("GET", f"{path}/comments", world.stranger))[0] == 403
    status, _ = await call("POST", f"{path}/comments", world.stranger, json={"body": "let me in"})
    assert status == 403
    assert (await call("POST", f"{path}/like", world.fan))[0] == 200
    assert (await call("POST", f"/v1/creator/content/{uuid.uuid4()}/like", world.fan))[0] == 404


async def test_comments_replies_pins_and_their_order(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    content_id = await _post(db, world.creator)
    path = f"/v1/creator/content/{content_id}/comments"
    ids = []
    for i in range(3):
        status, comment = await call("POST", path, world.fan, json={"body": f"fan {i}"})
        assert status == 201, comment
        assert comment["is_by_creator"] is False and comment["username"]
        ids.append(comment["id"])
    _, own = await call("POST", path, world.creator, json={"body": "thanks all"})
    assert own["is_by_creator"] is True
    status, reply = await call(
        "POST", path, world.stranger, json={"body": "agreed", "parent_id": ids[0]}
    )
    assert status == 201 and reply["parent_id"] == ids[0]
    other = await _post(db, world.creator)
    status, _ = await call(
        "POST",
        f"/v1/creator/content/{other}/comments",
        world.fan,
        json={"body": "wrong thread", "parent_id": ids[0]},
    )
    assert status == 400

    status, pinned = await call(
        "PATCH", f"/v1/creator/comments/{ids[0]}", world.creator, json={"is_pinned": True}
    )
    assert status == 200 and pinned["is_pinned"] is True
    assert (
        await call("PATCH", f"/v1/creator/comments/{ids[1]}", world.fan, json={"is_pinned": True})
    )[0] == 403

    _, page = await call("GET", f"{path}?limit=3", world.stranger)
    assert [c["id"] for c in page["items"]] == [ids[0], own["id"], ids[2]]
    assert page["items"][0]["reply_count"] == 1
    _, rest = await call("GET", f"{path}?limit=3&cursor={page['next_cursor']}", world.stranger)
    assert [c["id"] for c in rest["items"]] == [ids[1]] and rest["next_cursor"] is None
    _, replies = await call("GET", f"{path}?parent_id={ids[0]}", world.stranger)
    assert [c["id"] for c in replies["items"]] == [reply["id"]]
    _, item = await call("GET", f"/v1/creator/content/{content_id}", world.fan)
    assert item["comment_count"] == 5


async def test_authors_edit_and_authors_creators_or_staff_delete(
    call: Call, db: asyncpg.Connection, world: World, api: TestClient, secret: str
) -> None:
    content_id = await _post(db, world.creator)
    path = f"/v1/creator/content/{content_id}/comments"
    _, first = await call("POST", path, world.fan, json={"body": "frist"})
    one = f"/v1/creator/comments/{first['id']}"
    status, edited = await call("PATCH", one, world.fan, json={"body": "first"})
    assert status == 200 and edited["body"] == "first" and edited["edited_at"]
    assert (await call("PATCH", one, world.creator, json={"body": "rewritten"}))[0] == 403
    _, reply = await call(
        "POST", path, world.stranger, json={"body": "+1", "parent_id": first["id"]}
    )

    assert await _delete(api, secret, world.stranger, one) == 403
    assert await _delete(api, secret, world.creator, one) == 204  # the content's creator
    # a deleted comment with replies stays as a tombstone, naming nobody
    _, page = await call("GET", path, world.stranger)
    (tombstone,) = page["items"]
    assert tombstone["deleted"] is True and tombstone["body"] is None
    assert tombstone["user_id"] is None and tombstone["reply_count"] == 1
    assert (await call("PATCH", one, world.fan, json={"body": "back"}))[0] == 404

    assert await _delete(api, secret, world.moderator, f"/v1/creator/comments/{reply['id']}") == 204
    _, page = await call("GET", path, world.stranger)
    assert page["items"] == []
    _, own = await call("POST", path, world.fan, json={"body": "mine"})
    assert await _delete(api, secret, world.fan, f"/v1/creator/comments/{own['id']}") == 204


async def test_commenting_needs_a_verified_age(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    content_id = await _post(db, world.creator)
    unverified = await make_account(db, verified=False)
    status, _ = await call(
        "POST", f"/v1/creator/content/{content_id}/comments", unverified, json={"body": "hi"}
    )
    assert status == 403
    status, _ = await call(
        "POST", f"/v1/creator/content/{content_id}/comments", world.fan, json={"body": "   "}
    )
    assert status == 400
