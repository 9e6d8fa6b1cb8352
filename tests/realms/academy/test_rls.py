"""realms/academy/sql/1003: row-level security as the API uses it. Every statement under test
runs in `as_user(db, id)`: a transaction with SET LOCAL ROLE academy_user and the
academy.user_id claim, i.e. a hand-written query on the API's connection. Rows are prepared
and checked as the owner (RLS does not apply to it)."""

from __future__ import annotations

import re
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.realms.academy.helpers import (
    API_ROLE,
    T0,
    Rows,
    as_user,
    count,
    permission_denied,
    rls_violation,
)
from tests.realms.academy.test_schema import COLUMNS

RLS_SQL = Path(__file__).resolve().parents[3] / "realms/academy/sql/1003_academy_rls.sql"


# -- the role and the switch ------------------------------------------------------------------


@pytest.mark.parametrize("table", sorted(COLUMNS))
async def test_row_level_security_is_enabled_on_table(db: asyncpg.Connection, table: str) -> None:
    enabled = await db.fetchval(
        "SELECT relrowsecurity FROM pg_class WHERE oid = $1::regclass", f"academy.{table}"
    )
    assert enabled is True


async def test_api_role_is_a_plain_nologin_role_that_rls_applies_to(
    db: asyncpg.Connection,
) -> None:
    role = await db.fetchrow(
        "SELECT rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", API_ROLE
    )
    assert dict(role) == {"rolcanlogin": False, "rolsuper": False, "rolbypassrls": False}
    owners = await db.fetch(
        "SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class"
        " WHERE relnamespace = 'academy'::regnamespace"
    )
    assert API_ROLE not in {r["owner"] for r in owners}


async def test_role_creation_can_run_again_in_another_database(db: asyncpg.Connection) -> None:
    """The DO block of 1003 runs once per database on one cluster: it must tolerate the
    role existing already."""
    block = re.search(r"^DO \$\$.*?^\$\$;", RLS_SQL.read_text(), re.S | re.M)
    assert block is not None
    await db.execute(block.group(0))
    await db.execute(block.group(0))
    assert await db.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", API_ROLE) == 1


async def test_role_and_claim_end_with_the_transaction(rows: Rows) -> None:
    user_id = await rows.user()
    async with as_user(rows.db, user_id) as conn:
        assert await conn.fetchval("SELECT current_user") == API_ROLE
        assert await conn.fetchval("SELECT academy.uid()") == user_id
    assert await rows.db.fetchval("SELECT current_user") != API_ROLE
    assert await rows.db.fetchval("SELECT academy.uid()") is None


# -- user_progress (documented policies) ------------------------------------------------------


@pytest.fixture
async def two_learners(rows: Rows) -> tuple[UUID, UUID, UUID]:
    """(alice, bob, id of bob's completed progress row)."""
    alice, bob = await rows.user(), await rows.user()
    await rows.completion(alice, 100, level_id=1, gate_id=1)
    bobs = await rows.completion(bob, 300, level_id=1, gate_id=1, score=77)
    return alice, bob, bobs


async def test_progress_of_another_user_is_invisible(
    rows: Rows, two_learners: tuple[UUID, UUID, UUID]
) -> None:
    alice, bob, bobs = two_learners
    async with as_user(rows.db, alice) as conn:
        assert await conn.fetch("SELECT * FROM academy.user_progress WHERE user_id = $1", bob) == []
        assert await conn.fetch("SELECT * FROM academy.user_progress WHERE id = $1", bobs) == []
        assert await conn.fetchval("SELECT count(*) FROM academy.user_progress") == 1
        owners = await conn.fetch("SELECT DISTINCT user_id FROM academy.user_progress")
        assert [r["user_id"] for r in owners] == [alice]


async def test_progress_of_another_user_cannot_be_updated(
    rows: Rows, two_learners: tuple[UUID, UUID, UUID]
) -> None:
    alice, _, bobs = two_learners
    async with as_user(rows.db, alice) as conn:
        status = await conn.execute(
            "UPDATE academy.user_progress SET score = 0, xp_earned = 0 WHERE id = $1", bobs
        )
        assert status == "UPDATE 0"
        assert await conn.execute("UPDATE academy.user_progress SET score = 1") == "UPDATE 1"
    row = await rows.db.fetchrow(
        "SELECT score, xp_earned FROM academy.user_progress WHERE id = $1", bobs
    )
    assert (row["score"], row["xp_earned"]) == (77, 300)


