"""sql/0003: tiers, discount codes, invite links, subscriptions, payments, their triggers and
the cron/revenue functions."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from tests.factories import insert_row, make_analyst, make_subscription, make_tier, make_user

TABLES = (
    "subscription_tiers",
    "discount_codes",
    "invite_links",
    "subscriptions",
    "payment_transactions",
)


async def db_time(db: asyncpg.Connection, offset: str) -> datetime:
    """The database's now() shifted by an interval such as '-2 days'."""
    value = await db.fetchval("SELECT now() + $1::text::interval", offset)
    assert isinstance(value, datetime)
    return value


async def code_row(db: asyncpg.Connection, analyst_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    values = {
        "analyst_id": analyst_id,
        "code": f"CODE{uuid.uuid4().hex[:10].upper()}",
        "discount_type": "percentage",
        "discount_value": 50,
        **fields,
    }
    return await insert_row(db, "discount_codes", values)


async def link_row(db: asyncpg.Connection, analyst_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    values = {"analyst_id": analyst_id, "invite_code": f"L-{uuid.uuid4().hex[:12]}", **fields}
    return await insert_row(db, "invite_links", values)


async def payment_row(db: asyncpg.Connection, **fields: Any) -> uuid.UUID:
    values = {
        "transaction_type": "subscription_payment",
        "amount": 99900,
        "status": "captured",
        **fields,
    }
    return await insert_row(db, "payment_transactions", values)


async def counts(db: asyncpg.Connection, analyst_id: uuid.UUID) -> tuple[int, int]:
    """(active_subscribers, total_subscribers) of the analyst's profile."""
    row = await db.fetchrow(
        "SELECT active_subscribers, total_subscribers FROM analyst.analyst_profiles"
        " WHERE user_id = $1",
        analyst_id,
    )
    return row["active_subscribers"], row["total_subscribers"]


async def recount(db: asyncpg.Connection, analyst_id: uuid.UUID) -> tuple[int, int]:
    """What the counters should say, counted from scratch."""
    row = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'active' AND deleted_at IS NULL) AS a,"
        "       count(*) FILTER (WHERE deleted_at IS NULL) AS t"
        "  FROM analyst.subscriptions WHERE analyst_id = $1",
        analyst_id,
    )
    return row["a"], row["t"]


async def usage(db: asyncpg.Connection, code_id: uuid.UUID) -> int:
    value = await db.fetchval(
        "SELECT usage_count FROM analyst.discount_codes WHERE id = $1", code_id
    )
    assert isinstance(value, int)
    return value


@pytest.fixture
async def analyst(db: asyncpg.Connection) -> uuid.UUID:
    return await make_analyst(db)


@pytest.fixture
async def trader(db: asyncpg.Connection) -> uuid.UUID:
    return await make_user(db)


@pytest.fixture
async def tier(db: asyncpg.Connection, analyst: uuid.UUID) -> uuid.UUID:
    return await make_tier(db, analyst)


