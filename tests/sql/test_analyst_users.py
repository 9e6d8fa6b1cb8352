"""sql/0002: analyst.users, analyst.otp_verifications, analyst.analyst_profiles."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from tests.factories import PASSWORD_HASH, insert_row, make_analyst, make_user

TABLES = ("users", "otp_verifications", "analyst_profiles")


async def db_time(db: asyncpg.Connection, offset: str) -> datetime:
    """The database's now() shifted by an interval such as '-25 hours'."""
    value = await db.fetchval("SELECT now() + $1::text::interval", offset)
    assert isinstance(value, datetime)
    return value


async def user_row(db: asyncpg.Connection, **fields: Any) -> uuid.UUID:
    """Insert a users row with exactly these columns plus a password hash and user type."""
    return await insert_row(
        db, "users", {"password_hash": PASSWORD_HASH, "user_type": "trader", **fields}
    )


async def otp_row(db: asyncpg.Connection, **fields: Any) -> uuid.UUID:
    values = {"phone": "+919876543210", "otp_code": "123456", "purpose": "login", **fields}
    return await insert_row(db, "otp_verifications", values)


async def profile_row(db: asyncpg.Connection, **fields: Any) -> uuid.UUID:
    if "user_id" not in fields:
        fields["user_id"] = await make_user(db, user_type="analyst")
    return await insert_row(db, "analyst_profiles", {"display_name": "Rajesh", **fields})


# users ---------------------------------------------------------------------------------------