async def test_progress_of_another_user_cannot_be_deleted(
    rows: Rows, two_learners: tuple[UUID, UUID, UUID]
) -> None:
    alice, bob, bobs = two_learners
    async with as_user(rows.db, alice) as conn:
        assert (
            await conn.execute("DELETE FROM academy.user_progress WHERE user_id = $1", bob)
            == "DELETE 0"
        )
    assert await count(rows.db, "user_progress", "id = $1", bobs) == 1


async def test_progress_cannot_be_written_for_another_user(
    rows: Rows, two_learners: tuple[UUID, UUID, UUID]
) -> None:
    alice, bob, _ = two_learners
    with rls_violation():
        async with as_user(rows.db, alice) as conn:
            await conn.execute(
                "INSERT INTO academy.user_progress (user_id, level_id, gate_id, completed,"
                " xp_earned) VALUES ($1, 9, 9, true, 1000)",
                bob,
            )
    assert await count(rows.db, "user_progress", "user_id = $1", bob) == 1
    assert (
        await rows.db.fetchval(
            "SELECT sum(xp_points) FROM academy.leaderboard WHERE user_id = $1", bob
        )
        == 300
    )


async def test_own_progress_cannot_be_handed_to_another_user(
    rows: Rows, two_learners: tuple[UUID, UUID, UUID]
) -> None:
    alice, bob, _ = two_learners
    with rls_violation():
        async with as_user(rows.db, alice) as conn:
            await conn.execute("UPDATE academy.user_progress SET user_id = $1", bob)
    assert await count(rows.db, "user_progress", "user_id = $1", alice) == 1


async def test_user_reads_and_writes_own_progress(rows: Rows) -> None:
    alice = await rows.user()
    async with as_user(rows.db, alice) as conn:
        progress_id = await conn.fetchval(
            "INSERT INTO academy.user_progress (user_id, level_id, gate_id)"
            " VALUES (academy.uid(), 1, 1) RETURNING id"
        )
        assert (
            await conn.execute(
                "UPDATE academy.user_progress SET attempts_count = 2 WHERE id = $1", progress_id
            )
            == "UPDATE 1"
        )
        assert (
            await conn.fetchval(
                "SELECT attempts_count FROM academy.user_progress WHERE id = $1", progress_id
            )
            == 2
        )
        assert (
            await conn.execute("DELETE FROM academy.user_progress WHERE id = $1", progress_id)
            == "DELETE 1"
        )


async def test_progress_is_invisible_without_a_claim(
    rows: Rows, two_learners: tuple[UUID, UUID, UUID]
) -> None:
    async with as_user(rows.db, None) as conn:
        assert await conn.fetchval("SELECT count(*) FROM academy.user_progress") == 0
        assert await conn.execute("UPDATE academy.user_progress SET score = 0") == "UPDATE 0"


async def test_learning_stats_of_another_user_are_invisible(
    rows: Rows, two_learners: tuple[UUID, UUID, UUID]
) -> None:
    alice, _, _ = two_learners
    async with as_user(rows.db, alice) as conn:
        stats = await conn.fetch("SELECT user_id, total_xp FROM academy.user_learning_stats")
    assert [tuple(r) for r in stats] == [(alice, 100)]


async def test_lesson_popularity_counts_every_learner_for_any_user(rows: Rows) -> None:
    lesson = await rows.create("lessons")
    alice, bob = await rows.user(), await rows.user()
    await rows.completion(alice, 10, lesson_id=lesson, score=50)
    await rows.completion(bob, 10, lesson_id=lesson, score=100)
    async with as_user(rows.db, alice) as conn:
        row = await conn.fetchrow(
            "SELECT completions, avg_score FROM academy.lesson_popularity WHERE id = $1", lesson
        )
    assert (row["completions"], row["avg_score"]) == (2, 75)


async def test_completing_own_lesson_as_the_api_role_updates_the_leaderboard(
    rows: Rows,
) -> None:
    alice = await rows.user()
    async with as_user(rows.db, alice) as conn:
        await conn.execute(
            "INSERT INTO academy.user_progress"
            " (user_id, level_id, gate_id, completed, xp_earned, completed_at)"
            " VALUES (academy.uid(), 1, 1, true, 250, $1)",
            T0,
        )
    assert (
        await rows.db.fetchval(
            "SELECT xp_points FROM academy.leaderboard WHERE user_id = $1", alice
        )
        == 250
    )


# -- leaderboard ------------------------------------------------------------------------------


