"""realms/creator/sql/3006: creator.content_analytics, creator.user_analytics,
creator.revenue_analytics, refresh_revenue_analytics()."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.realms.creator.rows import (
    column,
    db_now,
    insert,
    make_content,
    make_creator,
    make_transaction,
    make_user,
    rejects,
)

T0 = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)


# -- content_analytics --------------------------------------------------------------------------


@pytest.fixture
async def content_id(db: asyncpg.Connection) -> UUID:
    return await make_content(db, await make_creator(db))


@pytest.mark.parametrize(
    "event_type", ["view", "like", "unlike", "share", "comment", "download", "purchase"]
)
async def test_documented_content_event_is_accepted(
    db: asyncpg.Connection, content_id: UUID, event_type: str
) -> None:
    assert await insert(db, "content_analytics", content_id=content_id, event_type=event_type)


@pytest.mark.parametrize("event_type", ["impression", "View", "save", ""])
async def test_undocumented_content_event_is_rejected(
    db: asyncpg.Connection, content_id: UUID, event_type: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "content_analytics_event_type_valid",
        "content_analytics",
        content_id=content_id,
        event_type=event_type,
    )


async def test_view_event_records_geography_device_and_duration(
    db: asyncpg.Connection, content_id: UUID
) -> None:
    event_id = await insert(
        db,
        "content_analytics",
        content_id=content_id,
        user_id=await make_user(db),
        event_type="view",
        view_duration_seconds=42,
        ip_address="203.0.113.7",
        country="DE",
        region="Berlin",
        city="Berlin",
        device_type="mobile",
        browser="Firefox",
        operating_system="Android",
        metadata={"share_target": None},
    )
    assert await column(db, "content_analytics", "view_duration_seconds", event_id) == 42


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        (
            {"event_type": "like", "view_duration_seconds": 5},
            "content_analytics_view_duration_only_for_views",
        ),
        ({"view_duration_seconds": -1}, "content_analytics_view_duration_non_negative"),
        ({"country": "de"}, "content_analytics_country_format"),
        ({"device_type": "fridge"}, "content_analytics_device_type_valid"),
        ({"metadata": [1]}, "content_analytics_metadata_object"),
    ],
)
async def test_malformed_content_event_is_rejected(
    db: asyncpg.Connection, content_id: UUID, fields: dict[str, Any], constraint: str
) -> None:
    values: dict[str, Any] = {"content_id": content_id, "event_type": "view"}
    values.update(fields)
    await rejects(db, asyncpg.CheckViolationError, constraint, "content_analytics", **values)


@pytest.mark.parametrize("device", ["desktop", "mobile", "tablet", "tv", "other"])
async def test_device_type_is_accepted(
    db: asyncpg.Connection, content_id: UUID, device: str
) -> None:
    assert await insert(
        db, "content_analytics", content_id=content_id, event_type="view", device_type=device
    )


async def test_content_event_of_unknown_content_is_rejected(db: asyncpg.Connection) -> None:
    await rejects(
        db,
        asyncpg.ForeignKeyViolationError,
        "content_analytics_content_id_fkey",
        "content_analytics",
        content_id=uuid4(),
        event_type="view",
    )


async def test_content_events_go_with_their_content(
    db: asyncpg.Connection, content_id: UUID
) -> None:
    await insert(db, "content_analytics", content_id=content_id, event_type="view")
    await db.execute("DELETE FROM creator.content WHERE id = $1", content_id)
    assert await db.fetchval("SELECT count(*) FROM creator.content_analytics") == 0


async def test_content_events_of_an_erased_user_become_anonymous(
    db: asyncpg.Connection, content_id: UUID
) -> None:
    viewer = await make_user(db)
    event_id = await insert(
        db, "content_analytics", content_id=content_id, user_id=viewer, event_type="view"
    )
    await db.execute("DELETE FROM creator.users WHERE id = $1", viewer)
    assert await column(db, "content_analytics", "user_id", event_id) is None


# -- user_analytics -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_type",
    [
        "login",
        "logout",
        "profile_view",
        "subscription",
        "unsubscription",
        "tip_sent",
        "tip_received",
        "content_upload",
        "message_sent",
    ],
)
async def test_documented_user_event_is_accepted(db: asyncpg.Connection, event_type: str) -> None:
    assert await insert(db, "user_analytics", user_id=await make_user(db), event_type=event_type)


@pytest.mark.parametrize("event_type", ["signup", "Login", "follow"])
async def test_undocumented_user_event_is_rejected(db: asyncpg.Connection, event_type: str) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "user_analytics_event_type_valid",
        "user_analytics",
        user_id=await make_user(db),
        event_type=event_type,
    )


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"country": "x1"}, "user_analytics_country_format"),
        ({"device_type": "watch"}, "user_analytics_device_type_valid"),
        ({"metadata": "x"}, "user_analytics_metadata_object"),
    ],
)
async def test_malformed_user_event_is_rejected(
    db: asyncpg.Connection, fields: dict[str, Any], constraint: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        constraint,
        "user_analytics",
        user_id=await make_user(db),
        event_type="login",
        **fields,
    )


async def test_user_events_go_with_their_user_and_lose_their_target(
    db: asyncpg.Connection,
) -> None:
    fan, creator_id = await make_user(db), await make_creator(db)
    viewed = await insert(
        db, "user_analytics", user_id=fan, event_type="profile_view", target_user_id=creator_id
    )
    await insert(db, "user_analytics", user_id=creator_id, event_type="login")
    await db.execute("DELETE FROM creator.users WHERE id = $1", creator_id)
    assert await db.fetchval("SELECT count(*) FROM creator.user_analytics") == 1
    assert await column(db, "user_analytics", "target_user_id", viewed) is None


# -- revenue_analytics --------------------------------------------------------------------------


def revenue(**fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "period_type": "hour",
        "period_start": T0,
        "revenue_type": "tip",
        "currency": "USD",
        "gross_amount": 1000,
        "platform_fee": 200,
        "net_amount": 800,
        "transaction_count": 2,
    }
    values.update(fields)
    return values


@pytest.mark.parametrize(
    "revenue_type", ["subscription", "tip", "content_sale", "message_sale", "stream_access"]
)
async def test_documented_revenue_type_is_accepted(
    db: asyncpg.Connection, revenue_type: str
) -> None:
    assert await insert(db, "revenue_analytics", **revenue(revenue_type=revenue_type))


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"revenue_type": "donation"}, "revenue_analytics_revenue_type_valid"),
        ({"period_type": "week"}, "revenue_analytics_period_type_valid"),
        ({"period_start": T0.replace(minute=30)}, "revenue_analytics_period_start_aligned"),
        ({"period_type": "day"}, "revenue_analytics_period_start_aligned"),
        ({"currency": "$"}, "revenue_analytics_currency_format"),
        (
            {"gross_amount": -1, "platform_fee": 0, "net_amount": -1},
            "revenue_analytics_amounts_non_negative",
        ),
        ({"transaction_count": -1}, "revenue_analytics_amounts_non_negative"),
        ({"platform_fee": 1001, "net_amount": -1}, "revenue_analytics_platform_fee_within_gross"),
        ({"net_amount": 700}, "revenue_analytics_net_amount_is_gross_minus_fee"),
    ],
)
async def test_inconsistent_revenue_row_is_rejected(
    db: asyncpg.Connection, fields: dict[str, Any], constraint: str
) -> None:
    await rejects(
        db, asyncpg.CheckViolationError, constraint, "revenue_analytics", **revenue(**fields)
    )


async def test_day_period_starts_at_utc_midnight(db: asyncpg.Connection) -> None:
    assert await insert(
        db, "revenue_analytics", **revenue(period_type="day", period_start=T0.replace(hour=0))
    )


async def test_one_revenue_row_per_creator_period_type_and_currency(
    db: asyncpg.Connection,
) -> None:
    creator_id = await make_creator(db)
    for owner in (creator_id, None):
        await insert(db, "revenue_analytics", **revenue(creator_id=owner))
        await rejects(
            db,
            asyncpg.UniqueViolationError,
            "revenue_analytics_period_key",
            "revenue_analytics",
            **revenue(creator_id=owner),
        )
    assert await insert(db, "revenue_analytics", **revenue(creator_id=creator_id, currency="EUR"))


async def test_revenue_of_unknown_creator_is_rejected(db: asyncpg.Connection) -> None:
    await rejects(
        db,
        asyncpg.ForeignKeyViolationError,
        "revenue_analytics_creator_id_fkey",
        "revenue_analytics",
        **revenue(creator_id=uuid4()),
    )


async def test_revenue_update_moves_updated_at(db: asyncpg.Connection) -> None:
    past = await db_now(db, "-1 day")
    row_id = await insert(db, "revenue_analytics", **revenue(created_at=past, updated_at=past))
    await db.execute(
        "UPDATE creator.revenue_analytics SET transaction_count = 3 WHERE id = $1", row_id
    )
    assert await column(db, "revenue_analytics", "updated_at", row_id) > past


# -- refresh_revenue_analytics() ------------------------------------------------------------------


async def paid(
    db: asyncpg.Connection,
    fan: UUID,
    creator_id: UUID,
    completed_at: datetime,
    gross: int,
    fee: int,
    status: str = "completed",
) -> UUID:
    return await make_transaction(
        db,
        fan,
        creator_id,
        "tip",
        gross_amount=gross,
        platform_fee=fee,
        status=status,
        completed_at=completed_at,
        failure_reason="x" if status == "failed" else None,
    )


async def refresh(db: asyncpg.Connection, period: str, start: datetime, end: datetime) -> int:
    result: int = await db.fetchval(
        "SELECT creator.refresh_revenue_analytics($1, $2, $3)", period, start, end
    )
    return result


async def rows(db: asyncpg.Connection, period: str) -> set[tuple[Any, ...]]:
    found = await db.fetch(
        "SELECT creator_id, period_start, revenue_type, gross_amount, platform_fee, net_amount,"
        " transaction_count FROM creator.revenue_analytics WHERE period_type = $1",
        period,
    )
    return {tuple(r.values()) for r in found}


async def test_refresh_sums_completed_revenue_per_creator_and_platform_hour(
    db: asyncpg.Connection,
) -> None:
    fan, a, b = await make_user(db), await make_creator(db), await make_creator(db)
    at = T0.replace(minute=15)
    await paid(db, fan, a, at, 1000, 200)
    await paid(db, fan, a, at.replace(minute=59), 500, 100)
    await paid(db, fan, b, at, 300, 60)
    await paid(db, fan, b, at.replace(hour=11), 700, 140)
    await paid(db, fan, a, at, 9999, 0, status="failed")
    hour11 = T0.replace(hour=11)
    assert await refresh(db, "hour", T0, hour11.replace(minute=1)) == 5
    assert await rows(db, "hour") == {
        (a, T0, "tip", 1500, 300, 1200, 2),
        (b, T0, "tip", 300, 60, 240, 1),
        (None, T0, "tip", 1800, 360, 1440, 3),
        (b, hour11, "tip", 700, 140, 560, 1),
        (None, hour11, "tip", 700, 140, 560, 1),
    }


async def test_refresh_by_day_uses_utc_days_and_revenue_types(db: asyncpg.Connection) -> None:
    fan, creator_id = await make_user(db), await make_creator(db)
    post = await make_content(db, creator_id, is_premium=True, price=400)
    tx = await make_transaction(
        db,
        fan,
        creator_id,
        "content_purchase",
        gross_amount=400,
        platform_fee=80,
        content_id=post,
        status="completed",
        completed_at=T0,
    )
    assert tx
    await paid(db, fan, creator_id, T0.replace(hour=23, minute=59), 100, 20)
    await make_transaction(
        db,
        creator_id,
        creator_id,
        "payout",
        gross_amount=50,
        platform_fee=0,
        status="completed",
        completed_at=T0,
    )
    day = T0.replace(hour=0)
    await refresh(db, "day", T0, T0)
    assert await rows(db, "day") == {
        (creator_id, day, "content_sale", 400, 80, 320, 1),
        (None, day, "content_sale", 400, 80, 320, 1),
        (creator_id, day, "tip", 100, 20, 80, 1),
        (None, day, "tip", 100, 20, 80, 1),
    }


async def test_refresh_is_idempotent_and_drops_what_no_longer_counts(
    db: asyncpg.Connection,
) -> None:
    fan, creator_id = await make_user(db), await make_creator(db)
    first = await paid(db, fan, creator_id, T0, 1000, 200)
    await paid(db, fan, creator_id, T0, 500, 100)
    await refresh(db, "hour", T0, T0)
    await refresh(db, "hour", T0, T0)
    assert await rows(db, "hour") == {
        (creator_id, T0, "tip", 1500, 300, 1200, 2),
        (None, T0, "tip", 1500, 300, 1200, 2),
    }
    await db.execute("UPDATE creator.transactions SET status = 'refunded' WHERE id = $1", first)
    await refresh(db, "hour", T0, T0)
    assert await rows(db, "hour") == {
        (creator_id, T0, "tip", 500, 100, 400, 1),
        (None, T0, "tip", 500, 100, 400, 1),
    }


async def test_refresh_leaves_periods_outside_its_window(db: asyncpg.Connection) -> None:
    fan, creator_id = await make_user(db), await make_creator(db)
    await paid(db, fan, creator_id, T0, 1000, 200)
    await refresh(db, "hour", T0, T0)
    await refresh(db, "hour", T0.replace(hour=12), T0.replace(hour=13))
    assert len(await rows(db, "hour")) == 2


async def test_refresh_refuses_an_unknown_period_type(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError):
        await refresh(db, "week", T0, T0)
