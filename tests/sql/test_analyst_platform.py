"""sql/0006_analyst_platform.sql: notifications, support_tickets, moderation_flags.

Runs against a real Postgres with every migration applied (the `db` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.factories import make_user
from tests.sql.catalog import (
    FK_COLUMNS_WITHOUT_INDEX,
    assert_index,
    assert_updated_at_installed,
    fk_columns,
)

T0 = datetime(2025, 1, 6, 9, 15, tzinfo=UTC)


# -- helpers ----------------------------------------------------------------------------------


async def insert(db: asyncpg.Connection, table: str, **fields: Any) -> UUID:
    """INSERT one row into analyst.<table> with the given columns; returns its id."""
    cols = ", ".join(fields)
    params = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
    row_id: UUID = await db.fetchval(
        f"INSERT INTO analyst.{table} ({cols}) VALUES ({params}) RETURNING id", *fields.values()
    )
    return row_id


async def rejects(
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


async def fetch_row(db: asyncpg.Connection, table: str, row_id: UUID) -> asyncpg.Record:
    row: asyncpg.Record = await db.fetchrow(f"SELECT * FROM analyst.{table} WHERE id = $1", row_id)
    return row


def minimal(table: str, user_id: UUID) -> dict[str, Any]:
    """The smallest valid row of each table."""
    if table == "notifications":
        return {"user_id": user_id, "notification_type": "new_post"}
    if table == "support_tickets":
        return {"user_id": user_id, "subject": "Payment failed twice"}
    return {
        "reported_by": user_id,
        "flagged_entity_type": "post",
        "flagged_entity_id": uuid4(),
        "flag_reason": "spam",
    }


@pytest.fixture
async def user_id(db: asyncpg.Connection) -> UUID:
    return await make_user(db)


# Every CHECK value list of these tables: (table, column) -> accepted values.
VALUE_LISTS: dict[tuple[str, str], list[str]] = {
    ("notifications", "status"): ["pending", "sent", "failed", "read"],
    ("notifications", "priority"): ["low", "medium", "high", "urgent"],
    ("support_tickets", "ticket_type"): [
        "technical_issue",
        "payment_issue",
        "account_issue",
        "verification_issue",
        "subscription_issue",
        "content_issue",
        "other",
    ],
    ("support_tickets", "status"): [
        "open",
        "in_progress",
        "waiting_user",
        "resolved",
        "closed",
        "escalated",
    ],
    ("support_tickets", "priority"): ["low", "medium", "high", "critical"],
    ("moderation_flags", "flagged_entity_type"): [
        "user",
        "analyst",
        "post",
        "chat_message",
        "review",
    ],
    ("moderation_flags", "flag_reason"): [
        "spam",
        "harassment",
        "fraudulent_activity",
        "fake_calls",
        "inappropriate_content",
        "misleading_information",
        "impersonation",
        "other",
    ],
    ("moderation_flags", "status"): [
        "pending",
        "under_review",
        "resolved",
        "dismissed",
        "action_taken",
    ],
    ("moderation_flags", "priority"): ["low", "medium", "high", "critical"],
    ("moderation_flags", "action_taken"): [
        "content_removed",
        "user_warned",
        "user_suspended",
        "user_banned",
    ],
}

# A value each list must refuse: another list's value, a case variant, or a typo.
BAD_VALUES: dict[tuple[str, str], str] = {
    ("notifications", "status"): "delivered",
    ("notifications", "priority"): "critical",
    ("support_tickets", "ticket_type"): "billing",
    ("support_tickets", "status"): "pending",
    ("support_tickets", "priority"): "urgent",
    ("moderation_flags", "flagged_entity_type"): "bookmark",
    ("moderation_flags", "flag_reason"): "Spam",
    ("moderation_flags", "status"): "open",
    ("moderation_flags", "priority"): "urgent",
    ("moderation_flags", "action_taken"): "user_deleted",
}


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [(t, c, v) for (t, c), values in VALUE_LISTS.items() for v in values],
)
async def test_documented_value_is_accepted(
    db: asyncpg.Connection, user_id: UUID, table: str, column: str, value: str
) -> None:
    row_id = await insert(db, table, **{**minimal(table, user_id), column: value})
    assert (await fetch_row(db, table, row_id))[column] == value


@pytest.mark.parametrize(
    ("table", "column", "value"), [(t, c, v) for (t, c), v in BAD_VALUES.items()]
)
async def test_undocumented_value_is_rejected(
    db: asyncpg.Connection, user_id: UUID, table: str, column: str, value: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        f"{table}_{column}_valid",
        table,
        **{**minimal(table, user_id), column: value},
    )


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("notifications", "user_id"),
        ("notifications", "notification_type"),
        ("notifications", "status"),
        ("notifications", "priority"),
        ("support_tickets", "user_id"),
        ("support_tickets", "subject"),
        ("support_tickets", "ticket_type"),
        ("support_tickets", "status"),
        ("support_tickets", "priority"),
        ("moderation_flags", "flagged_entity_type"),
        ("moderation_flags", "flagged_entity_id"),
        ("moderation_flags", "flag_reason"),
        ("moderation_flags", "status"),
        ("moderation_flags", "priority"),
    ],
)
async def test_required_column_cannot_be_null(
    db: asyncpg.Connection, user_id: UUID, table: str, column: str
) -> None:
    await rejects(
        db, asyncpg.NotNullViolationError, None, table, **{**minimal(table, user_id), column: None}
    )


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("notifications", "user_id"),
        ("support_tickets", "user_id"),
        ("support_tickets", "assigned_to"),
        ("support_tickets", "resolved_by"),
        ("moderation_flags", "reported_by"),
        ("moderation_flags", "reviewed_by"),
    ],
)
async def test_unknown_user_reference_is_rejected(
    db: asyncpg.Connection, user_id: UUID, table: str, column: str
) -> None:
    await rejects(
        db,
        asyncpg.ForeignKeyViolationError,
        f"{table}_{column}_fkey",
        table,
        **{**minimal(table, user_id), column: uuid4()},
    )


@pytest.mark.parametrize("table", ["notifications", "support_tickets", "moderation_flags"])
async def test_update_moves_updated_at(db: asyncpg.Connection, user_id: UUID, table: str) -> None:
    row_id = await insert(db, table, **minimal(table, user_id), created_at=T0, updated_at=T0)
    await db.execute(f"UPDATE analyst.{table} SET priority = 'high' WHERE id = $1", row_id)
    row = await fetch_row(db, table, row_id)
    assert row["created_at"] == T0
    assert row["updated_at"] > T0


# -- notifications ----------------------------------------------------------------------------


async def test_notification_defaults(db: asyncpg.Connection, user_id: UUID) -> None:
    row = await fetch_row(
        db, "notifications", await insert(db, "notifications", **minimal("notifications", user_id))
    )
    assert (row["status"], row["priority"]) == ("pending", "medium")
    assert (row["send_email"], row["send_push"], row["send_in_app"]) == (True, True, True)
    assert (row["email_sent"], row["email_opened"], row["email_clicked"], row["push_sent"]) == (
        False,
        False,
        False,
        False,
    )
    assert row["read_at"] is None and row["created_at"] is not None


@pytest.mark.parametrize(
    "notification_type", ["new_post", "urgent_post", "payment_success", "subscription_expiring"]
)
async def test_notification_type_in_snake_case_is_accepted(
    db: asyncpg.Connection, user_id: UUID, notification_type: str
) -> None:
    await insert(db, "notifications", user_id=user_id, notification_type=notification_type)


@pytest.mark.parametrize("notification_type", ["New Post", "", "new-post", "NEW_POST", "1st"])
async def test_notification_type_not_in_snake_case_is_rejected(
    db: asyncpg.Connection, user_id: UUID, notification_type: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "notifications_notification_type_format",
        "notifications",
        user_id=user_id,
        notification_type=notification_type,
    )


async def test_deleting_a_user_deletes_their_notifications(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    await insert(db, "notifications", **minimal("notifications", user_id))
    await db.execute("DELETE FROM analyst.users WHERE id = $1", user_id)
    assert await db.fetchval("SELECT count(*) FROM analyst.notifications") == 0


# -- support_tickets --------------------------------------------------------------------------


async def test_support_ticket_defaults(db: asyncpg.Connection, user_id: UUID) -> None:
    row = await fetch_row(
        db,
        "support_tickets",
        await insert(db, "support_tickets", **minimal("support_tickets", user_id)),
    )
    assert (row["status"], row["priority"], row["ticket_type"]) == ("open", "medium", "other")
    assert row["assigned_to"] is None and row["closed_at"] is None


async def test_support_ticket_lifecycle_round_trips(db: asyncpg.Connection, user_id: UUID) -> None:
    agent = await make_user(db, user_type="admin")
    ticket = await insert(
        db,
        "support_tickets",
        **minimal("support_tickets", user_id),
        ticket_type="payment_issue",
        attachments=[{"name": "receipt.png", "url": "https://cdn.example.com/r.png"}],
        related_entity_type="payment_transaction",
        related_entity_id=uuid4(),
    )
    await db.execute(
        "UPDATE analyst.support_tickets SET assigned_to = $2, assigned_at = now(),"
        " status = 'resolved', resolved_by = $2, resolved_at = now() WHERE id = $1",
        ticket,
        agent,
    )
    row = await fetch_row(db, "support_tickets", ticket)
    assert (row["status"], row["assigned_to"], row["resolved_by"]) == ("resolved", agent, agent)
    assert row["attachments"] == [{"name": "receipt.png", "url": "https://cdn.example.com/r.png"}]


async def test_deleting_an_agent_unassigns_their_tickets(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    agent = await make_user(db, user_type="admin")
    ticket = await insert(
        db, "support_tickets", **minimal("support_tickets", user_id), assigned_to=agent
    )
    await db.execute("DELETE FROM analyst.users WHERE id = $1", agent)
    assert (await fetch_row(db, "support_tickets", ticket))["assigned_to"] is None


# -- moderation_flags -------------------------------------------------------------------------


async def test_moderation_flag_defaults(db: asyncpg.Connection, user_id: UUID) -> None:
    row = await fetch_row(
        db,
        "moderation_flags",
        await insert(db, "moderation_flags", **minimal("moderation_flags", user_id)),
    )
    assert (row["status"], row["priority"]) == ("pending", "medium")
    assert row["action_taken"] is None and row["reviewed_by"] is None


async def test_system_raised_flag_without_reporter_is_accepted(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    await insert(
        db, "moderation_flags", **{**minimal("moderation_flags", user_id), "reported_by": None}
    )


async def test_deleting_a_reporter_keeps_the_flag(db: asyncpg.Connection, user_id: UUID) -> None:
    flag = await insert(db, "moderation_flags", **minimal("moderation_flags", user_id))
    await db.execute("DELETE FROM analyst.users WHERE id = $1", user_id)
    assert (await fetch_row(db, "moderation_flags", flag))["reported_by"] is None


# -- catalog ----------------------------------------------------------------------------------

TABLES = ["notifications", "support_tickets", "moderation_flags"]

DOCUMENTED_INDEXES = {
    "idx_notifications_user_id": "(user_id, created_at DESC)",
    "idx_notifications_unread": "(user_id) WHERE (read_at IS NULL)",
    "idx_notifications_pending": "(status, created_at) WHERE ((status)::text = 'pending'::text)",
    "idx_notifications_notification_group": "(notification_group, created_at)",
    "idx_support_tickets_user_id": "(user_id, created_at DESC)",
    "idx_support_tickets_status_priority": "(status, priority)",
    "idx_support_tickets_assigned_to": "(assigned_to)",
    "idx_support_tickets_resolved_by": "(resolved_by)",
    "idx_moderation_flags_queue": "(status, priority, created_at)",
    "idx_moderation_flags_entity": "(flagged_entity_type, flagged_entity_id)",
    "idx_moderation_flags_reported_by": "(reported_by)",
    "idx_moderation_flags_reviewed_by": "(reviewed_by)",
}


@pytest.mark.parametrize(("name", "definition"), DOCUMENTED_INDEXES.items())
async def test_documented_index_exists(db: asyncpg.Connection, name: str, definition: str) -> None:
    await assert_index(db, name, definition)


async def test_every_foreign_key_column_leads_an_index(db: asyncpg.Connection) -> None:
    names = [f"analyst.{t}" for t in TABLES]
    assert await db.fetch(FK_COLUMNS_WITHOUT_INDEX, names) == []
    assert await fk_columns(db, names) >= {
        ("analyst.notifications", "user_id"),
        ("analyst.support_tickets", "user_id"),
        ("analyst.support_tickets", "assigned_to"),
        ("analyst.support_tickets", "resolved_by"),
        ("analyst.moderation_flags", "reported_by"),
        ("analyst.moderation_flags", "reviewed_by"),
    }


@pytest.mark.parametrize("table", TABLES)
async def test_updated_at_trigger_and_now_defaults(db: asyncpg.Connection, table: str) -> None:
    await assert_updated_at_installed(db, table)