async def test_signed_in_users_see_the_whole_leaderboard(
    rows: Rows, two_learners: tuple[UUID, UUID, UUID]
) -> None:
    alice, bob, _ = two_learners
    async with as_user(rows.db, alice) as conn:
        users = await conn.fetch("SELECT user_id FROM academy.leaderboard")
    assert {r["user_id"] for r in users} == {alice, bob}


async def test_leaderboard_is_invisible_without_a_claim(
    rows: Rows, two_learners: tuple[UUID, UUID, UUID]
) -> None:
    async with as_user(rows.db, None) as conn:
        assert await conn.fetchval("SELECT count(*) FROM academy.leaderboard") == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE academy.leaderboard SET xp_points = 1000000",
        "DELETE FROM academy.leaderboard",
        "INSERT INTO academy.leaderboard (user_id, period, period_start_date, period_end_date)"
        " VALUES (academy.uid(), 'all_time', '2025-01-01', '2025-12-31')",
    ],
    ids=["update", "delete", "insert"],
)
async def test_users_cannot_write_the_leaderboard(
    rows: Rows, two_learners: tuple[UUID, UUID, UUID], statement: str
) -> None:
    alice, _, _ = two_learners
    with permission_denied():
        async with as_user(rows.db, alice) as conn:
            await conn.execute(statement)


# -- users (auth.users stand-in) --------------------------------------------------------------


async def test_user_sees_only_own_account(rows: Rows) -> None:
    alice, bob = await rows.user(), await rows.user()
    async with as_user(rows.db, alice) as conn:
        ids = await conn.fetch("SELECT id FROM academy.users")
        assert [r["id"] for r in ids] == [alice]
        assert await conn.fetch("SELECT email FROM academy.users WHERE id = $1", bob) == []


@pytest.mark.parametrize(
    "column",
    [
        "encrypted_password",
        "confirmation_token",
        "recovery_token",
        "email_change_token_new",
        "email_change_token_current",
        "phone_change_token",
        "reauthentication_token",
    ],
)
async def test_secret_columns_of_own_account_are_not_readable(rows: Rows, column: str) -> None:
    alice = await rows.user(encrypted_password="$2b$hash")
    with permission_denied():
        async with as_user(rows.db, alice) as conn:
            await conn.fetch(f"SELECT {column} FROM academy.users")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE academy.users SET is_super_admin = true WHERE id = academy.uid()",
        "INSERT INTO academy.users (email) VALUES ('new@academy.test')",
        "DELETE FROM academy.users",
    ],
    ids=["update", "insert", "delete"],
)
async def test_accounts_are_not_writable_by_users(rows: Rows, statement: str) -> None:
    alice = await rows.user()
    with permission_denied():
        async with as_user(rows.db, alice) as conn:
            await conn.execute(statement)


# -- user_profiles ----------------------------------------------------------------------------


async def test_signed_in_users_see_profiles_and_anonymous_do_not(rows: Rows) -> None:
    alice, bob = await rows.user(), await rows.user()
    await rows.create("user_profiles", id=bob, full_name="Bob")
    async with as_user(rows.db, alice) as conn:
        assert await conn.fetchval("SELECT full_name FROM academy.user_profiles") == "Bob"
    async with as_user(rows.db, None) as conn:
        assert await conn.fetchval("SELECT count(*) FROM academy.user_profiles") == 0


async def test_user_creates_and_edits_own_profile(rows: Rows) -> None:
    alice = await rows.user()
    async with as_user(rows.db, alice) as conn:
        await conn.execute(
            "INSERT INTO academy.user_profiles (id, full_name) VALUES (academy.uid(), 'Alice')"
        )
        assert (
            await conn.execute("UPDATE academy.user_profiles SET bio = 'swing trader'")
            == "UPDATE 1"
        )
    assert (
        await rows.db.fetchval("SELECT bio FROM academy.user_profiles WHERE id = $1", alice)
        == "swing trader"
    )


async def test_profile_of_another_user_cannot_be_created_or_edited(rows: Rows) -> None:
    alice, bob, carol = await rows.user(), await rows.user(), await rows.user()
    await rows.create("user_profiles", id=bob, full_name="Bob")
    with rls_violation():
        async with as_user(rows.db, alice) as conn:
            await conn.execute("INSERT INTO academy.user_profiles (id) VALUES ($1)", carol)
    async with as_user(rows.db, alice) as conn:
        assert (
            await conn.execute(
                "UPDATE academy.user_profiles SET full_name = 'Mallory' WHERE id = $1", bob
            )
            == "UPDATE 0"
        )
    assert (
        await rows.db.fetchval("SELECT full_name FROM academy.user_profiles WHERE id = $1", bob)
        == "Bob"
    )


