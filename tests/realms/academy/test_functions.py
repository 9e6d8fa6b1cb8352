"""realms/academy/sql/1001-1002: academy.uid(), calculate_user_level(), update_leaderboard()
with trigger_update_leaderboard, the views user_learning_stats and lesson_popularity, and the
updated_at triggers. Times are explicit values, never waited for."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.realms.academy.helpers import T0, WEEK_START, Rows, count, insert
from tests.realms.academy.test_schema import COLUMNS, parse_column

# -- academy.uid() ----------------------------------------------------------------------------


async def test_uid_is_null_without_a_claim(db: asyncpg.Connection) -> None:
    assert await db.fetchval("SELECT academy.uid()") is None


async def test_uid_is_the_claim_set_for_the_transaction(db: asyncpg.Connection) -> None:
    user_id = uuid4()
    async with db.transaction():
        await db.execute(f"SET LOCAL academy.user_id = '{user_id}'")
        assert await db.fetchval("SELECT academy.uid()") == user_id
    assert await db.fetchval("SELECT academy.uid()") is None  # gone with the transaction


async def test_uid_of_an_empty_claim_is_null(db: asyncpg.Connection) -> None:
    async with db.transaction():
        await db.execute("SET LOCAL academy.user_id = ''")
        assert await db.fetchval("SELECT academy.uid()") is None


# -- calculate_user_level ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total_xp", "level"),
    [
        (0, 1),
        (999, 1),
        (1000, 1),
        (2999, 1),
        (3000, 2),  # 1000 + 2000
        (6999, 2),
        (7000, 3),  # + 4000
        (14999, 3),
        (15000, 4),  # + 8000
        (31000, 5),
        (1023000, 10),
        (2147483647, 21),
        (-5000, 1),
        (None, 1),
    ],
)
async def test_level_doubles_the_xp_needed_for_each_level(
    db: asyncpg.Connection, total_xp: int | None, level: int
) -> None:
    assert await db.fetchval("SELECT academy.calculate_user_level($1)", total_xp) == level


async def test_calculate_user_level_is_the_seeds_formula(db: asyncpg.Connection) -> None:
    """FLOOR(LOG(2, GREATEST(total_xp / 1000 + 1, 2))) over a range of XP values."""
    mismatches = await db.fetchval(
        "SELECT count(*) FROM generate_series(0, 300000, 250) AS xp"
        " WHERE academy.calculate_user_level(xp)"
        "       <> FLOOR(LOG(2, GREATEST(xp / 1000 + 1, 2)))::integer"
    )
    assert mismatches == 0


# -- update_leaderboard / trigger_update_leaderboard ------------------------------------------


async def weekly(db: asyncpg.Connection, user_id: UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT period, xp_points, lessons_completed, period_start_date, period_end_date"
        "  FROM academy.leaderboard WHERE user_id = $1 ORDER BY period_start_date",
        user_id,
    )
    return rows


async def test_leaderboard_trigger_is_after_insert_or_update_of_completed_rows(
    db: asyncpg.Connection,
) -> None:
    definition = await db.fetchval(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger"
        " WHERE tgrelid = 'academy.user_progress'::regclass"
        "   AND tgname = 'trigger_update_leaderboard'"
    )
    assert definition == (
        "CREATE TRIGGER trigger_update_leaderboard AFTER INSERT OR UPDATE"
        " ON academy.user_progress FOR EACH ROW WHEN ((new.completed = true))"
        " EXECUTE FUNCTION academy.update_leaderboard()"
    )


async def test_completing_a_lesson_adds_its_xp_to_the_weekly_leaderboard(rows: Rows) -> None:
    user_id = await rows.user()
    await rows.completion(user_id, 120)
    [row] = await weekly(rows.db, user_id)
    assert dict(row) == {
        "period": "weekly",
        "xp_points": 120,
        "lessons_completed": 1,
        "period_start_date": WEEK_START,
        "period_end_date": WEEK_START + timedelta(days=6),
    }


async def test_progress_that_is_not_completed_leaves_the_leaderboard_alone(rows: Rows) -> None:
    user_id = await rows.user()
    await rows.progress(user_id, completed=False, xp_earned=50, completed_at=T0)
    await rows.progress(user_id, xp_earned=50)  # completed defaults to false
    assert await weekly(rows.db, user_id) == []


async def test_completions_of_one_week_accumulate_in_one_row(rows: Rows) -> None:
    user_id = await rows.user()
    await rows.completion(user_id, 100, at=datetime(2025, 1, 6, 0, 0, tzinfo=UTC))  # Monday
    await rows.completion(user_id, 50, at=datetime(2025, 1, 12, 23, 59, tzinfo=UTC))  # Sunday
    [row] = await weekly(rows.db, user_id)
    assert (row["xp_points"], row["lessons_completed"]) == (150, 2)


async def test_completions_of_different_weeks_get_their_own_rows(rows: Rows) -> None:
    user_id = await rows.user()
    await rows.completion(user_id, 100, at=datetime(2025, 1, 12, 23, 59, tzinfo=UTC))
    await rows.completion(user_id, 70, at=datetime(2025, 1, 13, 0, 0, tzinfo=UTC))
    assert [
        (r["period_start_date"], r["period_end_date"], r["xp_points"])
        for r in await weekly(rows.db, user_id)
    ] == [(date(2025, 1, 6), date(2025, 1, 12), 100), (date(2025, 1, 13), date(2025, 1, 19), 70)]


async def test_leaderboard_weeks_are_monday_to_sunday_in_utc_whatever_the_session_zone(
    rows: Rows,
) -> None:
    await rows.db.execute("SET TIME ZONE 'Pacific/Auckland'")  # UTC+13 in January
    user_id = await rows.user()
    # Sunday 20:00 UTC is already Monday in Auckland: still the week of 6 January.
    await rows.completion(user_id, 10, at=datetime(2025, 1, 12, 20, 0, tzinfo=UTC))
    [row] = await weekly(rows.db, user_id)
    assert row["period_start_date"] == date(2025, 1, 6)


async def test_completion_without_xp_counts_as_zero_xp(rows: Rows) -> None:
    user_id = await rows.user()
    await rows.completion(user_id, None)
    [row] = await weekly(rows.db, user_id)
    assert (row["xp_points"], row["lessons_completed"]) == (0, 1)


async def test_completion_without_completed_at_counts_in_the_current_week(rows: Rows) -> None:
    user_id = await rows.user()
    await rows.progress(user_id, completed=True, xp_earned=40)
    [row] = await weekly(rows.db, user_id)
    this_monday = await rows.db.fetchval(
        "SELECT date_trunc('week', now() AT TIME ZONE 'UTC')::date"
    )
    assert (row["period_start_date"], row["xp_points"]) == (this_monday, 40)


async def test_completing_existing_progress_by_update_adds_its_xp(rows: Rows) -> None:
    user_id = await rows.user()
    progress_id = await rows.progress(user_id, xp_earned=0)
    await rows.db.execute(
        "UPDATE academy.user_progress SET completed = true, xp_earned = 80, completed_at = $2"
        " WHERE id = $1",
        progress_id,
        T0,
    )
    [row] = await weekly(rows.db, user_id)
    assert (row["xp_points"], row["lessons_completed"]) == (80, 1)


async def test_updating_a_completed_row_again_does_not_count_it_twice(rows: Rows) -> None:
    user_id = await rows.user()
    progress_id = await rows.completion(user_id, 100)
    await rows.db.execute(
        "UPDATE academy.user_progress SET score = 90, attempts_count = 2 WHERE id = $1",
        progress_id,
    )
    [row] = await weekly(rows.db, user_id)
    assert (row["xp_points"], row["lessons_completed"]) == (100, 1)


async def test_changing_xp_of_a_completed_row_adds_only_the_difference(rows: Rows) -> None:
    user_id = await rows.user()
    progress_id = await rows.completion(user_id, 100)
    await rows.db.execute(
        "UPDATE academy.user_progress SET xp_earned = 130 WHERE id = $1", progress_id
    )
    await rows.db.execute(
        "UPDATE academy.user_progress SET xp_earned = 120 WHERE id = $1", progress_id
    )
    [row] = await weekly(rows.db, user_id)
    assert (row["xp_points"], row["lessons_completed"]) == (120, 1)


async def test_weekly_xp_always_sums_to_the_xp_of_completed_progress(rows: Rows) -> None:
    user_id = await rows.user()
    a = await rows.completion(user_id, 100)
    b = await rows.progress(user_id, xp_earned=20)
    await rows.db.execute(
        "UPDATE academy.user_progress SET completed = true, completed_at = $2 WHERE id = $1",
        b,
        T0 + timedelta(days=7),
    )
    await rows.db.execute(
        "UPDATE academy.user_progress SET xp_earned = 150, completed_at = $2 WHERE id = $1",
        a,
        T0 + timedelta(days=14),
    )
    total = await rows.db.fetchval(
        "SELECT sum(xp_points) FROM academy.leaderboard WHERE user_id = $1", user_id
    )
    earned = await rows.db.fetchval(
        "SELECT sum(xp_earned) FROM academy.user_progress WHERE user_id = $1 AND completed",
        user_id,
    )
    assert total == earned == 170


async def test_concurrent_completions_all_reach_the_leaderboard(rows: Rows, dsn: str) -> None:
    """Fifty lessons completed at once by one user, on fifty connections: one weekly row with
    every lesson and all the XP (the upsert, not a read-modify-write)."""
    user_id = await rows.user()
    pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
    try:
        await asyncio.gather(
            *(
                pool.execute(
                    "INSERT INTO academy.user_progress"
                    " (user_id, level_id, gate_id, completed, xp_earned, completed_at)"
                    " VALUES ($1, 1, $2, true, $2, $3)",
                    user_id,
                    gate,
                    T0,
                )
                for gate in range(1, 51)
            )
        )
    finally:
        await pool.close()
    [row] = await weekly(rows.db, user_id)
    assert (row["xp_points"], row["lessons_completed"]) == (sum(range(1, 51)), 50)


# -- views ------------------------------------------------------------------------------------


async def test_learning_stats_sum_completed_progress_per_user(rows: Rows) -> None:
    alice, bob, carol = await rows.user(), await rows.user(), await rows.user()
    await rows.completion(alice, 100, at=T0)
    await rows.completion(alice, 50, at=T0 + timedelta(days=3))
    await rows.progress(alice, xp_earned=999)  # not completed: not counted
    await rows.completion(bob, None, at=T0)
    await rows.progress(carol, xp_earned=10)
    stats = {
        r["user_id"]: (r["completed_lessons"], r["total_xp"], r["last_activity"])
        for r in await rows.db.fetch(
            "SELECT * FROM academy.user_learning_stats WHERE user_id = ANY ($1::uuid[])",
            [alice, bob, carol],
        )
    }
    assert stats == {alice: (2, 150, T0 + timedelta(days=3)), bob: (1, None, T0)}


async def test_learning_stats_view_has_the_documented_columns(db: asyncpg.Connection) -> None:
    cols = await db.fetch(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'academy' AND table_name = 'user_learning_stats'"
        " ORDER BY ordinal_position"
    )
    assert [(c["column_name"], c["data_type"]) for c in cols] == [
        ("user_id", "uuid"),
        ("completed_lessons", "bigint"),
        ("total_xp", "bigint"),
        ("last_activity", "timestamp with time zone"),
    ]


async def test_lesson_popularity_ranks_active_lessons_by_completions(rows: Rows) -> None:
    popular = await rows.create("lessons", title="Popular")
    tied_a = await rows.create("lessons", title="Tied A")
    tied_b = await rows.create("lessons", title="Tied B")
    unseen = await rows.create("lessons", title="Unseen")
    hidden = await rows.create("lessons", title="Hidden", is_active=False)
    users = [await rows.user() for _ in range(3)]
    for user_id, score in zip(users, [60, 80, 100], strict=True):
        await rows.completion(user_id, 10, lesson_id=popular, score=score)
    await rows.completion(users[0], 10, lesson_id=tied_a, score=70)
    await rows.completion(users[1], 10, lesson_id=tied_b, score=None)
    await rows.progress(users[2], lesson_id=tied_b, score=5)  # not completed: not counted
    await rows.completion(users[0], 10, lesson_id=hidden, score=90)

    result = {
        r["id"]: (r["title"], r["completions"], r["avg_score"], r["popularity_rank"])
        for r in await rows.db.fetch("SELECT * FROM academy.lesson_popularity")
    }
    assert result == {
        popular: ("Popular", 3, 80, 1),
        tied_a: ("Tied A", 1, 70, 2),
        tied_b: ("Tied B", 1, None, 2),
        unseen: ("Unseen", 0, None, 4),
    }


async def test_lesson_popularity_view_has_the_documented_columns(db: asyncpg.Connection) -> None:
    cols = await db.fetch(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'academy' AND table_name = 'lesson_popularity'"
        " ORDER BY ordinal_position"
    )
    assert [(c["column_name"], c["data_type"]) for c in cols] == [
        ("id", "uuid"),
        ("title", "text"),
        ("completions", "bigint"),
        ("avg_score", "numeric"),
        ("popularity_rank", "bigint"),
    ]


# -- updated_at -------------------------------------------------------------------------------

UPDATED_AT_TABLES = sorted(
    table
    for table, specs in COLUMNS.items()
    if any(parse_column(s)[0] == "updated_at" for s in specs)
)
LONG_AGO = datetime(2001, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("table", UPDATED_AT_TABLES)
async def test_update_sets_updated_at_to_now(rows: Rows, table: str) -> None:
    row_id = await rows.create(table, updated_at=LONG_AGO)
    async with rows.db.transaction():
        # Even an explicit updated_at is replaced by the transaction's time.
        await rows.db.execute(
            f"UPDATE academy.{table} SET updated_at = $2 WHERE id = $1", row_id, LONG_AGO
        )
        now, updated_at = await rows.db.fetchrow(
            f"SELECT now(), updated_at FROM academy.{table} WHERE id = $1", row_id
        )
    assert updated_at == now


@pytest.mark.parametrize("table", [t for t in UPDATED_AT_TABLES if t != "leaderboard"])
async def test_update_keeps_created_at(rows: Rows, table: str) -> None:
    row_id = await rows.create(table, created_at=LONG_AGO)
    await rows.db.execute(f"UPDATE academy.{table} SET updated_at = now() WHERE id = $1", row_id)
    assert (
        await rows.db.fetchval(f"SELECT created_at FROM academy.{table} WHERE id = $1", row_id)
        == LONG_AGO
    )


async def test_insert_keeps_the_given_updated_at(rows: Rows) -> None:
    """The trigger is BEFORE UPDATE only: an imported row keeps its timestamps."""
    user_id = await insert(
        rows.db, "users", email="old@academy.test", created_at=LONG_AGO, updated_at=LONG_AGO
    )
    assert await count(rows.db, "users", "id = $1 AND updated_at = $2", user_id, LONG_AGO) == 1
