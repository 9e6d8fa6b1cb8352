"""Subscriptions of the creator realm over the real api app: monthly, yearly and lifetime at
the creator's prices, paid through the payment flow (a failed payment gives no access), one
current subscription per fan and creator even under concurrent requests, idempotent retries,
cancellation at period end, the creator's subscriber list and `new_subscriber`."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from realms.creator import notices
from tests.realms.creator.conftest import Call, World, make_account

OK = {"payment_token": "tok_ok"}


def _days_left(value: str) -> float:
    return (datetime.fromisoformat(value) - datetime.now(UTC)) / timedelta(days=1)


async def _has_access(db: asyncpg.Connection, fan: uuid.UUID, creator: uuid.UUID) -> bool:
    return bool(await db.fetchval("SELECT creator.has_active_subscription($1, $2)", fan, creator))


async def _notified(db: asyncpg.Connection, creator: uuid.UUID) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            "SELECT title, related_entity_id FROM gateway.notifications"
            " WHERE realm = 'creator' AND user_id = $1 AND notification_type = 'new_subscriber'",
            str(creator),
        )
    )


async def test_a_paid_monthly_subscription_is_active_for_a_month_and_tells_the_creator(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    status, body = await call(
        "POST",
        "/v1/creator/subscriptions",
        world.stranger,
        json={"creator_id": str(world.creator), **OK},
    )
    assert status == 201, body
    sub = body["subscription"]
    assert sub["status"] == "active" and sub["subscription_type"] == "monthly"
    assert sub["price"] == 999 and sub["auto_renew"] is True
    assert 27 < _days_left(sub["expires_at"]) < 32
    payment = body["payment"]
    assert payment["transaction_type"] == "subscription" and payment["status"] == "completed"
    assert (payment["gross_amount"], payment["platform_fee"], payment["net_amount"]) == (
        999,
        200,
        799,
    )
    assert body["charged"] is True
    assert await _has_access(db, world.stranger, world.creator)
    (note,) = await _notified(db, world.creator)
    assert str(note["related_entity_id"]) == sub["id"] and "subscribed" in note["title"]
    # every state change of the money and the subscription is audited
    audited = await db.fetch(
        "SELECT action, new_values FROM creator.audit_logs WHERE entity_id = ANY ($1::uuid[])",
        [uuid.UUID(sub["id"]), uuid.UUID(payment["id"])],
    )
    assert {r["action"] for r in audited} == {
        "subscriptions.insert",
        "subscriptions.update",
        "transactions.insert",
        "transactions.update",
    }


async def test_a_failed_payment_creates_no_active_subscription(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    body = {"creator_id": str(world.creator), "payment_token": "tok_declined"}
    status, error = await call("POST", "/v1/creator/subscriptions", world.stranger, json=body)
    assert status == 400 and error["error"]["details"]["failure_code"] == "card_declined"
    assert not await _has_access(db, world.stranger, world.creator)
    statuses = await db.fetch(
        "SELECT status FROM creator.subscriptions WHERE subscriber_id = $1", world.stranger
    )
    assert [r["status"] for r in statuses] == ["failed"]
    assert await _notified(db, world.creator) == []
    # the failed attempt does not block a new one
    status, body = await call(
        "POST", "/v1/creator/subscriptions", world.stranger, json={**body, **OK}
    )
    assert status == 201 and body["subscription"]["status"] == "active"


async def test_yearly_and_lifetime_plans_at_the_creators_prices(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    yearly_only = {"creator_id": str(world.creator), "plan": "yearly", **OK}
    status, error = await call(
        "POST", "/v1/creator/subscriptions", world.stranger, json=yearly_only
    )
    assert status == 400 and "yearly" in error["error"]["message"]
    status, _ = await call(
        "PATCH",
        "/v1/creator/me/profile",
        world.creator,
        json={"yearly_price": 9000, "lifetime_price": 30000},
    )
    assert status == 200
    status, body = await call("POST", "/v1/creator/subscriptions", world.stranger, json=yearly_only)
    assert status == 201, body
    sub = body["subscription"]
    assert sub["price"] == 9000 and body["payment"]["gross_amount"] == 9000
    assert 364 < _days_left(sub["expires_at"]) < 367

    other = await make_account(db)
    status, body = await call(
        "POST",
        "/v1/creator/subscriptions",
        other,
        json={"creator_id": str(world.creator), "plan": "lifetime", "auto_renew": True, **OK},
    )
    assert status == 201, body
    sub = body["subscription"]
    assert sub["price"] == 30000 and sub["expires_at"] is None and sub["auto_renew"] is False
    assert await _has_access(db, other, world.creator)


async def test_a_free_creator_is_subscribed_to_without_a_payment(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    free = await make_account(db, account_type="creator", subscription_price=0)
    status, body = await call(
        "POST", "/v1/creator/subscriptions", world.fan, json={"creator_id": str(free), **OK}
    )
    assert status == 201 and body["payment"] is None
    assert body["subscription"]["status"] == "active"
    assert await _has_access(db, world.fan, free)
    assert len(await _notified(db, free)) == 1


async def test_one_current_subscription_per_fan_and_creator_even_under_concurrency(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    status, error = await call(
        "POST",
        "/v1/creator/subscriptions",
        world.fan,
        json={"creator_id": str(world.creator), **OK},
    )
    assert status == 409 and "already subscribed" in error["error"]["message"]

    body = {"creator_id": str(world.creator), **OK}
    results = await asyncio.gather(
        *(call("POST", "/v1/creator/subscriptions", world.stranger, json=body) for _ in range(10))
    )
    assert sorted(status for status, _ in results) == [201] + [409] * 9
    assert (
        await db.fetchval(
            "SELECT count(*) FROM creator.transactions WHERE user_id = $1 AND status = 'completed'",
            world.stranger,
        )
        == 1
    )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM creator.subscriptions WHERE subscriber_id = $1"
            " AND status = 'active'",
            world.stranger,
        )
        == 1
    )


async def test_a_retry_with_the_same_idempotency_key_charges_nothing_more(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    body = {"creator_id": str(world.creator), "idempotency_key": "sub-1", **OK}
    status, first = await call("POST", "/v1/creator/subscriptions", world.stranger, json=body)
    assert status == 201 and first["charged"] is True
    status, again = await call("POST", "/v1/creator/subscriptions", world.stranger, json=body)
    assert status == 201 and again["charged"] is False
    assert again["subscription"]["id"] == first["subscription"]["id"]
    assert again["payment"]["id"] == first["payment"]["id"]
    assert (
        await db.fetchval(
            "SELECT count(*) FROM creator.transactions WHERE user_id = $1", world.stranger
        )
        == 1
    )


async def test_cancel_keeps_access_until_period_end_and_stops_renewal(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    _, body = await call(
        "POST",
        "/v1/creator/subscriptions",
        world.stranger,
        json={"creator_id": str(world.creator), **OK},
    )
    path = f"/v1/creator/subscriptions/{body['subscription']['id']}/cancel"
    assert (await call("POST", path, world.fan, json={}))[0] == 404  # not theirs
    status, sub = await call("POST", path, world.stranger, json={"reason": "too pricey"})
    assert status == 200, sub
    assert sub["status"] == "cancelled" and sub["auto_renew"] is False
    assert sub["cancellation_reason"] == "too pricey" and sub["cancelled_at"]
    assert await _has_access(db, world.stranger, world.creator)
    status, again = await call("POST", path, world.stranger, json={})
    assert status == 200 and again["cancelled_at"] == sub["cancelled_at"]
    # the period ends: access ends
    await db.execute(
        "UPDATE creator.subscriptions SET expires_at = now() - interval '1 second',"
        " started_at = now() - interval '31 days' WHERE id = $1",
        uuid.UUID(sub["id"]),
    )
    assert not await _has_access(db, world.stranger, world.creator)
    # and a new subscription is possible
    status, _ = await call(
        "POST",
        "/v1/creator/subscriptions",
        world.stranger,
        json={"creator_id": str(world.creator), **OK},
    )
    assert status == 201


async def test_a_lifetime_subscription_cannot_be_cancelled(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    await call("PATCH", "/v1/creator/me/profile", world.creator, json={"lifetime_price": 5000})
    _, body = await call(
        "POST",
        "/v1/creator/subscriptions",
        world.stranger,
        json={"creator_id": str(world.creator), "plan": "lifetime", **OK},
    )
    path = f"/v1/creator/subscriptions/{body['subscription']['id']}/cancel"
    assert (await call("POST", path, world.stranger, json={}))[0] == 400


async def test_subscribing_needs_a_verified_adult_and_a_creator(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    unverified = await make_account(db, verified=False)
    for user, creator, expected in (
        (unverified, world.creator, 403),
        (world.creator, world.creator, 400),
        (world.fan, world.stranger, 400),
        (world.fan, uuid.uuid4(), 404),
    ):
        status, _ = await call(
            "POST", "/v1/creator/subscriptions", user, json={"creator_id": str(creator), **OK}
        )
        assert status == expected, (user, creator)
    silent = await make_account(db, account_type="creator")  # no price: not offered
    status, _ = await call(
        "POST", "/v1/creator/subscriptions", world.fan, json={"creator_id": str(silent), **OK}
    )
    assert status == 400


async def test_fans_list_theirs_and_only_the_creator_lists_subscribers(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    await call(
        "POST",
        "/v1/creator/subscriptions",
        world.stranger,
        json={"creator_id": str(world.creator), **OK},
    )
    status, page = await call("GET", "/v1/creator/me/subscribers", world.creator)
    assert status == 200
    assert {s["subscription"]["subscriber_id"] for s in page["items"]} == {
        str(world.fan),
        str(world.stranger),
    }
    _, first = await call("GET", "/v1/creator/me/subscribers?limit=1", world.creator)
    _, second = await call(
        "GET", f"/v1/creator/me/subscribers?limit=1&cursor={first['next_cursor']}", world.creator
    )
    assert len(first["items"]) == len(second["items"]) == 1
    assert first["items"][0] != second["items"][0]
    assert (await call("GET", "/v1/creator/me/subscribers", world.fan))[0] == 403

    status, mine = await call("GET", "/v1/creator/subscriptions", world.fan)
    assert status == 200 and [s["creator_id"] for s in mine["items"]] == [str(world.creator)]
    sub_id = mine["items"][0]["id"]
    assert (await call("GET", f"/v1/creator/subscriptions/{sub_id}", world.creator))[0] == 200
    assert (await call("GET", f"/v1/creator/subscriptions/{sub_id}", world.stranger))[0] == 404


async def test_new_subscriber_is_notified_once_per_subscription(
    db: asyncpg.Connection, world: World
) -> None:
    subscription_id = uuid.uuid4()
    for expected in (1, 0):
        async with db.transaction():
            created = await notices.new_subscriber(
                db,
                creator_id=world.creator,
                subscription_id=subscription_id,
                subscriber_name="someone",
                plan="monthly",
            )
        assert created == expected