@pytest.mark.parametrize("column", ["total_xp", "current_level"])
async def test_user_cannot_set_own_xp_or_level(rows: Rows, column: str) -> None:
    alice = await rows.user()
    await rows.create("user_profiles", id=alice)
    with permission_denied():
        async with as_user(rows.db, alice) as conn:
            await conn.execute(f"UPDATE academy.user_profiles SET {column} = 99999")
    with permission_denied():
        async with as_user(rows.db, await rows.user()) as conn:
            await conn.execute(
                f"INSERT INTO academy.user_profiles (id, {column}) VALUES (academy.uid(), 99999)"
            )


# -- lessons, achievements, subscription_plans: public read of active rows, admin write ------

CATALOGUES = ["lessons", "achievements", "subscription_plans"]


@pytest.mark.parametrize("table", CATALOGUES)
async def test_anyone_sees_active_catalogue_rows_only(rows: Rows, table: str) -> None:
    active = await rows.create(table)
    await rows.create(table, is_active=False)
    for who in (await rows.user(), None):
        async with as_user(rows.db, who) as conn:
            ids = await conn.fetch(f"SELECT id FROM academy.{table}")
        assert [r["id"] for r in ids] == [active]


@pytest.mark.parametrize("table", CATALOGUES)
async def test_learners_cannot_write_the_catalogue(rows: Rows, table: str) -> None:
    row_id = await rows.create(table)
    learner = await rows.user()
    async with as_user(rows.db, learner) as conn:
        assert (
            await conn.execute(
                f"UPDATE academy.{table} SET is_active = false WHERE id = $1", row_id
            )
            == "UPDATE 0"
        )
        assert (
            await conn.execute(f"DELETE FROM academy.{table} WHERE id = $1", row_id) == "DELETE 0"
        )
    fields = await rows.fields(table)
    cols = ", ".join(fields)
    params = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
    with rls_violation():
        async with as_user(rows.db, learner) as conn:
            await conn.execute(
                f"INSERT INTO academy.{table} ({cols}) VALUES ({params})", *fields.values()
            )
    assert await count(rows.db, table, "is_active") == 1


@pytest.mark.parametrize("table", CATALOGUES)
async def test_admins_manage_the_catalogue_including_inactive_rows(rows: Rows, table: str) -> None:
    admin = await rows.user(admin=True)
    hidden = await rows.create(table, is_active=False)
    fields = await rows.fields(table)
    cols = ", ".join(fields)
    params = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
    async with as_user(rows.db, admin) as conn:
        created = await conn.fetchval(
            f"INSERT INTO academy.{table} ({cols}) VALUES ({params}) RETURNING id",
            *fields.values(),
        )
        assert await conn.fetchval(f"SELECT count(*) FROM academy.{table}") == 2
        assert (
            await conn.execute(f"UPDATE academy.{table} SET is_active = true WHERE id = $1", hidden)
            == "UPDATE 1"
        )
        assert (
            await conn.execute(f"DELETE FROM academy.{table} WHERE id = $1", created) == "DELETE 1"
        )
    assert await count(rows.db, table, "is_active") == 1


async def test_a_deleted_admin_is_no_longer_an_admin(rows: Rows) -> None:
    admin = await rows.user(admin=True, deleted_at=T0)
    hidden = await rows.create("lessons", is_active=False)
    async with as_user(rows.db, admin) as conn:
        assert await conn.fetchval("SELECT academy.is_admin()") is False
        assert await conn.fetch("SELECT id FROM academy.lessons WHERE id = $1", hidden) == []


# -- rows users read but only the server writes -----------------------------------------------

OWN_READ_ONLY = [
    ("user_achievements", "user_id"),
    ("user_streaks", "user_id"),
    ("user_subscriptions", "user_id"),
]


@pytest.mark.parametrize(("table", "column"), OWN_READ_ONLY)
async def test_user_sees_own_rows_only(rows: Rows, table: str, column: str) -> None:
    alice, bob = await rows.user(), await rows.user()
    mine = await rows.create(table, **{column: alice})
    await rows.create(table, **{column: bob})
    async with as_user(rows.db, alice) as conn:
        ids = await conn.fetch(f"SELECT id FROM academy.{table}")
    assert [r["id"] for r in ids] == [mine]


