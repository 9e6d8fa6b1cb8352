"""realms/academy/sql/1001: every NOT NULL, CHECK, UNIQUE and foreign key of seed 001 holds,
with its ON DELETE behaviour. Rows are written as the owner (RLS is tested in test_rls.py)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from tests.realms.academy.helpers import Rows, count, insert, rejects
from tests.realms.academy.test_schema import COLUMNS, parse_column

# -- NOT NULL ---------------------------------------------------------------------------------

NOT_NULL = [
    (table, name)
    for table, specs in COLUMNS.items()
    for name, _, not_null, _ in map(parse_column, specs)
    if not_null
]


@pytest.mark.parametrize(("table", "column"), NOT_NULL)
async def test_required_column_cannot_be_null(rows: Rows, table: str, column: str) -> None:
    fields = await rows.fields(table)
    fields[column] = None
    await rejects(rows.db, asyncpg.NotNullViolationError, None, table, **fields)


@pytest.mark.parametrize("table", sorted(COLUMNS))
async def test_documented_required_columns_are_enough_for_a_row(rows: Rows, table: str) -> None:
    """The fixtures' minimal rows are valid: every rejection above is due to its one change."""
    await rows.create(table)


# -- CHECK ------------------------------------------------------------------------------------

# (table, column, constraint, documented values, values outside the documented set)
CHECKS: list[tuple[str, str, str, list[Any], list[Any]]] = [
    (
        "lessons",
        "difficulty",
        "ck_lessons_difficulty_valid",
        ["beginner", "intermediate", "advanced"],
        ["expert", "Beginner", ""],
    ),
    (
        "achievements",
        "rarity",
        "ck_achievements_rarity_valid",
        ["common", "rare", "epic", "legendary"],
        ["mythic", "Common"],
    ),
    (
        "leaderboard",
        "period",
        "ck_leaderboard_period_valid",
        ["daily", "weekly", "monthly", "all_time"],
        ["yearly", "Weekly", "all-time"],
    ),
    (
        "user_activity_log",
        "activity_type",
        "ck_user_activity_log_activity_type_valid",
        ["login", "lesson_complete", "achievement_gain", "post_create", "session_join"],
        ["logout", "Login", ""],
    ),
    (
        "community_posts",
        "post_type",
        "ck_community_posts_post_type_valid",
        ["discussion", "question", "announcement"],
        ["poll", "Question"],
    ),
    (
        "community_votes",
        "target_type",
        "ck_community_votes_target_type_valid",
        ["post", "comment"],
        ["user", "Post"],
    ),
    (
        "community_votes",
        "vote_type",
        "ck_community_votes_vote_type_valid",
        ["upvote", "downvote"],
        ["meh", "up"],
    ),
    (
        "live_sessions",
        "session_type",
        "ck_live_sessions_session_type_valid",
        ["workshop", "q&a", "presentation"],
        ["qa", "webinar"],
    ),
    (
        "live_sessions",
        "status",
        "ck_live_sessions_status_valid",
        ["scheduled", "live", "ended", "cancelled"],
        ["canceled", "paused"],
    ),
    (
        "session_participants",
        "attendance_status",
        "ck_session_participants_attendance_status_valid",
        ["registered", "attended", "missed", "waitlisted"],
        ["cancelled", "present"],
    ),
    (
        "session_participants",
        "feedback_rating",
        "ck_session_participants_feedback_rating_range",
        [1, 2, 3, 4, 5, None],
        [0, 6, -1],
    ),
    (
        "subscription_plans",
        "plan_type",
        "ck_subscription_plans_plan_type_valid",
        ["monthly", "yearly", "lifetime"],
        ["weekly", "Monthly"],
    ),
    (
        "user_subscriptions",
        "status",
        "ck_user_subscriptions_status_valid",
        ["active", "past_due", "canceled", "unpaid", "trialing"],
        ["expired", "cancelled"],
    ),
]
ACCEPTED = [(t, c, v) for t, c, _, good, _ in CHECKS for v in good]
REJECTED = [(t, c, k, v) for t, c, k, _, bad in CHECKS for v in bad]


@pytest.mark.parametrize(("table", "column", "value"), ACCEPTED)
async def test_documented_value_is_accepted(
    rows: Rows, table: str, column: str, value: Any
) -> None:
    row_id = await rows.create(table, **{column: value})
    stored = await rows.db.fetchval(f"SELECT {column} FROM academy.{table} WHERE id = $1", row_id)
    assert stored == value


