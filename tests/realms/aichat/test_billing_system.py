"""aichat plans, subscriptions, payments, invoices and usage_tracking (seed 002, tables 8-12):
defaults, documented value lists, CHECKs, required columns, foreign keys and their ON DELETE."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.realms.aichat.rows import (
    MONTH0,
    T0,
    exists,
    invoice_fields,
    make_invoice,
    make_payment,
    make_plan,
    make_subscription,
    make_usage_tracking,
    make_user,
    payment_fields,
    plan_fields,
    rejected,
    row,
    subscription_fields,
    update_rejected,
    usage_tracking_fields,
)


@pytest.fixture
async def user_id(db: asyncpg.Connection) -> UUID:
    return await make_user(db)


@pytest.fixture
async def plan_id(db: asyncpg.Connection) -> UUID:
    return await make_plan(db)


@pytest.fixture
async def subscription_id(db: asyncpg.Connection, user_id: UUID, plan_id: UUID) -> UUID:
    return await make_subscription(db, user_id, plan_id)


# -- plans ------------------------------------------------------------------------------------


async def test_new_plan_is_active_with_no_features_and_no_limits(db: asyncpg.Connection) -> None:
    async with db.transaction():
        plan = await row(db, "plans", await make_plan(db))
        now = await db.fetchval("SELECT localtimestamp")
    assert plan["features"] == []
    assert plan["is_active"] is True
    assert plan["yearly_price"] is None and plan["stripe_price_id"] is None
    assert plan["max_conversations"] is None and plan["max_messages_per_conversation"] is None
    assert plan["created_at"] == plan["updated_at"] == now


@pytest.mark.parametrize("name", ["Free", "Plus", "Pro"])
async def test_plan_name_may_be_free_plus_or_pro(db: asyncpg.Connection, name: str) -> None:
    assert (await row(db, "plans", await make_plan(db, name=name)))["name"] == name


@pytest.mark.parametrize("name", ["FREE", "Enterprise", "pro", ""])
async def test_plan_name_outside_free_plus_pro_is_rejected(
    db: asyncpg.Connection, name: str
) -> None:
    await rejected(
        db, asyncpg.CheckViolationError, "plans_name_valid", "plans", **plan_fields(name=name)
    )


async def test_plan_name_is_unique(db: asyncpg.Connection) -> None:
    await make_plan(db, name="Pro")
    await rejected(
        db, asyncpg.UniqueViolationError, "plans_name_key", "plans", **plan_fields(name="Pro")
    )


@pytest.mark.parametrize(
    ("column", "value", "constraint"),
    [
        ("monthly_price", Decimal("-0.01"), "plans_monthly_price_non_negative"),
        ("yearly_price", Decimal("-0.01"), "plans_yearly_price_non_negative"),
        ("monthly_token_quota", -1, "plans_monthly_token_quota_non_negative"),
        ("max_conversations", 0, "plans_max_conversations_positive"),
        ("max_messages_per_conversation", 0, "plans_max_messages_per_conversation_positive"),
    ],
)
async def test_plan_negative_price_or_quota_or_zero_limit_is_rejected(
    db: asyncpg.Connection, column: str, value: Any, constraint: str
) -> None:
    await rejected(
        db, asyncpg.CheckViolationError, constraint, "plans", **plan_fields(**{column: value})
    )


async def test_free_plan_with_zero_price_and_limits_is_accepted(db: asyncpg.Connection) -> None:
    plan_id = await make_plan(
        db,
        name="Free",
        monthly_price=Decimal(0),
        yearly_price=Decimal(0),
        monthly_token_quota=0,
        max_conversations=1,
        max_messages_per_conversation=1,
        stripe_price_id="price_free",
        features=["basic-models", "7-day-history"],
    )
    plan = await row(db, "plans", plan_id)
    assert plan["features"] == ["basic-models", "7-day-history"]
    assert (plan["monthly_price"], plan["monthly_token_quota"]) == (Decimal("0.00"), 0)


async def test_plan_prices_are_rounded_to_cents(db: asyncpg.Connection) -> None:
    plan_id = await make_plan(db, monthly_price=Decimal("19.999"), yearly_price=Decimal("199.994"))
    plan = await row(db, "plans", plan_id)
    assert (plan["monthly_price"], plan["yearly_price"]) == (Decimal("20.00"), Decimal("199.99"))


@pytest.mark.parametrize("value", [{"gpt-4": True}, "gpt-4", None])
async def test_plan_features_other_than_an_array_is_rejected(
    db: asyncpg.Connection, value: Any
) -> None:
    expected = asyncpg.NotNullViolationError if value is None else asyncpg.CheckViolationError
    constraint = None if value is None else "plans_features_is_array"
    await rejected(db, expected, constraint, "plans", **plan_fields(features=value))


@pytest.mark.parametrize(
    "column", ["name", "monthly_price", "monthly_token_quota", "is_active", "created_at"]
)
async def test_plan_required_or_defaulted_column_cannot_be_null(
    db: asyncpg.Connection, column: str
) -> None:
    await rejected(
        db, asyncpg.NotNullViolationError, None, "plans", **plan_fields(**{column: None})
    )


# -- subscriptions ----------------------------------------------------------------------------


async def test_new_subscription_is_active_and_not_cancelling(
    db: asyncpg.Connection, user_id: UUID, plan_id: UUID
) -> None:
    async with db.transaction():
        subscription = await row(db, "subscriptions", await make_subscription(db, user_id, plan_id))
        now = await db.fetchval("SELECT localtimestamp")
    assert subscription["status"] == "active"
    assert subscription["cancel_at_period_end"] is False
    assert subscription["cancellation_date"] is None and subscription["trial_ends_at"] is None
    assert subscription["created_at"] == subscription["updated_at"] == now


@pytest.mark.parametrize("status", ["active", "canceled", "past_due", "unpaid", "paused"])
async def test_subscription_status_may_be_each_documented_value(
    db: asyncpg.Connection, user_id: UUID, plan_id: UUID, status: str
) -> None:
    subscription_id = await make_subscription(db, user_id, plan_id, status=status)
    assert (await row(db, "subscriptions", subscription_id))["status"] == status


@pytest.mark.parametrize("status", ["trialing", "cancelled", "ACTIVE", ""])
async def test_subscription_status_outside_the_documented_values_is_rejected(
    db: asyncpg.Connection, user_id: UUID, plan_id: UUID, status: str
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "check_subscription_status",
        "subscriptions",
        **subscription_fields(user_id, plan_id, status=status),
    )


async def test_a_user_has_at_most_one_subscription(
    db: asyncpg.Connection, user_id: UUID, plan_id: UUID, subscription_id: UUID
) -> None:
    await rejected(
        db,
        asyncpg.UniqueViolationError,
        "subscriptions_user_id_key",
        "subscriptions",
        **subscription_fields(user_id, plan_id, status="canceled"),
    )


async def test_stripe_subscription_id_is_unique(
    db: asyncpg.Connection, user_id: UUID, plan_id: UUID
) -> None:
    await make_subscription(db, user_id, plan_id, stripe_subscription_id="sub_1")
    await rejected(
        db,
        asyncpg.UniqueViolationError,
        "subscriptions_stripe_subscription_id_key",
        "subscriptions",
        **subscription_fields(await make_user(db), plan_id, stripe_subscription_id="sub_1"),
    )


async def test_one_stripe_customer_may_hold_several_users_subscriptions(
    db: asyncpg.Connection, user_id: UUID, plan_id: UUID
) -> None:
    await make_subscription(db, user_id, plan_id, stripe_customer_id="cus_1")
    await make_subscription(db, await make_user(db), plan_id, stripe_customer_id="cus_1")


@pytest.mark.parametrize("length", [timedelta(0), timedelta(seconds=-1)])
async def test_subscription_period_ending_at_or_before_its_start_is_rejected(
    db: asyncpg.Connection, user_id: UUID, plan_id: UUID, length: timedelta
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "subscriptions_period_end_after_start",
        "subscriptions",
        **subscription_fields(user_id, plan_id, current_period_end=T0 + length),
    )


async def test_cancelling_at_period_end_with_a_reason_is_accepted(
    db: asyncpg.Connection, subscription_id: UUID
) -> None:
    await db.execute(
        "UPDATE aichat.subscriptions SET cancel_at_period_end = true, cancellation_date = $1,"
        " cancellation_reason = 'too expensive', trial_ends_at = $1 WHERE id = $2",
        T0 + timedelta(days=3),
        subscription_id,
    )
    subscription = await row(db, "subscriptions", subscription_id)
    assert subscription["cancel_at_period_end"] is True
    assert subscription["status"] == "active"


@pytest.mark.parametrize(
    "column",
    [
        "user_id",
        "plan_id",
        "stripe_subscription_id",
        "stripe_customer_id",
        "status",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
        "created_at",
        "updated_at",
    ],
)
async def test_subscription_required_or_defaulted_column_cannot_be_null(
    db: asyncpg.Connection, user_id: UUID, plan_id: UUID, column: str
) -> None:
    fields = subscription_fields(user_id, plan_id, **{column: None})
    await rejected(db, asyncpg.NotNullViolationError, None, "subscriptions", **fields)


@pytest.mark.parametrize("column", ["user_id", "plan_id"])
async def test_subscription_with_an_unknown_reference_is_rejected(
    db: asyncpg.Connection, user_id: UUID, plan_id: UUID, column: str
) -> None:
    fields = subscription_fields(user_id, plan_id, **{column: uuid4()})
    await rejected(
        db,
        asyncpg.ForeignKeyViolationError,
        f"fk_subscriptions_{column}",
        "subscriptions",
        **fields,
    )


async def test_deleting_a_user_deletes_their_subscription(
    db: asyncpg.Connection, user_id: UUID, subscription_id: UUID
) -> None:
    await db.execute("DELETE FROM aichat.users WHERE id = $1", user_id)
    assert not await exists(db, "subscriptions", subscription_id)


async def test_deleting_a_plan_that_has_subscriptions_is_refused(
    db: asyncpg.Connection, plan_id: UUID, subscription_id: UUID
) -> None:
    await update_rejected(
        db,
        asyncpg.ForeignKeyViolationError,
        "fk_subscriptions_plan_id",
        "DELETE FROM aichat.plans WHERE id = $1",
        plan_id,
    )
    assert await exists(db, "subscriptions", subscription_id)


async def test_deleting_a_plan_without_subscriptions_is_allowed(
    db: asyncpg.Connection, plan_id: UUID
) -> None:
    await db.execute("DELETE FROM aichat.plans WHERE id = $1", plan_id)
    assert not await exists(db, "plans", plan_id)


# -- payments ---------------------------------------------------------------------------------


async def test_new_payment_is_in_usd(db: asyncpg.Connection, user_id: UUID) -> None:
    async with db.transaction():
        payment = await row(db, "payments", await make_payment(db, user_id))
        now = await db.fetchval("SELECT localtimestamp")
    assert payment["currency"] == "USD"
    assert payment["subscription_id"] is None and payment["metadata"] is None
    assert payment["created_at"] == payment["updated_at"] == now


async def test_payment_has_no_default_status(db: asyncpg.Connection, user_id: UUID) -> None:
    fields = payment_fields(user_id)
    del fields["status"]
    await rejected(db, asyncpg.NotNullViolationError, None, "payments", **fields)


@pytest.mark.parametrize("status", ["succeeded", "failed", "pending", "refunded"])
async def test_payment_status_may_be_each_documented_value(
    db: asyncpg.Connection, user_id: UUID, status: str
) -> None:
    payment_id = await make_payment(db, user_id, status=status)
    assert (await row(db, "payments", payment_id))["status"] == status


@pytest.mark.parametrize("status", ["paid", "processing", "SUCCEEDED", ""])
async def test_payment_status_outside_the_documented_values_is_rejected(
    db: asyncpg.Connection, user_id: UUID, status: str
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "check_status",
        "payments",
        **payment_fields(user_id, status=status),
    )


async def test_stripe_payment_intent_id_is_unique(db: asyncpg.Connection, user_id: UUID) -> None:
    await make_payment(db, user_id, stripe_payment_intent_id="pi_1")
    await rejected(
        db,
        asyncpg.UniqueViolationError,
        "payments_stripe_payment_intent_id_key",
        "payments",
        **payment_fields(user_id, stripe_payment_intent_id="pi_1"),
    )


async def test_payment_amount_below_zero_is_rejected(db: asyncpg.Connection, user_id: UUID) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "payments_amount_non_negative",
        "payments",
        **payment_fields(user_id, amount=Decimal("-0.01")),
    )


@pytest.mark.parametrize("currency", ["usd", "US", "U$D", "EU1"])
async def test_payment_currency_other_than_three_capital_letters_is_rejected(
    db: asyncpg.Connection, user_id: UUID, currency: str
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "payments_currency_format",
        "payments",
        **payment_fields(user_id, currency=currency),
    )


async def test_payment_in_another_currency_with_metadata_is_accepted(
    db: asyncpg.Connection, user_id: UUID, subscription_id: UUID
) -> None:
    payment_id = await make_payment(
        db,
        user_id,
        subscription_id=subscription_id,
        currency="EUR",
        stripe_invoice_id="in_1",
        description="Plus, January",
        metadata={"attempt": 2},
    )
    payment = await row(db, "payments", payment_id)
    assert (payment["currency"], payment["metadata"]) == ("EUR", {"attempt": 2})


@pytest.mark.parametrize(
    "column",
    [
        "user_id",
        "stripe_payment_intent_id",
        "amount",
        "currency",
        "status",
        "created_at",
        "updated_at",
    ],
)
async def test_payment_required_or_defaulted_column_cannot_be_null(
    db: asyncpg.Connection, user_id: UUID, column: str
) -> None:
    fields = payment_fields(user_id, **{column: None})
    await rejected(db, asyncpg.NotNullViolationError, None, "payments", **fields)


@pytest.mark.parametrize("column", ["user_id", "subscription_id"])
async def test_payment_with_an_unknown_reference_is_rejected(
    db: asyncpg.Connection, user_id: UUID, column: str
) -> None:
    fields = payment_fields(user_id, **{column: uuid4()})
    await rejected(
        db, asyncpg.ForeignKeyViolationError, f"fk_payments_{column}", "payments", **fields
    )


async def test_deleting_a_user_deletes_their_payments(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    gone, kept = await make_payment(db, user_id), await make_payment(db, await make_user(db))
    await db.execute("DELETE FROM aichat.users WHERE id = $1", user_id)
    assert not await exists(db, "payments", gone)
    assert await exists(db, "payments", kept)


async def test_deleting_a_subscription_keeps_its_payments_without_it(
    db: asyncpg.Connection, user_id: UUID, subscription_id: UUID
) -> None:
    payment_id = await make_payment(db, user_id, subscription_id=subscription_id)
    await db.execute("DELETE FROM aichat.subscriptions WHERE id = $1", subscription_id)
    payment = await row(db, "payments", payment_id)
    assert (payment["user_id"], payment["subscription_id"]) == (user_id, None)


# -- invoices ---------------------------------------------------------------------------------


async def test_new_invoice_is_a_draft_without_tax(db: asyncpg.Connection, user_id: UUID) -> None:
    async with db.transaction():
        invoice = await row(db, "invoices", await make_invoice(db, user_id))
        now = await db.fetchval("SELECT localtimestamp")
    assert invoice["status"] == "draft"
    assert invoice["tax"] == Decimal("0.00")
    assert invoice["due_date"] is None and invoice["paid_at"] is None
    assert invoice["created_at"] == invoice["updated_at"] == now


@pytest.mark.parametrize("status", ["draft", "open", "void", "uncollectible"])
async def test_invoice_status_may_be_each_documented_value(
    db: asyncpg.Connection, user_id: UUID, status: str
) -> None:
    invoice_id = await make_invoice(db, user_id, status=status)
    assert (await row(db, "invoices", invoice_id))["status"] == status


async def test_paid_invoice_with_its_payment_time_is_accepted(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    invoice_id = await make_invoice(db, user_id, status="paid", paid_at=T0)
    assert (await row(db, "invoices", invoice_id))["status"] == "paid"


async def test_paid_invoice_without_paid_at_is_rejected(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "invoices_paid_needs_paid_at",
        "invoices",
        **invoice_fields(user_id, status="paid"),
    )


@pytest.mark.parametrize("status", ["unpaid", "past_due", "PAID", ""])
async def test_invoice_status_outside_the_documented_values_is_rejected(
    db: asyncpg.Connection, user_id: UUID, status: str
) -> None:
    """'unpaid' too: the overdue-invoices query names it, but the invoice list does not."""
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "invoices_status_valid",
        "invoices",
        **invoice_fields(user_id, status=status),
    )


@pytest.mark.parametrize(
    ("column", "constraint"),
    [
        ("invoice_number", "invoices_invoice_number_key"),
        ("stripe_invoice_id", "invoices_stripe_invoice_id_key"),
    ],
)
async def test_invoice_number_and_stripe_invoice_id_are_unique(
    db: asyncpg.Connection, user_id: UUID, column: str, constraint: str
) -> None:
    await make_invoice(db, user_id, **{column: "X-0001"})
    await rejected(
        db,
        asyncpg.UniqueViolationError,
        constraint,
        "invoices",
        **invoice_fields(await make_user(db), **{column: "X-0001"}),
    )


async def test_invoice_number_may_be_50_characters_but_not_more(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    await make_invoice(db, user_id, invoice_number="N" * 50)
    with pytest.raises(asyncpg.StringDataRightTruncationError):
        await make_invoice(db, user_id, invoice_number="M" * 51)


@pytest.mark.parametrize(
    "column",
    [
        "user_id",
        "invoice_number",
        "stripe_invoice_id",
        "subtotal",
        "tax",
        "total",
        "status",
        "created_at",
        "updated_at",
    ],
)
async def test_invoice_required_or_defaulted_column_cannot_be_null(
    db: asyncpg.Connection, user_id: UUID, column: str
) -> None:
    fields = invoice_fields(user_id, **{column: None})
    await rejected(db, asyncpg.NotNullViolationError, None, "invoices", **fields)


@pytest.mark.parametrize("column", ["user_id", "subscription_id"])
async def test_invoice_with_an_unknown_reference_is_rejected(
    db: asyncpg.Connection, user_id: UUID, column: str
) -> None:
    fields = invoice_fields(user_id, **{column: uuid4()})
    await rejected(
        db, asyncpg.ForeignKeyViolationError, f"fk_invoices_{column}", "invoices", **fields
    )


async def test_deleting_a_user_deletes_their_invoices(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    gone, kept = await make_invoice(db, user_id), await make_invoice(db, await make_user(db))
    await db.execute("DELETE FROM aichat.users WHERE id = $1", user_id)
    assert not await exists(db, "invoices", gone)
    assert await exists(db, "invoices", kept)


async def test_deleting_a_subscription_keeps_its_invoices_without_it(
    db: asyncpg.Connection, user_id: UUID, subscription_id: UUID
) -> None:
    invoice_id = await make_invoice(
        db,
        user_id,
        subscription_id=subscription_id,
        due_date=date(2025, 2, 1),
        pdf_url="https://pay.stripe.com/invoice/x/pdf",
    )
    await db.execute("DELETE FROM aichat.subscriptions WHERE id = $1", subscription_id)
    invoice = await row(db, "invoices", invoice_id)
    assert (invoice["user_id"], invoice["subscription_id"]) == (user_id, None)


# -- usage_tracking ---------------------------------------------------------------------------


async def test_new_usage_tracking_starts_from_zero(db: asyncpg.Connection, user_id: UUID) -> None:
    async with db.transaction():
        usage = await row(db, "usage_tracking", await make_usage_tracking(db, user_id))
        now = await db.fetchval("SELECT localtimestamp")
    assert (usage["tokens_used"], usage["messages_count"], usage["conversations_count"]) == (
        0,
        0,
        0,
    )
    assert usage["cost_this_month"] == Decimal("0")
    assert usage["created_at"] == usage["updated_at"] == now


async def test_a_user_has_one_usage_tracking_row(db: asyncpg.Connection, user_id: UUID) -> None:
    await make_usage_tracking(db, user_id)
    await rejected(
        db,
        asyncpg.UniqueViolationError,
        "usage_tracking_user_id_key",
        "usage_tracking",
        **usage_tracking_fields(user_id, billing_month=date(2025, 2, 1)),
    )


async def test_usage_tracking_billing_month_other_than_a_first_day_is_rejected(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "usage_tracking_billing_month_first_day",
        "usage_tracking",
        **usage_tracking_fields(user_id, billing_month=MONTH0 + timedelta(days=14)),
    )


async def test_moving_usage_tracking_to_the_next_month_is_accepted(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    usage_id = await make_usage_tracking(db, user_id, tokens_used=900)
    await db.execute(
        "UPDATE aichat.usage_tracking SET billing_month = '2025-02-01', tokens_used = 0"
        " WHERE id = $1",
        usage_id,
    )
    assert (await row(db, "usage_tracking", usage_id))["billing_month"] == date(2025, 2, 1)


@pytest.mark.parametrize(
    ("column", "value", "constraint"),
    [
        ("tokens_used", -1, "usage_tracking_tokens_used_non_negative"),
        ("messages_count", -1, "usage_tracking_messages_count_non_negative"),
        ("conversations_count", -1, "usage_tracking_conversations_count_non_negative"),
        ("monthly_quota", -1, "usage_tracking_monthly_quota_non_negative"),
        ("cost_this_month", Decimal("-0.000001"), "usage_tracking_cost_this_month_non_negative"),
    ],
)
async def test_usage_tracking_negative_count_quota_or_cost_is_rejected(
    db: asyncpg.Connection, user_id: UUID, column: str, value: Any, constraint: str
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        constraint,
        "usage_tracking",
        **usage_tracking_fields(user_id, **{column: value}),
    )


@pytest.mark.parametrize(
    "column",
    [
        "user_id",
        "billing_month",
        "monthly_quota",
        "tokens_used",
        "messages_count",
        "conversations_count",
        "cost_this_month",
        "created_at",
        "updated_at",
    ],
)
async def test_usage_tracking_required_or_defaulted_column_cannot_be_null(
    db: asyncpg.Connection, user_id: UUID, column: str
) -> None:
    fields = usage_tracking_fields(user_id, **{column: None})
    await rejected(db, asyncpg.NotNullViolationError, None, "usage_tracking", **fields)


async def test_usage_tracking_of_an_unknown_user_is_rejected(db: asyncpg.Connection) -> None:
    await rejected(
        db,
        asyncpg.ForeignKeyViolationError,
        "fk_usage_tracking_user_id",
        "usage_tracking",
        **usage_tracking_fields(uuid4()),
    )


async def test_deleting_a_user_deletes_their_usage_tracking(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    usage_id = await make_usage_tracking(db, user_id)
    kept = await make_usage_tracking(db, await make_user(db))
    await db.execute("DELETE FROM aichat.users WHERE id = $1", user_id)
    assert not await exists(db, "usage_tracking", usage_id)
    assert await exists(db, "usage_tracking", kept)