@pytest.mark.parametrize(("table", "column"), OWN_READ_ONLY)
async def test_user_cannot_write_own_server_kept_rows(rows: Rows, table: str, column: str) -> None:
    alice = await rows.user()
    await rows.create(table, **{column: alice})
    for statement in (
        f"UPDATE academy.{table} SET {column} = {column}",
        f"DELETE FROM academy.{table}",
    ):
        with permission_denied():
            async with as_user(rows.db, alice) as conn:
                await conn.execute(statement)
    assert await count(rows.db, table, f"{column} = $1", alice) == 1


# -- user_activity_log ------------------------------------------------------------------------


async def test_user_logs_and_reads_own_activity_only(rows: Rows) -> None:
    alice, bob = await rows.user(), await rows.user()
    await rows.create("user_activity_log", user_id=bob)
    async with as_user(rows.db, alice) as conn:
        await conn.execute(
            "INSERT INTO academy.user_activity_log (user_id, activity_type)"
            " VALUES (academy.uid(), 'login')"
        )
        users = await conn.fetch("SELECT user_id FROM academy.user_activity_log")
    assert [r["user_id"] for r in users] == [alice]


async def test_activity_cannot_be_logged_for_another_user(rows: Rows) -> None:
    alice, bob = await rows.user(), await rows.user()
    with rls_violation():
        async with as_user(rows.db, alice) as conn:
            await conn.execute(
                "INSERT INTO academy.user_activity_log (user_id, activity_type)"
                " VALUES ($1, 'login')",
                bob,
            )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE academy.user_activity_log SET activity_type = 'login'",
        "DELETE FROM academy.user_activity_log",
    ],
    ids=["update", "delete"],
)
async def test_activity_log_is_append_only_for_users(rows: Rows, statement: str) -> None:
    alice = await rows.user()
    await rows.create("user_activity_log", user_id=alice)
    with permission_denied():
        async with as_user(rows.db, alice) as conn:
            await conn.execute(statement)


# -- community_posts --------------------------------------------------------------------------


async def test_signed_in_users_see_all_posts_and_anonymous_none(rows: Rows) -> None:
    post = await rows.create("community_posts")
    async with as_user(rows.db, await rows.user()) as conn:
        assert [r["id"] for r in await conn.fetch("SELECT id FROM academy.community_posts")] == [
            post
        ]
    async with as_user(rows.db, None) as conn:
        assert await conn.fetchval("SELECT count(*) FROM academy.community_posts") == 0


async def test_user_posts_as_themselves(rows: Rows) -> None:
    alice = await rows.user()
    async with as_user(rows.db, alice) as conn:
        await conn.execute(
            "INSERT INTO academy.community_posts (author_id, title) VALUES (academy.uid(), 'Hi')"
        )
    assert await count(rows.db, "community_posts", "author_id = $1", alice) == 1


async def test_user_cannot_post_as_someone_else(rows: Rows) -> None:
    alice, bob = await rows.user(), await rows.user()
    with rls_violation():
        async with as_user(rows.db, alice) as conn:
            await conn.execute(
                "INSERT INTO academy.community_posts (author_id, title) VALUES ($1, 'Hi')", bob
            )
    assert await count(rows.db, "community_posts") == 0


async def test_anonymous_cannot_post(rows: Rows) -> None:
    author = await rows.user()
    with rls_violation():
        async with as_user(rows.db, None) as conn:
            await conn.execute(
                "INSERT INTO academy.community_posts (author_id, title) VALUES ($1, 'Hi')", author
            )
    assert await count(rows.db, "community_posts") == 0


async def test_author_edits_and_deletes_own_post_only(rows: Rows) -> None:
    alice, bob = await rows.user(), await rows.user()
    mine = await rows.create("community_posts", author_id=alice)
    theirs = await rows.create("community_posts", author_id=bob, title="Bob's")
    async with as_user(rows.db, alice) as conn:
        assert (
            await conn.execute(
                "UPDATE academy.community_posts SET title = 'x' WHERE id = $1", theirs
            )
            == "UPDATE 0"
        )
        assert (
            await conn.execute("DELETE FROM academy.community_posts WHERE id = $1", theirs)
            == "DELETE 0"
        )
        assert (
            await conn.execute(
                "UPDATE academy.community_posts SET title = 'Edited' WHERE id = $1", mine
            )
            == "UPDATE 1"
        )
        assert (
            await conn.execute("DELETE FROM academy.community_posts WHERE id = $1", mine)
            == "DELETE 1"
        )
    assert (
        await rows.db.fetchval("SELECT title FROM academy.community_posts WHERE id = $1", theirs)
        == "Bob's"
    )


