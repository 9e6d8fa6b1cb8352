"""Community posts, comments and votes: authors write as themselves under RLS, a locked post
takes no comments, one vote per user per target (`conflict` on a second, nothing lost), and
scores stay equal to the votes under concurrent voting."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp.test_utils import TestClient

from tests.realms.academy.conftest import Academy

POSTS = "/v1/academy/posts"
VOTES = "/v1/academy/votes"


async def test_posts_and_comments_keep_counters_and_only_authors_edit(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    author, ha = await academy.user()
    _, hb = await academy.user()
    r = await academy_api.post(
        POSTS, json={"title": "RSI?", "content": "Is it enough?"}, headers=ha
    )
    assert r.status == 201, await r.text()
    post = await r.json()
    assert post["author_id"] == str(author)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM academy.user_activity_log WHERE user_id = $1"
            " AND activity_type = 'post_create'",
            author,
        )
        == 1
    )
    r = await academy_api.post(
        f"{POSTS}/{post['id']}/comments", json={"content": "No."}, headers=hb
    )
    assert r.status == 201
    comment = await r.json()
    reply = await academy_api.post(
        f"{POSTS}/{post['id']}/comments",
        json={"content": "Why?", "parent_comment_id": comment["id"]},
        headers=ha,
    )
    assert reply.status == 201
    got = await (await academy_api.get(f"{POSTS}/{post['id']}", headers=hb)).json()
    assert (got["comments_count"], got["views_count"]) == (2, 1)
    listed = await (await academy_api.get(f"{POSTS}/{post['id']}/comments", headers=hb)).json()
    assert [c["content"] for c in listed["items"]] == ["No.", "Why?"]
    assert (
        await academy_api.patch(f"{POSTS}/{post['id']}", json={"title": "x"}, headers=hb)
    ).status == 404
    assert (await academy_api.delete(f"{POSTS}/{post['id']}", headers=hb)).status == 404
    assert (
        await academy_api.patch(f"{POSTS}/{post['id']}", json={"title": "RSI!"}, headers=ha)
    ).status == 200
    assert (await academy_api.delete(f"{POSTS}/{post['id']}", headers=ha)).status == 204


async def test_locked_posts_take_no_comments_and_only_admins_lock_or_announce(
    academy_api: TestClient, academy: Academy
) -> None:
    _, ha = await academy.user()
    _, admin = await academy.user(admin=True)
    r = await academy_api.post(POSTS, json={"title": "t", "post_type": "announcement"}, headers=ha)
    assert r.status == 403
    post = await (await academy_api.post(POSTS, json={"title": "t"}, headers=ha)).json()
    path = f"{POSTS}/{post['id']}"
    assert (
        await academy_api.post(f"{path}/moderation", json={"is_locked": True}, headers=ha)
    ).status == 403
    r = await academy_api.post(f"{path}/moderation", json={"is_locked": True}, headers=admin)
    assert (await r.json())["is_locked"] is True
    r = await academy_api.post(f"{path}/comments", json={"content": "late"}, headers=ha)
    assert r.status == 403


async def test_a_second_vote_on_the_same_target_is_a_conflict_and_loses_nothing(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    _, ha = await academy.user()
    _, hb = await academy.user()
    post = await (await academy_api.post(POSTS, json={"title": "t"}, headers=ha)).json()
    body = {"target_type": "post", "target_id": post["id"], "vote_type": "upvote"}
    r = await academy_api.post(VOTES, json=body, headers=hb)
    assert r.status == 201 and (await r.json())["score"] == 1
    again = await academy_api.post(VOTES, json={**body, "vote_type": "downvote"}, headers=hb)
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "conflict"
    row = await db.fetchrow(
        "SELECT upvotes_count, downvotes_count FROM academy.community_posts WHERE id = $1::uuid",
        post["id"],
    )
    assert tuple(row) == (1, 0)
    assert await db.fetchval("SELECT count(*) FROM academy.community_votes") == 1
    gone = await academy_api.delete(f"{VOTES}/post/{post['id']}", headers=hb)
    assert (await gone.json())["score"] == 0
    missing = {"target_type": "comment", "target_id": post["id"], "vote_type": "upvote"}
    assert (await academy_api.post(VOTES, json=missing, headers=hb)).status == 404


async def test_scores_stay_consistent_under_concurrent_votes(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    _, ha = await academy.user()
    post = await (await academy_api.post(POSTS, json={"title": "t"}, headers=ha)).json()
    voters = [await academy.user() for _ in range(60)]

    async def cast(i: int, headers: dict[str, str]) -> list[int]:
        body = {
            "target_type": "post",
            "target_id": post["id"],
            "vote_type": "upvote" if i % 3 else "downvote",
        }
        first, second = await asyncio.gather(
            academy_api.post(VOTES, json=body, headers=headers),
            academy_api.post(VOTES, json=body, headers=headers),
        )
        return sorted([first.status, second.status])

    outcomes = await asyncio.gather(*(cast(i, h) for i, (_, h) in enumerate(voters)))
    assert all(o == [201, 409] for o in outcomes)
    counts = await db.fetchrow(
        "SELECT p.upvotes_count AS up, p.downvotes_count AS down,"
        " (SELECT count(*) FILTER (WHERE vote_type = 'upvote')"
        "   FROM academy.community_votes) AS ups,"
        " (SELECT count(*) FILTER (WHERE vote_type = 'downvote')"
        "   FROM academy.community_votes) AS downs"
        " FROM academy.community_posts p WHERE p.id = $1::uuid",
        post["id"],
    )
    assert (counts["up"], counts["down"]) == (counts["ups"], counts["downs"]) == (40, 20)