# subscription_tiers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("monthly", "yearly", "ok"),
    [
        (99900, 999000, True),
        (99900, 1198799, True),
        (99900, None, True),
        (99900, 1198800, False),  # exactly 12 months: no discount
        (99900, 1500000, False),
        (0, 0, True),  # a free plan is free both ways
        (0, 1, False),
        (178956970, 2000000000, True),  # monthly * 12 exceeds int4: no overflow
    ],
)
async def test_tier_yearly_price_is_below_twelve_months(
    db: asyncpg.Connection, analyst: uuid.UUID, monthly: int, yearly: int | None, ok: bool
) -> None:
    if ok:
        assert await make_tier(db, analyst, price_monthly=monthly, price_yearly=yearly)
    else:
        with pytest.raises(asyncpg.CheckViolationError) as err:
            await make_tier(db, analyst, price_monthly=monthly, price_yearly=yearly)
        assert err.value.constraint_name == "subscription_tiers_yearly_below_twelve_months"


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"price_monthly": -1}, "subscription_tiers_price_monthly_non_negative"),
        ({"price_yearly": -1}, "subscription_tiers_price_yearly_non_negative"),
        ({"posts_per_day": -1}, "subscription_tiers_posts_per_day_non_negative"),
        ({"currency": "inr"}, "subscription_tiers_currency_format"),
        ({"features": {"chat": True}}, "subscription_tiers_features_array"),
    ],
)
async def test_tier_rejects_bad_values(
    db: asyncpg.Connection, analyst: uuid.UUID, fields: dict[str, Any], constraint: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await make_tier(db, analyst, **fields)
    assert err.value.constraint_name == constraint


async def test_tier_requires_price_name_and_an_existing_analyst(
    db: asyncpg.Connection, analyst: uuid.UUID
) -> None:
    with pytest.raises(asyncpg.NotNullViolationError):
        await make_tier(db, analyst, price_monthly=None)
    with pytest.raises(asyncpg.NotNullViolationError):
        await insert_row(db, "subscription_tiers", {"analyst_id": analyst, "price_monthly": 0})
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await make_tier(db, uuid.uuid4())


async def test_tier_defaults(db: asyncpg.Connection, analyst: uuid.UUID) -> None:
    tier_id = await insert_row(
        db, "subscription_tiers", {"analyst_id": analyst, "tier_name": "Pro", "price_monthly": 1}
    )
    row = await db.fetchrow("SELECT * FROM analyst.subscription_tiers WHERE id = $1", tier_id)
    assert row["tier_order"] == 0 and row["currency"] == "INR"
    assert row["chat_access"] is False and row["priority_support"] is False
    assert row["is_active"] is True and row["is_free_tier"] is False
    assert row["posts_per_day"] is None  # unlimited
    assert row["features"] is None and row["created_at"] == row["updated_at"]


async def test_tier_only_one_free_tier_per_analyst(
    db: asyncpg.Connection, analyst: uuid.UUID
) -> None:
    free = await make_tier(db, analyst, tier_name="Free", price_monthly=0, is_free_tier=True)
    with pytest.raises(asyncpg.UniqueViolationError) as err:
        await make_tier(db, analyst, tier_name="Free 2", price_monthly=0, is_free_tier=True)
    assert err.value.constraint_name == "subscription_tiers_one_free_tier_per_analyst"
    assert await make_tier(db, await make_analyst(db), price_monthly=0, is_free_tier=True)
    assert await make_tier(db, analyst, is_free_tier=False)
    await db.execute("UPDATE analyst.subscription_tiers SET deleted_at = now() WHERE id = $1", free)
    assert await make_tier(db, analyst, price_monthly=0, is_free_tier=True)


async def test_tier_name_is_unique_per_analyst(db: asyncpg.Connection, analyst: uuid.UUID) -> None:
    pro = await make_tier(db, analyst, tier_name="Pro")
    for name in ("Pro", "PRO"):
        with pytest.raises(asyncpg.UniqueViolationError) as err:
            await make_tier(db, analyst, tier_name=name)
        assert err.value.constraint_name == "subscription_tiers_unique_name_per_analyst"
    assert await make_tier(db, await make_analyst(db), tier_name="Pro")
    await db.execute("UPDATE analyst.subscription_tiers SET deleted_at = now() WHERE id = $1", pro)
    assert await make_tier(db, analyst, tier_name="Pro")


# discount_codes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("discount_type", "value", "ok"),
    [
        ("percentage", 0, False),
        ("percentage", 1, True),
        ("percentage", 100, True),
        ("percentage", 101, False),
        ("fixed_amount", 0, False),
        ("fixed_amount", -500, False),
        ("fixed_amount", 1, True),
        ("fixed_amount", 50000, True),
    ],
)
async def test_discount_value_matches_its_type(
    db: asyncpg.Connection, analyst: uuid.UUID, discount_type: str, value: int, ok: bool
) -> None:
    fields = {"discount_type": discount_type, "discount_value": value}
    if ok:
        assert await code_row(db, analyst, **fields)
    else:
        with pytest.raises(asyncpg.CheckViolationError) as err:
            await code_row(db, analyst, **fields)
        assert err.value.constraint_name == "discount_codes_discount_value_valid"


@pytest.mark.parametrize("discount_type", ["percent", "free_months", ""])
async def test_discount_type_rejects_other_values(
    db: asyncpg.Connection, analyst: uuid.UUID, discount_type: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await code_row(db, analyst, discount_type=discount_type)
    assert err.value.constraint_name == "discount_codes_discount_type_valid"


@pytest.mark.parametrize(
    ("restriction", "ok"), [("monthly", True), ("yearly", True), ("both", True), ("weekly", False)]
)
async def test_discount_billing_cycle_restriction_values(
    db: asyncpg.Connection, analyst: uuid.UUID, restriction: str, ok: bool
) -> None:
    if ok:
        assert await code_row(db, analyst, billing_cycle_restriction=restriction)
    else:
        with pytest.raises(asyncpg.CheckViolationError) as err:
            await code_row(db, analyst, billing_cycle_restriction=restriction)
        assert err.value.constraint_name == "discount_codes_billing_cycle_restriction_valid"


async def test_discount_usage_count_cannot_exceed_usage_limit(
    db: asyncpg.Connection, analyst: uuid.UUID
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await code_row(db, analyst, usage_limit=1, usage_count=2)
    assert err.value.constraint_name == "discount_codes_usage_within_limit"
    assert await code_row(db, analyst, usage_limit=2, usage_count=2)
    assert await code_row(db, analyst, usage_limit=None, usage_count=1000)


async def test_discount_validity_window_ends_after_it_starts(
    db: asyncpg.Connection, analyst: uuid.UUID
) -> None:
    start = await db_time(db, "0 days")
    for end in (start, await db_time(db, "-1 day")):
        with pytest.raises(asyncpg.CheckViolationError) as err:
            await code_row(db, analyst, valid_from=start, valid_until=end)
        assert err.value.constraint_name == "discount_codes_valid_until_after_valid_from"
    assert await code_row(db, analyst, valid_from=start, valid_until=await db_time(db, "7 days"))
    assert await code_row(db, analyst, valid_from=None, valid_until=start)
    assert await code_row(db, analyst, valid_from=start, valid_until=None)


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"per_user_limit": 0}, "discount_codes_per_user_limit_positive"),
        ({"usage_count": -1}, "discount_codes_usage_count_non_negative"),
        ({"usage_limit": -1}, "discount_codes_usage_limit_non_negative"),
        ({"max_discount_amount": -1}, "discount_codes_max_discount_amount_non_negative"),
    ],
)
async def test_discount_rejects_bad_limits(
    db: asyncpg.Connection, analyst: uuid.UUID, fields: dict[str, Any], constraint: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await code_row(db, analyst, **fields)
    assert err.value.constraint_name == constraint


async def test_discount_code_is_unique_and_defaults(
    db: asyncpg.Connection, analyst: uuid.UUID
) -> None:
    code_id = await code_row(db, analyst, code="TELEGRAM50")
    with pytest.raises(asyncpg.UniqueViolationError) as err:
        await code_row(db, await make_analyst(db), code="TELEGRAM50")
    assert err.value.constraint_name == "discount_codes_code_key"
    row = await db.fetchrow("SELECT * FROM analyst.discount_codes WHERE id = $1", code_id)
    assert row["usage_count"] == 0 and row["per_user_limit"] == 1
    assert row["billing_cycle_restriction"] == "both"
    assert row["first_time_only"] is False and row["is_active"] is True
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await code_row(db, uuid.uuid4())


# invite_links --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clicks", "conversions", "rate"),
    [
        (0, 0, "0.00"),
        (0, 5, "0.00"),
        (200, 7, "3.50"),
        (3, 1, "33.33"),
        (3, 2, "66.67"),
        (10, 10, "100.00"),
        (1, 10, "999.99"),  # more conversions than clicks: capped, the write still succeeds
    ],
)
async def test_invite_conversion_rate_is_conversions_per_hundred_clicks(
    db: asyncpg.Connection, analyst: uuid.UUID, clicks: int, conversions: int, rate: str
) -> None:
    link_id = await link_row(db, analyst, total_clicks=clicks, conversions_count=conversions)
    value = await db.fetchval(
        "SELECT conversion_rate FROM analyst.invite_links WHERE id = $1", link_id
    )
    assert value == Decimal(rate)