async def test_author_cannot_give_own_post_to_someone_else(rows: Rows) -> None:
    alice, bob = await rows.user(), await rows.user()
    await rows.create("community_posts", author_id=alice)
    with permission_denied():  # author_id is not an updatable column for users
        async with as_user(rows.db, alice) as conn:
            await conn.execute("UPDATE academy.community_posts SET author_id = $1", bob)


@pytest.mark.parametrize(
    "column",
    ["upvotes_count", "downvotes_count", "comments_count", "views_count", "is_pinned", "is_locked"],
)
async def test_author_cannot_set_counters_pins_or_locks(rows: Rows, column: str) -> None:
    alice = await rows.user()
    await rows.create("community_posts", author_id=alice)
    value = "true" if column.startswith("is_") else "1000"
    with permission_denied():
        async with as_user(rows.db, alice) as conn:
            await conn.execute(f"UPDATE academy.community_posts SET {column} = {value}")
    with permission_denied():
        async with as_user(rows.db, alice) as conn:
            await conn.execute(
                f"INSERT INTO academy.community_posts (author_id, title, {column})"
                f" VALUES (academy.uid(), 't', {value})"
            )


# -- community_comments -----------------------------------------------------------------------


async def test_user_comments_as_themselves_on_an_open_post(rows: Rows) -> None:
    alice = await rows.user()
    post = await rows.create("community_posts")
    async with as_user(rows.db, alice) as conn:
        await conn.execute(
            "INSERT INTO academy.community_comments (post_id, author_id, content)"
            " VALUES ($1, academy.uid(), 'Agreed')",
            post,
        )
        assert await conn.fetchval("SELECT count(*) FROM academy.community_comments") == 1


async def test_user_cannot_comment_as_someone_else(rows: Rows) -> None:
    alice, bob = await rows.user(), await rows.user()
    post = await rows.create("community_posts")
    with rls_violation():
        async with as_user(rows.db, alice) as conn:
            await conn.execute(
                "INSERT INTO academy.community_comments (post_id, author_id, content)"
                " VALUES ($1, $2, 'x')",
                post,
                bob,
            )


async def test_nobody_comments_on_a_locked_post(rows: Rows) -> None:
    alice = await rows.user()
    post = await rows.create("community_posts", author_id=alice, is_locked=True)
    with rls_violation():
        async with as_user(rows.db, alice) as conn:
            await conn.execute(
                "INSERT INTO academy.community_comments (post_id, author_id, content)"
                " VALUES ($1, academy.uid(), 'x')",
                post,
            )


async def test_author_edits_and_deletes_own_comment_only(rows: Rows) -> None:
    alice, bob = await rows.user(), await rows.user()
    mine = await rows.create("community_comments", author_id=alice)
    theirs = await rows.create("community_comments", author_id=bob, content="Bob's")
    async with as_user(rows.db, alice) as conn:
        assert await conn.fetchval("SELECT count(*) FROM academy.community_comments") == 2
        assert (
            await conn.execute(
                "UPDATE academy.community_comments SET content = 'x', is_deleted = true"
                " WHERE id = $1",
                theirs,
            )
            == "UPDATE 0"
        )
        assert (
            await conn.execute("DELETE FROM academy.community_comments WHERE id = $1", theirs)
            == "DELETE 0"
        )
        assert (
            await conn.execute(
                "UPDATE academy.community_comments SET is_deleted = true WHERE id = $1", mine
            )
            == "UPDATE 1"
        )
        assert (
            await conn.execute("DELETE FROM academy.community_comments WHERE id = $1", mine)
            == "DELETE 1"
        )
    assert (
        await rows.db.fetchval(
            "SELECT content FROM academy.community_comments WHERE id = $1", theirs
        )
        == "Bob's"
    )


async def test_author_cannot_set_comment_vote_counters(rows: Rows) -> None:
    alice = await rows.user()
    await rows.create("community_comments", author_id=alice)
    with permission_denied():
        async with as_user(rows.db, alice) as conn:
            await conn.execute("UPDATE academy.community_comments SET upvotes_count = 1000")


# -- community_votes --------------------------------------------------------------------------


