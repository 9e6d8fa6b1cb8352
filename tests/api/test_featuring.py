"""Featuring over HTTP (issue 21 item 2): admins feature analysts at homepage positions (insert,
move, remove, with positions kept 1..n and unique even under concurrent admins) and feature
posts; everyone reads the ordered homepage lists; bad input gets its documented error."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.api.test_posts import World, make_world, publish, refused, reply
from tests.factories import make_analyst, make_user


@pytest.fixture
async def world(db: asyncpg.Connection, secret: str) -> World:
    return await make_world(db, secret)


async def approved(db: asyncpg.Connection) -> uuid.UUID:
    return await make_analyst(db, verification_status="approved")


async def feature(
    api: TestClient, world: World, analyst: uuid.UUID, position: int | None = None
) -> Any:
    body = {} if position is None else {"position": position}
    return await api.put(
        f"/v1/admin/analysts/{analyst}/feature", json=body, headers=world.h(world.admin)
    )


async def homepage(api: TestClient, world: World) -> list[tuple[str, int]]:
    listed = await reply(
        await api.get("/v1/featured/analysts", headers=world.h(world.stranger)), 200
    )
    return [(a["analyst_id"], a["feature_position"]) for a in listed]


async def test_admins_insert_move_and_remove_featured_analysts_in_homepage_order(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    a, b, c, d = [await approved(db) for _ in range(4)]
    for analyst in (a, b, c):
        await reply(await feature(api, world, analyst), 200)
    first = await reply(await feature(api, world, d, 1), 200)
    assert (first["is_featured"], first["feature_position"]) == (True, 1)
    assert await homepage(api, world) == [(str(d), 1), (str(a), 2), (str(b), 3), (str(c), 4)]
    await reply(await feature(api, world, c, 2), 200)  # move
    assert await homepage(api, world) == [(str(d), 1), (str(c), 2), (str(a), 3), (str(b), 4)]
    await reply(await feature(api, world, a, 99), 200)  # past the end: last
    assert [x for x, _ in await homepage(api, world)] == [str(d), str(c), str(b), str(a)]
    path = f"/v1/admin/analysts/{c}/feature"
    await reply(await api.delete(path, headers=world.h(world.admin)), 204)
    assert await homepage(api, world) == [(str(d), 1), (str(b), 2), (str(a), 3)]
    await refused(await api.delete(path, headers=world.h(world.admin)), 409, "not featured")
    profile = await reply(await api.get(f"/v1/analysts/{c}", headers=world.h(world.paid)), 200)
    assert (profile["is_featured"], profile["feature_position"]) == (False, None)


async def test_featuring_refuses_non_analysts_unknown_users_unapproved_profiles_and_non_admins(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    await refused(await feature(api, world, world.paid), 400, "not an analyst")
    await refused(await feature(api, world, uuid.uuid4()), 404)
    pending = await make_analyst(db)
    await refused(await feature(api, world, pending), 409, "approved")
    suspended = await approved(db)
    await db.execute("UPDATE analyst.users SET is_active = false WHERE id = $1", suspended)
    await refused(await feature(api, world, suspended), 409, "not active")
    target = await approved(db)
    for user in (world.analyst, world.paid):
        response = await api.put(
            f"/v1/admin/analysts/{target}/feature", json={}, headers=world.h(user)
        )
        assert response.status == 403
    await refused(
        await api.put(
            f"/v1/admin/analysts/{target}/feature",
            json={"position": 0},
            headers=world.h(world.admin),
        ),
        400,
    )


async def test_concurrent_admins_never_give_two_analysts_one_position(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    analysts = [await approved(db) for _ in range(8)]
    other_admin = await make_user(db, user_type="admin")
    responses = await asyncio.gather(
        *(
            api.put(
                f"/v1/admin/analysts/{analyst}/feature",
                json={"position": 1},
                headers=world.h(world.admin if i % 2 else other_admin),
            )
            for i, analyst in enumerate(analysts)
        )
    )
    assert [r.status for r in responses] == [200] * 8
    positions = [p for _, p in await homepage(api, world)]
    assert positions == list(range(1, 9))


async def test_the_homepage_lists_only_analysts_anyone_may_see(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    shown, hidden = await approved(db), await approved(db)
    await reply(await feature(api, world, shown), 200)
    await reply(await feature(api, world, hidden), 200)
    await db.execute("UPDATE analyst.users SET is_active = false WHERE id = $1", hidden)
    assert await homepage(api, world) == [(str(shown), 1)]


async def test_admins_feature_posts_and_the_homepage_lists_them_newest_first(
    api: TestClient, world: World
) -> None:
    old = await publish(api, world)
    paid = await publish(api, world, audience="paid")
    plain = await publish(api, world)
    for post in (old, paid):
        featured = await reply(
            await api.post(f"/v1/admin/posts/{post['id']}/feature", headers=world.h(world.admin)),
            200,
        )
        assert featured["is_featured"] is True
    again = await api.post(f"/v1/admin/posts/{old['id']}/feature", headers=world.h(world.admin))
    await refused(again, 409, "already featured")
    listed = await reply(await api.get("/v1/featured/posts", headers=world.h(world.stranger)), 200)
    assert [p["id"] for p in listed["items"]] == [paid["id"], old["id"]]
    assert listed["items"][0]["locked"] is True and listed["items"][0]["content"] is None
    await reply(
        await api.delete(f"/v1/admin/posts/{old['id']}/feature", headers=world.h(world.admin)),
        204,
    )
    await refused(
        await api.delete(f"/v1/admin/posts/{plain['id']}/feature", headers=world.h(world.admin)),
        409,
        "not featured",
    )
    await refused(
        await api.post(f"/v1/admin/posts/{uuid.uuid4()}/feature", headers=world.h(world.admin)),
        404,
    )
    refused_to_analyst = await api.post(
        f"/v1/admin/posts/{plain['id']}/feature", headers=world.h(world.analyst)
    )
    assert refused_to_analyst.status == 403
    listed = await reply(await api.get("/v1/featured/posts", headers=world.h(world.paid)), 200)
    assert [p["id"] for p in listed["items"]] == [paid["id"]]
    assert listed["items"][0]["locked"] is False
