"""realms/creator/sql/3002: creator.subscriptions, has_active_subscription(),
expire_subscriptions()."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.realms.creator.rows import (
    column,
    db_now,
    fails,
    insert,
    make_creator,
    make_subscription,
    make_user,
    rejects,
)


@pytest.fixture
async def pair(db: asyncpg.Connection) -> tuple[UUID, UUID]:
    """(fan, creator)."""
    return await make_user(db), await make_creator(db)


async def sub_fields(db: asyncpg.Connection, pair: tuple[UUID, UUID], **fields: Any) -> dict:
    now = await db_now(db)
    values: dict[str, Any] = {
        "subscriber_id": pair[0],
        "creator_id": pair[1],
        "subscription_type": "monthly",
        "status": "active",
        "price": 999,
        "started_at": now,
        "expires_at": now + timedelta(days=30),
    }
    values.update(fields)
    return values


async def has_access(db: asyncpg.Connection, fan: UUID, creator: UUID) -> bool:
    result: bool = await db.fetchval("SELECT creator.has_active_subscription($1, $2)", fan, creator)
    return result


async def test_subscription_defaults(db: asyncpg.Connection, pair: tuple[UUID, UUID]) -> None:
    sub_id = await insert(
        db,
        "subscriptions",
        subscriber_id=pair[0],
        creator_id=pair[1],
        subscription_type="monthly",
        price=999,
    )
    row = await db.fetchrow("SELECT * FROM creator.subscriptions WHERE id = $1", sub_id)
    assert (row["status"], row["auto_renew"], row["currency"]) == ("pending", True, "USD")
    assert row["started_at"] is None and row["expires_at"] is None


@pytest.mark.parametrize("subscription_type", ["monthly", "yearly"])
async def test_recurring_subscription_type_is_accepted(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], subscription_type: str
) -> None:
    assert await insert(
        db, "subscriptions", **await sub_fields(db, pair, subscription_type=subscription_type)
    )


async def test_lifetime_subscription_never_expires_nor_renews(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    assert await insert(
        db,
        "subscriptions",
        **await sub_fields(
            db, pair, subscription_type="lifetime", expires_at=None, auto_renew=False
        ),
    )


@pytest.mark.parametrize(
    "fields", [{"auto_renew": False}, {"expires_at": None, "auto_renew": True}]
)
async def test_lifetime_subscription_with_an_end_or_renewal_is_rejected(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], fields: dict[str, Any]
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "subscriptions_lifetime_never_expires",
        "subscriptions",
        **await sub_fields(db, pair, subscription_type="lifetime", **fields),
    )


@pytest.mark.parametrize("subscription_type", ["weekly", "Monthly", "trial"])
async def test_undocumented_subscription_type_is_rejected(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], subscription_type: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "subscriptions_subscription_type_valid",
        "subscriptions",
        **await sub_fields(db, pair, subscription_type=subscription_type),
    )


@pytest.mark.parametrize("status", ["active", "cancelled", "expired", "pending", "failed"])
async def test_documented_subscription_status_is_accepted(
    db: asyncpg.Connection, status: str
) -> None:
    fields: dict[str, Any] = {"status": status}
    if status == "cancelled":
        fields["cancelled_at"] = await db_now(db)
    # A fresh pair each time: at most one current subscription per pair.
    pair = (await make_user(db), await make_creator(db))
    assert await insert(db, "subscriptions", **await sub_fields(db, pair, **fields))


@pytest.mark.parametrize("status", ["trialing", "past_due", "Active"])
async def test_undocumented_subscription_status_is_rejected(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], status: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "subscriptions_status_valid",
        "subscriptions",
        **await sub_fields(db, pair, status=status),
    )


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"price": -1}, "subscriptions_price_non_negative"),
        ({"currency": "usd"}, "subscriptions_currency_format"),
        ({"expires_at": None}, "subscriptions_recurring_has_expiry"),
        ({"started_at": None}, "subscriptions_started_has_time"),
        ({"status": "cancelled"}, "subscriptions_cancelled_has_time"),
    ],
)
async def test_inconsistent_subscription_is_rejected(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], fields: dict[str, Any], constraint: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        constraint,
        "subscriptions",
        **await sub_fields(db, pair, **fields),
    )


async def test_subscription_must_end_after_it_starts(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    now = await db_now(db)
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "subscriptions_expires_after_start",
        "subscriptions",
        **await sub_fields(db, pair, started_at=now, expires_at=now),
    )


@pytest.mark.parametrize("status", ["pending", "failed"])
async def test_unpaid_subscription_needs_no_start_or_end(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], status: str
) -> None:
    assert await insert(
        db,
        "subscriptions",
        **await sub_fields(db, pair, status=status, started_at=None, expires_at=None),
    )


async def test_free_subscription_price_zero_is_accepted(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    assert await insert(db, "subscriptions", **await sub_fields(db, pair, price=0))


async def test_nobody_subscribes_to_themselves(db: asyncpg.Connection) -> None:
    creator_id = await make_creator(db)
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "subscriptions_not_self",
        "subscriptions",
        **await sub_fields(db, (creator_id, creator_id)),
    )


async def test_subscription_to_a_non_creator_is_rejected(db: asyncpg.Connection) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "subscriptions_creator_is_creator",
        "subscriptions",
        **await sub_fields(db, (await make_user(db), await make_user(db))),
    )


@pytest.mark.parametrize("column_name", ["subscriber_id", "creator_id"])
async def test_subscription_of_unknown_user_is_rejected(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], column_name: str
) -> None:
    await rejects(
        db,
        asyncpg.ForeignKeyViolationError,
        f"subscriptions_{column_name}_fkey",
        "subscriptions",
        **await sub_fields(db, pair, **{column_name: uuid4()}),
    )


async def test_hard_deleting_a_subscriber_fails(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    await make_subscription(db, *pair)
    await fails(
        db,
        asyncpg.ForeignKeyViolationError,
        "subscriptions_subscriber_id_fkey",
        "DELETE FROM creator.users WHERE id = $1",
        pair[0],
    )


@pytest.mark.parametrize("first", ["active", "pending", "cancelled"])
@pytest.mark.parametrize("second", ["active", "pending", "cancelled"])
async def test_one_current_subscription_per_fan_and_creator(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], first: str, second: str
) -> None:
    now = await db_now(db)
    await make_subscription(db, *pair, status=first, cancelled_at=now)
    with pytest.raises(asyncpg.UniqueViolationError) as info:
        await make_subscription(db, *pair, status=second, cancelled_at=now)
    assert info.value.constraint_name == "subscriptions_one_current_per_pair"


@pytest.mark.parametrize("ended", ["expired", "failed"])
async def test_a_new_subscription_may_follow_an_ended_one(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], ended: str
) -> None:
    await make_subscription(db, *pair, status=ended)
    await make_subscription(db, *pair, status=ended)
    assert await make_subscription(db, *pair, status="active")


async def test_subscription_update_moves_updated_at(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    past = await db_now(db, "-1 day")
    sub_id = await make_subscription(db, *pair, created_at=past, updated_at=past)
    await db.execute("UPDATE creator.subscriptions SET auto_renew = false WHERE id = $1", sub_id)
    assert await column(db, "subscriptions", "updated_at", sub_id) > past


# -- has_active_subscription() ----------------------------------------------------------------


async def test_active_subscription_gives_access(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    assert await has_access(db, *pair) is False
    await make_subscription(db, *pair)
    assert await has_access(db, *pair) is True
    assert await has_access(db, pair[0], await make_creator(db)) is False


async def test_cancelled_subscription_gives_access_until_its_period_ends(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    sub_id = await make_subscription(db, *pair, status="cancelled", cancelled_at=await db_now(db))
    assert await has_access(db, *pair) is True
    await db.execute(
        "UPDATE creator.subscriptions SET started_at = now() - interval '31 days',"
        " expires_at = now() - interval '1 second' WHERE id = $1",
        sub_id,
    )
    assert await has_access(db, *pair) is False


@pytest.mark.parametrize("status", ["pending", "failed", "expired"])
async def test_subscription_without_access_status_gives_none(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], status: str
) -> None:
    await make_subscription(db, *pair, status=status)
    assert await has_access(db, *pair) is False


async def test_active_subscription_past_its_end_gives_no_access(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    start = await db_now(db, "-31 days")
    await make_subscription(db, *pair, started_at=start, expires_at=start + timedelta(days=30))
    assert await has_access(db, *pair) is False


async def test_lifetime_subscription_gives_access_forever(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    await make_subscription(
        db,
        *pair,
        subscription_type="lifetime",
        expires_at=None,
        auto_renew=False,
        started_at=await db_now(db, "-20 years"),
    )
    assert await has_access(db, *pair) is True


# -- expire_subscriptions() -------------------------------------------------------------------


async def test_expire_subscriptions_expires_only_ended_access(db: asyncpg.Connection) -> None:
    start = await db_now(db, "-31 days")
    ended = start + timedelta(days=30)
    creator_id = await make_creator(db)
    due_active = await make_subscription(
        db, await make_user(db), creator_id, started_at=start, expires_at=ended
    )
    due_cancelled = await make_subscription(
        db,
        await make_user(db),
        creator_id,
        status="cancelled",
        cancelled_at=start,
        started_at=start,
        expires_at=ended,
    )
    running = await make_subscription(db, await make_user(db), creator_id)
    lifetime = await make_subscription(
        db,
        await make_user(db),
        creator_id,
        subscription_type="lifetime",
        expires_at=None,
        auto_renew=False,
    )
    pending = await make_subscription(
        db, await make_user(db), creator_id, status="pending", started_at=None, expires_at=None
    )

    assert await db.fetchval("SELECT creator.expire_subscriptions()") == 2
    for sub_id, status in (
        (due_active, "expired"),
        (due_cancelled, "expired"),
        (running, "active"),
        (lifetime, "active"),
        (pending, "pending"),
    ):
        assert await column(db, "subscriptions", "status", sub_id) == status
    assert await db.fetchval("SELECT creator.expire_subscriptions()") == 0