async def test_invite_conversion_rate_follows_updates_and_cannot_be_written(
    db: asyncpg.Connection, analyst: uuid.UUID
) -> None:
    link_id = await link_row(db, analyst)
    await db.execute(
        "UPDATE analyst.invite_links SET total_clicks = 8, conversions_count = 1 WHERE id = $1",
        link_id,
    )
    assert await db.fetchval(
        "SELECT conversion_rate FROM analyst.invite_links WHERE id = $1", link_id
    ) == Decimal("12.50")
    with pytest.raises(asyncpg.GeneratedAlwaysError):
        await link_row(db, analyst, conversion_rate=Decimal("99"))


@pytest.mark.parametrize(
    "counter",
    [
        "total_clicks",
        "unique_visitors",
        "signups_count",
        "conversions_count",
        "total_revenue_generated",
    ],
)
async def test_invite_counters_cannot_be_negative(
    db: asyncpg.Connection, analyst: uuid.UUID, counter: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await link_row(db, analyst, **{counter: -1})
    assert err.value.constraint_name == "invite_links_counters_non_negative"


async def test_invite_code_is_unique_and_discount_code_must_exist(
    db: asyncpg.Connection, analyst: uuid.UUID
) -> None:
    code_id = await code_row(db, analyst)
    assert await link_row(db, analyst, invite_code="RAJESH-TELEGRAM", discount_code_id=code_id)
    with pytest.raises(asyncpg.UniqueViolationError) as err:
        await link_row(db, analyst, invite_code="RAJESH-TELEGRAM")
    assert err.value.constraint_name == "invite_links_invite_code_key"
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await link_row(db, analyst, discount_code_id=uuid.uuid4())
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await link_row(db, analyst, max_uses=0)
    assert err.value.constraint_name == "invite_links_max_uses_positive"


# subscriptions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status", ["active", "cancelled", "expired", "suspended", "pending_payment"]
)
async def test_subscription_status_accepts_each_documented_value(
    db: asyncpg.Connection, trader: uuid.UUID, tier: uuid.UUID, status: str
) -> None:
    assert await make_subscription(db, trader, tier, status=status)