@pytest.mark.parametrize(("table", "column", "constraint", "value"), REJECTED)
async def test_value_outside_the_documented_set_is_rejected(
    rows: Rows, table: str, column: str, constraint: str, value: Any
) -> None:
    fields = await rows.fields(table)
    fields[column] = value
    await rejects(rows.db, asyncpg.CheckViolationError, constraint, table, **fields)


async def test_activity_type_check_follows_the_activity_type_enum(rows: Rows) -> None:
    """user_activity_log.activity_type accepts exactly the enum's labels: a label added to
    the enum is accepted from then on."""
    fields = await rows.fields("user_activity_log")
    await rejects(
        rows.db,
        asyncpg.CheckViolationError,
        "ck_user_activity_log_activity_type_valid",
        "user_activity_log",
        **{**fields, "activity_type": "session_leave"},
    )
    await rows.db.execute("ALTER TYPE academy.activity_type ADD VALUE 'session_leave'")
    await insert(rows.db, "user_activity_log", **{**fields, "activity_type": "session_leave"})


async def test_subscription_status_check_accepts_exactly_the_enum_labels(rows: Rows) -> None:
    labels = await rows.db.fetchval("SELECT enum_range(NULL::academy.subscription_status)::text[]")
    check = next(c for c in CHECKS if c[2] == "ck_user_subscriptions_status_valid")
    assert sorted(labels) == sorted(check[3])


# -- UNIQUE -----------------------------------------------------------------------------------


async def test_user_email_is_unique_ignoring_case(rows: Rows) -> None:
    await rows.user(email="Trader@Dracarys.io")
    await rejects(
        rows.db,
        asyncpg.UniqueViolationError,
        "users_email_key",
        "users",
        email="trader@dracarys.IO",
    )


async def test_user_email_lookup_ignores_case(rows: Rows) -> None:
    user_id = await rows.user(email="Trader@Dracarys.io")
    found = await rows.db.fetchval(
        "SELECT id FROM academy.users WHERE email = $1", "TRADER@dracarys.io"
    )
    assert found == user_id


async def test_one_progress_row_per_user_level_and_gate(rows: Rows) -> None:
    user_id = await rows.user()
    await rows.progress(user_id, level_id=2, gate_id=5)
    await rejects(
        rows.db,
        asyncpg.UniqueViolationError,
        "user_progress_user_id_level_id_gate_id_key",
        "user_progress",
        user_id=user_id,
        level_id=2,
        gate_id=5,
    )
    await rows.progress(user_id, level_id=2, gate_id=6)
    await rows.progress(user_id, level_id=3, gate_id=5)
    await rows.progress(await rows.user(), level_id=2, gate_id=5)


async def test_one_lesson_per_level_and_gate(rows: Rows) -> None:
    fields = await rows.fields("lessons")
    await insert(rows.db, "lessons", **fields)
    await rejects(
        rows.db, asyncpg.UniqueViolationError, "lessons_level_id_gate_id_key", "lessons", **fields
    )
    await insert(rows.db, "lessons", **{**fields, "level_id": fields["level_id"] + 1})


async def test_achievement_code_is_unique(rows: Rows) -> None:
    fields = await rows.fields("achievements")
    await insert(rows.db, "achievements", **fields)
    await rejects(
        rows.db, asyncpg.UniqueViolationError, "achievements_code_key", "achievements", **fields
    )


async def test_an_achievement_is_unlocked_once_per_user(rows: Rows) -> None:
    fields = await rows.fields("user_achievements")
    await insert(rows.db, "user_achievements", **fields)
    await rejects(
        rows.db,
        asyncpg.UniqueViolationError,
        "user_achievements_user_id_achievement_id_key",
        "user_achievements",
        **fields,
    )
    await insert(rows.db, "user_achievements", **{**fields, "user_id": await rows.user()})


async def test_one_leaderboard_row_per_user_period_and_start_date(rows: Rows) -> None:
    fields = await rows.fields("leaderboard")
    await insert(rows.db, "leaderboard", **fields)
    await rejects(
        rows.db,
        asyncpg.UniqueViolationError,
        "leaderboard_user_id_period_period_start_date_key",
        "leaderboard",
        **fields,
    )
    await insert(rows.db, "leaderboard", **{**fields, "period": "monthly"})