async def test_user_requires_email_or_phone(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await user_row(db)
    assert err.value.constraint_name == "users_email_or_phone_required"
    assert await user_row(db, phone="+919876543210")
    assert await user_row(db, email="only@example.com")
    assert await user_row(db, email="both@example.com", phone="+919876543211")


@pytest.mark.parametrize(
    "email",
    [
        "plainaddress",
        "no-tld@example",
        "two@@example.com",
        "sp ace@example.com",
        "dots@example..com",
        "@example.com",
        "trailing@example.com.",
        "x@-.c",
    ],
)
async def test_user_email_must_look_like_an_email(db: asyncpg.Connection, email: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await user_row(db, email=email)
    assert err.value.constraint_name == "users_email_format"


@pytest.mark.parametrize(
    "email", ["rajesh@example.com", "Mixed.Case+tag@Example.CO.IN", "a_b-c%d@sub.domain.io"]
)
async def test_user_email_format_accepts_ordinary_addresses(
    db: asyncpg.Connection, email: str
) -> None:
    assert await user_row(db, email=email)


@pytest.mark.parametrize(
    "phone",
    [
        "9876543210",
        "+0123456789",
        "+123456",
        "+1234567890123456",
        "+91 98765 43210",
        "+91-9876543210",
        "++919876543210",
        "+91987654321a",
    ],
)
async def test_user_phone_must_be_e164(db: asyncpg.Connection, phone: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await user_row(db, phone=phone)
    assert err.value.constraint_name == "users_phone_format"


@pytest.mark.parametrize("phone", ["+919876543210", "+14155550123", "+1234567", "+123456789012345"])
async def test_user_phone_accepts_e164_numbers(db: asyncpg.Connection, phone: str) -> None:
    assert await user_row(db, phone=phone)


@pytest.mark.parametrize("user_type", ["analyst", "trader", "admin"])
async def test_user_type_accepts_each_documented_value(
    db: asyncpg.Connection, user_type: str
) -> None:
    assert await make_user(db, user_type=user_type)


@pytest.mark.parametrize("user_type", ["superuser", "Analyst", ""])
async def test_user_type_rejects_other_values(db: asyncpg.Connection, user_type: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await make_user(db, user_type=user_type)
    assert err.value.constraint_name == "users_user_type_valid"


async def test_user_type_is_required(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.NotNullViolationError):
        await user_row(db, email="a@example.com", user_type=None)


async def test_user_password_hash_is_required(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.NotNullViolationError):
        await user_row(db, email="a@example.com", password_hash=None)


async def test_user_email_is_unique(db: asyncpg.Connection) -> None:
    await make_user(db, email="same@example.com")
    with pytest.raises(asyncpg.UniqueViolationError) as err:
        await make_user(db, email="same@example.com")
    assert err.value.constraint_name in {"users_email_key", "idx_users_email"}


async def test_user_email_is_unique_ignoring_case(db: asyncpg.Connection) -> None:
    await make_user(db, email="Same@Example.com")
    with pytest.raises(asyncpg.UniqueViolationError) as err:
        await make_user(db, email="same@example.COM")
    assert err.value.constraint_name == "idx_users_email"


async def test_user_phone_is_unique(db: asyncpg.Connection) -> None:
    await make_user(db, phone="+919876543210")
    with pytest.raises(asyncpg.UniqueViolationError) as err:
        await make_user(db, phone="+919876543210")
    assert err.value.constraint_name == "idx_users_phone"


async def test_user_login_count_cannot_be_negative(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await make_user(db, login_count=-1)
    assert err.value.constraint_name == "users_login_count_non_negative"


async def test_user_defaults(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    row = await db.fetchrow("SELECT *, now() AS now FROM analyst.users WHERE id = $1", user_id)
    assert row["email_verified"] is False
    assert row["phone_verified"] is False
    assert row["is_active"] is True
    assert row["login_count"] == 0
    assert row["created_at"] == row["updated_at"] <= row["now"]
    assert row["deleted_at"] is None and row["last_active"] is None


# otp_verifications ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["12345", "1234567", "12a456", "", " 12345", "١٢٣٤٥٦"])
async def test_otp_code_must_be_six_digits(db: asyncpg.Connection, code: str) -> None:
    with pytest.raises((asyncpg.CheckViolationError, asyncpg.StringDataRightTruncationError)):
        await otp_row(db, otp_code=code)


async def test_otp_code_check_is_named(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await otp_row(db, otp_code="12a456")
    assert err.value.constraint_name == "otp_verifications_otp_code_format"


@pytest.mark.parametrize("code", ["000000", "123456", "999999"])
async def test_otp_code_accepts_six_digits(db: asyncpg.Connection, code: str) -> None:
    assert await otp_row(db, otp_code=code)


@pytest.mark.parametrize(
    "purpose", ["signup", "login", "reset_password", "verify_phone", "verify_email"]
)
async def test_otp_purpose_accepts_each_documented_value(
    db: asyncpg.Connection, purpose: str
) -> None:
    assert await otp_row(db, purpose=purpose)


@pytest.mark.parametrize("purpose", ["2fa", "Login", ""])
async def test_otp_purpose_rejects_other_values(db: asyncpg.Connection, purpose: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await otp_row(db, purpose=purpose)
    assert err.value.constraint_name == "otp_verifications_purpose_valid"


async def test_otp_purpose_is_required(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.NotNullViolationError):
        await otp_row(db, purpose=None)


async def test_otp_needs_a_phone_or_an_email(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await otp_row(db, phone=None)
    assert err.value.constraint_name == "otp_verifications_target_required"
    assert await otp_row(db, phone=None, email="signup@example.com")


async def test_otp_phone_and_email_formats_are_checked(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await otp_row(db, phone="98765 43210")
    assert err.value.constraint_name == "otp_verifications_phone_format"
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await otp_row(db, email="not-an-email")
    assert err.value.constraint_name == "otp_verifications_email_format"


async def test_otp_user_is_optional_but_must_exist(db: asyncpg.Connection) -> None:
    assert await otp_row(db, user_id=None)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await otp_row(db, user_id=uuid.uuid4())
    assert await otp_row(db, user_id=await make_user(db))


async def test_otp_defaults_expire_in_ten_minutes_with_three_attempts(
    db: asyncpg.Connection,
) -> None:
    otp_id = await otp_row(db)
    row = await db.fetchrow(
        "SELECT *, now() AS now FROM analyst.otp_verifications WHERE id = $1", otp_id
    )
    assert row["expires_at"] - row["created_at"] == timedelta(minutes=10)
    assert row["verified"] is False and row["verified_at"] is None
    assert row["attempts"] == 0 and row["max_attempts"] == 3
    assert row["created_at"] == row["updated_at"] <= row["now"]


async def test_otp_attempts_cannot_exceed_max_attempts(db: asyncpg.Connection) -> None:
    otp_id = await otp_row(db)
    await db.execute("UPDATE analyst.otp_verifications SET attempts = 3 WHERE id = $1", otp_id)
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await db.execute(
            "UPDATE analyst.otp_verifications SET attempts = attempts + 1 WHERE id = $1", otp_id
        )
    assert err.value.constraint_name == "otp_verifications_attempts_within_max"
    with pytest.raises(asyncpg.CheckViolationError):
        await otp_row(db, attempts=-1)
    with pytest.raises(asyncpg.CheckViolationError):
        await otp_row(db, max_attempts=0)


async def test_otps_go_with_a_hard_deleted_user(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    await otp_row(db, user_id=user_id)
    await db.execute("DELETE FROM analyst.users WHERE id = $1", user_id)
    assert await db.fetchval("SELECT count(*) FROM analyst.otp_verifications") == 0


# analyst_profiles ----------------------------------------------------------------------------


async def test_profile_is_one_to_one_with_user(db: asyncpg.Connection) -> None:
    user_id = await make_user(db, user_type="analyst")
    await profile_row(db, user_id=user_id)
    with pytest.raises(asyncpg.UniqueViolationError) as err:
        await profile_row(db, user_id=user_id)
    assert err.value.constraint_name == "analyst_profiles_user_id_key"


async def test_profile_user_must_exist_and_is_required(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await profile_row(db, user_id=uuid.uuid4())
    with pytest.raises(asyncpg.NotNullViolationError):
        await insert_row(db, "analyst_profiles", {"display_name": "Nobody"})


async def test_profile_display_name_is_required(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.NotNullViolationError):
        await profile_row(db, display_name=None)


async def test_profile_bio_is_at_most_2000_characters(db: asyncpg.Connection) -> None:
    assert await profile_row(db, bio="ह" * 2000)  # characters, not bytes
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await profile_row(db, bio="x" * 2001)
    assert err.value.constraint_name == "analyst_profiles_bio_length"


@pytest.mark.parametrize("status", ["pending", "in_review", "approved", "rejected"])
async def test_profile_verification_status_accepts_each_documented_value(
    db: asyncpg.Connection, status: str
) -> None:
    assert await profile_row(db, verification_status=status)


@pytest.mark.parametrize("status", ["verified", "Approved", ""])
async def test_profile_verification_status_rejects_other_values(
    db: asyncpg.Connection, status: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await profile_row(db, verification_status=status)
    assert err.value.constraint_name == "analyst_profiles_verification_status_valid"


@pytest.mark.parametrize(
    ("rating", "ok"),
    [("-0.01", False), ("0", True), ("4.75", True), ("5.00", True), ("5.01", False)],
)
async def test_profile_avg_rating_is_between_0_and_5(
    db: asyncpg.Connection, rating: str, ok: bool
) -> None:
    if ok:
        assert await profile_row(db, avg_rating=Decimal(rating))
    else:
        with pytest.raises(asyncpg.CheckViolationError) as err:
            await profile_row(db, avg_rating=Decimal(rating))
        assert err.value.constraint_name == "analyst_profiles_avg_rating_range"


@pytest.mark.parametrize(
    ("rate", "ok"), [("-0.001", False), ("0", True), ("0.25", True), ("1", True), ("1.001", False)]
)
async def test_profile_commission_rate_is_between_0_and_1(
    db: asyncpg.Connection, rate: str, ok: bool
) -> None:
    if ok:
        assert await profile_row(db, commission_rate=Decimal(rate))
    else:
        with pytest.raises(asyncpg.CheckViolationError) as err:
            await profile_row(db, commission_rate=Decimal(rate))
        assert err.value.constraint_name == "analyst_profiles_commission_rate_range"


@pytest.mark.parametrize(
    "counter",
    ["total_reviews", "total_subscribers", "active_subscribers", "total_posts", "monthly_revenue"],
)
async def test_profile_counters_cannot_be_negative(db: asyncpg.Connection, counter: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await profile_row(db, **{counter: -1})
    assert err.value.constraint_name == "analyst_profiles_counters_non_negative"


@pytest.mark.parametrize("column", ["sebi_number", "ria_number"])
async def test_profile_registration_numbers_are_unique(db: asyncpg.Connection, column: str) -> None:
    await profile_row(db, **{column: "INH000001234"})
    with pytest.raises(asyncpg.UniqueViolationError) as err:
        await profile_row(db, **{column: "INH000001234"})
    assert err.value.constraint_name == f"analyst_profiles_{column}_key"
    assert await profile_row(db, **{column: None})
    assert await profile_row(db, **{column: None})


async def test_profile_country_is_an_uppercase_iso_code(db: asyncpg.Connection) -> None:
    assert await profile_row(db, country="US")
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await profile_row(db, country="in")
    assert err.value.constraint_name == "analyst_profiles_country_format"


async def test_profile_verification_documents_is_an_array(db: asyncpg.Connection) -> None:
    assert await profile_row(db, verification_documents=[{"kind": "sebi", "url": "s3://x"}])
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await profile_row(db, verification_documents={"kind": "sebi"})
    assert err.value.constraint_name == "analyst_profiles_verification_documents_array"


async def test_profile_verified_by_must_be_a_user(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await profile_row(db, verified_by=uuid.uuid4())
    admin = await make_user(db, user_type="admin")
    profile_id = await profile_row(db, verified_by=admin)
    await db.execute("DELETE FROM analyst.users WHERE id = $1", admin)
    assert (
        await db.fetchval(
            "SELECT verified_by FROM analyst.analyst_profiles WHERE id = $1", profile_id
        )
        is None
    )


async def test_profile_defaults(db: asyncpg.Connection) -> None:
    user_id = await make_analyst(db)
    row = await db.fetchrow(
        "SELECT *, now() AS now FROM analyst.analyst_profiles WHERE user_id = $1", user_id
    )
    assert row["country"] == "IN"
    assert row["verification_status"] == "pending"
    assert str(row["avg_rating"]) == "0.00"
    assert str(row["commission_rate"]) == "0.200"
    for counter in (
        "total_reviews",
        "total_subscribers",
        "active_subscribers",
        "total_posts",
        "monthly_revenue",
    ):
        assert row[counter] == 0
    assert row["is_featured"] is False
    assert row["created_at"] == row["updated_at"] <= row["now"]


async def test_profile_array_columns_filter_with_containment(db: asyncpg.Connection) -> None:
    options = await make_analyst(
        db, specializations=["Options", "Intraday"], languages=["English", "Hindi"]
    )
    await make_analyst(db, specializations=["Swing Trading"], languages=["Tamil"])
    found = await db.fetch(
        "SELECT user_id FROM analyst.analyst_profiles"
        " WHERE specializations @> ARRAY['Options'] AND languages && ARRAY['Hindi', 'Marathi']"
    )
    assert [r["user_id"] for r in found] == [options]


# updated_at triggers, indexes, foreign keys --------------------------------------------------


@pytest.mark.parametrize("table", TABLES)
async def test_updated_at_moves_on_update(db: asyncpg.Connection, table: str) -> None:
    yesterday = await db_time(db, "-1 day")
    if table == "users":
        row_id = await make_user(db, created_at=yesterday, updated_at=yesterday)
        change = "login_count = login_count + 1"
    elif table == "otp_verifications":
        row_id = await otp_row(db, created_at=yesterday, updated_at=yesterday)
        change = "attempts = attempts + 1"
    else:
        row_id = await profile_row(db, created_at=yesterday, updated_at=yesterday)
        change = "bio = 'new bio'"
    await db.execute(f"UPDATE analyst.{table} SET {change} WHERE id = $1", row_id)
    row = await db.fetchrow(
        f"SELECT created_at, updated_at, now() AS now FROM analyst.{table} WHERE id = $1", row_id
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
    "index",
    [
        "idx_users_email",
        "idx_users_phone",
        "idx_users_user_type",
        "idx_users_is_active",
        "idx_analyst_profiles_discovery",
        "idx_analyst_profiles_specializations",
        "idx_analyst_profiles_languages",
        "idx_analyst_profiles_verification",
    ],
)
async def test_documented_index_exists(db: asyncpg.Connection, index: str) -> None:
    assert await db.fetchval("SELECT to_regclass('analyst.' || $1)", index) is not None


async def test_array_indexes_are_gin_and_discovery_index_is_partial(
    db: asyncpg.Connection,
) -> None:
    rows = await db.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'analyst'"
        " AND tablename = 'analyst_profiles'"
    )
    defs = {r["indexname"]: r["indexdef"] for r in rows}
    assert "USING gin (specializations)" in defs["idx_analyst_profiles_specializations"]
    assert "USING gin (languages)" in defs["idx_analyst_profiles_languages"]
    discovery = defs["idx_analyst_profiles_discovery"]
    assert "(avg_rating DESC, active_subscribers DESC)" in discovery
    assert "deleted_at IS NULL" in discovery and "'approved'" in discovery
    assert "(verification_status, created_at)" in defs["idx_analyst_profiles_verification"]


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
    fks = await db.fetchval(
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
        " AND conrelid = ANY ('{analyst.otp_verifications,analyst.analyst_profiles}'::regclass[])"
    )
    assert fks == 3  # otp.user_id, profiles.user_id, profiles.verified_by
