"""Stories, reels (likes, comments) and subscriptions over REST on real Postgres: only sellers
post, a story lives 24 hours and counts each viewer once, counters stay exact under
concurrent likes and views, and the feed shows the active stories of subscribed sellers."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from realms.market import jobs
from tests.realms.market.conftest import bearer
from tests.realms.market.world import NO_SUCH_ID, World

STORY = {"type": "image", "media_url": "https://cdn.example.com/s1.jpg", "caption": "New in"}
REEL = {
    "video_url": "https://cdn.example.com/r1.mp4",
    "thumbnail_url": "https://cdn.example.com/r1.jpg",
    "duration": 20,
}


async def call(
    api: TestClient, secret: str, user: int, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    resp = await api.request(method, "/v1/market" + path, json=body, headers=bearer(secret, user))
    return resp.status, (await resp.json()) if resp.status != 204 else None


class Clock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        raise NotImplementedError


async def test_only_sellers_post_stories_and_the_feed_shows_active_stories_of_subscribed_sellers(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    seller, other, buyer, courier = (
        await world.seller(),
        await world.seller(),
        await world.buyer(),
        await world.courier(),
    )
    for outsider in (buyer, courier, await world.admin("super_admin")):
        assert (await call(market_api, secret, outsider, "POST", "/stories", STORY))[0] == 403
    status, story = await call(market_api, secret, seller, "POST", "/stories", STORY)
    assert status == 201 and story["view_count"] == 0 and story["viewed"] is False
    lifetime = datetime.fromisoformat(story["expires_at"]) - datetime.fromisoformat(
        story["created_at"]
    )
    assert lifetime == timedelta(hours=24)
    _, others = await call(market_api, secret, other, "POST", "/stories", STORY)
    # posted 25 hours ago: expired, though the expiry job has not switched it off yet
    stale = await world.story(
        seller,
        created_at=datetime.now().astimezone() - timedelta(hours=25),
        expires_at=datetime.now().astimezone() - timedelta(hours=1),
    )
    assert (await call(market_api, secret, buyer, "GET", "/stories"))[1]["items"] == []
    status, sub = await call(market_api, secret, buyer, "PUT", f"/sellers/{seller}/subscription")
    assert status == 200 and sub == {"seller_id": seller, "subscribed": True, "subscriber_count": 1}
    _, feed = await call(market_api, secret, buyer, "GET", "/stories")
    assert [s["id"] for s in feed["items"]] == [story["id"]]
    _, theirs = await call(market_api, secret, buyer, "GET", f"/stories?seller_id={other}")
    assert [s["id"] for s in theirs["items"]] == [others["id"]]
    assert (await call(market_api, secret, buyer, "GET", f"/stories/{stale}"))[0] == 404
    assert (await call(market_api, secret, seller, "GET", f"/stories/{stale}"))[0] == 200
    assert await jobs.expire_stories(db, Clock(datetime.now().astimezone())) == 1
    assert await world.value("stories", "is_active", stale) is False
    # deletion: by its author (or technical_access staff) only
    path = f"/stories/{story['id']}"
    assert (await call(market_api, secret, buyer, "DELETE", path))[0] == 403
    assert (await call(market_api, secret, other, "DELETE", path))[0] == 403
    assert (await call(market_api, secret, seller, "DELETE", path))[0] == 204
    assert (await call(market_api, secret, buyer, "GET", "/stories"))[1]["items"] == []
    assert (await call(market_api, secret, buyer, "GET", path))[0] == 404
    moderator = await world.admin("technical_access")
    assert (await call(market_api, secret, moderator, "DELETE", f"/stories/{others['id']}"))[
        0
    ] == 204


async def test_a_story_counts_each_viewer_once_under_concurrent_views(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    seller = await world.seller()
    viewers = [await world.buyer() for _ in range(10)]
    _, story = await call(market_api, secret, seller, "POST", "/stories", STORY)
    path = f"/stories/{story['id']}/views"
    results = await asyncio.gather(
        *(call(market_api, secret, v, "POST", path) for v in viewers * 3)
    )
    assert {status for status, _ in results} == {200}
    assert sum(body["counted"] for _, body in results) == 10
    status, own = await call(market_api, secret, seller, "POST", path)
    assert status == 200 and own == {"story_id": story["id"], "view_count": 10, "counted": False}
    assert await world.value("stories", "view_count", story["id"]) == 10
    assert (
        await db.fetchval(
            "SELECT count(*) FROM market.story_views WHERE story_id = $1", story["id"]
        )
        == 10
    )
    _, seen = await call(market_api, secret, viewers[0], "GET", f"/stories/{story['id']}")
    assert seen["viewed"] is True and seen["view_count"] == 10
    # who viewed: the author only, a page at a time
    assert (await call(market_api, secret, viewers[0], "GET", path))[0] == 403
    _, first = await call(market_api, secret, seller, "GET", path + "?limit=6")
    _, rest = await call(
        market_api, secret, seller, "GET", f"{path}?limit=6&cursor={first['next_cursor']}"
    )
    assert rest["next_cursor"] is None
    assert sorted(v["viewer_id"] for v in first["items"] + rest["items"]) == sorted(viewers)
    # an expired story takes no more views; an unknown one is 404
    expired = await world.story(
        seller,
        created_at=datetime.now().astimezone() - timedelta(hours=30),
        expires_at=datetime.now().astimezone() - timedelta(hours=6),
    )
    status, refused = await call(
        market_api, secret, viewers[0], "POST", f"/stories/{expired}/views"
    )
    assert status == 409 and refused["error"]["details"]["reason"] == "story_expired"
    assert (await call(market_api, secret, viewers[0], "POST", f"/stories/{NO_SUCH_ID}/views"))[
        0
    ] == 404


async def test_50_concurrent_likes_are_counted_exactly_and_unlikes_take_them_back(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    seller = await world.seller()
    fans = [await world.buyer() for _ in range(50)]
    assert (await call(market_api, secret, fans[0], "POST", "/reels", REEL))[0] == 403
    status, reel = await call(market_api, secret, seller, "POST", "/reels", REEL)
    assert status == 201 and reel["like_count"] == 0 and reel["liked"] is False
    like = f"/reels/{reel['id']}/like"
    results = await asyncio.gather(*(call(market_api, secret, f, "PUT", like) for f in fans))
    assert {status for status, _ in results} == {200}
    assert max(body["like_count"] for _, body in results) == 50
    assert await world.value("reels", "like_count", reel["id"]) == 50
    # the same user liking twice at once, half the fans unliking at the same time
    results = await asyncio.gather(
        *(call(market_api, secret, f, "PUT", like) for f in fans[:25] * 2),
        *(call(market_api, secret, f, "DELETE", like) for f in fans[25:]),
    )
    assert {status for status, _ in results} == {200}
    likes = await db.fetchval(
        "SELECT count(*) FROM market.reel_likes WHERE reel_id = $1", reel["id"]
    )
    assert likes == 25 and await world.value("reels", "like_count", reel["id"]) == 25
    _, mine = await call(market_api, secret, fans[0], "GET", f"/reels/{reel['id']}")
    _, gone = await call(market_api, secret, fans[-1], "GET", f"/reels/{reel['id']}")
    assert (mine["liked"], gone["liked"], gone["like_count"]) == (True, False, 25)
    status, again = await call(market_api, secret, fans[-1], "DELETE", like)
    assert status == 200 and again == {"reel_id": reel["id"], "liked": False, "like_count": 25}
    assert (await call(market_api, secret, fans[0], "PUT", f"/reels/{NO_SUCH_ID}/like"))[0] == 404


async def test_reel_comments_have_replies_pages_and_deletion_by_their_authors(
    market_api: TestClient, world: World, secret: str
) -> None:
    seller, other, buyer, stranger = (
        await world.seller(),
        await world.seller(),
        await world.buyer(),
        await world.buyer(),
    )
    _, reel = await call(market_api, secret, seller, "POST", "/reels", REEL)
    _, elsewhere = await call(market_api, secret, other, "POST", "/reels", REEL)
    path = f"/reels/{reel['id']}/comments"
    made = []
    for n in range(5):
        status, c = await call(market_api, secret, buyer, "POST", path, {"content": f"c{n}"})
        assert status == 201 and c["parent_id"] is None
        made.append(c["id"])
    status, reply = await call(
        market_api, secret, stranger, "POST", path, {"content": "agreed", "parent_id": made[0]}
    )
    assert status == 201 and reply["parent_id"] == made[0]
    # a reply must answer a comment of the same reel
    assert (
        await call(
            market_api,
            secret,
            buyer,
            "POST",
            f"/reels/{elsewhere['id']}/comments",
            {"content": "x", "parent_id": made[0]},
        )
    )[0] == 404
    assert (await call(market_api, secret, buyer, "POST", path, {"content": "   "}))[0] == 400
    assert await world.value("reels", "comment_count", reel["id"]) == 6
    # top-level comments oldest first, two per page; replies listed under their comment
    seen, cursor = [], ""
    while True:
        _, page = await call(market_api, secret, stranger, "GET", f"{path}?limit=2{cursor}")
        seen += page["items"]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert [c["id"] for c in seen] == made
    assert [c["reply_count"] for c in seen] == [1, 0, 0, 0, 0]
    _, replies = await call(market_api, secret, buyer, "GET", f"{path}?parent_id={made[0]}")
    assert [c["id"] for c in replies["items"]] == [reply["id"]]
    # deletion: the comment's author, the reel's author; not a stranger
    assert (await call(market_api, secret, stranger, "DELETE", f"{path}/{made[1]}"))[0] == 403
    assert (await call(market_api, secret, buyer, "DELETE", f"{path}/{made[1]}"))[0] == 204
    assert (await call(market_api, secret, seller, "DELETE", f"{path}/{reply['id']}"))[0] == 204
    assert (await call(market_api, secret, buyer, "DELETE", f"{path}/{made[1]}"))[0] == 404
    assert await world.value("reels", "comment_count", reel["id"]) == 4
    # a reel is deleted by its author only, and is gone for everyone after
    reel_path = f"/reels/{reel['id']}"
    assert (await call(market_api, secret, other, "DELETE", reel_path))[0] == 403
    assert (await call(market_api, secret, seller, "DELETE", reel_path))[0] == 204
    for method, sub in (("GET", ""), ("PUT", "/like"), ("GET", "/comments")):
        assert (await call(market_api, secret, buyer, method, reel_path + sub))[0] == 404
    _, listed = await call(market_api, secret, buyer, "GET", f"/reels?seller_id={seller}")
    assert listed["items"] == []


async def test_subscriptions_are_to_sellers_idempotent_and_counted(
    market_api: TestClient, world: World, secret: str
) -> None:
    seller, other, buyer, courier = (
        await world.seller(),
        await world.seller(),
        await world.buyer(),
        await world.courier(),
    )
    await world.story(seller)
    path = f"/sellers/{seller}/subscription"
    for _ in range(2):
        status, sub = await call(market_api, secret, buyer, "PUT", path)
        assert status == 200 and sub["subscriber_count"] == 1
    await call(market_api, secret, courier, "PUT", path)
    await call(market_api, secret, other, "PUT", path)  # a seller follows another seller
    await call(market_api, secret, buyer, "PUT", f"/sellers/{other}/subscription")
    _, seen = await call(market_api, secret, seller, "GET", path)
    assert seen == {"seller_id": seller, "subscribed": False, "subscriber_count": 3}
    assert (await call(market_api, secret, seller, "PUT", path))[0] == 400  # oneself
    assert (await call(market_api, secret, buyer, "PUT", f"/sellers/{courier}/subscription"))[
        0
    ] == 404
    _, mine = await call(market_api, secret, buyer, "GET", "/subscriptions?limit=1")
    assert [s["seller_id"] for s in mine["items"]] == [other] and mine["next_cursor"]
    _, more = await call(
        market_api, secret, buyer, "GET", f"/subscriptions?cursor={mine['next_cursor']}"
    )
    assert [(s["seller_id"], s["active_stories"]) for s in more["items"]] == [(seller, 1)]
    for _ in range(2):
        status, sub = await call(market_api, secret, buyer, "DELETE", path)
        assert status == 200 and sub == {
            "seller_id": seller,
            "subscribed": False,
            "subscriber_count": 2,
        }
    _, left = await call(market_api, secret, buyer, "GET", "/subscriptions")
    assert [s["seller_id"] for s in left["items"]] == [other]


async def test_the_social_routes_are_in_the_openapi_document(market_api: TestClient) -> None:
    paths = (await (await market_api.get("/openapi.json")).json())["paths"]
    for path in (
        "/stories",
        "/stories/{story_id}/views",
        "/reels/{reel_id}/like",
        "/reels/{reel_id}/comments",
        "/sellers/{seller_id}/subscription",
        "/subscriptions",
    ):
        path = "/v1/market" + path
        assert path in paths, path
