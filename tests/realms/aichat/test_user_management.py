"""aichat users, sessions, email_verifications and password_resets (seed 002, tables 1-4):
defaults, UNIQUEs, CHECKs, required columns, foreign keys and their ON DELETE."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from tests.realms.aichat.rows import (
    T0,
    email_verification_fields,
    exists,
    make_email_verification,
    make_password_reset,
    make_session,
    make_user,
    password_reset_fields,
    rejected,
    row,
    session_fields,
    update_rejected,
    user_fields,
)

# -- users ------------------------------------------------------------------------------------


async def test_new_user_is_free_unverified_active_with_no_usage_and_reset_today(
    db: asyncpg.Connection,
) -> None:
    async with db.transaction():
        user = await row(db, "users", await make_user(db))
        today, now = await db.fetchrow("SELECT current_date, localtimestamp")
    assert user["plan_tier"] == "FREE"
    assert (user["email_verified"], user["email_verified_at"]) == (False, None)
    assert user["is_active"] is True
    assert (user["monthly_token_used"], user["login_count"]) == (0, 0)
    assert user["monthly_token_reset"] == today
    assert user["last_login_at"] is None
    # CURRENT_TIMESTAMP: the start of the inserting transaction.
    assert user["created_at"] == user["updated_at"] == now


async def test_user_ids_are_generated_uuids(db: asyncpg.Connection) -> None:
    first, second = await make_user(db), await make_user(db)
    assert first != second
    assert first.version == second.version == 4


@pytest.mark.parametrize("tier", ["FREE", "PLUS", "PRO"])
async def test_user_plan_tier_may_be_free_plus_or_pro(db: asyncpg.Connection, tier: str) -> None:
    user = await row(db, "users", await make_user(db, plan_tier=tier))
    assert user["plan_tier"] == tier


@pytest.mark.parametrize("tier", ["Free", "pro", "ENTERPRISE", ""])
async def test_user_plan_tier_outside_free_plus_pro_is_rejected(
    db: asyncpg.Connection, tier: str
) -> None:
    await rejected(
        db, asyncpg.CheckViolationError, "check_plan_tier", "users", **user_fields(plan_tier=tier)
    )


async def test_user_email_is_unique(db: asyncpg.Connection) -> None:
    await make_user(db, email="ada@example.com")
    await rejected(
        db,
        asyncpg.UniqueViolationError,
        "users_email_key",
        "users",
        **user_fields(email="ada@example.com"),
    )


async def test_user_email_uniqueness_compares_exact_text(db: asyncpg.Connection) -> None:
    """The seed's UNIQUE on varchar: case folding is the application's job (SCHEMA_NOTES)."""
    await make_user(db, email="ada@example.com")
    await make_user(db, email="Ada@Example.com")


async def test_user_email_verified_without_email_verified_at_is_rejected(
    db: asyncpg.Connection,
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "users_email_verified_needs_email_verified_at",
        "users",
        **user_fields(email_verified=True),
    )


async def test_user_email_verified_with_email_verified_at_is_accepted(
    db: asyncpg.Connection,
) -> None:
    user = await row(db, "users", await make_user(db, email_verified=True, email_verified_at=T0))
    assert (user["email_verified"], user["email_verified_at"]) == (True, T0)


async def test_clearing_email_verified_at_of_a_verified_user_is_rejected(
    db: asyncpg.Connection,
) -> None:
    user_id = await make_user(db, email_verified=True, email_verified_at=T0)
    await update_rejected(
        db,
        asyncpg.CheckViolationError,
        "users_email_verified_needs_email_verified_at",
        "UPDATE aichat.users SET email_verified_at = NULL WHERE id = $1",
        user_id,
    )


@pytest.mark.parametrize(
    ("column", "constraint"),
    [
        ("monthly_token_used", "users_monthly_token_used_non_negative"),
        ("login_count", "users_login_count_non_negative"),
    ],
)
async def test_user_counter_below_zero_is_rejected(
    db: asyncpg.Connection, column: str, constraint: str
) -> None:
    await rejected(
        db, asyncpg.CheckViolationError, constraint, "users", **user_fields(**{column: -1})
    )


@pytest.mark.parametrize(
    "column",
    [
        "email",
        "password",
        "name",
        "plan_tier",
        "email_verified",
        "is_active",
        "monthly_token_used",
        "monthly_token_reset",
        "login_count",
        "created_at",
        "updated_at",
    ],
)
async def test_user_required_or_defaulted_column_cannot_be_null(
    db: asyncpg.Connection, column: str
) -> None:
    await rejected(
        db, asyncpg.NotNullViolationError, None, "users", **user_fields(**{column: None})
    )


async def test_user_email_longer_than_255_characters_is_rejected(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.StringDataRightTruncationError):
        await make_user(db, email="a" * 244 + "@example.com")  # 256 characters


# -- sessions ---------------------------------------------------------------------------------


async def test_new_session_is_active_and_last_active_at_creation(db: asyncpg.Connection) -> None:
    async with db.transaction():
        session = await row(db, "sessions", await make_session(db, await make_user(db)))
        now = await db.fetchval("SELECT localtimestamp")
    assert session["is_active"] is True
    assert session["created_at"] == session["last_activity_at"] == now
    assert session["user_agent"] is None and session["ip_address"] is None


async def test_session_token_is_unique(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    await make_session(db, user_id, token="eyJ.same.token")
    await rejected(
        db,
        asyncpg.UniqueViolationError,
        "sessions_token_key",
        "sessions",
        **session_fields(user_id, token="eyJ.same.token"),
    )


async def test_session_token_may_be_512_characters_but_not_more(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    await make_session(db, user_id, token="t" * 512)
    with pytest.raises(asyncpg.StringDataRightTruncationError):
        await make_session(db, user_id, token="u" * 513)


@pytest.mark.parametrize("address", ["203.0.113.7", "2001:db8::1"])
async def test_session_ip_address_stores_ipv4_and_ipv6(
    db: asyncpg.Connection, address: str
) -> None:
    user_id = await make_user(db)
    session_id = await make_session(db, user_id, user_agent="Mozilla/5.0")
    await db.execute(
        "UPDATE aichat.sessions SET ip_address = $1::text::inet WHERE id = $2", address, session_id
    )
    assert (
        await db.fetchval("SELECT host(ip_address) FROM aichat.sessions WHERE id = $1", session_id)
        == address
    )


async def test_session_ip_address_that_is_not_an_address_is_rejected(
    db: asyncpg.Connection,
) -> None:
    session_id = await make_session(db, await make_user(db))
    with pytest.raises(asyncpg.InvalidTextRepresentationError):
        await db.execute(
            "UPDATE aichat.sessions SET ip_address = 'not-an-ip' WHERE id = $1", session_id
        )


@pytest.mark.parametrize(
    "column", ["user_id", "token", "expires_at", "is_active", "created_at", "last_activity_at"]
)
async def test_session_required_or_defaulted_column_cannot_be_null(
    db: asyncpg.Connection, column: str
) -> None:
    fields = session_fields(await make_user(db), **{column: None})
    await rejected(db, asyncpg.NotNullViolationError, None, "sessions", **fields)


async def test_session_of_an_unknown_user_is_rejected(db: asyncpg.Connection) -> None:
    await rejected(
        db,
        asyncpg.ForeignKeyViolationError,
        "fk_sessions_user_id",
        "sessions",
        **session_fields(uuid4()),
    )


async def test_deleting_a_user_deletes_their_sessions(db: asyncpg.Connection) -> None:
    user_id, other = await make_user(db), await make_user(db)
    session_id, kept = await make_session(db, user_id), await make_session(db, other)
    await db.execute("DELETE FROM aichat.users WHERE id = $1", user_id)
    assert not await exists(db, "sessions", session_id)
    assert await exists(db, "sessions", kept)


async def test_updating_a_session_does_not_move_last_activity_at(db: asyncpg.Connection) -> None:
    """last_activity_at is written by the application on activity, not by a trigger."""
    session_id = await make_session(db, await make_user(db), last_activity_at=T0)
    await db.execute("UPDATE aichat.sessions SET is_active = false WHERE id = $1", session_id)
    assert (await row(db, "sessions", session_id))["last_activity_at"] == T0


# -- email_verifications ----------------------------------------------------------------------


async def test_new_email_verification_is_unverified_with_no_attempts(
    db: asyncpg.Connection,
) -> None:
    async with db.transaction():
        verification_id = await make_email_verification(db, await make_user(db))
        verification = await row(db, "email_verifications", verification_id)
        now = await db.fetchval("SELECT localtimestamp")
    assert (verification["is_verified"], verification["verified_at"]) == (False, None)
    assert verification["attempt_count"] == 0
    assert verification["created_at"] == verification["updated_at"] == now


async def test_email_verification_token_is_unique(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    await make_email_verification(db, user_id, token="same-token")
    await rejected(
        db,
        asyncpg.UniqueViolationError,
        "email_verifications_token_key",
        "email_verifications",
        **email_verification_fields(user_id, token="same-token"),
    )


async def test_email_verification_verified_without_verified_at_is_rejected(
    db: asyncpg.Connection,
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "email_verifications_is_verified_needs_verified_at",
        "email_verifications",
        **email_verification_fields(await make_user(db), is_verified=True),
    )


async def test_email_verification_verified_with_verified_at_is_accepted(
    db: asyncpg.Connection,
) -> None:
    verification_id = await make_email_verification(
        db, await make_user(db), is_verified=True, verified_at=T0
    )
    assert (await row(db, "email_verifications", verification_id))["is_verified"] is True


async def test_email_verification_attempt_count_below_zero_is_rejected(
    db: asyncpg.Connection,
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "email_verifications_attempt_count_non_negative",
        "email_verifications",
        **email_verification_fields(await make_user(db), attempt_count=-1),
    )


@pytest.mark.parametrize(
    "column",
    [
        "user_id",
        "email",
        "token",
        "expires_at",
        "is_verified",
        "attempt_count",
        "created_at",
        "updated_at",
    ],
)
async def test_email_verification_required_or_defaulted_column_cannot_be_null(
    db: asyncpg.Connection, column: str
) -> None:
    fields = email_verification_fields(await make_user(db), **{column: None})
    await rejected(db, asyncpg.NotNullViolationError, None, "email_verifications", **fields)


async def test_email_verification_of_an_unknown_user_is_rejected(db: asyncpg.Connection) -> None:
    await rejected(
        db,
        asyncpg.ForeignKeyViolationError,
        "fk_email_verifications_user_id",
        "email_verifications",
        **email_verification_fields(uuid4()),
    )


async def test_deleting_a_user_deletes_their_email_verifications(db: asyncpg.Connection) -> None:
    user_id, other = await make_user(db), await make_user(db)
    gone = await make_email_verification(db, user_id)
    kept = await make_email_verification(db, other)
    await db.execute("DELETE FROM aichat.users WHERE id = $1", user_id)
    assert not await exists(db, "email_verifications", gone)
    assert await exists(db, "email_verifications", kept)


# -- password_resets --------------------------------------------------------------------------


async def test_new_password_reset_is_unused(db: asyncpg.Connection) -> None:
    async with db.transaction():
        reset_id = await make_password_reset(db, await make_user(db))
        reset = await row(db, "password_resets", reset_id)
        now = await db.fetchval("SELECT localtimestamp")
    assert (reset["is_used"], reset["used_at"]) == (False, None)
    assert reset["created_at"] == now


async def test_password_reset_token_is_unique(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    await make_password_reset(db, user_id, token="same-token")
    await rejected(
        db,
        asyncpg.UniqueViolationError,
        "password_resets_token_key",
        "password_resets",
        **password_reset_fields(user_id, token="same-token"),
    )


async def test_password_reset_used_without_used_at_is_rejected(db: asyncpg.Connection) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "password_resets_is_used_needs_used_at",
        "password_resets",
        **password_reset_fields(await make_user(db), is_used=True),
    )


async def test_marking_a_password_reset_used_with_its_time_is_accepted(
    db: asyncpg.Connection,
) -> None:
    reset_id = await make_password_reset(db, await make_user(db))
    await db.execute(
        "UPDATE aichat.password_resets SET is_used = true, used_at = $1 WHERE id = $2",
        T0 + timedelta(minutes=5),
        reset_id,
    )
    assert (await row(db, "password_resets", reset_id))["is_used"] is True


@pytest.mark.parametrize(
    "column", ["user_id", "token", "email", "expires_at", "is_used", "created_at"]
)
async def test_password_reset_required_or_defaulted_column_cannot_be_null(
    db: asyncpg.Connection, column: str
) -> None:
    fields: dict[str, Any] = password_reset_fields(await make_user(db), **{column: None})
    await rejected(db, asyncpg.NotNullViolationError, None, "password_resets", **fields)


async def test_password_reset_of_an_unknown_user_is_rejected(db: asyncpg.Connection) -> None:
    await rejected(
        db,
        asyncpg.ForeignKeyViolationError,
        "fk_password_resets_user_id",
        "password_resets",
        **password_reset_fields(uuid4()),
    )


async def test_deleting_a_user_deletes_their_password_resets(db: asyncpg.Connection) -> None:
    user_id, other = await make_user(db), await make_user(db)
    gone, kept = await make_password_reset(db, user_id), await make_password_reset(db, other)
    await db.execute("DELETE FROM aichat.users WHERE id = $1", user_id)
    assert not await exists(db, "password_resets", gone)
    assert await exists(db, "password_resets", kept)
