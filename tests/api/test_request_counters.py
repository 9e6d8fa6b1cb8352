"""Issue 21 item 4, the counters that count requests rather than rows: posts.views_count (each
read of a post by someone other than its analyst) and invite_links.total_clicks /
unique_visitors (each follow of the link). Concurrent requests must each count once."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient

from tests.api.test_posts import make_world, publish
from tests.factories import insert_row, make_analyst

READS = 40


async def test_concurrent_reads_each_count_one_view(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    world = await make_world(db, secret)
    post = await publish(api, world)
    readers = [world.paid, world.free, world.stranger, world.rival, world.admin]
    responses = await asyncio.gather(
        *(
            api.get(f"/v1/posts/{post['id']}", headers=world.h(readers[i % len(readers)]))
            for i in range(READS)
        ),
        *(api.get(f"/v1/posts/{post['id']}", headers=world.h(world.analyst)) for _ in range(5)),
    )
    assert all(r.status == 200 for r in responses)
    views = await db.fetchval(
        "SELECT views_count FROM analyst.posts WHERE id = $1::uuid", post["id"]
    )
    assert views == READS  # the analyst's own reads do not count


async def test_concurrent_follows_of_an_invite_link_each_count_one_click(
    api: TestClient, db: asyncpg.Connection
) -> None:
    analyst = await make_analyst(db, verification_status="approved")
    link = await insert_row(db, "invite_links", {"analyst_id": analyst, "invite_code": "RACE"})
    url = str(api.make_url("/v1/i/RACE"))

    async def visitor() -> int:
        async with ClientSession() as session:  # a cookie jar each: a new visitor each
            async with session.get(url, allow_redirects=False) as response:
                return response.status

    statuses = await asyncio.gather(*(visitor() for _ in range(READS)))
    assert statuses == [302] * READS
    row = await db.fetchrow(
        "SELECT total_clicks, unique_visitors FROM analyst.invite_links WHERE id = $1", link
    )
    assert (row["total_clicks"], row["unique_visitors"]) == (READS, READS)
