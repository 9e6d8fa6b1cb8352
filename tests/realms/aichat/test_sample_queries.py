"""The seed's ten "Sample Queries" (seed 002), run against seeded rows with their results
asserted. Each query is the seed's text with only the camelCase names in snake_case; the
connection's search_path is set to aichat so the table names stay unqualified, as written.

Each test runs in one transaction, so now(), CURRENT_DATE and the rows' relative times agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from uuid import UUID

import asyncpg
import pytest

from tests.realms.aichat.rows import (
    make_conversation,
    make_invoice,
    make_payment,
    make_plan,
    make_subscription,
    make_token_usage,
    make_user,
)

# -- the seed's queries -----------------------------------------------------------------------

SIGNUP_TRENDS = """
SELECT DATE_TRUNC('day', created_at) as signup_date, COUNT(*) as new_users
FROM users
WHERE created_at >= NOW() - INTERVAL '30 days'
GROUP BY DATE_TRUNC('day', created_at)
ORDER BY signup_date DESC;
"""

USERS_BY_PLAN = """
SELECT plan_tier, COUNT(*) as count
FROM users
WHERE is_active = TRUE
GROUP BY plan_tier;
"""

MONTHLY_TOKEN_USAGE_BY_USER = """
SELECT
  user_id,
  SUM(total_tokens) as total_tokens,
  SUM(cost_usd) as total_cost
FROM token_usage
WHERE billing_month = DATE_TRUNC('month', CURRENT_DATE)::date
GROUP BY user_id
ORDER BY total_tokens DESC;
"""

TOKEN_USAGE_BY_MODEL = """
SELECT
  model,
  COUNT(*) as usage_count,
  SUM(total_tokens) as total_tokens,
  AVG(total_tokens) as avg_tokens
FROM token_usage
WHERE billing_month = DATE_TRUNC('month', CURRENT_DATE)::date
GROUP BY model
ORDER BY total_tokens DESC;
"""

ACTIVE_SUBSCRIPTIONS_BY_PLAN = """
SELECT
  p.name,
  COUNT(s.id) as subscription_count,
  COUNT(DISTINCT s.user_id) as user_count
FROM subscriptions s
JOIN plans p ON s.plan_id = p.id
WHERE s.status = 'active'
GROUP BY p.name;
"""

MONTHLY_RECURRING_REVENUE = """
SELECT
  SUM(p.monthly_price) as mrr
FROM subscriptions s
JOIN plans p ON s.plan_id = p.id
WHERE s.status = 'active'
  AND s.current_period_start <= CURRENT_DATE
  AND s.current_period_end > CURRENT_DATE;
"""

MOST_ACTIVE_USERS = """
SELECT
  user_id,
  COUNT(DISTINCT id) as conversation_count,
  SUM(token_count) as total_tokens
FROM conversations
WHERE created_at >= NOW() - INTERVAL '30 days'
GROUP BY user_id
ORDER BY total_tokens DESC
LIMIT 10;
"""

AVERAGE_CONVERSATION_LENGTH = """
SELECT
  AVG(message_count) as avg_messages,
  AVG(token_count) as avg_tokens
FROM conversations
WHERE created_at >= NOW() - INTERVAL '30 days';
"""

OVERDUE_INVOICES = """
SELECT
  id,
  invoice_number,
  user_id,
  total,
  due_date
FROM invoices
WHERE status IN ('open', 'unpaid')
  AND due_date < CURRENT_DATE
ORDER BY due_date ASC;
"""

CUSTOMER_LIFETIME_VALUE = """
SELECT
  p.amount,
  COUNT(p.id) as payment_count,
  SUM(p.amount) as total_spent,
  u.created_at as signup_date
FROM payments p
JOIN users u ON p.user_id = u.id
WHERE p.status = 'succeeded'
GROUP BY p.user_id, p.amount, u.created_at;
"""


# -- fixtures ---------------------------------------------------------------------------------


class Clock:
    """now() and CURRENT_DATE of the test's transaction, as the naive values the columns hold."""

    def __init__(self, now: datetime, today: date) -> None:
        self.now, self.today = now, today
        self.this_month = today.replace(day=1)
        self.last_month = (self.this_month - timedelta(days=1)).replace(day=1)

    def at(self, days_ago: int, clock: time = time(0)) -> datetime:
        return datetime.combine(self.today - timedelta(days=days_ago), clock)


@pytest.fixture
async def clock(db: asyncpg.Connection) -> AsyncIterator[Clock]:
    async with db.transaction():
        await db.execute("SET LOCAL search_path = aichat")
        now, today = await db.fetchrow("SELECT localtimestamp, current_date")
        yield Clock(now, today)