@pytest.mark.parametrize("status", ["paused", "Active", ""])
async def test_subscription_status_rejects_other_values(
    db: asyncpg.Connection, trader: uuid.UUID, tier: uuid.UUID, status: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await make_subscription(db, trader, tier, status=status)
    assert err.value.constraint_name == "subscriptions_status_valid"


@pytest.mark.parametrize(
    ("cycle", "ok"), [("monthly", True), ("yearly", True), ("weekly", False), ("both", False)]
)
async def test_subscription_billing_cycle_is_monthly_or_yearly(
    db: asyncpg.Connection, trader: uuid.UUID, tier: uuid.UUID, cycle: str, ok: bool
) -> None:
    if ok:
        assert await make_subscription(db, trader, tier, billing_cycle=cycle)
    else:
        with pytest.raises(asyncpg.CheckViolationError) as err:
            await make_subscription(db, trader, tier, billing_cycle=cycle)
        assert err.value.constraint_name == "subscriptions_billing_cycle_valid"


async def test_subscription_user_cannot_subscribe_to_themselves(
    db: asyncpg.Connection, analyst: uuid.UUID, tier: uuid.UUID
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await make_subscription(db, analyst, tier)
    assert err.value.constraint_name == "subscriptions_no_self_subscription"
    assert await make_subscription(db, analyst, await make_tier(db, await make_analyst(db)))


async def test_subscription_only_one_active_per_user_and_analyst(
    db: asyncpg.Connection, trader: uuid.UUID, analyst: uuid.UUID, tier: uuid.UUID
) -> None:
    first = await make_subscription(db, trader, tier)
    other_tier = await make_tier(db, analyst)
    for tier_id in (tier, other_tier):
        with pytest.raises(asyncpg.UniqueViolationError) as err:
            await make_subscription(db, trader, tier_id)
        assert err.value.constraint_name == "subscriptions_one_active_per_user_analyst"
    # Not active, another user, another analyst: all fine.
    assert await make_subscription(db, trader, other_tier, status="cancelled")
    assert await make_subscription(db, trader, other_tier, status="pending_payment")
    assert await make_subscription(db, await make_user(db), tier)
    assert await make_subscription(db, trader, await make_tier(db, await make_analyst(db)))
    # Once the first is no longer active (or soft-deleted) a new active one may start.
    await db.execute("UPDATE analyst.subscriptions SET status = 'expired' WHERE id = $1", first)
    second = await make_subscription(db, trader, other_tier)
    await db.execute("UPDATE analyst.subscriptions SET deleted_at = now() WHERE id = $1", second)
    assert await make_subscription(db, trader, tier)


@pytest.mark.parametrize(("retries", "ok"), [(-1, False), (0, True), (3, True), (4, False)])
async def test_subscription_payment_retry_count_is_0_to_3(
    db: asyncpg.Connection, trader: uuid.UUID, tier: uuid.UUID, retries: int, ok: bool
) -> None:
    if ok:
        assert await make_subscription(db, trader, tier, payment_retry_count=retries)
    else:
        with pytest.raises(asyncpg.CheckViolationError) as err:
            await make_subscription(db, trader, tier, payment_retry_count=retries)
        assert err.value.constraint_name == "subscriptions_payment_retry_count_range"


@pytest.mark.parametrize("column", ["price_paid", "discount_applied", "final_price"])
async def test_subscription_amounts_cannot_be_negative(
    db: asyncpg.Connection, trader: uuid.UUID, tier: uuid.UUID, column: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await make_subscription(db, trader, tier, **{column: -1})
    assert err.value.constraint_name == "subscriptions_amounts_non_negative"


async def test_subscription_analyst_must_be_the_tiers_analyst(
    db: asyncpg.Connection, trader: uuid.UUID, tier: uuid.UUID
) -> None:
    someone_else = await make_analyst(db)
    with pytest.raises(asyncpg.ForeignKeyViolationError) as err:
        await make_subscription(db, trader, tier, analyst_id=someone_else)
    assert err.value.constraint_name == "subscriptions_tier_matches_analyst"


async def test_subscription_references_must_exist(
    db: asyncpg.Connection, trader: uuid.UUID, analyst: uuid.UUID, tier: uuid.UUID
) -> None:
    for column in ("referred_by_invite_link", "discount_code_used"):
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await make_subscription(db, trader, tier, **{column: uuid.uuid4()})
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await make_subscription(db, uuid.uuid4(), tier)
    link = await link_row(db, analyst)
    code = await code_row(db, analyst)
    assert await make_subscription(
        db, trader, tier, referred_by_invite_link=link, discount_code_used=code
    )


async def test_subscription_razorpay_id_is_unique_and_defaults(
    db: asyncpg.Connection, trader: uuid.UUID, tier: uuid.UUID
) -> None:
    sub = await make_subscription(db, trader, tier, razorpay_subscription_id="sub_123")
    with pytest.raises(asyncpg.UniqueViolationError) as err:
        await make_subscription(db, await make_user(db), tier, razorpay_subscription_id="sub_123")
    assert err.value.constraint_name == "subscriptions_razorpay_subscription_id_key"
    row = await db.fetchrow("SELECT * FROM analyst.subscriptions WHERE id = $1", sub)
    assert row["currency"] == "INR" and row["auto_renewal"] is True
    assert row["payment_retry_count"] == 0 and row["created_at"] == row["updated_at"]


# payment_transactions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "transaction_type", ["subscription_payment", "renewal", "refund", "payout"]
)
async def test_payment_transaction_type_accepts_each_documented_value(
    db: asyncpg.Connection, transaction_type: str
) -> None:
    assert await payment_row(db, transaction_type=transaction_type)


@pytest.mark.parametrize(
    "status", ["pending", "authorized", "captured", "failed", "refunded", "cancelled"]
)
async def test_payment_status_accepts_each_documented_value(
    db: asyncpg.Connection, status: str
) -> None:
    assert await payment_row(db, status=status)


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"transaction_type": "chargeback"}, "payment_transactions_transaction_type_valid"),
        ({"status": "settled"}, "payment_transactions_status_valid"),
        ({"amount": -1}, "payment_transactions_amount_non_negative"),
        ({"retry_count": -1}, "payment_transactions_retry_count_non_negative"),
        ({"amount": 100, "refund_amount": 101}, "payment_transactions_refund_within_amount"),
        ({"currency": "rupees"}, None),  # varchar(3)
    ],
)
async def test_payment_rejects_bad_values(
    db: asyncpg.Connection, fields: dict[str, Any], constraint: str | None
) -> None:
    with pytest.raises(
        (asyncpg.CheckViolationError, asyncpg.StringDataRightTruncationError)
    ) as err:
        await payment_row(db, **fields)
    if constraint is not None:
        assert getattr(err.value, "constraint_name", None) == constraint


