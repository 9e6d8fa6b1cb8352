"""Bookmarks over HTTP: saving readable posts with notes, once each, privately; the list and
its pages; the count the database keeps on the post."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.api.test_posts import World, make_world, publish, refused, reply
from tests.factories import make_user

# Fixed, so that parametrised test ids are the same in every pytest-xdist worker.
UNKNOWN_ID = uuid.UUID("00000000-0000-4000-8000-00000000dead")


@pytest.fixture
async def world(db: asyncpg.Connection, secret: str) -> World:
    return await make_world(db, secret)


async def bookmark(api: TestClient, world: World, user: uuid.UUID, post_id: str, **f: Any) -> Any:
    body = {"post_id": post_id, **f}
    return await reply(await api.post("/v1/bookmarks", json=body, headers=world.h(user)), 201)


async def test_a_user_bookmarks_a_post_with_notes_and_the_post_counts_it(
    api: TestClient, world: World
) -> None:
    post = await publish(api, world)
    saved = await bookmark(api, world, world.paid, post["id"], notes="check at close")
    assert saved["post_id"] == post["id"] and saved["notes"] == "check at close"
    assert saved["post"]["id"] == post["id"] and saved["post"]["bookmarks_count"] == 1
    await bookmark(api, world, world.stranger, post["id"])
    seen = await reply(
        await api.get(f"/v1/posts/{post['id']}", headers=world.h(world.analyst)), 200
    )
    assert seen["bookmarks_count"] == 2
    await reply(await api.delete(f"/v1/bookmarks/{saved['id']}", headers=world.h(world.paid)), 204)
    seen = await reply(
        await api.get(f"/v1/posts/{post['id']}", headers=world.h(world.analyst)), 200
    )
    assert seen["bookmarks_count"] == 1


async def test_a_post_is_bookmarked_once_per_user(api: TestClient, world: World) -> None:
    post = await publish(api, world)
    await bookmark(api, world, world.paid, post["id"])
    again = await api.post(
        "/v1/bookmarks", json={"post_id": post["id"]}, headers=world.h(world.paid)
    )
    await refused(again, 409, "already")


async def test_a_paid_post_is_bookmarked_only_by_readers_entitled_to_it(
    api: TestClient, world: World
) -> None:
    post = await publish(api, world, audience="paid")
    for outsider in (world.stranger, world.free):
        response = await api.post(
            "/v1/bookmarks", json={"post_id": post["id"]}, headers=world.h(outsider)
        )
        await refused(response, 403, "paid")
    for reader in (world.paid, world.analyst, world.admin):
        await bookmark(api, world, reader, post["id"])


async def test_a_deleted_or_unknown_post_cannot_be_bookmarked(
    api: TestClient, world: World
) -> None:
    post = await publish(api, world)
    await reply(await api.delete(f"/v1/posts/{post['id']}", headers=world.h(world.analyst)), 204)
    for post_id in (post["id"], str(uuid.uuid4())):
        response = await api.post(
            "/v1/bookmarks", json={"post_id": post_id}, headers=world.h(world.paid)
        )
        await refused(response, 404, "post")


async def test_notes_are_edited_and_cleared_by_their_owner_only(
    api: TestClient, world: World
) -> None:
    post = await publish(api, world)
    saved = await bookmark(api, world, world.paid, post["id"], notes="first")
    path = f"/v1/bookmarks/{saved['id']}"
    for other in (world.stranger, world.analyst, world.admin):
        await refused(await api.patch(path, json={"notes": "mine"}, headers=world.h(other)), 404)
    edited = await reply(
        await api.patch(path, json={"notes": "second"}, headers=world.h(world.paid)), 200
    )
    assert edited["notes"] == "second" and edited["updated_at"] >= saved["updated_at"]
    cleared = await reply(
        await api.patch(path, json={"notes": None}, headers=world.h(world.paid)), 200
    )
    assert cleared["notes"] is None


async def test_a_bookmark_is_removed_by_its_owner_only(api: TestClient, world: World) -> None:
    post = await publish(api, world)
    saved = await bookmark(api, world, world.paid, post["id"])
    path = f"/v1/bookmarks/{saved['id']}"
    for other in (world.stranger, world.admin):
        await refused(await api.delete(path, headers=world.h(other)), 404)
    await reply(await api.delete(path, headers=world.h(world.paid)), 204)
    await refused(await api.delete(path, headers=world.h(world.paid)), 404)


async def test_the_list_holds_only_ones_own_bookmarks_newest_first_in_pages(
    api: TestClient, world: World
) -> None:
    posts = [await publish(api, world) for _ in range(5)]
    mine = [(await bookmark(api, world, world.paid, p["id"]))["id"] for p in posts]
    await bookmark(api, world, world.stranger, posts[0]["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await reply(
            await api.get("/v1/bookmarks", params=params, headers=world.h(world.paid)), 200
        )
        assert len(page["items"]) <= 2
        seen += [b["id"] for b in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == mine[::-1]
    response = await api.get("/v1/bookmarks", params={"cursor": "%%%"}, headers=world.h(world.paid))
    await refused(response, 400, "cursor")
    response = await api.get("/v1/bookmarks", params={"limit": "101"}, headers=world.h(world.paid))
    await refused(response, 400, "limit")


async def test_the_list_shows_deleted_posts_as_null_and_lapsed_paid_posts_locked(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    gone = await publish(api, world)
    paid = await publish(api, world, audience="paid")
    await bookmark(api, world, world.paid, gone["id"])
    await bookmark(api, world, world.paid, paid["id"])
    await reply(await api.delete(f"/v1/posts/{gone['id']}", headers=world.h(world.analyst)), 204)
    await db.execute(
        "UPDATE analyst.subscriptions SET status = 'cancelled' WHERE user_id = $1", world.paid
    )
    page = await reply(await api.get("/v1/bookmarks", headers=world.h(world.paid)), 200)
    by_post = {b["post_id"]: b["post"] for b in page["items"]}
    assert by_post[gone["id"]] is None
    assert by_post[paid["id"]]["locked"] is True and by_post[paid["id"]]["content"] is None


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"post_id": "not-a-uuid"}, "post_id"),
        ({}, "post_id"),
        ({"post_id": str(uuid.uuid4()), "notes": "x" * 2001}, "notes"),
        ({"post_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4())}, "user_id"),
    ],
)
async def test_malformed_bookmarks_are_refused_naming_the_field(
    api: TestClient, world: World, body: dict[str, Any], named: str
) -> None:
    response = await api.post("/v1/bookmarks", json=body, headers=world.h(world.paid))
    await refused(response, 400, named)


async def test_a_malformed_bookmark_id_is_refused(api: TestClient, world: World) -> None:
    await refused(await api.delete("/v1/bookmarks/123", headers=world.h(world.paid)), 400, "id")
    response = await api.patch(
        "/v1/bookmarks/123", json={"notes": "x"}, headers=world.h(world.paid)
    )
    await refused(response, 400, "id")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/bookmarks", {"post_id": str(UNKNOWN_ID)}),
        ("GET", "/v1/bookmarks", None),
        ("PATCH", f"/v1/bookmarks/{UNKNOWN_ID}", {"notes": None}),
        ("DELETE", f"/v1/bookmarks/{UNKNOWN_ID}", None),
    ],
)
async def test_every_bookmark_route_requires_a_token(
    api: TestClient, method: str, path: str, body: Any
) -> None:
    await reply(await api.request(method, path, json=body), 401)


async def test_a_deactivated_user_is_refused(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    user = await make_user(db, is_active=False)
    await refused(await api.get("/v1/bookmarks", headers=world.h(user)), 401)
