"""realms/creator/sql/3007 (creator.audit_logs) and 3008 (write_audit_log() and the audit
triggers): every account, content, money, moderation and security change leaves one
append-only row, kept 7 years."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import pytest

from tests.realms.creator.rows import (
    Chat,
    completed,
    db_now,
    fails,
    insert,
    make_content,
    make_creator,
    make_report,
    make_stream,
    make_subscription,
    make_transaction,
    make_user,
    make_violation,
    rejects,
)


async def trail(db: asyncpg.Connection, entity_id: UUID) -> list[asyncpg.Record]:
    """The audit rows about one entity, oldest first."""
    return list(
        await db.fetch(
            "SELECT * FROM creator.audit_logs WHERE entity_id = $1 ORDER BY created_at, action",
            entity_id,
        )
    )


async def as_actor(db: asyncpg.Connection, user_id: UUID, **settings: str) -> None:
    """Sets creator.user_id (and creator.<name> settings) for the rest of the session."""
    await db.execute("SELECT set_config('creator.user_id', $1, false)", str(user_id))
    for name, value in settings.items():
        await db.execute("SELECT set_config('creator.' || $1, $2, false)", name, value)


# -- users ------------------------------------------------------------------------------------


async def test_new_account_is_audited_without_personal_data(db: asyncpg.Connection) -> None:
    user_id = await make_user(db, email="someone@example.com")
    [row] = await trail(db, user_id)
    assert (row["category"], row["action"], row["entity_type"]) == (
        "user_account",
        "users.insert",
        "users",
    )
    assert row["user_id"] == user_id and row["old_values"] is None
    assert row["new_values"]["account_type"] == "fan"
    assert row["new_values"]["account_status"] == "active"
    assert "email" not in row["new_values"] and "password_hash" not in row["new_values"]


async def test_account_status_change_records_before_and_after(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    await db.execute(
        "UPDATE creator.users SET account_status = 'banned', status_reason = 'spam' WHERE id = $1",
        user_id,
    )
    row = (await trail(db, user_id))[-1]
    assert row["action"] == "users.update" and row["severity"] == "medium"
    assert row["old_values"] == {"account_status": "active", "status_reason": None}
    assert row["new_values"] == {"account_status": "banned", "status_reason": "spam"}
    assert "account_status" in row["description"]


async def test_unaudited_change_writes_nothing(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    await db.execute(
        "UPDATE creator.users SET display_name = 'New', last_login_at = now() WHERE id = $1",
        user_id,
    )
    assert len(await trail(db, user_id)) == 1


@pytest.mark.parametrize(
    ("assignment", "key"),
    [
        ("password_hash = '$2b$12$' || repeat('b', 53)", "password_hash"),
        ("email = 'new.address@example.com'", "email"),
    ],
)
async def test_credential_change_is_a_redacted_security_event(
    db: asyncpg.Connection, assignment: str, key: str
) -> None:
    user_id = await make_user(db)
    await db.execute(f"UPDATE creator.users SET {assignment} WHERE id = $1", user_id)
    [row] = [r for r in await trail(db, user_id) if r["category"] == "security"]
    assert row["severity"] == "high"
    assert row["old_values"] == {key: "[redacted]"} == row["new_values"]
    assert "new.address" not in str(dict(row)) and "bbbb" not in str(dict(row))


async def test_hard_deleted_account_is_audited(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    await db.execute("DELETE FROM creator.users WHERE id = $1", user_id)
    row = (await trail(db, user_id))[-1]
    assert row["action"] == "users.delete" and row["new_values"] is None
    assert row["old_values"]["account_status"] == "active"


async def test_staff_actor_is_recorded_as_admin(db: asyncpg.Connection) -> None:
    admin, fan = await make_user(db, "admin"), await make_user(db)
    await as_actor(db, admin, ip_address="198.51.100.4", user_agent="admin-console/1.0")
    await db.execute("UPDATE creator.users SET email_verified = true WHERE id = $1", fan)
    row = (await trail(db, fan))[-1]
    assert (row["user_id"], row["admin_id"]) == (fan, admin)
    assert str(row["ip_address"]) == "198.51.100.4"
    assert row["user_agent"] == "admin-console/1.0"


async def test_user_acting_on_themselves_is_not_an_admin(db: asyncpg.Connection) -> None:
    fan = await make_user(db)
    await as_actor(db, fan)
    await db.execute("UPDATE creator.users SET deleted_at = now() WHERE id = $1", fan)
    row = (await trail(db, fan))[-1]
    assert (row["user_id"], row["admin_id"]) == (fan, None)


async def test_malformed_ip_setting_is_dropped_not_fatal(db: asyncpg.Connection) -> None:
    fan = await make_user(db)
    await as_actor(db, fan, ip_address="not-an-ip")
    await db.execute("UPDATE creator.users SET email_verified = true WHERE id = $1", fan)
    assert (await trail(db, fan))[-1]["ip_address"] is None


# -- content, messages, streams -------------------------------------------------------------------


async def test_content_lifecycle_is_audited(db: asyncpg.Connection) -> None:
    creator_id = await make_creator(db)
    content_id = await make_content(db, creator_id)
    await db.execute("UPDATE creator.content SET title = 'only a title' WHERE id = $1", content_id)
    await db.execute(
        "UPDATE creator.content SET is_premium = true, price = 500 WHERE id = $1", content_id
    )
    await db.execute("DELETE FROM creator.content WHERE id = $1", content_id)
    rows = await trail(db, content_id)
    assert [r["action"] for r in rows] == ["content.insert", "content.update", "content.delete"]
    assert {r["category"] for r in rows} == {"content"}
    assert rows[1]["new_values"] == {"is_premium": True, "price": 500}
    assert all(r["user_id"] == creator_id for r in rows)


async def test_message_deletion_is_audited_but_sending_is_not(db: asyncpg.Connection) -> None:
    chat = await Chat.open(db)
    message_id = await chat.send(chat.fan_id)
    assert await trail(db, message_id) == []
    await db.execute(
        "UPDATE creator.messages SET is_deleted = true, deleted_at = now() WHERE id = $1",
        message_id,
    )
    [row] = await trail(db, message_id)
    assert (row["action"], row["user_id"]) == ("messages.update", chat.fan_id)
    assert row["new_values"] == {"is_deleted": True}


async def test_stream_key_rotation_is_audited_redacted(db: asyncpg.Connection) -> None:
    stream_id = await make_stream(db, await make_creator(db))
    key = await db.fetchval("SELECT creator.issue_stream_key($1)", stream_id)
    row = (await trail(db, stream_id))[-1]
    assert row["new_values"] == {"stream_key_hash": "[redacted]"}
    assert key not in str(dict(row))


# -- money --------------------------------------------------------------------------------------


async def test_payment_and_its_status_changes_are_audited(db: asyncpg.Connection) -> None:
    fan, creator_id = await make_user(db), await make_creator(db)
    tx_id = await make_transaction(db, fan, creator_id, gross_amount=1000, platform_fee=200)
    await completed(db, tx_id)
    rows = await trail(db, tx_id)
    assert [(r["category"], r["action"]) for r in rows] == [
        ("payment", "transactions.insert"),
        ("payment", "transactions.update"),
    ]
    assert rows[0]["new_values"]["net_amount"] == 800
    assert rows[1]["old_values"] == {"status": "pending"}
    assert rows[1]["new_values"] == {"status": "completed"}
    assert rows[0]["user_id"] == fan


async def test_subscription_changes_are_audited(db: asyncpg.Connection) -> None:
    sub_id = await make_subscription(db, await make_user(db), await make_creator(db))
    await db.execute(
        "UPDATE creator.subscriptions SET status = 'cancelled', cancelled_at = now(),"
        " auto_renew = false WHERE id = $1",
        sub_id,
    )
    row = (await trail(db, sub_id))[-1]
    assert row["category"] == "payment"
    assert set(row["new_values"]) == {"status", "cancelled_at", "auto_renew"}


# -- moderation ---------------------------------------------------------------------------------


async def test_moderation_action_and_its_effect_are_both_audited(db: asyncpg.Connection) -> None:
    moderator = await make_user(db, "moderator")
    content_id = await make_content(db, await make_creator(db))
    await as_actor(db, moderator)
    action_id = await insert(
        db,
        "content_moderation_actions",
        target_type="content",
        content_id=content_id,
        action="remove",
        moderator_id=moderator,
    )
    [action] = await trail(db, action_id)
    assert (action["category"], action["admin_id"], action["user_id"]) == (
        "admin",
        moderator,
        None,
    )
    effect = (await trail(db, content_id))[-1]
    assert effect["new_values"] == {"moderation_status": "removed"}
    assert effect["admin_id"] == moderator


async def test_violation_and_the_ban_it_brings_are_audited(db: asyncpg.Connection) -> None:
    offender = await make_user(db)
    violation = await make_violation(db, offender, enforcement_action="permanent_ban")
    [row] = await trail(db, violation)
    assert (row["category"], row["severity"], row["user_id"]) == ("admin", "high", offender)
    ban = (await trail(db, offender))[-1]
    assert ban["new_values"]["account_status"] == "banned"


async def test_report_status_changes_are_audited(db: asyncpg.Connection) -> None:
    reported = await make_creator(db)
    report_id = await make_report(
        db, await make_user(db), target_type="user", reported_user_id=reported
    )
    await db.execute(
        "UPDATE creator.content_reports SET status = 'in_review' WHERE id = $1", report_id
    )
    rows = await trail(db, report_id)
    assert [r["action"] for r in rows] == ["content_reports.insert", "content_reports.update"]
    assert rows[1]["new_values"] == {"status": "in_review"}
    assert rows[1]["user_id"] == reported


# -- audit_logs itself ----------------------------------------------------------------------------


def audit(**fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"category": "security", "action": "login.failed"}
    values.update(fields)
    return values


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"category": "billing"}, "audit_logs_category_valid"),
        ({"severity": "info"}, "audit_logs_severity_valid"),
        ({"action": " "}, "audit_logs_action_not_blank"),
        ({"old_values": [1]}, "audit_logs_old_values_object"),
        ({"new_values": "x"}, "audit_logs_new_values_object"),
    ],
)
async def test_malformed_audit_row_is_rejected(
    db: asyncpg.Connection, fields: dict[str, Any], constraint: str
) -> None:
    await rejects(db, asyncpg.CheckViolationError, constraint, "audit_logs", **audit(**fields))


@pytest.mark.parametrize("category", ["user_account", "content", "payment", "admin", "security"])
async def test_documented_audit_category_is_accepted(db: asyncpg.Connection, category: str) -> None:
    assert await insert(db, "audit_logs", **audit(category=category, severity="critical"))


async def test_audit_rows_cannot_be_updated(db: asyncpg.Connection) -> None:
    row_id = await insert(db, "audit_logs", **audit())
    await fails(
        db,
        asyncpg.CheckViolationError,
        "audit_logs_append_only",
        "UPDATE creator.audit_logs SET description = 'covered up' WHERE id = $1",
        row_id,
    )


async def test_audit_rows_younger_than_7_years_cannot_be_deleted(db: asyncpg.Connection) -> None:
    row_id = await insert(db, "audit_logs", **audit(created_at=await db_now(db, "-7 years +1 day")))
    await fails(
        db,
        asyncpg.CheckViolationError,
        "audit_logs_retained_7_years",
        "DELETE FROM creator.audit_logs WHERE id = $1",
        row_id,
    )


async def test_audit_rows_older_than_7_years_may_be_deleted(db: asyncpg.Connection) -> None:
    row_id = await insert(db, "audit_logs", **audit(created_at=await db_now(db, "-7 years -1 day")))
    assert await db.execute("DELETE FROM creator.audit_logs WHERE id = $1", row_id) == "DELETE 1"


async def test_audit_logs_cannot_be_truncated(db: asyncpg.Connection) -> None:
    await fails(
        db,
        asyncpg.CheckViolationError,
        "audit_logs_append_only",
        "TRUNCATE creator.audit_logs",
    )