@pytest.mark.parametrize(
    ("amount", "payout", "commission", "ok"),
    [
        (99900, 79920, 19980, True),
        (99900, 79920, 19979, False),
        (99900, 99900, 0, True),
        (99900, 80000, 20000, False),
        (99900, 79920, None, True),  # split not known yet
        (99900, None, None, True),
    ],
)
async def test_payment_payout_plus_commission_equals_amount(
    db: asyncpg.Connection, amount: int, payout: int | None, commission: int | None, ok: bool
) -> None:
    fields = {"amount": amount, "payout_amount": payout, "platform_commission": commission}
    if ok:
        assert await payment_row(db, **fields)
    else:
        with pytest.raises(asyncpg.CheckViolationError) as err:
            await payment_row(db, **fields)
        assert err.value.constraint_name == "payment_transactions_split_sums_to_amount"


async def test_payment_references_must_exist(
    db: asyncpg.Connection, trader: uuid.UUID, analyst: uuid.UUID, tier: uuid.UUID
) -> None:
    for column in ("user_id", "analyst_id", "subscription_id"):
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await payment_row(db, **{column: uuid.uuid4()})
    sub = await make_subscription(db, trader, tier)
    assert await payment_row(
        db, user_id=trader, analyst_id=analyst, subscription_id=sub, razorpay_payment_id="pay_1"
    )
    with pytest.raises(asyncpg.UniqueViolationError) as err:
        await payment_row(db, razorpay_payment_id="pay_1")
    assert err.value.constraint_name == "payment_transactions_razorpay_payment_id_key"


# update_analyst_subscriber_counts() ----------------------------------------------------------


async def test_subscriber_counts_follow_insert(
    db: asyncpg.Connection, analyst: uuid.UUID, tier: uuid.UUID
) -> None:
    assert await counts(db, analyst) == (0, 0)
    await make_subscription(db, await make_user(db), tier)
    assert await counts(db, analyst) == (1, 1)
    await make_subscription(db, await make_user(db), tier, status="pending_payment")
    assert await counts(db, analyst) == (1, 2)
    await make_subscription(db, await make_user(db), tier, deleted_at=await db_time(db, "0s"))
    assert await counts(db, analyst) == (1, 2)  # born deleted: not counted


async def test_subscriber_counts_follow_status_changes(
    db: asyncpg.Connection, analyst: uuid.UUID, trader: uuid.UUID, tier: uuid.UUID
) -> None:
    sub = await make_subscription(db, trader, tier)
    for status, expected in [
        ("cancelled", (0, 1)),
        ("active", (1, 1)),
        ("expired", (0, 1)),
        ("suspended", (0, 1)),
        ("active", (1, 1)),
    ]:
        await db.execute("UPDATE analyst.subscriptions SET status = $2 WHERE id = $1", sub, status)
        assert await counts(db, analyst) == expected, status


async def test_subscriber_counts_follow_soft_delete_and_restore(
    db: asyncpg.Connection, analyst: uuid.UUID, tier: uuid.UUID
) -> None:
    active = await make_subscription(db, await make_user(db), tier)
    cancelled = await make_subscription(db, await make_user(db), tier, status="cancelled")
    assert await counts(db, analyst) == (1, 2)
    soft_delete = "UPDATE analyst.subscriptions SET deleted_at = now() WHERE id = $1"
    await db.execute(soft_delete, active)
    assert await counts(db, analyst) == (0, 1)
    await db.execute(soft_delete, cancelled)
    assert await counts(db, analyst) == (0, 0)
    await db.execute("UPDATE analyst.subscriptions SET deleted_at = NULL WHERE id = $1", active)
    assert await counts(db, analyst) == (1, 1)


async def test_subscriber_counts_follow_hard_delete(
    db: asyncpg.Connection, analyst: uuid.UUID, tier: uuid.UUID
) -> None:
    active = await make_subscription(db, await make_user(db), tier)
    cancelled = await make_subscription(db, await make_user(db), tier, status="cancelled")
    gone = await make_subscription(db, await make_user(db), tier)
    await db.execute("UPDATE analyst.subscriptions SET deleted_at = now() WHERE id = $1", gone)
    assert await counts(db, analyst) == (1, 2)
    delete = "DELETE FROM analyst.subscriptions WHERE id = $1"
    await db.execute(delete, gone)  # already soft-deleted: counted nowhere
    assert await counts(db, analyst) == (1, 2)
    await db.execute(delete, cancelled)
    assert await counts(db, analyst) == (1, 1)
    await db.execute(delete, active)
    assert await counts(db, analyst) == (0, 0)


async def test_subscriber_counts_ignore_updates_of_other_columns(
    db: asyncpg.Connection, analyst: uuid.UUID, trader: uuid.UUID, tier: uuid.UUID
) -> None:
    sub = await make_subscription(db, trader, tier)
    await db.execute(
        "UPDATE analyst.subscriptions SET payment_retry_count = 2, final_price = 5 WHERE id = $1",
        sub,
    )
    assert await counts(db, analyst) == (1, 1)