def tokens(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


# -- user analytics ---------------------------------------------------------------------------


async def test_signup_trends_count_new_users_per_day_of_the_last_30_days_newest_first(
    db: asyncpg.Connection, clock: Clock
) -> None:
    for created in [
        clock.at(1, time(10)),
        clock.at(1, time(23, 59)),
        clock.at(3, time(8)),
        clock.now - timedelta(days=29),
        clock.now - timedelta(days=30),  # exactly on the window's edge: counted
        clock.now - timedelta(days=30, microseconds=1),  # just outside
        clock.now - timedelta(days=45),
    ]:
        await make_user(db, created_at=created)

    rows = await db.fetch(SIGNUP_TRENDS)

    day = clock.at
    assert [(r["signup_date"], r["new_users"]) for r in rows] == [
        (day(1), 2),
        (day(3), 1),
        (datetime.combine((clock.now - timedelta(days=29)).date(), time(0)), 1),
        (datetime.combine((clock.now - timedelta(days=30)).date(), time(0)), 1),
    ]


async def test_users_by_plan_counts_active_users_per_plan_tier(
    db: asyncpg.Connection, clock: Clock
) -> None:
    for tier, active in [
        ("FREE", True),
        ("FREE", True),
        ("PLUS", True),
        ("PRO", True),
        ("PRO", False),
        ("PRO", False),
        ("PLUS", False),
    ]:
        await make_user(db, plan_tier=tier, is_active=active)

    rows = await db.fetch(USERS_BY_PLAN)

    assert {r["plan_tier"]: r["count"] for r in rows} == {"FREE": 2, "PLUS": 1, "PRO": 1}
    assert len(rows) == 3


# -- token usage analytics --------------------------------------------------------------------


async def test_monthly_token_usage_by_user_sums_this_months_tokens_and_cost_most_first(
    db: asyncpg.Connection, clock: Clock
) -> None:
    ada, bob, cid = await make_user(db), await make_user(db), await make_user(db)
    this, last = clock.this_month, clock.last_month
    await make_token_usage(
        db, ada, billing_month=this, cost_usd=Decimal("0.001000"), **tokens(60, 40)
    )
    await make_token_usage(
        db, ada, billing_month=this, cost_usd=Decimal("0.000500"), **tokens(30, 20)
    )
    await make_token_usage(
        db, ada, billing_month=last, cost_usd=Decimal("9.000000"), **tokens(9000, 0)
    )
    await make_token_usage(
        db, bob, billing_month=this, cost_usd=Decimal("0.004000"), **tokens(300, 100)
    )
    await make_token_usage(
        db, cid, billing_month=last, cost_usd=Decimal("1.000000"), **tokens(500, 500)
    )

    rows = await db.fetch(MONTHLY_TOKEN_USAGE_BY_USER)

    assert [(r["user_id"], r["total_tokens"], r["total_cost"]) for r in rows] == [
        (bob, 400, Decimal("0.004000")),
        (ada, 150, Decimal("0.001500")),
    ]


async def test_token_usage_by_model_counts_sums_and_averages_this_month_per_model(
    db: asyncpg.Connection, clock: Clock
) -> None:
    ada, bob = await make_user(db), await make_user(db)
    this, last = clock.this_month, clock.last_month
    await make_token_usage(db, ada, model="gpt-4o", billing_month=this, **tokens(80, 20))
    await make_token_usage(db, bob, model="gpt-4o", billing_month=this, **tokens(200, 100))
    await make_token_usage(
        db, bob, provider="anthropic", model="claude-3-opus", billing_month=this, **tokens(700, 301)
    )
    await make_token_usage(db, ada, model="gpt-4", billing_month=last, **tokens(5000, 5000))

    rows = await db.fetch(TOKEN_USAGE_BY_MODEL)

    assert [(r["model"], r["usage_count"], r["total_tokens"], r["avg_tokens"]) for r in rows] == [
        ("claude-3-opus", 1, 1001, Decimal(1001)),
        ("gpt-4o", 2, 400, Decimal(200)),
    ]


# -- subscription analytics -------------------------------------------------------------------


async def plans(db: asyncpg.Connection) -> dict[str, UUID]:
    return {
        "Free": await make_plan(db, name="Free", monthly_price=Decimal(0)),
        "Plus": await make_plan(db, name="Plus", monthly_price=Decimal("20.00")),
        "Pro": await make_plan(db, name="Pro", monthly_price=Decimal("50.00")),
    }


async def test_active_subscriptions_by_plan_count_subscriptions_and_users_per_plan(
    db: asyncpg.Connection, clock: Clock
) -> None:
    plan = await plans(db)
    for name, status in [
        ("Plus", "active"),
        ("Plus", "active"),
        ("Pro", "active"),
        ("Pro", "canceled"),
        ("Free", "past_due"),
        ("Free", "paused"),
    ]:
        await make_subscription(db, await make_user(db), plan[name], status=status)

    rows = await db.fetch(ACTIVE_SUBSCRIPTIONS_BY_PLAN)

    assert sorted((r["name"], r["subscription_count"], r["user_count"]) for r in rows) == [
        ("Plus", 2, 2),
        ("Pro", 1, 1),
    ]


async def test_monthly_recurring_revenue_sums_active_subscriptions_covering_today(
    db: asyncpg.Connection, clock: Clock
) -> None:
    plan = await plans(db)
    at = clock.at
    for name, status, start, end in [
        ("Plus", "active", at(10), at(-20)),
        ("Plus", "active", at(0), at(-30)),  # starts at today's midnight: counted
        ("Pro", "active", at(29, time(12)), at(-1, time(12))),
        ("Pro", "active", at(30), at(0)),  # ended at today's midnight: not counted
        ("Plus", "active", at(-1), at(-31)),  # starts tomorrow
        ("Pro", "canceled", at(10), at(-20)),
        ("Pro", "past_due", at(10), at(-20)),
    ]:
        await make_subscription(
            db,
            await make_user(db),
            plan[name],
            status=status,
            current_period_start=start,
            current_period_end=end,
        )

    assert await db.fetchval(MONTHLY_RECURRING_REVENUE) == Decimal("90.00")


# -- conversation analytics -------------------------------------------------------------------


async def test_most_active_users_are_the_ten_with_most_tokens_in_the_last_30_days(
    db: asyncpg.Connection, clock: Clock
) -> None:
    users = [await make_user(db) for _ in range(12)]
    recent = clock.now - timedelta(days=2)
    for k, user_id in enumerate(users, start=1):
        await make_conversation(db, user_id, token_count=100 * k, created_at=recent)
    await make_conversation(
        db, users[11], token_count=50, created_at=clock.now - timedelta(days=29)
    )
    # An old, heavy conversation of the lightest user: outside the window, so not counted.
    await make_conversation(
        db, users[0], token_count=10_000, created_at=clock.now - timedelta(days=31)
    )

    rows = await db.fetch(MOST_ACTIVE_USERS)

    expected = [(users[11], 2, 1250)] + [(users[k - 1], 1, 100 * k) for k in range(11, 2, -1)]
    assert [(r["user_id"], r["conversation_count"], r["total_tokens"]) for r in rows] == expected


async def test_average_conversation_length_averages_messages_and_tokens_of_the_last_30_days(
    db: asyncpg.Connection, clock: Clock
) -> None:
    ada = await make_user(db)
    for messages, tokens_, days_ago in [(2, 100, 1), (4, 300, 10), (9, 800, 29), (100, 10_000, 31)]:
        await make_conversation(
            db,
            ada,
            message_count=messages,
            token_count=tokens_,
            created_at=clock.now - timedelta(days=days_ago),
        )

    row = await db.fetchrow(AVERAGE_CONVERSATION_LENGTH)

    assert (row["avg_messages"], row["avg_tokens"]) == (Decimal(5), Decimal(400))


# -- billing queries --------------------------------------------------------------------------


async def test_overdue_invoices_are_open_invoices_due_before_today_oldest_first(
    db: asyncpg.Connection, clock: Clock
) -> None:
    ada, bob = await make_user(db), await make_user(db)
    days = timedelta(days=1)
    ten_days_late = await make_invoice(
        db, bob, status="open", due_date=clock.today - 10 * days, total=Decimal("50.00")
    )
    one_day_late = await make_invoice(
        db, ada, status="open", due_date=clock.today - days, total=Decimal("20.00")
    )
    await make_invoice(db, ada, status="open", due_date=clock.today)  # due today: not yet
    await make_invoice(db, ada, status="open", due_date=None)
    await make_invoice(db, ada, status="draft", due_date=clock.today - 5 * days)
    await make_invoice(db, ada, status="paid", paid_at=clock.now, due_date=clock.today - 5 * days)
    await make_invoice(db, bob, status="uncollectible", due_date=clock.today - 40 * days)
    await make_invoice(db, bob, status="void", due_date=clock.today - 40 * days)

    rows = await db.fetch(OVERDUE_INVOICES)

    numbers = {
        r["id"]: r["invoice_number"]
        for r in await db.fetch("SELECT id, invoice_number FROM invoices")
    }
    assert [tuple(r.values()) for r in rows] == [
        (ten_days_late, numbers[ten_days_late], bob, Decimal("50.00"), clock.today - 10 * days),
        (one_day_late, numbers[one_day_late], ada, Decimal("20.00"), clock.today - days),
    ]


async def test_customer_lifetime_value_sums_succeeded_payments_per_user_and_amount(
    db: asyncpg.Connection, clock: Clock
) -> None:
    ada_signup, bob_signup = clock.now - timedelta(days=90), clock.now - timedelta(days=5)
    ada = await make_user(db, created_at=ada_signup)
    bob = await make_user(db, created_at=bob_signup)
    await make_user(db)  # no payments: no row
    for user_id, amount, status in [
        (ada, "20.00", "succeeded"),
        (ada, "20.00", "succeeded"),
        (ada, "50.00", "succeeded"),
        (ada, "20.00", "failed"),
        (ada, "50.00", "refunded"),
        (bob, "20.00", "succeeded"),
        (bob, "50.00", "pending"),
    ]:
        await make_payment(db, user_id, amount=Decimal(amount), status=status)

    rows = await db.fetch(CUSTOMER_LIFETIME_VALUE)

    assert sorted(
        (r["signup_date"], r["amount"], r["payment_count"], r["total_spent"]) for r in rows
    ) == [
        (ada_signup, Decimal("20.00"), 2, Decimal("40.00")),
        (ada_signup, Decimal("50.00"), 1, Decimal("50.00")),
        (bob_signup, Decimal("20.00"), 1, Decimal("20.00")),
    ]
