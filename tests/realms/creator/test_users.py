"""realms/creator/sql/3001: creator.users, creator.user_profiles, creator.user_sessions."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.realms.creator.rows import (
    PASSWORD_HASH,
    column,
    db_now,
    fails,
    insert,
    make_creator,
    make_user,
    rejects,
    unique,
)


def user_fields(**fields: Any) -> dict[str, Any]:
    name = unique("u_")
    values: dict[str, Any] = {
        "username": name,
        "email": f"{name}@example.com",
        "password_hash": PASSWORD_HASH,
    }
    values.update(fields)
    return values


# -- users: defaults and required columns ----------------------------------------------------


async def test_user_defaults(db: asyncpg.Connection) -> None:
    row = await db.fetchrow(
        "SELECT * FROM creator.users WHERE id = $1", await insert(db, "users", **user_fields())
    )
    assert row["account_type"] == "fan"
    assert row["account_status"] == "active"
    assert (row["age_verified"], row["email_verified"]) == (False, False)
    assert row["currency"] == "USD"
    assert row["subscription_price"] is None and row["deleted_at"] is None
    assert row["created_at"] is not None and row["updated_at"] is not None


@pytest.mark.parametrize("name", ["username", "email", "password_hash"])
async def test_user_required_column_cannot_be_null(db: asyncpg.Connection, name: str) -> None:
    await rejects(db, asyncpg.NotNullViolationError, None, "users", **user_fields(**{name: None}))


# -- users: formats ----------------------------------------------------------------------------


async def test_username_longer_than_30_characters_is_rejected(db: asyncpg.Connection) -> None:
    await rejects(
        db, asyncpg.StringDataRightTruncationError, None, "users", **user_fields(username="a" * 31)
    )


@pytest.mark.parametrize("username", ["ab", "has space", "émile", "semi;colon", ""])
async def test_username_not_3_plus_letters_digits_dot_underscore_is_rejected(
    db: asyncpg.Connection, username: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "users_username_format",
        "users",
        **user_fields(username=username),
    )


@pytest.mark.parametrize("username", ["abc", "A" * 30, "jane.doe_99"])
async def test_username_of_3_to_30_allowed_characters_is_accepted(
    db: asyncpg.Connection, username: str
) -> None:
    assert await insert(db, "users", **user_fields(username=username))


@pytest.mark.parametrize(
    "email", ["plainaddress", "no-tld@example", "two@@example.com", "a@b..com", "@example.com"]
)
async def test_email_must_look_like_an_email(db: asyncpg.Connection, email: str) -> None:
    await rejects(
        db, asyncpg.CheckViolationError, "users_email_format", "users", **user_fields(email=email)
    )


@pytest.mark.parametrize(
    "password_hash",
    ["plaintext-password", "$2b$12$short", "$1$abcdefgh$" + "x" * 22, "$2b$12$" + "x" * 54],
)
async def test_password_hash_that_is_not_bcrypt_is_rejected(
    db: asyncpg.Connection, password_hash: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "users_password_hash_bcrypt",
        "users",
        **user_fields(password_hash=password_hash),
    )


@pytest.mark.parametrize("prefix", ["$2a$10$", "$2b$12$", "$2y$14$"])
async def test_password_hash_in_bcrypt_format_is_accepted(
    db: asyncpg.Connection, prefix: str
) -> None:
    assert await insert(db, "users", **user_fields(password_hash=prefix + "./Az09" * 8 + "abcde"))


async def test_blank_display_name_is_rejected(db: asyncpg.Connection) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "users_display_name_not_blank",
        "users",
        **user_fields(display_name="   "),
    )


@pytest.mark.parametrize("currency", ["usd", "US", "EU1"])
async def test_currency_must_be_three_capital_letters(
    db: asyncpg.Connection, currency: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "users_currency_format",
        "users",
        **user_fields(currency=currency),
    )


# -- users: account type, pricing, status --------------------------------------------------------


@pytest.mark.parametrize("account_type", ["fan", "creator", "admin", "moderator"])
async def test_documented_account_type_is_accepted(
    db: asyncpg.Connection, account_type: str
) -> None:
    user_id = await insert(db, "users", **user_fields(account_type=account_type))
    assert await column(db, "users", "account_type", user_id) == account_type


@pytest.mark.parametrize("account_type", ["Fan", "subscriber", "", "superadmin"])
async def test_undocumented_account_type_is_rejected(
    db: asyncpg.Connection, account_type: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "users_account_type_valid",
        "users",
        **user_fields(account_type=account_type),
    )


@pytest.mark.parametrize("price", [0, 999])
async def test_creator_may_set_a_subscription_price(db: asyncpg.Connection, price: int) -> None:
    user_id = await make_creator(db, subscription_price=price)
    assert await column(db, "users", "subscription_price", user_id) == price


async def test_negative_subscription_price_is_rejected(db: asyncpg.Connection) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "users_subscription_price_non_negative",
        "users",
        **user_fields(account_type="creator", subscription_price=-1),
    )


@pytest.mark.parametrize("account_type", ["fan", "admin", "moderator"])
async def test_only_a_creator_has_a_subscription_price(
    db: asyncpg.Connection, account_type: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "users_subscription_price_creator_only",
        "users",
        **user_fields(account_type=account_type, subscription_price=500),
    )


@pytest.mark.parametrize("status", ["active", "banned", "deactivated"])
async def test_documented_account_status_without_end_is_accepted(
    db: asyncpg.Connection, status: str
) -> None:
    assert await insert(db, "users", **user_fields(account_status=status))


@pytest.mark.parametrize("status", ["pending", "Active", "blocked", ""])
async def test_undocumented_account_status_is_rejected(db: asyncpg.Connection, status: str) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "users_account_status_valid",
        "users",
        **user_fields(account_status=status),
    )


async def test_suspension_needs_an_end_and_only_a_suspension_has_one(
    db: asyncpg.Connection,
) -> None:
    later = await db_now(db, "7 days")
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "users_suspended_until_matches_status",
        "users",
        **user_fields(account_status="suspended"),
    )
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "users_suspended_until_matches_status",
        "users",
        **user_fields(account_status="active", suspended_until=later),
    )
    assert await insert(
        db, "users", **user_fields(account_status="suspended", suspended_until=later)
    )


# -- users: age verification ----------------------------------------------------------------------


async def test_age_verified_without_verification_time_is_rejected(db: asyncpg.Connection) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "users_age_verified_has_time",
        "users",
        **user_fields(age_verified=True, date_of_birth=date(1990, 1, 1)),
    )


async def test_age_verification_of_a_minor_is_rejected(db: asyncpg.Connection) -> None:
    verified_at = await db_now(db)
    seventeen = date(verified_at.year - 17, 1, 1)
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "users_age_verified_adult",
        "users",
        **user_fields(age_verified=True, age_verified_at=verified_at, date_of_birth=seventeen),
    )


async def test_age_verification_without_date_of_birth_is_rejected(db: asyncpg.Connection) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "users_age_verified_adult",
        "users",
        **user_fields(age_verified=True, age_verified_at=await db_now(db)),
    )


async def test_age_verification_on_the_18th_birthday_is_accepted(db: asyncpg.Connection) -> None:
    verified_at = await db_now(db)
    eighteen = await db.fetchval(
        "SELECT (($1::timestamptz AT TIME ZONE 'UTC')::date - interval '18 years')::date",
        verified_at,
    )
    assert await insert(
        db,
        "users",
        **user_fields(age_verified=True, age_verified_at=verified_at, date_of_birth=eighteen),
    )
    day_later = eighteen + timedelta(days=1)
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "users_age_verified_adult",
        "users",
        **user_fields(age_verified=True, age_verified_at=verified_at, date_of_birth=day_later),
    )


# -- users: uniqueness and search -----------------------------------------------------------------


async def test_username_is_unique_ignoring_case(db: asyncpg.Connection) -> None:
    await insert(db, "users", **user_fields(username="JaneDoe"))
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "users_username_lower_key",
        "users",
        **user_fields(username="janedoe"),
    )


async def test_email_is_unique_ignoring_case(db: asyncpg.Connection) -> None:
    await insert(db, "users", **user_fields(email="Jane@Example.com"))
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "users_email_lower_key",
        "users",
        **user_fields(email="jane@example.com"),
    )


async def test_soft_deleted_account_still_holds_its_username_and_email(
    db: asyncpg.Connection,
) -> None:
    await insert(
        db,
        "users",
        **user_fields(username="gone_user", email="gone@example.com", deleted_at=await db_now(db)),
    )
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "users_username_lower_key",
        "users",
        **user_fields(username="gone_user"),
    )
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "users_email_lower_key",
        "users",
        **user_fields(email="gone@example.com"),
    )


SEARCH = (
    "SELECT id FROM creator.users"
    " WHERE to_tsvector('simple', username || ' ' || coalesce(display_name, ''))"
    " @@ plainto_tsquery('simple', $1)"
)


async def test_full_text_search_finds_users_by_username_or_display_name(
    db: asyncpg.Connection,
) -> None:
    by_name = await make_creator(db, username="yoga_with_mia", display_name="Mia Stretch")
    await make_creator(db, display_name="Someone Else")
    assert [r["id"] for r in await db.fetch(SEARCH, "stretch")] == [by_name]
    assert [r["id"] for r in await db.fetch(SEARCH, "yoga_with_mia")] == [by_name]


async def test_full_text_search_uses_its_gin_index(db: asyncpg.Connection) -> None:
    for _ in range(30):
        await make_user(db, display_name="Common Name")
    await db.execute("ANALYZE creator.users")
    async with db.transaction():
        await db.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in await db.fetch("EXPLAIN " + SEARCH, "common"))
    assert "idx_users_search" in plan


async def test_user_update_moves_updated_at(db: asyncpg.Connection) -> None:
    past = await db_now(db, "-1 day")
    user_id = await make_user(db, created_at=past, updated_at=past)
    await db.execute("UPDATE creator.users SET display_name = 'New' WHERE id = $1", user_id)
    assert await column(db, "users", "created_at", user_id) == past
    assert await column(db, "users", "updated_at", user_id) > past


# -- user_profiles --------------------------------------------------------------------------------


async def test_profile_defaults(db: asyncpg.Connection) -> None:
    profile_id = await insert(db, "user_profiles", user_id=await make_creator(db))
    row = await db.fetchrow("SELECT * FROM creator.user_profiles WHERE id = $1", profile_id)
    assert row["allow_messages_from"] == "subscribers"
    assert row["social_links"] == {} and row["preferences"] == {}
    assert row["notification_preferences"] == {}
    assert row["content_categories"] == [] and row["languages"] == []


async def test_profile_stores_social_links_categories_and_demographics(
    db: asyncpg.Connection,
) -> None:
    profile_id = await insert(
        db,
        "user_profiles",
        user_id=await make_creator(db),
        social_links={"instagram": "@mia", "tiktok": "@mia.t"},
        content_categories=["fitness", "yoga"],
        preferences={"theme": "dark"},
        gender="female",
        languages=["en", "es"],
        country="ES",
        region="Catalonia",
        city="Barcelona",
        timezone="Europe/Madrid",
    )
    found = await db.fetchval(
        "SELECT id FROM creator.user_profiles WHERE content_categories @> ARRAY['yoga']"
    )
    assert found == profile_id


async def test_user_has_at_most_one_profile(db: asyncpg.Connection) -> None:
    user_id = await make_creator(db)
    await insert(db, "user_profiles", user_id=user_id)
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "user_profiles_user_id_key",
        "user_profiles",
        user_id=user_id,
    )


async def test_profile_of_unknown_user_is_rejected(db: asyncpg.Connection) -> None:
    await rejects(
        db,
        asyncpg.ForeignKeyViolationError,
        "user_profiles_user_id_fkey",
        "user_profiles",
        user_id=uuid4(),
    )


async def test_hard_deleting_a_user_deletes_the_profile(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    await insert(db, "user_profiles", user_id=user_id)
    await db.execute("DELETE FROM creator.users WHERE id = $1", user_id)
    assert await db.fetchval("SELECT count(*) FROM creator.user_profiles") == 0


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"bio": "x" * 2001}, "user_profiles_bio_length"),
        ({"social_links": ["@mia"]}, "user_profiles_social_links_object"),
        ({"preferences": "dark"}, "user_profiles_preferences_object"),
        ({"notification_preferences": [1]}, "user_profiles_notification_preferences_object"),
        ({"country": "es"}, "user_profiles_country_format"),
        ({"allow_messages_from": "friends"}, "user_profiles_allow_messages_from_valid"),
    ],
)
async def test_bad_profile_value_is_rejected(
    db: asyncpg.Connection, fields: dict[str, Any], constraint: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        constraint,
        "user_profiles",
        user_id=await make_user(db),
        **fields,
    )


async def test_bio_of_2000_characters_is_accepted(db: asyncpg.Connection) -> None:
    assert await insert(db, "user_profiles", user_id=await make_user(db), bio="é" * 2000)


@pytest.mark.parametrize("rule", ["everyone", "followers", "subscribers", "nobody"])
async def test_documented_messaging_rule_is_accepted(db: asyncpg.Connection, rule: str) -> None:
    assert await insert(
        db, "user_profiles", user_id=await make_creator(db), allow_messages_from=rule
    )


# -- user_sessions --------------------------------------------------------------------------------


def token_hash() -> str:
    return uuid4().hex + uuid4().hex


async def make_session(db: asyncpg.Connection, user_id: UUID, **fields: Any) -> UUID:
    fields.setdefault("expires_at", await db_now(db, "30 days"))
    return await insert(db, "user_sessions", user_id=user_id, token_hash=token_hash(), **fields)


@pytest.mark.parametrize("value", ["ABC" + "0" * 61, "g" * 64, "0" * 63 + " "])
async def test_session_token_hash_must_be_lowercase_sha256_hex(
    db: asyncpg.Connection, value: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "user_sessions_token_hash_format",
        "user_sessions",
        user_id=await make_user(db),
        token_hash=value,
        expires_at=await db_now(db, "1 day"),
    )


async def test_session_token_hash_is_unique(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    value = token_hash()
    expires = await db_now(db, "1 day")
    await insert(db, "user_sessions", user_id=user_id, token_hash=value, expires_at=expires)
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "user_sessions_token_hash_key",
        "user_sessions",
        user_id=user_id,
        token_hash=value,
        expires_at=expires,
    )


async def test_session_must_expire_after_it_was_created(db: asyncpg.Connection) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "user_sessions_expires_after_creation",
        "user_sessions",
        user_id=await make_user(db),
        token_hash=token_hash(),
        expires_at=await db_now(db),
    )


async def test_hard_deleting_a_user_deletes_their_sessions(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    await make_session(db, user_id)
    await db.execute("DELETE FROM creator.users WHERE id = $1", user_id)
    assert await db.fetchval("SELECT count(*) FROM creator.user_sessions") == 0


async def test_session_of_unknown_user_is_rejected(db: asyncpg.Connection) -> None:
    await fails(
        db,
        asyncpg.ForeignKeyViolationError,
        "user_sessions_user_id_fkey",
        "INSERT INTO creator.user_sessions (user_id, token_hash, expires_at)"
        " VALUES ($1, $2, now() + interval '1 day')",
        uuid4(),
        token_hash(),
    )
