"""Posts over HTTP: publishing calls and their terms, audience locking, views, edits, soft
deletes, call outcomes, full-text search, the subscriber feed, timelines and the post events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from kernel.tokens import sign_access_token
from tests.factories import insert_row, make_analyst, make_subscription, make_tier, make_user

# Fixed, so that parametrised test ids are the same in every pytest-xdist worker.
UNKNOWN_ID = uuid.UUID("00000000-0000-4000-8000-00000000dead")

Headers = dict[str, str]


async def reply(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json() if status != 204 else None


async def refused(response: Any, status: int, *words: str) -> str:
    body = await reply(response, status)
    message: str = body["error"]["message"]
    for word in words:
        assert word in message, message
    return message


def bearer(secret: str, user_id: uuid.UUID) -> Headers:
    token = sign_access_token(secret, str(user_id), "analyst", 600)
    return {"Authorization": f"Bearer {token}"}


@dataclass
class World:
    """One analyst with a paid and a free tier; a paid subscriber, a free-tier subscriber, a
    user with no subscription, a second analyst, and an admin."""

    analyst: uuid.UUID
    paid_tier: uuid.UUID
    free_tier: uuid.UUID
    paid: uuid.UUID
    free: uuid.UUID
    stranger: uuid.UUID
    rival: uuid.UUID
    admin: uuid.UUID
    secret: str

    def h(self, user_id: uuid.UUID) -> Headers:
        return bearer(self.secret, user_id)


async def make_world(db: asyncpg.Connection, secret: str) -> World:
    analyst = await make_analyst(db)
    paid_tier = await make_tier(db, analyst, price_monthly=99900)
    free_tier = await make_tier(db, analyst, price_monthly=0, is_free_tier=True)
    paid, free, stranger = [await make_user(db) for _ in range(3)]
    await make_subscription(db, paid, paid_tier)
    await make_subscription(db, free, free_tier)
    return World(
        analyst=analyst,
        paid_tier=paid_tier,
        free_tier=free_tier,
        paid=paid,
        free=free,
        stranger=stranger,
        rival=await make_analyst(db),
        admin=await make_user(db, user_type="admin"),
        secret=secret,
    )


@pytest.fixture
async def world(db: asyncpg.Connection, secret: str) -> World:
    return await make_world(db, secret)


BUY = {
    "post_type": "call",
    "content": "Reliance breaking out of a six-week range on volume",
    "stock_symbol": "reliance",
    "action": "BUY",
    "entry_price": 2500,
    "target_price": 2700,
    "stop_loss": 2400,
}
SELL = {**BUY, "action": "SELL", "target_price": 2300, "stop_loss": 2600}


async def publish(api: TestClient, world: World, **fields: Any) -> dict[str, Any]:
    body = {**BUY, **fields}
    post: dict[str, Any] = await reply(
        await api.post("/v1/posts", json=body, headers=world.h(world.analyst)), 201
    )
    return post


# --- publishing -------------------------------------------------------------------------------


async def test_analyst_publishes_a_buy_call_with_computed_ratio_and_open_status(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    post = await publish(api, world)
    assert post["analyst_id"] == str(world.analyst)
    assert post["stock_symbol"] == "RELIANCE" and post["action"] == "BUY"
    assert (post["entry_price"], post["target_price"], post["stop_loss"]) == (2500, 2700, 2400)
    assert post["risk_reward_ratio"] == "1:2"
    assert post["call_status"] == "open" and post["closed_at"] is None
    assert post["audience"] == "both" and post["locked"] is False
    row = await db.fetchrow("SELECT * FROM analyst.posts WHERE id = $1::uuid", post["id"])
    assert row["risk_reward_ratio"] == "1:2" and row["call_status"] == "open"
    assert (
        await db.fetchval(
            "SELECT total_posts FROM analyst.analyst_profiles WHERE user_id = $1", world.analyst
        )
        == 1
    )


async def test_a_call_without_a_title_gets_one_that_does_not_reveal_its_side(
    api: TestClient, world: World
) -> None:
    post = await publish(api, world)
    assert post["title"] == "RELIANCE call"
    titled = await publish(api, world, title="Range breakout")
    assert titled["title"] == "Range breakout"


async def test_a_sell_call_is_accepted_with_target_below_entry_below_stop(
    api: TestClient, world: World
) -> None:
    post = await publish(api, world, **SELL)
    assert post["risk_reward_ratio"] == "1:2"


async def test_the_ratio_is_rounded_to_two_decimals(api: TestClient, world: World) -> None:
    post = await publish(api, world, entry_price=100, target_price=104, stop_loss=97)
    assert post["risk_reward_ratio"] == "1:1.33"


@pytest.mark.parametrize(
    ("prices", "side"),
    [
        ({"target_price": 2400, "stop_loss": 2300}, "BUY"),  # target below entry
        ({"target_price": 2700, "stop_loss": 2600}, "BUY"),  # stop above entry
        ({"target_price": 2500, "stop_loss": 2400}, "BUY"),  # target equal to entry
        ({"action": "SELL", "target_price": 2700, "stop_loss": 2600}, "SELL"),
        ({"action": "SELL", "target_price": 2300, "stop_loss": 2400}, "SELL"),
        ({"action": "SELL", "target_price": 2300, "stop_loss": 2500}, "SELL"),
    ],
)
async def test_call_prices_on_the_wrong_side_of_the_entry_are_refused(
    api: TestClient, world: World, prices: dict[str, Any], side: str
) -> None:
    response = await api.post("/v1/posts", json={**BUY, **prices}, headers=world.h(world.analyst))
    await refused(response, 400, side, "target_price", "stop_loss")


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("stock_symbol", "stock_symbol"),
        ("action", "action"),
        ("entry_price", "entry_price"),
        ("target_price", "target_price"),
        ("stop_loss", "stop_loss"),
    ],
)
async def test_a_buy_call_needs_its_symbol_action_and_three_prices(
    api: TestClient, world: World, missing: str, named: str
) -> None:
    body = {k: v for k, v in BUY.items() if k != missing}
    await refused(
        await api.post("/v1/posts", json=body, headers=world.h(world.analyst)), 400, named
    )


async def test_a_hold_call_needs_no_prices_and_no_order(api: TestClient, world: World) -> None:
    post = await publish(
        api,
        world,
        action="HOLD",
        entry_price=None,
        target_price=None,
        stop_loss=None,
        risk_reward_ratio="1:1.5",
    )
    assert post["action"] == "HOLD" and post["entry_price"] is None
    assert post["risk_reward_ratio"] == "1:1.5" and post["call_status"] == "open"


@pytest.mark.parametrize(
    "field", ["action", "entry_price", "risk_reward_ratio", "confidence_level"]
)
async def test_posts_other_than_calls_carry_no_call_terms(
    api: TestClient, world: World, field: str
) -> None:
    value = {
        "action": "BUY",
        "entry_price": 10,
        "risk_reward_ratio": "1:2",
        "confidence_level": "HIGH",
    }[field]
    body = {"post_type": "analysis", "content": "Markets look heavy", field: value}
    await refused(
        await api.post("/v1/posts", json=body, headers=world.h(world.analyst)), 400, field
    )


async def test_an_analysis_may_name_a_stock_and_has_no_call_status(
    api: TestClient, world: World
) -> None:
    body = {"post_type": "analysis", "content": "Banks look heavy", "stock_symbol": "HDFCBANK"}
    post = await reply(await api.post("/v1/posts", json=body, headers=world.h(world.analyst)), 201)
    assert post["call_status"] is None and post["title"] is None


@pytest.mark.parametrize(
    ("ratio", "accepted"),
    [("1:2", True), ("1:2.0", True), ("1:2.00", True), ("1:3", False), ("1:1.9", False)],
)
async def test_a_given_ratio_must_match_the_prices(
    api: TestClient, world: World, ratio: str, accepted: bool
) -> None:
    response = await api.post(
        "/v1/posts", json={**BUY, "risk_reward_ratio": ratio}, headers=world.h(world.analyst)
    )
    if accepted:
        assert (await reply(response, 201))["risk_reward_ratio"] == "1:2"
    else:
        await refused(response, 400, "risk_reward_ratio", "1:2")


async def test_a_given_ratio_is_compared_at_the_precision_it_is_written_with(
    api: TestClient, world: World
) -> None:
    prices = {"entry_price": 100, "target_price": 104, "stop_loss": 97}  # 1.333...
    for ratio in ("1:1", "1:1.3", "1:1.33"):
        body = {**BUY, **prices, "risk_reward_ratio": ratio}
        await reply(await api.post("/v1/posts", json=body, headers=world.h(world.analyst)), 201)
    body = {**BUY, **prices, "risk_reward_ratio": "1:1.34"}
    await refused(await api.post("/v1/posts", json=body, headers=world.h(world.analyst)), 400)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"audience": "vip"}, "audience"),
        ({"post_type": "rumour"}, "post_type"),
        ({"action": "buy"}, "action"),
        ({"entry_price": -5}, "entry_price"),
        ({"entry_price": "2500"}, "entry_price"),
        ({"entry_price": 2500.125}, "entry_price"),
        ({"stock_symbol": "RELIANCE; DROP"}, "stock_symbol"),
        ({"risk_reward_ratio": "2 to 1"}, "risk_reward_ratio"),
        ({"content": ""}, "content"),
        ({"title": "x" * 256}, "title"),
        ({"strategy_type": "scalping"}, "strategy_type"),
        ({"views_count": 1000}, "views_count"),
        ({"is_featured": True}, "is_featured"),
    ],
)
async def test_malformed_posts_are_refused_naming_the_field(
    api: TestClient, world: World, change: dict[str, Any], named: str
) -> None:
    response = await api.post("/v1/posts", json={**BUY, **change}, headers=world.h(world.analyst))
    await refused(response, 400, named)


async def test_only_analysts_publish_posts(api: TestClient, world: World) -> None:
    for user in (world.paid, world.admin):
        await refused(await api.post("/v1/posts", json=BUY, headers=world.h(user)), 403, "analyst")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/posts", BUY),
        ("GET", "/v1/posts/search?q=x", None),
        ("GET", "/v1/feed", None),
        ("GET", f"/v1/analysts/{UNKNOWN_ID}/posts", None),
        ("GET", f"/v1/posts/{UNKNOWN_ID}", None),
        ("PATCH", f"/v1/posts/{UNKNOWN_ID}", {}),
        ("DELETE", f"/v1/posts/{UNKNOWN_ID}", None),
        ("POST", f"/v1/posts/{UNKNOWN_ID}/call-status", {"call_status": "expired"}),
    ],
)
async def test_every_post_route_requires_a_token(
    api: TestClient, method: str, path: str, body: Any
) -> None:
    await reply(await api.request(method, path, json=body), 401)
    forged = {"Authorization": "Bearer not-a-token"}
    await reply(await api.request(method, path, json=body, headers=forged), 401)


# --- audience ---------------------------------------------------------------------------------


async def test_a_paid_post_is_locked_for_non_subscribers_and_free_tier_subscribers(
    api: TestClient, world: World
) -> None:
    post = await publish(
        api, world, audience="paid", title="Breakout", content_formatted={"setup": "flag"}
    )
    for reader in (world.stranger, world.free, world.rival):
        seen = await reply(await api.get(f"/v1/posts/{post['id']}", headers=world.h(reader)), 200)
        assert seen["locked"] is True
        assert seen["content"] is None and seen["content_formatted"] is None
        assert seen["action"] is None and seen["risk_reward_ratio"] is None
        assert seen["entry_price"] is None and seen["target_price"] is None
        assert seen["stop_loss"] is None
        assert seen["title"] == "Breakout" and seen["stock_symbol"] == "RELIANCE"


async def test_a_paid_post_is_open_to_paid_subscribers_its_analyst_and_admins(
    api: TestClient, world: World
) -> None:
    post = await publish(api, world, audience="paid", content_formatted={"setup": "flag"})
    for reader in (world.paid, world.analyst, world.admin):
        seen = await reply(await api.get(f"/v1/posts/{post['id']}", headers=world.h(reader)), 200)
        assert seen["locked"] is False and seen["content"] == BUY["content"]
        assert seen["entry_price"] == 2500 and seen["content_formatted"] == {"setup": "flag"}


@pytest.mark.parametrize(
    "subscription",
    [
        {"status": "cancelled"},
        {"status": "expired"},
        {"status": "pending_payment"},
        {"status": "active", "expires_at": datetime.now(UTC) - timedelta(minutes=1)},
        {"status": "active", "deleted_at": datetime.now(UTC)},
    ],
)
async def test_a_paid_post_stays_locked_without_a_live_active_subscription(
    api: TestClient, world: World, db: asyncpg.Connection, subscription: dict[str, Any]
) -> None:
    reader = await make_user(db)
    await make_subscription(db, reader, world.paid_tier, **subscription)
    post = await publish(api, world, audience="paid")
    seen = await reply(await api.get(f"/v1/posts/{post['id']}", headers=world.h(reader)), 200)
    assert seen["locked"] is True and seen["content"] is None


@pytest.mark.parametrize("audience", ["free", "both"])
async def test_free_and_both_posts_are_open_to_every_user(
    api: TestClient, world: World, audience: str
) -> None:
    post = await publish(api, world, audience=audience)
    seen = await reply(
        await api.get(f"/v1/posts/{post['id']}", headers=world.h(world.stranger)), 200
    )
    assert seen["locked"] is False and seen["content"] == BUY["content"]


# --- reading one post -------------------------------------------------------------------------


async def test_each_read_by_another_user_counts_a_view_and_the_authors_do_not(
    api: TestClient, world: World
) -> None:
    post = await publish(api, world)
    path = f"/v1/posts/{post['id']}"
    assert (await reply(await api.get(path, headers=world.h(world.analyst)), 200))[
        "views_count"
    ] == 0
    assert (await reply(await api.get(path, headers=world.h(world.paid)), 200))["views_count"] == 1
    assert (await reply(await api.get(path, headers=world.h(world.paid)), 200))["views_count"] == 2
    assert (await reply(await api.get(path, headers=world.h(world.analyst)), 200))[
        "views_count"
    ] == 2


async def test_an_unknown_or_malformed_post_id_is_refused(api: TestClient, world: World) -> None:
    await refused(await api.get(f"/v1/posts/{uuid.uuid4()}", headers=world.h(world.paid)), 404)
    await refused(await api.get("/v1/posts/not-a-uuid", headers=world.h(world.paid)), 400, "id")


# --- editing and deleting ---------------------------------------------------------------------


async def test_the_analyst_edits_their_post_and_null_clears_an_optional_field(
    api: TestClient, world: World
) -> None:
    post = await publish(api, world, strategy_type="swing", title="Old")
    edited = await reply(
        await api.patch(
            f"/v1/posts/{post['id']}",
            json={"title": "New", "strategy_type": None, "is_pinned": True, "audience": "paid"},
            headers=world.h(world.analyst),
        ),
        200,
    )
    assert edited["title"] == "New" and edited["strategy_type"] is None
    assert edited["is_pinned"] is True and edited["audience"] == "paid"
    assert edited["content"] == BUY["content"] and edited["risk_reward_ratio"] == "1:2"


async def test_nobody_but_the_author_edits_a_post(api: TestClient, world: World) -> None:
    post = await publish(api, world)
    for other in (world.rival, world.paid, world.admin):
        response = await api.patch(
            f"/v1/posts/{post['id']}", json={"title": "Mine"}, headers=world.h(other)
        )
        await refused(response, 403)


async def test_editing_prices_recomputes_the_ratio_and_rechecks_the_sides(
    api: TestClient, world: World
) -> None:
    post = await publish(api, world)
    path = f"/v1/posts/{post['id']}"
    edited = await reply(
        await api.patch(path, json={"target_price": 2800}, headers=world.h(world.analyst)), 200
    )
    assert edited["target_price"] == 2800 and edited["risk_reward_ratio"] == "1:3"
    response = await api.patch(path, json={"stop_loss": 2600}, headers=world.h(world.analyst))
    await refused(response, 400, "BUY")
    response = await api.patch(
        path, json={"risk_reward_ratio": "1:5"}, headers=world.h(world.analyst)
    )
    await refused(response, 400, "risk_reward_ratio")
    response = await api.patch(path, json={"stock_symbol": None}, headers=world.h(world.analyst))
    await refused(response, 400, "stock_symbol")


@pytest.mark.parametrize("field", ["post_type", "action", "call_status", "analyst_id"])
async def test_fixed_fields_of_a_post_cannot_be_edited(
    api: TestClient, world: World, field: str
) -> None:
    post = await publish(api, world)
    response = await api.patch(
        f"/v1/posts/{post['id']}", json={field: "SELL"}, headers=world.h(world.analyst)
    )
    await refused(response, 400, field)


async def test_a_non_call_cannot_gain_call_terms_by_edit(api: TestClient, world: World) -> None:
    body = {"post_type": "commentary", "content": "Quiet day"}
    post = await reply(await api.post("/v1/posts", json=body, headers=world.h(world.analyst)), 201)
    response = await api.patch(
        f"/v1/posts/{post['id']}", json={"entry_price": 10}, headers=world.h(world.analyst)
    )
    await refused(response, 400, "entry_price")


async def test_the_terms_of_a_closed_call_are_frozen(api: TestClient, world: World) -> None:
    post = await publish(api, world)
    path = f"/v1/posts/{post['id']}"
    await reply(
        await api.post(
            f"{path}/call-status",
            json={"call_status": "target_hit", "actual_exit_price": 2700},
            headers=world.h(world.analyst),
        ),
        200,
    )
    for change in ({"target_price": 2900}, {"stock_symbol": "TCS"}):
        response = await api.patch(path, json=change, headers=world.h(world.analyst))
        await refused(response, 409, "target_hit", *change)
    edited = await reply(
        await api.patch(path, json={"title": "Done"}, headers=world.h(world.analyst)), 200
    )
    assert edited["title"] == "Done"


async def test_the_author_or_an_admin_soft_deletes_a_post_and_others_may_not(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    first, second = await publish(api, world), await publish(api, world)
    for other in (world.rival, world.paid):
        await refused(await api.delete(f"/v1/posts/{first['id']}", headers=world.h(other)), 403)
    await reply(await api.delete(f"/v1/posts/{first['id']}", headers=world.h(world.analyst)), 204)
    await reply(await api.delete(f"/v1/posts/{second['id']}", headers=world.h(world.admin)), 204)
    assert await db.fetchval("SELECT count(*) FROM analyst.posts WHERE deleted_at IS NOT NULL") == 2
    await refused(await api.get(f"/v1/posts/{first['id']}", headers=world.h(world.analyst)), 404)
    await refused(await api.delete(f"/v1/posts/{first['id']}", headers=world.h(world.analyst)), 404)
    timeline = await reply(
        await api.get(f"/v1/analysts/{world.analyst}/posts", headers=world.h(world.paid)), 200
    )
    assert timeline["items"] == []
    assert (
        await db.fetchval(
            "SELECT total_posts FROM analyst.analyst_profiles WHERE user_id = $1", world.analyst
        )
        == 0
    )


# --- call outcomes ----------------------------------------------------------------------------


async def test_a_buy_call_hitting_its_target_records_the_outcome_and_profit(
    api: TestClient, world: World
) -> None:
    post = await publish(api, world)
    closed = await reply(
        await api.post(
            f"/v1/posts/{post['id']}/call-status",
            json={"call_status": "target_hit", "actual_exit_price": 2700},
            headers=world.h(world.analyst),
        ),
        200,
    )
    assert closed["call_status"] == "target_hit" and closed["closed_at"] is not None
    assert closed["actual_entry_price"] == 2500 and closed["actual_exit_price"] == 2700
    assert closed["actual_profit_percent"] == 8.0


async def test_a_sell_call_profits_when_the_price_falls(api: TestClient, world: World) -> None:
    post = await publish(api, world, **SELL)
    closed = await reply(
        await api.post(
            f"/v1/posts/{post['id']}/call-status",
            json={"call_status": "closed", "actual_entry_price": 2520, "actual_exit_price": 2394},
            headers=world.h(world.analyst),
        ),
        200,
    )
    assert closed["actual_entry_price"] == 2520 and closed["actual_profit_percent"] == 5.0


async def test_a_stop_loss_hit_records_a_loss(api: TestClient, world: World) -> None:
    post = await publish(api, world)
    closed = await reply(
        await api.post(
            f"/v1/posts/{post['id']}/call-status",
            json={"call_status": "stop_loss_hit", "actual_exit_price": 2400},
            headers=world.h(world.analyst),
        ),
        200,
    )
    assert closed["actual_profit_percent"] == -4.0


async def test_an_expired_call_needs_no_exit_price_and_has_no_profit(
    api: TestClient, world: World
) -> None:
    post = await publish(api, world)
    closed = await reply(
        await api.post(
            f"/v1/posts/{post['id']}/call-status",
            json={"call_status": "expired"},
            headers=world.h(world.analyst),
        ),
        200,
    )
    assert closed["call_status"] == "expired" and closed["actual_profit_percent"] is None
    assert closed["closed_at"] is not None


@pytest.mark.parametrize("status", ["target_hit", "stop_loss_hit", "closed"])
async def test_the_exit_price_is_required_to_close_a_call(
    api: TestClient, world: World, status: str
) -> None:
    post = await publish(api, world)
    response = await api.post(
        f"/v1/posts/{post['id']}/call-status",
        json={"call_status": status},
        headers=world.h(world.analyst),
    )
    await refused(response, 400, "actual_exit_price")


@pytest.mark.parametrize("first", ["target_hit", "stop_loss_hit", "closed", "expired"])
async def test_no_call_leaves_a_closed_state(api: TestClient, world: World, first: str) -> None:
    post = await publish(api, world)
    path = f"/v1/posts/{post['id']}/call-status"
    body = {"call_status": first, "actual_exit_price": 2600}
    await reply(await api.post(path, json=body, headers=world.h(world.analyst)), 200)
    again = {"call_status": "closed", "actual_exit_price": 2650}
    await refused(await api.post(path, json=again, headers=world.h(world.analyst)), 409, first)


async def test_only_the_author_records_an_outcome_and_only_for_a_call(
    api: TestClient, world: World
) -> None:
    post = await publish(api, world)
    body = {"call_status": "closed", "actual_exit_price": 2600}
    for other in (world.rival, world.paid, world.admin):
        response = await api.post(
            f"/v1/posts/{post['id']}/call-status", json=body, headers=world.h(other)
        )
        await refused(response, 403)
    note = await reply(
        await api.post(
            "/v1/posts",
            json={"post_type": "educational", "content": "What a stop loss is"},
            headers=world.h(world.analyst),
        ),
        201,
    )
    response = await api.post(
        f"/v1/posts/{note['id']}/call-status", json=body, headers=world.h(world.analyst)
    )
    await refused(response, 400, "call")
    response = await api.post(
        f"/v1/posts/{post['id']}/call-status",
        json={"call_status": "open"},
        headers=world.h(world.analyst),
    )
    await refused(response, 400, "call_status")


# --- search -----------------------------------------------------------------------------------


async def test_search_matches_title_and_content_and_skips_deleted_posts(
    api: TestClient, world: World
) -> None:
    by_title = await publish(api, world, title="Infosys earnings preview", content="Numbers")
    by_content = await publish(api, world, content="Infosys guidance looks strong")
    deleted = await publish(api, world, content="Infosys old note")
    await publish(api, world, content="Unrelated banks")
    await reply(await api.delete(f"/v1/posts/{deleted['id']}", headers=world.h(world.analyst)), 204)
    found = await reply(
        await api.get("/v1/posts/search", params={"q": "infosys"}, headers=world.h(world.paid)),
        200,
    )
    assert [p["id"] for p in found["items"]] == [by_content["id"], by_title["id"]]
    phrase = await reply(
        await api.get(
            "/v1/posts/search",
            params={"q": '"guidance looks" -earnings'},
            headers=world.h(world.paid),
        ),
        200,
    )
    assert [p["id"] for p in phrase["items"]] == [by_content["id"]]


async def test_search_leaves_out_paid_posts_the_caller_cannot_read(
    api: TestClient, world: World
) -> None:
    secret_call = await publish(api, world, audience="paid", content="Tata Motors breakout")
    for reader, expected in (
        (world.stranger, []),
        (world.free, []),
        (world.paid, [secret_call["id"]]),
        (world.analyst, [secret_call["id"]]),
        (world.admin, [secret_call["id"]]),
    ):
        found = await reply(
            await api.get("/v1/posts/search", params={"q": "tata"}, headers=world.h(reader)), 200
        )
        assert [p["id"] for p in found["items"]] == expected


async def test_search_pages_through_matches_with_a_cursor(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    ids = [(await publish(api, world, content=f"Nifty view {i}"))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"q": "nifty", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await reply(
            await api.get("/v1/posts/search", params=params, headers=world.h(world.paid)), 200
        )
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "x" * 201}, {"q": "x", "limit": "0"}])
async def test_a_malformed_search_is_refused(
    api: TestClient, world: World, params: dict[str, str]
) -> None:
    await refused(
        await api.get("/v1/posts/search", params=params, headers=world.h(world.paid)), 400
    )


# --- feed and timeline ------------------------------------------------------------------------


async def _post_at(db: asyncpg.Connection, analyst: uuid.UUID, minutes_ago: int, **f: Any) -> str:
    created = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    values = {"analyst_id": analyst, "post_type": "commentary", "content": "note", **f}
    return str(await insert_row(db, "posts", {**values, "created_at": created}))


async def test_the_feed_holds_posts_of_actively_subscribed_analysts_newest_first(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    lapsed_analyst = await make_analyst(db)
    await make_subscription(db, world.paid, await make_tier(db, lapsed_analyst), status="expired")
    older = await _post_at(db, world.analyst, 10)
    newer = await _post_at(db, world.analyst, 5, audience="paid")
    await _post_at(db, world.rival, 1)
    await _post_at(db, lapsed_analyst, 1)
    await _post_at(db, world.analyst, 1, deleted_at=datetime.now(UTC))
    feed = await reply(await api.get("/v1/feed", headers=world.h(world.paid)), 200)
    assert [p["id"] for p in feed["items"]] == [newer, older]
    assert feed["next_cursor"] is None
    free_feed = await reply(await api.get("/v1/feed", headers=world.h(world.free)), 200)
    assert [(p["id"], p["locked"]) for p in free_feed["items"]] == [(newer, True), (older, False)]
    empty = await reply(await api.get("/v1/feed", headers=world.h(world.stranger)), 200)
    assert empty == {"items": [], "next_cursor": None}


async def test_feed_pages_are_stable_while_new_posts_arrive(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    ids = [await _post_at(db, world.analyst, 10 - i) for i in range(5)]
    first = await reply(
        await api.get("/v1/feed", params={"limit": "2"}, headers=world.h(world.paid)), 200
    )
    assert [p["id"] for p in first["items"]] == [ids[4], ids[3]]
    await _post_at(db, world.analyst, 0)
    second = await reply(
        await api.get(
            "/v1/feed",
            params={"limit": "2", "cursor": first["next_cursor"]},
            headers=world.h(world.paid),
        ),
        200,
    )
    assert [p["id"] for p in second["items"]] == [ids[2], ids[1]]
    third = await reply(
        await api.get(
            "/v1/feed",
            params={"limit": "2", "cursor": second["next_cursor"]},
            headers=world.h(world.paid),
        ),
        200,
    )
    assert [p["id"] for p in third["items"]] == [ids[0]] and third["next_cursor"] is None


@pytest.mark.parametrize("path", ["/v1/feed", "/v1/posts/search?q=x", "/v1/analysts/{a}/posts"])
async def test_an_invalid_cursor_is_refused(api: TestClient, world: World, path: str) -> None:
    path = path.replace("{a}", str(world.analyst))
    response = await api.get(path, params={"cursor": "bogus!"}, headers=world.h(world.paid))
    await refused(response, 400, "cursor")


async def test_a_timeline_lists_pinned_posts_first_then_newest_in_pages(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    old_pinned = await _post_at(db, world.analyst, 50, is_pinned=True)
    plain = [await _post_at(db, world.analyst, 40 - i) for i in range(3)]
    await _post_at(db, world.rival, 1)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await reply(
            await api.get(
                f"/v1/analysts/{world.analyst}/posts",
                params=params,
                headers=world.h(world.stranger),
            ),
            200,
        )
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [old_pinned, plain[2], plain[1], plain[0]]


async def test_a_timeline_filters_by_post_type_and_locks_paid_posts(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    await _post_at(db, world.analyst, 3)
    paid_call = await publish(api, world, audience="paid")
    page = await reply(
        await api.get(
            f"/v1/analysts/{world.analyst}/posts",
            params={"post_type": "call"},
            headers=world.h(world.stranger),
        ),
        200,
    )
    assert [(p["id"], p["locked"], p["content"]) for p in page["items"]] == [
        (paid_call["id"], True, None)
    ]


async def test_a_timeline_of_an_unknown_analyst_or_a_bad_id_is_refused(
    api: TestClient, world: World
) -> None:
    await refused(
        await api.get(f"/v1/analysts/{world.paid}/posts", headers=world.h(world.paid)), 404
    )
    await refused(await api.get("/v1/analysts/nope/posts", headers=world.h(world.paid)), 400)
    response = await api.get(
        f"/v1/analysts/{world.analyst}/posts",
        params={"post_type": "rumour"},
        headers=world.h(world.paid),
    )
    await refused(response, 400, "post_type")


# --- events -----------------------------------------------------------------------------------


async def _notified(db: asyncpg.Connection, post_id: str) -> dict[uuid.UUID, tuple[str, str]]:
    rows = await db.fetch(
        "SELECT user_id, notification_type, priority FROM analyst.notifications"
        " WHERE related_entity_id = $1::uuid",
        post_id,
    )
    return {r["user_id"]: (r["notification_type"], r["priority"]) for r in rows}


async def test_a_new_post_notifies_the_active_subscribers(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    post = await publish(api, world, audience="both")
    assert await _notified(db, post["id"]) == {
        world.paid: ("new_post", "medium"),
        world.free: ("new_post", "medium"),
    }


async def test_a_paid_post_notifies_only_the_subscribers_entitled_to_read_it(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    post = await publish(api, world, audience="paid")
    assert await _notified(db, post["id"]) == {world.paid: ("new_post", "medium")}


async def test_an_urgent_post_notifies_with_urgent_priority_once(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    post = await publish(api, world, is_urgent=True)
    assert await _notified(db, post["id"]) == {
        world.paid: ("urgent_post", "urgent"),
        world.free: ("urgent_post", "urgent"),
    }
    calm = await publish(api, world)
    path = f"/v1/posts/{calm['id']}"
    for urgent in (True, False, True):
        await reply(
            await api.patch(path, json={"is_urgent": urgent}, headers=world.h(world.analyst)), 200
        )
    rows = await db.fetch(
        "SELECT notification_type FROM analyst.notifications WHERE user_id = $1"
        " AND related_entity_id = $2::uuid ORDER BY created_at",
        world.paid,
        calm["id"],
    )
    assert [r["notification_type"] for r in rows] == ["new_post", "urgent_post"]