async def test_user_votes_and_changes_own_vote(rows: Rows) -> None:
    alice = await rows.user()
    post = await rows.create("community_posts")
    async with as_user(rows.db, alice) as conn:
        await conn.execute(
            "INSERT INTO academy.community_votes (user_id, target_type, target_id, vote_type)"
            " VALUES (academy.uid(), 'post', $1, 'upvote')",
            post,
        )
        assert (
            await conn.execute("UPDATE academy.community_votes SET vote_type = 'downvote'")
            == "UPDATE 1"
        )
        assert await conn.execute("DELETE FROM academy.community_votes") == "DELETE 1"


async def test_user_cannot_vote_as_someone_else(rows: Rows) -> None:
    alice, bob = await rows.user(), await rows.user()
    with rls_violation():
        async with as_user(rows.db, alice) as conn:
            await conn.execute(
                "INSERT INTO academy.community_votes (user_id, target_type, target_id, vote_type)"
                " VALUES ($1, 'post', $2, 'upvote')",
                bob,
                uuid4(),
            )


async def test_votes_of_others_are_invisible_and_untouchable(rows: Rows) -> None:
    alice, bob = await rows.user(), await rows.user()
    vote = await rows.create("community_votes", user_id=bob)
    async with as_user(rows.db, alice) as conn:
        assert await conn.fetchval("SELECT count(*) FROM academy.community_votes") == 0
        assert (
            await conn.execute("UPDATE academy.community_votes SET vote_type = 'downvote'")
            == "UPDATE 0"
        )
        assert await conn.execute("DELETE FROM academy.community_votes") == "DELETE 0"
    assert (
        await rows.db.fetchval("SELECT vote_type FROM academy.community_votes WHERE id = $1", vote)
        == "upvote"
    )


# -- live_sessions ----------------------------------------------------------------------------

NEW_SESSION = (
    "INSERT INTO academy.live_sessions (title, host_id, scheduled_at, duration)"
    " VALUES ('Q&A', $1, now(), interval '1 hour')"
)


async def test_signed_in_users_see_sessions_and_anonymous_none(rows: Rows) -> None:
    await rows.create("live_sessions")
    async with as_user(rows.db, await rows.user()) as conn:
        assert await conn.fetchval("SELECT count(*) FROM academy.live_sessions") == 1
    async with as_user(rows.db, None) as conn:
        assert await conn.fetchval("SELECT count(*) FROM academy.live_sessions") == 0


async def test_host_schedules_a_session_as_themselves_only(rows: Rows) -> None:
    alice, bob = await rows.user(), await rows.user()
    async with as_user(rows.db, alice) as conn:
        await conn.execute(NEW_SESSION, alice)
    with rls_violation():
        async with as_user(rows.db, alice) as conn:
            await conn.execute(NEW_SESSION, bob)
    assert await count(rows.db, "live_sessions", "host_id = $1", alice) == 1
    assert await count(rows.db, "live_sessions", "host_id = $1", bob) == 0


async def test_host_runs_and_deletes_own_session_only(rows: Rows) -> None:
    alice, bob = await rows.user(), await rows.user()
    mine = await rows.create("live_sessions", host_id=alice)
    theirs = await rows.create("live_sessions", host_id=bob)
    async with as_user(rows.db, alice) as conn:
        assert (
            await conn.execute(
                "UPDATE academy.live_sessions SET status = 'cancelled' WHERE id = $1", theirs
            )
            == "UPDATE 0"
        )
        assert (
            await conn.execute("DELETE FROM academy.live_sessions WHERE id = $1", theirs)
            == "DELETE 0"
        )
        assert (
            await conn.execute(
                "UPDATE academy.live_sessions SET status = 'live' WHERE id = $1", mine
            )
            == "UPDATE 1"
        )
    with rls_violation():  # handing the session to someone else
        async with as_user(rows.db, alice) as conn:
            await conn.execute(
                "UPDATE academy.live_sessions SET host_id = $2 WHERE id = $1", mine, bob
            )
    async with as_user(rows.db, alice) as conn:
        assert (
            await conn.execute("DELETE FROM academy.live_sessions WHERE id = $1", mine)
            == "DELETE 1"
        )
    assert (
        await rows.db.fetchval("SELECT status FROM academy.live_sessions WHERE id = $1", theirs)
        == "scheduled"
    )


async def test_host_cannot_set_the_participant_count(rows: Rows) -> None:
    alice = await rows.user()
    await rows.create("live_sessions", host_id=alice)
    with permission_denied():
        async with as_user(rows.db, alice) as conn:
            await conn.execute("UPDATE academy.live_sessions SET current_participants = 500")


