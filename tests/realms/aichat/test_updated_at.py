"""aichat.update_updated_at_column(): every UPDATE of a table with updated_at sets it to the
updating transaction's CURRENT_TIMESTAMP and leaves created_at alone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

import asyncpg
import pytest

from tests.realms.aichat.rows import (
    T0,
    make_conversation,
    make_email_verification,
    make_invoice,
    make_message,
    make_payment,
    make_plan,
    make_provider,
    make_subscription,
    make_usage_tracking,
    make_user,
)

Stamps = dict[str, object]
Factory = Callable[[asyncpg.Connection, Stamps], Awaitable[UUID]]


async def _user(db: asyncpg.Connection, stamps: Stamps) -> UUID:
    return await make_user(db, **stamps)


async def _email_verification(db: asyncpg.Connection, stamps: Stamps) -> UUID:
    return await make_email_verification(db, await make_user(db), **stamps)


async def _conversation(db: asyncpg.Connection, stamps: Stamps) -> UUID:
    return await make_conversation(db, await make_user(db), **stamps)


async def _message(db: asyncpg.Connection, stamps: Stamps) -> UUID:
    return await make_message(db, await make_conversation(db, await make_user(db)), **stamps)


async def _provider(db: asyncpg.Connection, stamps: Stamps) -> UUID:
    return await make_provider(db, **stamps)


async def _plan(db: asyncpg.Connection, stamps: Stamps) -> UUID:
    return await make_plan(db, **stamps)


async def _subscription(db: asyncpg.Connection, stamps: Stamps) -> UUID:
    return await make_subscription(db, await make_user(db), await make_plan(db), **stamps)


async def _payment(db: asyncpg.Connection, stamps: Stamps) -> UUID:
    return await make_payment(db, await make_user(db), **stamps)


async def _invoice(db: asyncpg.Connection, stamps: Stamps) -> UUID:
    return await make_invoice(db, await make_user(db), **stamps)


async def _usage_tracking(db: asyncpg.Connection, stamps: Stamps) -> UUID:
    return await make_usage_tracking(db, await make_user(db), **stamps)


# (table, factory, an ordinary change to that row)
CASES: list[tuple[str, Factory, str]] = [
    ("users", _user, "login_count = login_count + 1"),
    ("email_verifications", _email_verification, "attempt_count = attempt_count + 1"),
    ("conversations", _conversation, "title = 'Renamed'"),
    ("messages", _message, "content = 'Edited'"),
    ("ai_providers", _provider, "is_available = false"),
    ("plans", _plan, "features = '[\"priority\"]'::json"),
    ("subscriptions", _subscription, "status = 'past_due'"),
    ("payments", _payment, "status = 'refunded'"),
    ("invoices", _invoice, "status = 'open'"),
    ("usage_tracking", _usage_tracking, "tokens_used = tokens_used + 500"),
]


@pytest.mark.parametrize(("table", "factory", "change"), CASES, ids=[c[0] for c in CASES])
async def test_update_sets_updated_at_to_the_transaction_time_and_keeps_created_at(
    db: asyncpg.Connection, table: str, factory: Factory, change: str
) -> None:
    row_id = await factory(db, {"created_at": T0, "updated_at": T0})
    created, updated, now = await db.fetchrow(
        f"UPDATE aichat.{table} SET {change} WHERE id = $1"
        " RETURNING created_at, updated_at, localtimestamp",
        row_id,
    )
    assert created == T0
    assert updated == now
    assert updated > T0


@pytest.mark.parametrize(("table", "factory", "change"), CASES, ids=[c[0] for c in CASES])
async def test_update_overrides_an_explicit_updated_at(
    db: asyncpg.Connection, table: str, factory: Factory, change: str
) -> None:
    row_id = await factory(db, {})
    updated, now = await db.fetchrow(
        f"UPDATE aichat.{table} SET {change}, updated_at = $2 WHERE id = $1"
        " RETURNING updated_at, localtimestamp",
        row_id,
        T0,
    )
    assert updated == now != T0
