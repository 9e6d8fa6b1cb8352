"""Valid rows of the aichat schema for tests, and the helpers that insert or reject them.

Each `make_*` returns the new row's id; keyword arguments are written to the column of the
same name, so any documented column can be set or overridden. The seed's timestamps are
`timestamp without time zone`, so every datetime here is naive.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

# A fixed instant for rows whose time does not matter; naive like the columns.
T0 = datetime(2025, 1, 6, 9, 15)
MONTH0 = date(2025, 1, 1)
# Shaped like a bcrypt hash; nothing in the schema checks it.
PASSWORD_HASH = "$2b$12$" + "x" * 53
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def insert(db: asyncpg.Connection, table: str, **fields: Any) -> uuid.UUID:
    """INSERT one row into aichat.<table> with the given columns; return its id."""
    for name in (table, *fields):
        if not _IDENTIFIER.match(name):
            raise ValueError(f"not a plain identifier: {name!r}")
    if fields:
        cols = ", ".join(fields)
        params = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
        sql = f"INSERT INTO aichat.{table} ({cols}) VALUES ({params}) RETURNING id"
    else:
        sql = f"INSERT INTO aichat.{table} DEFAULT VALUES RETURNING id"
    row_id = await db.fetchval(sql, *fields.values())
    assert isinstance(row_id, uuid.UUID)
    return row_id


async def row(db: asyncpg.Connection, table: str, row_id: uuid.UUID) -> asyncpg.Record:
    record = await db.fetchrow(f"SELECT * FROM aichat.{table} WHERE id = $1", row_id)
    assert record is not None, f"{table} {row_id} is gone"
    return record


async def exists(db: asyncpg.Connection, table: str, row_id: uuid.UUID) -> bool:
    found: bool = await db.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM aichat.{table} WHERE id = $1)", row_id
    )
    return found


async def rejected(
    db: asyncpg.Connection,
    exc: type[asyncpg.PostgresError],
    constraint: str | None,
    table: str,
    **fields: Any,
) -> None:
    """The insert fails with `exc`, naming `constraint` when one is given."""
    with pytest.raises(exc) as info:
        await insert(db, table, **fields)
    if constraint is not None:
        assert info.value.constraint_name == constraint


async def update_rejected(
    db: asyncpg.Connection,
    exc: type[asyncpg.PostgresError],
    constraint: str | None,
    sql: str,
    *args: Any,
) -> None:
    with pytest.raises(exc) as info:
        await db.execute(sql, *args)
    if constraint is not None:
        assert info.value.constraint_name == constraint


# -- user management --------------------------------------------------------------------------


def user_fields(**fields: Any) -> dict[str, Any]:
    return {
        "email": f"{unique('user')}@example.com",
        "password": PASSWORD_HASH,
        "name": "Ada Lovelace",
        **fields,
    }


async def make_user(db: asyncpg.Connection, **fields: Any) -> uuid.UUID:
    return await insert(db, "users", **user_fields(**fields))


def session_fields(user_id: uuid.UUID, /, **fields: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "token": unique("jwt"),
        "expires_at": T0 + timedelta(days=7),
        **fields,
    }


async def make_session(db: asyncpg.Connection, user_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    return await insert(db, "sessions", **session_fields(user_id, **fields))


def email_verification_fields(user_id: uuid.UUID, /, **fields: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "email": "ada@example.com",
        "token": unique("verify"),
        "expires_at": T0 + timedelta(hours=24),
        **fields,
    }


async def make_email_verification(
    db: asyncpg.Connection, user_id: uuid.UUID, **fields: Any
) -> uuid.UUID:
    return await insert(db, "email_verifications", **email_verification_fields(user_id, **fields))


def password_reset_fields(user_id: uuid.UUID, /, **fields: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "token": unique("reset"),
        "email": "ada@example.com",
        "expires_at": T0 + timedelta(hours=1),
        **fields,
    }


async def make_password_reset(
    db: asyncpg.Connection, user_id: uuid.UUID, **fields: Any
) -> uuid.UUID:
    return await insert(db, "password_resets", **password_reset_fields(user_id, **fields))


# -- chat system ------------------------------------------------------------------------------


def conversation_fields(user_id: uuid.UUID, /, **fields: Any) -> dict[str, Any]:
    return {"user_id": user_id, "title": "Trip to Lisbon", "model": "gpt-4o", **fields}


async def make_conversation(db: asyncpg.Connection, user_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    return await insert(db, "conversations", **conversation_fields(user_id, **fields))


def message_fields(conversation_id: uuid.UUID, /, **fields: Any) -> dict[str, Any]:
    return {"conversation_id": conversation_id, "role": "user", "content": "Hello", **fields}


async def make_message(
    db: asyncpg.Connection, conversation_id: uuid.UUID, **fields: Any
) -> uuid.UUID:
    return await insert(db, "messages", **message_fields(conversation_id, **fields))


def token_usage_fields(user_id: uuid.UUID, /, **fields: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "provider": "openai",
        "model": "gpt-4o",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "cost_usd": Decimal("0.000150"),
        "billing_month": MONTH0,
        **fields,
    }


async def make_token_usage(db: asyncpg.Connection, user_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    return await insert(db, "token_usage", **token_usage_fields(user_id, **fields))


def provider_fields(**fields: Any) -> dict[str, Any]:
    return {
        "name": "openai",
        "input_token_cost_per_1k": Decimal("0.00250000"),
        "output_token_cost_per_1k": Decimal("0.01000000"),
        **fields,
    }


async def make_provider(db: asyncpg.Connection, **fields: Any) -> uuid.UUID:
    return await insert(db, "ai_providers", **provider_fields(**fields))


# -- billing system ---------------------------------------------------------------------------


def plan_fields(**fields: Any) -> dict[str, Any]:
    return {
        "name": "Plus",
        "monthly_price": Decimal("20.00"),
        "monthly_token_quota": 1_000_000,
        **fields,
    }


async def make_plan(db: asyncpg.Connection, **fields: Any) -> uuid.UUID:
    return await insert(db, "plans", **plan_fields(**fields))


def subscription_fields(user_id: uuid.UUID, plan_id: uuid.UUID, /, **fields: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "plan_id": plan_id,
        "stripe_subscription_id": unique("sub"),
        "stripe_customer_id": unique("cus"),
        "current_period_start": T0,
        "current_period_end": T0 + timedelta(days=30),
        **fields,
    }


async def make_subscription(
    db: asyncpg.Connection, user_id: uuid.UUID, plan_id: uuid.UUID, **fields: Any
) -> uuid.UUID:
    return await insert(db, "subscriptions", **subscription_fields(user_id, plan_id, **fields))


def payment_fields(user_id: uuid.UUID, /, **fields: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "stripe_payment_intent_id": unique("pi"),
        "amount": Decimal("20.00"),
        "status": "succeeded",
        **fields,
    }


async def make_payment(db: asyncpg.Connection, user_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    return await insert(db, "payments", **payment_fields(user_id, **fields))


def invoice_fields(user_id: uuid.UUID, /, **fields: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "invoice_number": unique("INV"),
        "stripe_invoice_id": unique("in"),
        "subtotal": Decimal("20.00"),
        "total": Decimal("20.00"),
        **fields,
    }


async def make_invoice(db: asyncpg.Connection, user_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    return await insert(db, "invoices", **invoice_fields(user_id, **fields))


def usage_tracking_fields(user_id: uuid.UUID, /, **fields: Any) -> dict[str, Any]:
    return {"user_id": user_id, "billing_month": MONTH0, "monthly_quota": 100_000, **fields}


async def make_usage_tracking(
    db: asyncpg.Connection, user_id: uuid.UUID, **fields: Any
) -> uuid.UUID:
    return await insert(db, "usage_tracking", **usage_tracking_fields(user_id, **fields))