# -- session_participants ---------------------------------------------------------------------

REGISTER = "INSERT INTO academy.session_participants (session_id, user_id) VALUES ($1, $2)"


async def test_user_registers_themselves_for_an_open_session(rows: Rows) -> None:
    alice = await rows.user()
    for status in ("scheduled", "live"):
        session = await rows.create("live_sessions", status=status)
        async with as_user(rows.db, alice) as conn:
            await conn.execute(REGISTER, session, alice)
    assert (
        await count(
            rows.db,
            "session_participants",
            "user_id = $1 AND attendance_status = 'registered'",
            alice,
        )
        == 2
    )


async def test_user_cannot_register_someone_else(rows: Rows) -> None:
    alice, bob = await rows.user(), await rows.user()
    session = await rows.create("live_sessions")
    with rls_violation():
        async with as_user(rows.db, alice) as conn:
            await conn.execute(REGISTER, session, bob)


@pytest.mark.parametrize("status", ["ended", "cancelled"])
async def test_nobody_registers_for_a_closed_session(rows: Rows, status: str) -> None:
    alice = await rows.user()
    session = await rows.create("live_sessions", status=status)
    with rls_violation():
        async with as_user(rows.db, alice) as conn:
            await conn.execute(REGISTER, session, alice)


async def test_user_cannot_mark_own_attendance(rows: Rows) -> None:
    alice = await rows.user()
    session = await rows.create("live_sessions")
    await rows.create("session_participants", session_id=session, user_id=alice)
    with permission_denied():
        async with as_user(rows.db, alice) as conn:
            await conn.execute(
                "UPDATE academy.session_participants SET attendance_status = 'attended'"
            )
    with permission_denied():
        async with as_user(rows.db, alice) as conn:
            await conn.execute(
                "INSERT INTO academy.session_participants (session_id, user_id, attendance_status)"
                " VALUES ($1, academy.uid(), 'attended')",
                await rows.create("live_sessions"),
            )


async def test_registrations_are_visible_to_the_user_and_the_host_only(rows: Rows) -> None:
    host, alice, bob = await rows.user(), await rows.user(), await rows.user()
    session = await rows.create("live_sessions", host_id=host)
    for user_id in (alice, bob):
        await rows.create("session_participants", session_id=session, user_id=user_id)
    async with as_user(rows.db, alice) as conn:
        seen_by_alice = await conn.fetch("SELECT user_id FROM academy.session_participants")
    async with as_user(rows.db, host) as conn:
        seen_by_host = await conn.fetch("SELECT user_id FROM academy.session_participants")
    assert [r["user_id"] for r in seen_by_alice] == [alice]
    assert {r["user_id"] for r in seen_by_host} == {alice, bob}


async def test_only_attendees_rate_a_session(rows: Rows) -> None:
    alice, bob = await rows.user(), await rows.user()
    session = await rows.create("live_sessions", status="ended")
    attended = await rows.create(
        "session_participants", session_id=session, user_id=alice, attendance_status="attended"
    )
    missed = await rows.create(
        "session_participants", session_id=session, user_id=bob, attendance_status="missed"
    )
    rate = "UPDATE academy.session_participants SET feedback_rating = 5, feedback_text = 'great'"
    async with as_user(rows.db, bob) as conn:
        assert await conn.execute(rate) == "UPDATE 0"
    async with as_user(rows.db, alice) as conn:
        assert await conn.execute(rate) == "UPDATE 1"
    ratings = await rows.db.fetch("SELECT id, feedback_rating FROM academy.session_participants")
    assert {r["id"]: r["feedback_rating"] for r in ratings} == {attended: 5, missed: None}


async def test_user_cancels_own_registration_only(rows: Rows) -> None:
    alice, bob = await rows.user(), await rows.user()
    session = await rows.create("live_sessions", host_id=alice)  # even as the host
    await rows.create("session_participants", session_id=session, user_id=alice)
    theirs = await rows.create("session_participants", session_id=session, user_id=bob)
    async with as_user(rows.db, alice) as conn:
        assert (
            await conn.execute("DELETE FROM academy.session_participants WHERE id = $1", theirs)
            == "DELETE 0"
        )
        assert (
            await conn.execute(
                "DELETE FROM academy.session_participants WHERE user_id = academy.uid()"
            )
            == "DELETE 1"
        )
    assert await count(rows.db, "session_participants", "id = $1", theirs) == 1