async def test_subscriber_counts_move_when_the_analyst_changes(
    db: asyncpg.Connection, analyst: uuid.UUID, trader: uuid.UUID, tier: uuid.UUID
) -> None:
    other = await make_analyst(db)
    other_tier = await make_tier(db, other)
    sub = await make_subscription(db, trader, tier)
    await make_subscription(db, await make_user(db), tier, status="cancelled")
    await db.execute(
        "UPDATE analyst.subscriptions SET analyst_id = $2, tier_id = $3 WHERE id = $1",
        sub,
        other,
        other_tier,
    )
    assert await counts(db, analyst) == (0, 1)
    assert await counts(db, other) == (1, 1)
    # Moving and deactivating in one statement.
    await db.execute(
        "UPDATE analyst.subscriptions SET analyst_id = $2, tier_id = $3, status = 'cancelled'"
        " WHERE id = $1",
        sub,
        analyst,
        tier,
    )
    assert await counts(db, analyst) == (0, 2)
    assert await counts(db, other) == (0, 0)


async def test_subscriber_counts_never_go_below_zero(
    db: asyncpg.Connection, analyst: uuid.UUID, trader: uuid.UUID, tier: uuid.UUID
) -> None:
    sub = await make_subscription(db, trader, tier)
    await db.execute(
        "UPDATE analyst.analyst_profiles SET active_subscribers = 0, total_subscribers = 0"
        " WHERE user_id = $1",
        analyst,
    )
    await db.execute("DELETE FROM analyst.subscriptions WHERE id = $1", sub)
    assert await counts(db, analyst) == (0, 0)


async def test_subscriber_counts_stay_exact_through_bulk_statements(
    db: asyncpg.Connection,
) -> None:
    analysts = [await make_analyst(db) for _ in range(3)]
    tiers = [await make_tier(db, a) for a in analysts]
    await db.execute(
        "INSERT INTO analyst.users (email, password_hash, user_type)"
        " SELECT 'bulk' || g || '@example.com', 'x', 'trader' FROM generate_series(1, 400) g"
    )
    # One statement: 1200 subscriptions across three analysts, a mix of statuses.
    await db.execute(
        """
        INSERT INTO analyst.subscriptions (user_id, analyst_id, tier_id, status, billing_cycle)
        SELECT u.id, t.analyst_id, t.id,
               (ARRAY['active', 'active', 'cancelled', 'pending_payment'])[1 + (row_number()
                   OVER (ORDER BY u.id, t.id)) % 4],
               'monthly'
          FROM analyst.users u CROSS JOIN analyst.subscription_tiers t
         WHERE u.email LIKE 'bulk%'
        """
    )
    for a in analysts:
        assert await counts(db, a) == await recount(db, a)
    await db.execute(
        "UPDATE analyst.subscriptions SET status = 'expired'"
        " WHERE status = 'active' AND random() < 0.5"
    )
    await db.execute(
        "UPDATE analyst.subscriptions SET deleted_at = now() WHERE status <> 'active'"
        " AND random() < 0.3"
    )
    await db.execute("DELETE FROM analyst.subscriptions WHERE random() < 0.2")
    for a in analysts:
        assert await counts(db, a) == await recount(db, a)
        assert (await counts(db, a))[1] > 0
    assert len(tiers) == 3


# increment_discount_code_usage() -------------------------------------------------------------


async def test_discount_usage_counts_inserts_with_a_code(
    db: asyncpg.Connection, analyst: uuid.UUID, tier: uuid.UUID
) -> None:
    code = await code_row(db, analyst)
    await make_subscription(db, await make_user(db), tier)
    assert await usage(db, code) == 0
    await make_subscription(db, await make_user(db), tier, discount_code_used=code)
    await make_subscription(db, await make_user(db), tier, discount_code_used=code)
    assert await usage(db, code) == 2


async def test_discount_usage_counts_updates_that_set_or_change_the_code(
    db: asyncpg.Connection, analyst: uuid.UUID, trader: uuid.UUID, tier: uuid.UUID
) -> None:
    first, second = await code_row(db, analyst), await code_row(db, analyst)
    sub = await make_subscription(db, trader, tier)
    set_code = "UPDATE analyst.subscriptions SET discount_code_used = $2 WHERE id = $1"
    await db.execute(set_code, sub, first)
    assert (await usage(db, first), await usage(db, second)) == (1, 0)
    await db.execute(set_code, sub, first)  # unchanged: not counted again
    await db.execute("UPDATE analyst.subscriptions SET payment_retry_count = 1 WHERE id = $1", sub)
    assert await usage(db, first) == 1
    await db.execute(set_code, sub, second)
    assert (await usage(db, first), await usage(db, second)) == (1, 1)
    await db.execute(set_code, sub, None)
    assert (await usage(db, first), await usage(db, second)) == (1, 1)


async def test_discount_usage_is_not_given_back_on_cancel_or_delete(
    db: asyncpg.Connection, analyst: uuid.UUID, trader: uuid.UUID, tier: uuid.UUID
) -> None:
    code = await code_row(db, analyst)
    sub = await make_subscription(db, trader, tier, discount_code_used=code)
    await db.execute(
        "UPDATE analyst.subscriptions SET status = 'cancelled', deleted_at = now() WHERE id = $1",
        sub,
    )
    await db.execute("DELETE FROM analyst.subscriptions WHERE id = $1", sub)
    assert await usage(db, code) == 1


