"""Reviews over HTTP: the 30-day subscription rule, one review per user and analyst, edits and
deletes by the author, the analyst's one response, helpfulness votes, admin moderation, the
analyst's review list and the new-review event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.api.test_posts import World, make_world, refused, reply
from tests.factories import make_analyst, make_subscription, make_user

# Fixed, so that parametrised test ids are the same in every pytest-xdist worker.
UNKNOWN_ID = uuid.UUID("00000000-0000-4000-8000-00000000dead")


@pytest.fixture
async def world(db: asyncpg.Connection, secret: str) -> World:
    return await make_world(db, secret)


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


async def veteran(db: asyncpg.Connection, world: World, days: float = 31, **sub: Any) -> uuid.UUID:
    """A user whose subscription to world.analyst started `days` ago."""
    user = await make_user(db)
    await make_subscription(db, user, world.paid_tier, start_date=days_ago(days), **sub)
    return user


async def review(
    api: TestClient, world: World, user: uuid.UUID, rating: int = 4, **fields: Any
) -> dict[str, Any]:
    body = {"rating": rating, **fields}
    path = f"/v1/analysts/{world.analyst}/reviews"
    created: dict[str, Any] = await reply(
        await api.post(path, json=body, headers=world.h(user)), 201
    )
    return created


async def stats(db: asyncpg.Connection, analyst: uuid.UUID) -> tuple[float, int]:
    row = await db.fetchrow(
        "SELECT avg_rating, total_reviews FROM analyst.analyst_profiles WHERE user_id = $1",
        analyst,
    )
    return float(row["avg_rating"]), row["total_reviews"]


# --- writing a review -------------------------------------------------------------------------


async def test_a_subscriber_of_thirty_days_reviews_the_analyst(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    user = await veteran(db, world, days=31.5)
    created = await review(api, world, user, 5, review_title="Solid", review_text="Clear calls")
    assert created["user_id"] == str(user) and created["analyst_id"] == str(world.analyst)
    assert created["rating"] == 5 and created["review_title"] == "Solid"
    assert created["is_verified_subscriber"] is True
    assert created["subscription_duration_days"] == 31
    assert created["is_approved"] is True and created["analyst_response"] is None
    assert await stats(db, world.analyst) == (5.0, 1)


async def test_a_review_notifies_the_analyst(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    created = await review(api, world, await veteran(db, world))
    rows = await db.fetch(
        "SELECT user_id, notification_type FROM analyst.notifications"
        " WHERE related_entity_id = $1::uuid",
        created["id"],
    )
    assert [(r["user_id"], r["notification_type"]) for r in rows] == [(world.analyst, "new_review")]


@pytest.mark.parametrize("days", [0, 10, 29.9])
async def test_a_review_is_refused_before_thirty_days_of_subscription(
    api: TestClient, world: World, db: asyncpg.Connection, days: float
) -> None:
    user = await veteran(db, world, days=days)
    response = await api.post(
        f"/v1/analysts/{world.analyst}/reviews", json={"rating": 5}, headers=world.h(user)
    )
    await refused(response, 403, "30 days")


async def test_a_review_is_refused_without_any_subscription(api: TestClient, world: World) -> None:
    for user in (world.stranger, world.admin):
        response = await api.post(
            f"/v1/analysts/{world.analyst}/reviews", json={"rating": 5}, headers=world.h(user)
        )
        await refused(response, 403, "30 days")


async def test_a_past_subscription_that_ran_thirty_days_qualifies_unverified(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    user = await veteran(db, world, days=90.5, status="expired", expires_at=days_ago(45))
    created = await review(api, world, user)
    assert created["is_verified_subscriber"] is False
    assert created["subscription_duration_days"] == 45


@pytest.mark.parametrize(
    "subscription",
    [
        {"status": "cancelled", "cancelled_at": days_ago(80)},  # ran 10 of 90 days
        {"status": "expired", "expires_at": days_ago(70)},  # ran 20 days
        {"status": "suspended", "suspended_at": days_ago(75)},  # ran 15 days
        {"status": "pending_payment"},  # never paid for
        {"status": "active", "deleted_at": days_ago(1)},
    ],
)
async def test_a_subscription_that_did_not_run_thirty_days_does_not_qualify(
    api: TestClient, world: World, db: asyncpg.Connection, subscription: dict[str, Any]
) -> None:
    user = await veteran(db, world, days=90, **subscription)
    response = await api.post(
        f"/v1/analysts/{world.analyst}/reviews", json={"rating": 5}, headers=world.h(user)
    )
    await refused(response, 403)


async def test_the_longest_qualifying_subscription_gives_the_duration(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    user = await veteran(db, world, days=200.5, status="expired", expires_at=days_ago(150))
    await make_subscription(db, user, world.free_tier, start_date=days_ago(35))
    created = await review(api, world, user)
    assert created["subscription_duration_days"] == 50
    assert created["is_verified_subscriber"] is True


async def test_one_review_per_user_and_analyst_until_it_is_deleted(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    user = await veteran(db, world)
    first = await review(api, world, user)
    response = await api.post(
        f"/v1/analysts/{world.analyst}/reviews", json={"rating": 1}, headers=world.h(user)
    )
    await refused(response, 409, "already")
    await reply(await api.delete(f"/v1/reviews/{first['id']}", headers=world.h(user)), 204)
    await review(api, world, user, 2)
    assert await stats(db, world.analyst) == (2.0, 1)


async def test_an_analyst_cannot_review_themselves(api: TestClient, world: World) -> None:
    response = await api.post(
        f"/v1/analysts/{world.analyst}/reviews", json={"rating": 5}, headers=world.h(world.analyst)
    )
    await refused(response, 400, "yourself")


async def test_only_analysts_are_reviewed(api: TestClient, world: World) -> None:
    for target in (str(world.paid), str(uuid.uuid4())):
        response = await api.post(
            f"/v1/analysts/{target}/reviews", json={"rating": 5}, headers=world.h(world.stranger)
        )
        await refused(response, 404, "analyst")
    response = await api.post(
        "/v1/analysts/xyz/reviews", json={"rating": 5}, headers=world.h(world.paid)
    )
    await refused(response, 400, "analyst_id")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": "5"}, "rating"),
        ({"rating": 4.5}, "rating"),
        ({}, "rating"),
        ({"rating": 4, "review_title": "x" * 256}, "review_title"),
        ({"rating": 4, "review_text": ""}, "review_text"),
        ({"rating": 4, "is_approved": True}, "is_approved"),
        ({"rating": 4, "is_verified_subscriber": True}, "is_verified_subscriber"),
    ],
)
async def test_malformed_reviews_are_refused_naming_the_field(
    api: TestClient, world: World, db: asyncpg.Connection, body: dict[str, Any], named: str
) -> None:
    user = await veteran(db, world)
    response = await api.post(
        f"/v1/analysts/{world.analyst}/reviews", json=body, headers=world.h(user)
    )
    await refused(response, 400, named)


# --- editing and deleting ---------------------------------------------------------------------


async def test_the_author_edits_their_review_and_the_rating_follows(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    user = await veteran(db, world)
    created = await review(api, world, user, 5, review_title="Great")
    edited = await reply(
        await api.patch(
            f"/v1/reviews/{created['id']}",
            json={"rating": 2, "review_title": None, "review_text": "Went downhill"},
            headers=world.h(user),
        ),
        200,
    )
    assert edited["rating"] == 2 and edited["review_title"] is None
    assert edited["review_text"] == "Went downhill"
    assert await stats(db, world.analyst) == (2.0, 1)
    response = await api.patch(
        f"/v1/reviews/{created['id']}", json={"rating": 9}, headers=world.h(user)
    )
    await refused(response, 400, "rating")


async def test_nobody_but_the_author_edits_or_deletes_a_review(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    created = await review(api, world, await veteran(db, world))
    path = f"/v1/reviews/{created['id']}"
    for other in (world.analyst, world.stranger, world.admin):
        await refused(await api.patch(path, json={"rating": 1}, headers=world.h(other)), 403)
        await refused(await api.delete(path, headers=world.h(other)), 403)


async def test_a_deleted_review_is_gone_and_leaves_the_rating(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    keep = await review(api, world, await veteran(db, world), 4)
    user = await veteran(db, world)
    gone = await review(api, world, user, 2)
    assert await stats(db, world.analyst) == (3.0, 2)
    await reply(await api.delete(f"/v1/reviews/{gone['id']}", headers=world.h(user)), 204)
    assert await stats(db, world.analyst) == (4.0, 1)
    await refused(await api.get(f"/v1/reviews/{gone['id']}", headers=world.h(user)), 404)
    await refused(await api.delete(f"/v1/reviews/{gone['id']}", headers=world.h(user)), 404)
    await refused(
        await api.patch(f"/v1/reviews/{gone['id']}", json={"rating": 5}, headers=world.h(user)),
        404,
    )
    listed = await reply(
        await api.get(f"/v1/analysts/{world.analyst}/reviews", headers=world.h(user)), 200
    )
    assert [r["id"] for r in listed["items"]] == [keep["id"]]


# --- the analyst's response -------------------------------------------------------------------


async def test_the_reviewed_analyst_responds_once(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    created = await review(api, world, await veteran(db, world))
    path = f"/v1/reviews/{created['id']}/response"
    answered = await reply(
        await api.post(path, json={"response": "Thanks!"}, headers=world.h(world.analyst)), 200
    )
    assert answered["analyst_response"] == "Thanks!"
    assert answered["analyst_response_at"] is not None
    again = await api.post(path, json={"response": "Edit"}, headers=world.h(world.analyst))
    await refused(again, 409, "already")


async def test_only_the_reviewed_analyst_responds(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    author = await veteran(db, world)
    created = await review(api, world, author)
    path = f"/v1/reviews/{created['id']}/response"
    for other in (author, world.rival, world.admin, world.stranger):
        await refused(await api.post(path, json={"response": "Hi"}, headers=world.h(other)), 403)
    await refused(
        await api.post(path, json={"response": ""}, headers=world.h(world.analyst)), 400, "response"
    )


# --- helpfulness votes ------------------------------------------------------------------------


async def test_other_users_vote_a_review_up_or_down(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    created = await review(api, world, await veteran(db, world))
    path = f"/v1/reviews/{created['id']}/votes"
    for user, vote in ((world.stranger, "up"), (world.rival, "up"), (world.paid, "down")):
        await reply(await api.post(path, json={"vote": vote}, headers=world.h(user)), 200)
    counted = await reply(
        await api.get(f"/v1/reviews/{created['id']}", headers=world.h(world.stranger)), 200
    )
    assert (counted["helpfulness_upvotes"], counted["helpfulness_downvotes"]) == (2, 1)


async def test_one_vote_per_user_a_repeated_vote_changes_nothing_and_a_vote_can_switch(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    """Issue 21: the counters are counts of analyst.review_votes (one row per user)."""
    created = await review(api, world, await veteran(db, world))
    path = f"/v1/reviews/{created['id']}/votes"
    for _ in range(2):
        voted = await reply(
            await api.post(path, json={"vote": "up"}, headers=world.h(world.stranger)), 200
        )
    assert (voted["helpfulness_upvotes"], voted["helpfulness_downvotes"]) == (1, 0)
    switched = await reply(
        await api.post(path, json={"vote": "down"}, headers=world.h(world.stranger)), 200
    )
    assert (switched["helpfulness_upvotes"], switched["helpfulness_downvotes"]) == (0, 1)
    withdrawn = await reply(await api.delete(path, headers=world.h(world.stranger)), 200)
    assert (withdrawn["helpfulness_upvotes"], withdrawn["helpfulness_downvotes"]) == (0, 0)
    await refused(await api.delete(path, headers=world.h(world.stranger)), 404, "no vote")


async def test_the_author_and_the_analyst_cannot_vote_and_votes_must_be_up_or_down(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    author = await veteran(db, world)
    created = await review(api, world, author)
    path = f"/v1/reviews/{created['id']}/votes"
    for insider in (author, world.analyst):
        await refused(await api.post(path, json={"vote": "up"}, headers=world.h(insider)), 403)
    for bad in ({"vote": "sideways"}, {}, {"vote": "up", "weight": 5}):
        await refused(await api.post(path, json=bad, headers=world.h(world.stranger)), 400)


# --- moderation -------------------------------------------------------------------------------


async def moderate(
    api: TestClient, world: World, review_id: str, action: str, reason: str | None = None
) -> dict[str, Any]:
    body = {"action": action, **({"reason": reason} if reason else {})}
    moderated: dict[str, Any] = await reply(
        await api.post(
            f"/v1/reviews/{review_id}/moderation", json=body, headers=world.h(world.admin)
        ),
        200,
    )
    return moderated


async def test_an_admin_hides_a_review_from_everyone_but_its_author_and_analyst(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    author = await veteran(db, world)
    created = await review(api, world, author, 1)
    hidden = await moderate(api, world, created["id"], "hide", "abusive")
    assert hidden["is_approved"] is False and hidden["moderated_by"] == str(world.admin)
    assert hidden["moderated_at"] is not None and hidden["flagged_reason"] == "abusive"
    assert await stats(db, world.analyst) == (0.0, 0)
    path = f"/v1/reviews/{created['id']}"
    await refused(await api.get(path, headers=world.h(world.stranger)), 404)
    for insider in (author, world.analyst, world.admin):
        await reply(await api.get(path, headers=world.h(insider)), 200)
    await refused(
        await api.post(f"{path}/votes", json={"vote": "up"}, headers=world.h(world.stranger)), 404
    )
    listed = await reply(
        await api.get(f"/v1/analysts/{world.analyst}/reviews", headers=world.h(world.stranger)),
        200,
    )
    assert listed["items"] == []


async def test_an_admin_flags_with_a_reason_and_restores(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    created = await review(api, world, await veteran(db, world), 3)
    response = await api.post(
        f"/v1/reviews/{created['id']}/moderation",
        json={"action": "flag"},
        headers=world.h(world.admin),
    )
    await refused(response, 400, "reason")
    flagged = await moderate(api, world, created["id"], "flag", "looks paid for")
    assert flagged["is_flagged"] is True and flagged["is_approved"] is True
    assert flagged["flagged_reason"] == "looks paid for"
    await moderate(api, world, created["id"], "hide")
    restored = await moderate(api, world, created["id"], "restore")
    assert restored["is_approved"] is True and restored["is_flagged"] is False
    assert restored["flagged_reason"] is None
    assert await stats(db, world.analyst) == (3.0, 1)


async def test_moderation_is_for_admins_and_its_fields_are_shown_to_admins_only(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    author = await veteran(db, world)
    created = await review(api, world, author)
    path = f"/v1/reviews/{created['id']}/moderation"
    for other in (author, world.analyst, world.stranger):
        response = await api.post(path, json={"action": "hide"}, headers=world.h(other))
        await refused(response, 403, "admin")
    await moderate(api, world, created["id"], "flag", "check")
    public = await reply(
        await api.get(f"/v1/reviews/{created['id']}", headers=world.h(world.stranger)), 200
    )
    assert public["is_flagged"] is None and public["flagged_reason"] is None
    assert public["moderated_by"] is None
    await refused(
        await api.post(path, json={"action": "delete"}, headers=world.h(world.admin)), 400, "action"
    )
    await refused(
        await api.post(
            f"/v1/reviews/{uuid.uuid4()}/moderation",
            json={"action": "hide"},
            headers=world.h(world.admin),
        ),
        404,
    )


# --- lists ------------------------------------------------------------------------------------


async def test_an_analysts_approved_reviews_are_listed_newest_first_in_pages(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    ids = [(await review(api, world, await veteran(db, world)))["id"] for _ in range(5)]
    other_analyst = await make_analyst(db)
    await db.execute(
        "INSERT INTO analyst.reviews (user_id, analyst_id, rating) VALUES ($1, $2, 5)",
        world.paid,
        other_analyst,
    )
    await moderate(api, world, ids[2], "hide")
    path = f"/v1/analysts/{world.analyst}/reviews"
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await reply(await api.get(path, params=params, headers=world.h(world.paid)), 200)
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [ids[4], ids[3], ids[1], ids[0]]
    await refused(
        await api.get(path, params={"cursor": "nope"}, headers=world.h(world.paid)), 400, "cursor"
    )


async def test_only_admins_list_hidden_reviews(
    api: TestClient, world: World, db: asyncpg.Connection
) -> None:
    created = await review(api, world, await veteran(db, world))
    await moderate(api, world, created["id"], "hide")
    path = f"/v1/analysts/{world.analyst}/reviews"
    for other in (world.analyst, world.stranger):
        response = await api.get(path, params={"include_hidden": "true"}, headers=world.h(other))
        await refused(response, 403, "admin")
    listed = await reply(
        await api.get(path, params={"include_hidden": "true"}, headers=world.h(world.admin)), 200
    )
    assert [r["id"] for r in listed["items"]] == [created["id"]]


async def test_the_review_list_of_an_unknown_analyst_is_not_found(
    api: TestClient, world: World
) -> None:
    for target in (world.paid, uuid.uuid4()):
        response = await api.get(f"/v1/analysts/{target}/reviews", headers=world.h(world.paid))
        await refused(response, 404, "analyst")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", f"/v1/analysts/{UNKNOWN_ID}/reviews", {"rating": 5}),
        ("GET", f"/v1/analysts/{UNKNOWN_ID}/reviews", None),
        ("GET", f"/v1/reviews/{UNKNOWN_ID}", None),
        ("PATCH", f"/v1/reviews/{UNKNOWN_ID}", {}),
        ("DELETE", f"/v1/reviews/{UNKNOWN_ID}", None),
        ("POST", f"/v1/reviews/{UNKNOWN_ID}/response", {"response": "x"}),
        ("POST", f"/v1/reviews/{UNKNOWN_ID}/votes", {"vote": "up"}),
        ("POST", f"/v1/reviews/{UNKNOWN_ID}/moderation", {"action": "hide"}),
    ],
)
async def test_every_review_route_requires_a_token(
    api: TestClient, method: str, path: str, body: Any
) -> None:
    await reply(await api.request(method, path, json=body), 401)


async def test_a_malformed_review_id_is_refused(api: TestClient, world: World) -> None:
    await refused(await api.get("/v1/reviews/12", headers=world.h(world.paid)), 400, "id")