async def test_one_streak_row_per_user(rows: Rows) -> None:
    fields = await rows.fields("user_streaks")
    await insert(rows.db, "user_streaks", **fields)
    await rejects(
        rows.db, asyncpg.UniqueViolationError, "user_streaks_user_id_key", "user_streaks", **fields
    )


async def test_one_vote_per_user_and_target(rows: Rows) -> None:
    fields = await rows.fields("community_votes")
    await insert(rows.db, "community_votes", **fields)
    await rejects(
        rows.db,
        asyncpg.UniqueViolationError,
        "community_votes_user_id_target_type_target_id_key",
        "community_votes",
        **{**fields, "vote_type": "downvote"},
    )
    await insert(rows.db, "community_votes", **{**fields, "target_type": "comment"})


async def test_one_registration_per_user_and_session(rows: Rows) -> None:
    fields = await rows.fields("session_participants")
    await insert(rows.db, "session_participants", **fields)
    await rejects(
        rows.db,
        asyncpg.UniqueViolationError,
        "session_participants_session_id_user_id_key",
        "session_participants",
        **fields,
    )


@pytest.mark.parametrize(
    ("table", "column", "constraint"),
    [
        ("subscription_plans", "stripe_price_id", "subscription_plans_stripe_price_id_key"),
        (
            "user_subscriptions",
            "stripe_subscription_id",
            "user_subscriptions_stripe_subscription_id_key",
        ),
    ],
)
async def test_stripe_id_is_unique_but_optional(
    rows: Rows, table: str, column: str, constraint: str
) -> None:
    await rows.create(table, **{column: "stripe_123"})
    fields = await rows.fields(table)
    await rejects(
        rows.db, asyncpg.UniqueViolationError, constraint, table, **{**fields, column: "stripe_123"}
    )
    await rows.create(table, **{column: None})
    await rows.create(table, **{column: None})


# -- foreign keys -----------------------------------------------------------------------------

# (table, column, referenced table, ON DELETE)
FOREIGN_KEYS = [
    ("user_profiles", "id", "users", "CASCADE"),
    ("user_progress", "user_id", "users", "CASCADE"),
    ("user_progress", "lesson_id", "lessons", "NO ACTION"),
    ("lessons", "created_by", "users", "NO ACTION"),
    ("user_achievements", "user_id", "users", "CASCADE"),
    ("user_achievements", "achievement_id", "achievements", "CASCADE"),
    ("leaderboard", "user_id", "users", "CASCADE"),
    ("user_streaks", "user_id", "users", "CASCADE"),
    ("user_activity_log", "user_id", "users", "CASCADE"),
    ("community_posts", "author_id", "users", "CASCADE"),
    ("community_comments", "post_id", "community_posts", "CASCADE"),
    ("community_comments", "author_id", "users", "CASCADE"),
    ("community_comments", "parent_comment_id", "community_comments", "CASCADE"),
    ("community_votes", "user_id", "users", "CASCADE"),
    ("live_sessions", "host_id", "users", "CASCADE"),
    ("session_participants", "session_id", "live_sessions", "CASCADE"),
    ("session_participants", "user_id", "users", "CASCADE"),
    ("user_subscriptions", "user_id", "users", "CASCADE"),
    ("user_subscriptions", "plan_id", "subscription_plans", "RESTRICT"),
]


def fk_id(fk: tuple[str, str, str, str]) -> str:
    return f"{fk[0]}.{fk[1]}"


async def test_foreign_keys_are_exactly_the_documented_ones(db: asyncpg.Connection) -> None:
    actions = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL"}
    found = await db.fetch(
        "SELECT conname, conrelid::regclass::text AS tbl, confrelid::regclass::text AS ref,"
        "       confdeltype::text AS confdeltype, (SELECT array_agg(attname) FROM pg_attribute"
        "                      WHERE attrelid = conrelid AND attnum = ANY (conkey)) AS cols"
        "  FROM pg_constraint WHERE contype = 'f' AND connamespace = 'academy'::regnamespace"
    )
    actual = {
        (r["tbl"].removeprefix("academy."), r["cols"][0], r["ref"].removeprefix("academy."),
         actions[r["confdeltype"]], r["conname"])
        for r in found
    }  # fmt: skip
    live_rooms = {"session_messages", "session_rooms", "session_removals"}  # sql 1004
    seeded = {fk for fk in actual if fk[0] not in live_rooms}
    assert seeded == {(*fk, f"fk_{fk[0]}_{fk[1]}") for fk in FOREIGN_KEYS}