async def test_discount_usage_limit_rejects_the_subscription_that_overuses_it(
    db: asyncpg.Connection, analyst: uuid.UUID, tier: uuid.UUID
) -> None:
    code = await code_row(db, analyst, usage_limit=1)
    await make_subscription(db, await make_user(db), tier, discount_code_used=code)
    late = await make_user(db)
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await make_subscription(db, late, tier, discount_code_used=code)
    assert err.value.constraint_name == "discount_codes_usage_within_limit"
    assert await usage(db, code) == 1
    assert (
        await db.fetchval("SELECT count(*) FROM analyst.subscriptions WHERE user_id = $1", late)
        == 0
    )


# expire_old_subscriptions() ------------------------------------------------------------------


async def test_expire_old_subscriptions_only_touches_active_ones_past_expiry(
    db: asyncpg.Connection, analyst: uuid.UUID, tier: uuid.UUID
) -> None:
    past, future = await db_time(db, "-2 days"), await db_time(db, "2 days")
    old = {"start_date": await db_time(db, "-32 days"), "updated_at": await db_time(db, "-3 days")}

    async def sub(status: str, expires_at: datetime | None) -> uuid.UUID:
        user = await make_user(db)
        return await make_subscription(db, user, tier, status=status, expires_at=expires_at, **old)

    due = await sub("active", past)
    running = await sub("active", future)
    open_ended = await sub("active", None)
    others = {
        s: await sub(s, past) for s in ("cancelled", "suspended", "pending_payment", "expired")
    }
    assert await counts(db, analyst) == (3, 7)

    assert await db.fetchval("SELECT analyst.expire_old_subscriptions()") == 1

    rows = {
        r["id"]: r
        for r in await db.fetch("SELECT id, status, updated_at FROM analyst.subscriptions")
    }
    assert rows[due]["status"] == "expired"
    assert rows[due]["updated_at"] > old["updated_at"]
    assert rows[running]["status"] == rows[open_ended]["status"] == "active"
    for status, sub_id in others.items():
        assert rows[sub_id]["status"] == status
        assert rows[sub_id]["updated_at"] == old["updated_at"]
    assert await counts(db, analyst) == (2, 7)
    assert await db.fetchval("SELECT analyst.expire_old_subscriptions()") == 0


# cleanup_expired_otps() ----------------------------------------------------------------------


async def test_cleanup_expired_otps_only_removes_those_expired_over_a_day_ago(
    db: asyncpg.Connection,
) -> None:
    ids = {}
    for label, offset in [("old", "-25 hours"), ("recent", "-23 hours"), ("live", "5 minutes")]:
        ids[label] = await insert_row(
            db,
            "otp_verifications",
            {
                "phone": "+919876543210",
                "otp_code": "123456",
                "purpose": "login",
                "expires_at": await db_time(db, offset),
            },
        )
    assert await db.fetchval("SELECT analyst.cleanup_expired_otps()") == 1
    left = {r["id"] for r in await db.fetch("SELECT id FROM analyst.otp_verifications")}
    assert left == {ids["recent"], ids["live"]}
    assert await db.fetchval("SELECT analyst.cleanup_expired_otps()") == 0


# calculate_analyst_monthly_revenue() ---------------------------------------------------------


async def test_monthly_revenue_counts_active_subscriptions_monthly_equivalent(
    db: asyncpg.Connection, analyst: uuid.UUID, tier: uuid.UUID
) -> None:
    async def sub(**fields: Any) -> uuid.UUID:
        return await make_subscription(db, await make_user(db), tier, **fields)

    revenue = "SELECT analyst.calculate_analyst_monthly_revenue($1)"
    assert await db.fetchval(revenue, analyst) == 0
    await sub(final_price=99900, price_paid=129900)  # monthly: what was charged
    await sub(billing_cycle="yearly", final_price=999000)  # 83250 a month
    await sub(billing_cycle="yearly", final_price=1000)  # 83.33 -> 83
    await sub(billing_cycle="yearly", final_price=None, price_paid=120000)  # 10000
    await sub(final_price=None, price_paid=None)  # nothing known: 0
    for status in ("cancelled", "expired", "suspended", "pending_payment"):
        await sub(status=status, final_price=50000)
    await sub(final_price=50000, deleted_at=await db_time(db, "0s"))
    await make_subscription(  # another analyst's subscriber
        db, await make_user(db), await make_tier(db, await make_analyst(db)), final_price=50000
    )
    assert await db.fetchval(revenue, analyst) == 99900 + 83250 + 83 + 10000
    assert await db.fetchval(revenue, uuid.uuid4()) == 0


# updated_at triggers, indexes, foreign keys --------------------------------------------------