@pytest.mark.parametrize("fk", FOREIGN_KEYS, ids=fk_id)
async def test_reference_to_a_missing_row_is_rejected(
    rows: Rows, fk: tuple[str, str, str, str]
) -> None:
    table, column, _, _ = fk
    fields = await rows.fields(table)
    fields[column] = uuid4()
    await rejects(
        rows.db, asyncpg.ForeignKeyViolationError, f"fk_{table}_{column}", table, **fields
    )


@pytest.mark.parametrize("fk", [fk for fk in FOREIGN_KEYS if fk[3] == "CASCADE"], ids=fk_id)
async def test_deleting_the_referenced_row_deletes_the_referencing_row(
    rows: Rows, fk: tuple[str, str, str, str]
) -> None:
    table, column, parent, _ = fk
    fields = await rows.fields(table)
    if column not in fields:  # optional reference: point it at a fresh parent row
        fields[column] = await rows.create(parent)
    row_id = await insert(rows.db, table, **fields)
    await rows.db.execute(f"DELETE FROM academy.{parent} WHERE id = $1", fields[column])
    assert await count(rows.db, table, "id = $1", row_id) == 0


@pytest.mark.parametrize("fk", [fk for fk in FOREIGN_KEYS if fk[3] != "CASCADE"], ids=fk_id)
async def test_referenced_row_cannot_be_deleted_while_referenced(
    rows: Rows, fk: tuple[str, str, str, str]
) -> None:
    table, column, parent, _ = fk
    fields = await rows.fields(table)
    if column not in fields:
        fields[column] = await rows.create(parent)
    row_id = await insert(rows.db, table, **fields)
    with pytest.raises(asyncpg.ForeignKeyViolationError) as info:
        await rows.db.execute(f"DELETE FROM academy.{parent} WHERE id = $1", fields[column])
    assert info.value.constraint_name == f"fk_{table}_{column}"
    assert await count(rows.db, table, "id = $1", row_id) == 1
    assert await count(rows.db, parent, "id = $1", fields[column]) == 1


async def test_deleting_a_user_removes_everything_they_own(rows: Rows) -> None:
    """One account deletion cascades through every table that references users."""
    user_id = await rows.user()
    other = await rows.user()
    post_of_other = await rows.create("community_posts", author_id=other)
    session_of_other = await rows.create("live_sessions", host_id=other)
    await insert(rows.db, "user_profiles", id=user_id)
    await rows.completion(user_id, 100)
    await rows.create("user_achievements", user_id=user_id)
    await rows.create("user_streaks", user_id=user_id)
    await rows.create("user_activity_log", user_id=user_id)
    own_post = await rows.create("community_posts", author_id=user_id)
    await rows.create("community_comments", post_id=own_post, author_id=other)
    await rows.create("community_comments", post_id=post_of_other, author_id=user_id)
    await rows.create("community_votes", user_id=user_id, target_id=post_of_other)
    await rows.create("live_sessions", host_id=user_id)
    await rows.create("session_participants", session_id=session_of_other, user_id=user_id)
    await rows.create("user_subscriptions", user_id=user_id)

    await rows.db.execute("DELETE FROM academy.users WHERE id = $1", user_id)

    for table, column in [
        ("user_profiles", "id"),
        ("user_progress", "user_id"),
        ("leaderboard", "user_id"),
        ("user_achievements", "user_id"),
        ("user_streaks", "user_id"),
        ("user_activity_log", "user_id"),
        ("community_posts", "author_id"),
        ("community_comments", "author_id"),
        ("community_votes", "user_id"),
        ("live_sessions", "host_id"),
        ("session_participants", "user_id"),
        ("user_subscriptions", "user_id"),
    ]:
        assert await count(rows.db, table, f"{column} = $1", user_id) == 0, table
    assert await count(rows.db, "community_comments", "post_id = $1", own_post) == 0
    assert await count(rows.db, "community_posts", "id = $1", post_of_other) == 1