@pytest.mark.parametrize("table", TABLES)
async def test_updated_at_moves_on_update(
    db: asyncpg.Connection, table: str, analyst: uuid.UUID, trader: uuid.UUID, tier: uuid.UUID
) -> None:
    yesterday = await db_time(db, "-1 day")
    stamps = {"created_at": yesterday, "updated_at": yesterday}
    if table == "subscription_tiers":
        row_id = await make_tier(db, analyst, **stamps)
    elif table == "discount_codes":
        row_id = await code_row(db, analyst, **stamps)
    elif table == "invite_links":
        row_id = await link_row(db, analyst, **stamps)
    elif table == "subscriptions":
        row_id = await make_subscription(db, trader, tier, **stamps)
    else:
        row_id = await payment_row(db, **stamps)
    column = {"discount_codes": "code_name", "invite_links": "link_name"}.get(table, "currency")
    await db.execute(f"UPDATE analyst.{table} SET {column} = 'USD' WHERE id = $1", row_id)
    row = await db.fetchrow(
        f"SELECT created_at, updated_at FROM analyst.{table} WHERE id = $1", row_id
    )
    assert row["created_at"] == yesterday
    assert row["updated_at"] > yesterday


@pytest.mark.parametrize("table", TABLES)
async def test_updated_at_trigger_is_installed(db: asyncpg.Connection, table: str) -> None:
    found = await db.fetchval(
        """
        SELECT count(*) FROM pg_trigger t
          JOIN pg_proc p ON p.oid = t.tgfoid
         WHERE t.tgrelid = ('analyst.' || $1)::regclass
           AND t.tgname = 'trg_' || $1 || '_updated_at'
           AND p.proname = 'update_updated_at_column'
           AND t.tgtype & 2 = 2   -- BEFORE
           AND t.tgtype & 1 = 1   -- FOR EACH ROW
           AND t.tgtype & 16 = 16 -- UPDATE
        """,
        table,
    )
    assert found == 1


@pytest.mark.parametrize(
    ("index", "definition"),
    [
        (
            "subscriptions_one_active_per_user_analyst",
            "(user_id, analyst_id)"
            " WHERE (((status)::text = 'active'::text) AND (deleted_at IS NULL))",
        ),
        (
            "subscription_tiers_one_free_tier_per_analyst",
            "(analyst_id) WHERE (is_free_tier AND (deleted_at IS NULL))",
        ),
        ("idx_subscriptions_status_expires_at", "(status, expires_at)"),
        (
            "idx_subscriptions_user_status",
            "(user_id, status, expires_at) WHERE (deleted_at IS NULL)",
        ),
        ("idx_subscriptions_analyst_status", "(analyst_id, status) WHERE (deleted_at IS NULL)"),
        ("idx_payment_transactions_user_id", "(user_id, created_at DESC)"),
        ("idx_payment_transactions_analyst_id", "(analyst_id, created_at DESC)"),
    ],
)
async def test_query_pattern_index_exists(
    db: asyncpg.Connection, index: str, definition: str
) -> None:
    indexdef = await db.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'analyst' AND indexname = $1", index
    )
    assert indexdef is not None and indexdef.endswith(definition), indexdef


# Foreign keys whose first column is not the first key column of a usable index: a full index,
# or one partial only on "<column> IS NOT NULL" (which an equality lookup satisfies).
UNINDEXED_FOREIGN_KEYS = """
SELECT c.conrelid::regclass::text AS tab, a.attname AS col
  FROM pg_constraint c
  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
 WHERE c.contype = 'f'
   AND c.conrelid = ANY (SELECT ('analyst.' || t)::regclass FROM unnest($1::text[]) AS t)
   AND NOT EXISTS (
       SELECT 1 FROM pg_index i
        WHERE i.indrelid = c.conrelid
          AND i.indkey[0] = c.conkey[1]
          AND (i.indpred IS NULL
               OR pg_get_expr(i.indpred, i.indrelid) = '(' || a.attname || ' IS NOT NULL)'))
"""


async def test_every_foreign_key_column_is_indexed(db: asyncpg.Connection) -> None:
    assert await db.fetch(UNINDEXED_FOREIGN_KEYS, list(TABLES)) == []
    named = await db.fetch(
        """
        SELECT c.conrelid::regclass::text AS tab, a.attname AS col
          FROM pg_constraint c
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.contype = 'f' AND cardinality(c.conkey) = 1
           AND c.conrelid = ANY (SELECT ('analyst.' || t)::regclass FROM unnest($1::text[]) t)
           AND to_regclass('analyst.idx_' || split_part(c.conrelid::regclass::text, '.', 2)
                           || '_' || a.attname) IS NULL
        """,
        list(TABLES),
    )
    assert named == []  # and each is called idx_<table>_<column>


@pytest.mark.parametrize(
    ("table", "column", "target"),
    [
        ("subscriptions", "referred_by_invite_link", "analyst.invite_links"),
        ("subscriptions", "discount_code_used", "analyst.discount_codes"),
        ("invite_links", "discount_code_id", "analyst.discount_codes"),
        ("subscriptions", "tier_id", "analyst.subscription_tiers"),
        ("payment_transactions", "subscription_id", "analyst.subscriptions"),
    ],
)
async def test_foreign_keys_between_monetization_tables(
    db: asyncpg.Connection, table: str, column: str, target: str
) -> None:
    found = await db.fetchval(
        """
        SELECT count(*) FROM pg_constraint c
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.contype = 'f' AND c.conrelid = ('analyst.' || $1)::regclass
           AND a.attname = $2 AND c.confrelid = $3::regclass
        """,
        table,
        column,
        target,
    )
    assert found >= 1
