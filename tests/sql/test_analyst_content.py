"""sql/0004_analyst_content.sql: posts, bookmarks, reviews, their constraints, indexes, triggers.

Runs against a real Postgres with every migration applied (the `db` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.factories import make_analyst, make_user
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


async def post(db: asyncpg.Connection, analyst_id: UUID, **fields: Any) -> UUID:
    fields.setdefault("content", "NIFTY looks strong above 22000")
    fields.setdefault("post_type", "call")
    return await insert(db, "posts", analyst_id=analyst_id, **fields)


async def profile(db: asyncpg.Connection, analyst_id: UUID) -> asyncpg.Record:
    row: asyncpg.Record = await db.fetchrow(
        "SELECT total_posts, last_post_at, avg_rating, total_reviews"
        " FROM analyst.analyst_profiles WHERE user_id = $1",
        analyst_id,
    )
    return row


async def bookmarks_count(db: asyncpg.Connection, post_id: UUID) -> int:
    count: int = await db.fetchval(
        "SELECT bookmarks_count FROM analyst.posts WHERE id = $1", post_id
    )
    return count


@pytest.fixture
async def analyst_id(db: asyncpg.Connection) -> UUID:
    return await make_analyst(db)


@pytest.fixture
async def trader_id(db: asyncpg.Connection) -> UUID:
    return await make_user(db)


# -- posts: columns and constraints -----------------------------------------------------------


async def test_post_defaults(db: asyncpg.Connection, analyst_id: UUID) -> None:
    row = await db.fetchrow("SELECT * FROM analyst.posts WHERE id = $1", await post(db, analyst_id))
    assert row["audience"] == "both"
    assert (row["views_count"], row["bookmarks_count"], row["comments_count"]) == (0, 0, 0)
    assert (row["is_urgent"], row["is_pinned"], row["is_featured"]) == (False, False, False)
    assert row["created_at"] is not None and row["updated_at"] is not None
    assert row["deleted_at"] is None
    assert isinstance(row["id"], UUID)


POST_VALUE_LISTS = {
    "post_type": ["call", "update", "analysis", "commentary", "educational"],
    "strategy_type": ["intraday", "swing", "positional", "long_term", "options"],
    "audience": ["free", "paid", "both"],
    "action": ["BUY", "SELL", "HOLD"],
    "confidence_level": ["LOW", "MEDIUM", "HIGH", "VERY_HIGH"],
    "call_status": ["open", "target_hit", "stop_loss_hit", "closed", "expired"],
}


@pytest.mark.parametrize(
    ("column", "value"),
    [(column, value) for column, values in POST_VALUE_LISTS.items() for value in values],
)
async def test_post_accepts_every_documented_value(
    db: asyncpg.Connection, analyst_id: UUID, column: str, value: str
) -> None:
    post_id = await post(db, analyst_id, **{column: value})
    stored = await db.fetchval(f"SELECT {column} FROM analyst.posts WHERE id = $1", post_id)
    assert stored == value


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("post_type", "rumour"),
        ("strategy_type", "scalping"),
        ("audience", "everyone"),
        ("action", "buy"),
        ("action", "SHORT"),
        ("confidence_level", "high"),
        ("call_status", "cancelled"),
    ],
)
async def test_post_rejects_an_undocumented_value(
    db: asyncpg.Connection, analyst_id: UUID, column: str, value: str
) -> None:
    fields: dict[str, Any] = {"analyst_id": analyst_id, "content": "x", "post_type": "call"}
    fields[column] = value
    await rejects(db, asyncpg.CheckViolationError, f"posts_{column}_valid", "posts", **fields)


@pytest.mark.parametrize("column", ["strategy_type", "action", "confidence_level", "call_status"])
async def test_post_call_fields_are_optional(
    db: asyncpg.Connection, analyst_id: UUID, column: str
) -> None:
    post_id = await post(db, analyst_id, **{column: None})
    assert await db.fetchval(f"SELECT {column} FROM analyst.posts WHERE id = $1", post_id) is None


@pytest.mark.parametrize("column", ["content", "post_type", "audience", "analyst_id"])
async def test_post_required_column_cannot_be_null(
    db: asyncpg.Connection, analyst_id: UUID, column: str
) -> None:
    fields: dict[str, Any] = {"analyst_id": analyst_id, "content": "x", "post_type": "call"}
    fields[column] = None
    await rejects(db, asyncpg.NotNullViolationError, None, "posts", **fields)


PRICE_COLUMNS = [
    "entry_price",
    "target_price",
    "stop_loss",
    "actual_entry_price",
    "actual_exit_price",
]


@pytest.mark.parametrize("column", PRICE_COLUMNS)
@pytest.mark.parametrize("price", [Decimal("0"), Decimal("-1.50")])
async def test_post_price_that_is_not_positive_is_rejected(
    db: asyncpg.Connection, analyst_id: UUID, column: str, price: Decimal
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        f"posts_{column}_positive",
        "posts",
        analyst_id=analyst_id,
        content="x",
        post_type="call",
        **{column: price},
    )


@pytest.mark.parametrize("column", PRICE_COLUMNS)
@pytest.mark.parametrize("price", [Decimal("0.01"), Decimal("2450.75"), None])
async def test_post_positive_or_missing_price_is_accepted(
    db: asyncpg.Connection, analyst_id: UUID, column: str, price: Decimal | None
) -> None:
    post_id = await post(db, analyst_id, **{column: price})
    assert await db.fetchval(f"SELECT {column} FROM analyst.posts WHERE id = $1", post_id) == price


async def test_post_full_call_round_trips(db: asyncpg.Connection, analyst_id: UUID) -> None:
    post_id = await post(
        db,
        analyst_id,
        title="RELIANCE BUY",
        content="Buy RELIANCE above 2450, target 2600, SL 2400",
        content_formatted={"symbol": "RELIANCE", "targets": [2600]},
        strategy_type="swing",
        stock_symbol="RELIANCE",
        action="BUY",
        entry_price=Decimal("2450.00"),
        target_price=Decimal("2600.00"),
        stop_loss=Decimal("2400.00"),
        risk_reward_ratio="1:3",
        confidence_level="HIGH",
        call_status="open",
        actual_profit_percent=Decimal("-3.25"),
        is_urgent=True,
    )
    row = await db.fetchrow("SELECT * FROM analyst.posts WHERE id = $1", post_id)
    assert row["content_formatted"] == {"symbol": "RELIANCE", "targets": [2600]}
    assert row["actual_profit_percent"] == Decimal("-3.25")
    assert row["is_urgent"] is True


@pytest.mark.parametrize("column", ["views_count", "bookmarks_count", "comments_count"])
async def test_post_negative_counter_is_rejected(
    db: asyncpg.Connection, analyst_id: UUID, column: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        f"posts_{column}_non_negative",
        "posts",
        analyst_id=analyst_id,
        content="x",
        post_type="call",
        **{column: -1},
    )


async def test_post_by_unknown_analyst_is_rejected(db: asyncpg.Connection) -> None:
    await rejects(
        db,
        asyncpg.ForeignKeyViolationError,
        "posts_analyst_id_fkey",
        "posts",
        analyst_id=uuid4(),
        content="x",
        post_type="call",
    )


@pytest.mark.parametrize("table", ["posts", "bookmarks", "reviews"])
async def test_update_moves_updated_at(
    db: asyncpg.Connection, analyst_id: UUID, trader_id: UUID, table: str
) -> None:
    if table == "posts":
        row_id = await post(db, analyst_id, created_at=T0, updated_at=T0)
        change = "UPDATE analyst.posts SET title = 'edited' WHERE id = $1"
    elif table == "bookmarks":
        row_id = await insert(
            db,
            "bookmarks",
            user_id=trader_id,
            post_id=await post(db, analyst_id),
            created_at=T0,
            updated_at=T0,
        )
        change = "UPDATE analyst.bookmarks SET notes = 'edited' WHERE id = $1"
    else:
        row_id = await insert(
            db,
            "reviews",
            user_id=trader_id,
            analyst_id=analyst_id,
            rating=4,
            created_at=T0,
            updated_at=T0,
        )
        change = "UPDATE analyst.reviews SET review_text = 'edited' WHERE id = $1"
    await db.execute(change, row_id)
    created, updated = await db.fetchrow(
        f"SELECT created_at, updated_at FROM analyst.{table} WHERE id = $1", row_id
    )
    assert created == T0
    assert updated > T0


# -- full-text search -------------------------------------------------------------------------

# The documented expression; a query must repeat it exactly to use idx_posts_fts.
FTS = "to_tsvector('english', coalesce(title, '') || ' ' || content)"


async def test_full_text_search_finds_a_post_by_a_word_of_its_content(
    db: asyncpg.Connection, analyst_id: UUID
) -> None:
    wanted = await post(db, analyst_id, content="HDFCBANK breakout expected above resistance")
    await post(db, analyst_id, content="Markets were flat today")
    titled = await post(db, analyst_id, title="Weekly breakouts", content="Three names to watch")
    untitled_hit = await db.fetch(
        f"SELECT id FROM analyst.posts WHERE {FTS} @@ plainto_tsquery('english', $1)",
        "resistance",
    )
    assert [r["id"] for r in untitled_hit] == [wanted]
    stemmed = await db.fetch(
        f"SELECT id FROM analyst.posts WHERE {FTS} @@ plainto_tsquery('english', $1)",
        "breakouts",
    )
    assert {r["id"] for r in stemmed} == {wanted, titled}


async def test_full_text_search_uses_idx_posts_fts(
    db: asyncpg.Connection, analyst_id: UUID
) -> None:
    await post(db, analyst_id, content="HDFCBANK breakout expected")
    async with db.transaction():
        await db.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in await db.fetch(
                f"EXPLAIN SELECT id FROM analyst.posts"
                f" WHERE {FTS} @@ plainto_tsquery('english', 'breakout')"
            )
        )
    assert "idx_posts_fts" in plan


# -- bookmarks --------------------------------------------------------------------------------


async def test_bookmarking_the_same_post_twice_is_rejected(
    db: asyncpg.Connection, analyst_id: UUID, trader_id: UUID
) -> None:
    post_id = await post(db, analyst_id)
    await insert(db, "bookmarks", user_id=trader_id, post_id=post_id, notes="entry at 2450")
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "bookmarks_user_id_post_id_key",
        "bookmarks",
        user_id=trader_id,
        post_id=post_id,
    )


async def test_same_user_other_post_and_other_user_same_post_are_accepted(
    db: asyncpg.Connection, analyst_id: UUID, trader_id: UUID
) -> None:
    first, second = await post(db, analyst_id), await post(db, analyst_id)
    other = await make_user(db)
    await insert(db, "bookmarks", user_id=trader_id, post_id=first)
    await insert(db, "bookmarks", user_id=trader_id, post_id=second)
    await insert(db, "bookmarks", user_id=other, post_id=first)
    assert await bookmarks_count(db, first) == 2
    assert await bookmarks_count(db, second) == 1


@pytest.mark.parametrize("column", ["user_id", "post_id"])
async def test_bookmark_with_unknown_reference_is_rejected(
    db: asyncpg.Connection, analyst_id: UUID, trader_id: UUID, column: str
) -> None:
    fields = {"user_id": trader_id, "post_id": await post(db, analyst_id), column: uuid4()}
    await rejects(
        db, asyncpg.ForeignKeyViolationError, f"bookmarks_{column}_fkey", "bookmarks", **fields
    )


async def test_bookmark_count_follows_insert_delete_and_move(
    db: asyncpg.Connection, analyst_id: UUID, trader_id: UUID
) -> None:
    a, b = await post(db, analyst_id), await post(db, analyst_id)
    other = await make_user(db)
    mine = await insert(db, "bookmarks", user_id=trader_id, post_id=a)
    await insert(db, "bookmarks", user_id=other, post_id=a)
    assert (await bookmarks_count(db, a), await bookmarks_count(db, b)) == (2, 0)

    await db.execute("UPDATE analyst.bookmarks SET post_id = $1 WHERE id = $2", b, mine)
    assert (await bookmarks_count(db, a), await bookmarks_count(db, b)) == (1, 1)

    await db.execute("UPDATE analyst.bookmarks SET notes = 'no move' WHERE id = $1", mine)
    assert (await bookmarks_count(db, a), await bookmarks_count(db, b)) == (1, 1)

    await db.execute("DELETE FROM analyst.bookmarks WHERE id = $1", mine)
    assert (await bookmarks_count(db, a), await bookmarks_count(db, b)) == (1, 0)


async def test_bookmark_count_never_goes_below_zero(
    db: asyncpg.Connection, analyst_id: UUID, trader_id: UUID
) -> None:
    post_id = await post(db, analyst_id)
    await insert(db, "bookmarks", user_id=trader_id, post_id=post_id)
    await db.execute("UPDATE analyst.posts SET bookmarks_count = 0 WHERE id = $1", post_id)
    await db.execute("DELETE FROM analyst.bookmarks WHERE post_id = $1", post_id)
    assert await bookmarks_count(db, post_id) == 0


async def test_bookmark_count_after_a_bulk_load(db: asyncpg.Connection, analyst_id: UUID) -> None:
    post_id = await post(db, analyst_id)
    users = [await make_user(db) for _ in range(25)]
    await db.execute(
        "INSERT INTO analyst.bookmarks (user_id, post_id) SELECT u, $2 FROM unnest($1::uuid[]) u",
        users,
        post_id,
    )
    assert await bookmarks_count(db, post_id) == 25


async def test_one_statement_moving_bookmarks_between_posts(
    db: asyncpg.Connection, analyst_id: UUID
) -> None:
    a, b = await post(db, analyst_id), await post(db, analyst_id)
    users = [await make_user(db) for _ in range(3)]
    for u in users:
        await insert(db, "bookmarks", user_id=u, post_id=a)
    await db.execute(
        "UPDATE analyst.bookmarks SET post_id = $1 WHERE user_id = ANY ($2::uuid[])",
        b,
        users[:2],
    )
    assert (await bookmarks_count(db, a), await bookmarks_count(db, b)) == (1, 2)
    await db.execute("DELETE FROM analyst.bookmarks")
    assert (await bookmarks_count(db, a), await bookmarks_count(db, b)) == (0, 0)


async def test_deleting_a_user_removes_their_bookmarks_and_decrements(
    db: asyncpg.Connection, analyst_id: UUID, trader_id: UUID
) -> None:
    post_id = await post(db, analyst_id)
    await insert(db, "bookmarks", user_id=trader_id, post_id=post_id)
    await db.execute("DELETE FROM analyst.users WHERE id = $1", trader_id)
    assert await bookmarks_count(db, post_id) == 0


async def test_hard_deleting_a_post_removes_its_bookmarks(
    db: asyncpg.Connection, analyst_id: UUID, trader_id: UUID
) -> None:
    post_id = await post(db, analyst_id)
    await insert(db, "bookmarks", user_id=trader_id, post_id=post_id)
    await db.execute("DELETE FROM analyst.posts WHERE id = $1", post_id)
    assert await db.fetchval("SELECT count(*) FROM analyst.bookmarks") == 0


# -- posts: analyst statistics ----------------------------------------------------------------


async def test_new_posts_count_and_move_last_post_at(
    db: asyncpg.Connection, analyst_id: UUID
) -> None:
    assert tuple(await profile(db, analyst_id))[:2] == (0, None)
    await post(db, analyst_id, created_at=T0)
    assert tuple(await profile(db, analyst_id))[:2] == (1, T0)
    await post(db, analyst_id, created_at=T0 - timedelta(days=1))  # back-dated: no move
    assert tuple(await profile(db, analyst_id))[:2] == (2, T0)
    await post(db, analyst_id, created_at=T0 + timedelta(hours=1))
    assert tuple(await profile(db, analyst_id))[:2] == (3, T0 + timedelta(hours=1))


async def test_soft_delete_and_undelete_of_a_post(db: asyncpg.Connection, analyst_id: UUID) -> None:
    await post(db, analyst_id, created_at=T0)
    newest = await post(db, analyst_id, created_at=T0 + timedelta(hours=1))

    await db.execute("UPDATE analyst.posts SET deleted_at = now() WHERE id = $1", newest)
    assert tuple(await profile(db, analyst_id))[:2] == (1, T0)

    await db.execute("UPDATE analyst.posts SET deleted_at = now() WHERE id = $1", newest)
    assert tuple(await profile(db, analyst_id))[:2] == (1, T0)  # already deleted: no change

    await db.execute("UPDATE analyst.posts SET deleted_at = NULL WHERE id = $1", newest)
    assert tuple(await profile(db, analyst_id))[:2] == (2, T0 + timedelta(hours=1))


async def test_soft_deleting_every_post_clears_last_post_at(
    db: asyncpg.Connection, analyst_id: UUID
) -> None:
    await post(db, analyst_id, created_at=T0)
    await post(db, analyst_id, created_at=T0 + timedelta(minutes=5))
    await db.execute(
        "UPDATE analyst.posts SET deleted_at = now() WHERE analyst_id = $1", analyst_id
    )
    assert tuple(await profile(db, analyst_id))[:2] == (0, None)


async def test_hard_delete_of_a_post(db: asyncpg.Connection, analyst_id: UUID) -> None:
    await post(db, analyst_id, created_at=T0)
    newest = await post(db, analyst_id, created_at=T0 + timedelta(hours=1))
    gone = await post(db, analyst_id, created_at=T0 + timedelta(hours=2), deleted_at=T0)
    assert tuple(await profile(db, analyst_id))[:2] == (2, T0 + timedelta(hours=1))

    await db.execute("DELETE FROM analyst.posts WHERE id = $1", gone)  # was soft-deleted
    assert tuple(await profile(db, analyst_id))[:2] == (2, T0 + timedelta(hours=1))

    await db.execute("DELETE FROM analyst.posts WHERE id = $1", newest)
    assert tuple(await profile(db, analyst_id))[:2] == (1, T0)


async def test_post_inserted_already_deleted_is_not_counted(
    db: asyncpg.Connection, analyst_id: UUID
) -> None:
    await post(db, analyst_id, created_at=T0, deleted_at=T0)
    assert tuple(await profile(db, analyst_id))[:2] == (0, None)


async def test_moving_a_post_to_another_analyst(db: asyncpg.Connection, analyst_id: UUID) -> None:
    other = await make_analyst(db)
    await post(db, analyst_id, created_at=T0)
    moved = await post(db, analyst_id, created_at=T0 + timedelta(hours=1))
    await db.execute("UPDATE analyst.posts SET analyst_id = $1 WHERE id = $2", other, moved)
    assert tuple(await profile(db, analyst_id))[:2] == (1, T0)
    assert tuple(await profile(db, other))[:2] == (1, T0 + timedelta(hours=1))


async def test_re_dating_a_post_moves_last_post_at(
    db: asyncpg.Connection, analyst_id: UUID
) -> None:
    await post(db, analyst_id, created_at=T0)
    newest = await post(db, analyst_id, created_at=T0 + timedelta(hours=1))
    await db.execute(
        "UPDATE analyst.posts SET created_at = $1 WHERE id = $2", T0 - timedelta(days=1), newest
    )
    assert tuple(await profile(db, analyst_id))[:2] == (2, T0)


async def test_editing_a_post_leaves_the_stats_alone(
    db: asyncpg.Connection, analyst_id: UUID
) -> None:
    post_id = await post(db, analyst_id, created_at=T0)
    await db.execute(
        "UPDATE analyst.posts SET title = 'x', call_status = 'target_hit' WHERE id = $1", post_id
    )
    assert tuple(await profile(db, analyst_id))[:2] == (1, T0)


async def test_total_posts_never_goes_below_zero(db: asyncpg.Connection, analyst_id: UUID) -> None:
    post_id = await post(db, analyst_id)
    await db.execute(
        "UPDATE analyst.analyst_profiles SET total_posts = 0 WHERE user_id = $1", analyst_id
    )
    await db.execute("DELETE FROM analyst.posts WHERE id = $1", post_id)
    assert (await profile(db, analyst_id))["total_posts"] == 0


async def test_post_stats_after_a_bulk_load(db: asyncpg.Connection, analyst_id: UUID) -> None:
    other = await make_analyst(db)
    await db.execute(
        "INSERT INTO analyst.posts (analyst_id, content, post_type, created_at)"
        " SELECT $1, 'post ' || g, 'update', $2::timestamptz + g * interval '1 minute'"
        " FROM generate_series(1, 500) g",
        analyst_id,
        T0,
    )
    assert tuple(await profile(db, analyst_id))[:2] == (500, T0 + timedelta(minutes=500))
    assert tuple(await profile(db, other))[:2] == (0, None)


async def profile_updates_in_transaction(db: asyncpg.Connection) -> int:
    """analyst_profiles row updates this backend has not reported yet. Nothing is reported
    inside a transaction, so the difference of two readings in one transaction is exact."""
    n: int = await db.fetchval(
        "SELECT n_tup_upd FROM pg_stat_xact_user_tables"
        " WHERE schemaname = 'analyst' AND relname = 'analyst_profiles'"
    )
    return n


async def test_bulk_insert_updates_each_profile_once(
    db: asyncpg.Connection, analyst_id: UUID
) -> None:
    other = await make_analyst(db)
    async with db.transaction():
        before = await profile_updates_in_transaction(db)
        await db.execute(
            "INSERT INTO analyst.posts (analyst_id, content, post_type)"
            " SELECT CASE WHEN g % 2 = 0 THEN $1::uuid ELSE $2::uuid END, 'post ' || g, 'update'"
            " FROM generate_series(1, 400) g",
            analyst_id,
            other,
        )
        assert await profile_updates_in_transaction(db) - before == 2
    assert (await profile(db, analyst_id))["total_posts"] == 200
    assert (await profile(db, other))["total_posts"] == 200


async def test_unrelated_post_updates_do_not_touch_the_profile(
    db: asyncpg.Connection, analyst_id: UUID
) -> None:
    post_id = await post(db, analyst_id, created_at=T0)
    async with db.transaction():
        before = await profile_updates_in_transaction(db)
        await db.execute(
            "UPDATE analyst.posts SET views_count = views_count + 1, comments_count = 2,"
            " is_pinned = true WHERE id = $1",
            post_id,
        )
        assert await profile_updates_in_transaction(db) - before == 0


async def test_one_statement_deleting_one_post_and_restoring_another(
    db: asyncpg.Connection, analyst_id: UUID
) -> None:
    old = await post(db, analyst_id, created_at=T0, deleted_at=T0)
    new = await post(db, analyst_id, created_at=T0 + timedelta(hours=1))
    await db.execute(
        "UPDATE analyst.posts SET deleted_at = CASE WHEN id = $1 THEN NULL ELSE now() END"
        " WHERE id = ANY ($2::uuid[])",
        old,
        [old, new],
    )
    assert tuple(await profile(db, analyst_id))[:2] == (1, T0)


async def test_one_statement_touching_several_analysts(
    db: asyncpg.Connection, analyst_id: UUID
) -> None:
    other, third = await make_analyst(db), await make_analyst(db)
    a1 = await post(db, analyst_id, created_at=T0)
    await post(db, analyst_id, created_at=T0 - timedelta(days=1))
    b1 = await post(db, other, created_at=T0 + timedelta(hours=2))
    # a1 moves to `third`, b1 is soft-deleted: three profiles change in one statement.
    await db.execute(
        "UPDATE analyst.posts"
        " SET analyst_id = CASE WHEN id = $1 THEN $3 ELSE analyst_id END,"
        "     deleted_at = CASE WHEN id = $2 THEN now() END"
        " WHERE id = ANY (ARRAY[$1, $2]::uuid[])",
        a1,
        b1,
        third,
    )
    assert tuple(await profile(db, analyst_id))[:2] == (1, T0 - timedelta(days=1))
    assert tuple(await profile(db, other))[:2] == (0, None)
    assert tuple(await profile(db, third))[:2] == (1, T0)


# -- reviews: constraints ---------------------------------------------------------------------


@pytest.mark.parametrize("rating", [1, 2, 3, 4, 5])
async def test_rating_from_1_to_5_is_accepted(
    db: asyncpg.Connection, analyst_id: UUID, trader_id: UUID, rating: int
) -> None:
    review_id = await insert(db, "reviews", user_id=trader_id, analyst_id=analyst_id, rating=rating)
    row = await db.fetchrow("SELECT * FROM analyst.reviews WHERE id = $1", review_id)
    assert row["rating"] == rating
    assert (row["is_approved"], row["is_flagged"]) == (True, False)
    assert (row["helpfulness_upvotes"], row["helpfulness_downvotes"]) == (0, 0)


@pytest.mark.parametrize("rating", [0, 6, -1])
async def test_rating_outside_1_to_5_is_rejected(
    db: asyncpg.Connection, analyst_id: UUID, trader_id: UUID, rating: int
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "reviews_rating_range",
        "reviews",
        user_id=trader_id,
        analyst_id=analyst_id,
        rating=rating,
    )


async def test_review_without_rating_is_rejected(
    db: asyncpg.Connection, analyst_id: UUID, trader_id: UUID
) -> None:
    await rejects(
        db,
        asyncpg.NotNullViolationError,
        None,
        "reviews",
        user_id=trader_id,
        analyst_id=analyst_id,
        rating=None,
    )


async def test_analyst_reviewing_themselves_is_rejected(
    db: asyncpg.Connection, analyst_id: UUID
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "reviews_no_self_review",
        "reviews",
        user_id=analyst_id,
        analyst_id=analyst_id,
        rating=5,
    )


async def test_second_live_review_of_the_same_analyst_is_rejected(
    db: asyncpg.Connection, analyst_id: UUID, trader_id: UUID
) -> None:
    await insert(db, "reviews", user_id=trader_id, analyst_id=analyst_id, rating=4)
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "idx_reviews_user_analyst_live",
        "reviews",
        user_id=trader_id,
        analyst_id=analyst_id,
        rating=2,
    )


async def test_review_after_the_previous_one_was_soft_deleted_is_accepted(
    db: asyncpg.Connection, analyst_id: UUID, trader_id: UUID
) -> None:
    first = await insert(db, "reviews", user_id=trader_id, analyst_id=analyst_id, rating=4)
    await db.execute("UPDATE analyst.reviews SET deleted_at = now() WHERE id = $1", first)
    await insert(db, "reviews", user_id=trader_id, analyst_id=analyst_id, rating=2)
    other_analyst = await make_analyst(db)
    await insert(db, "reviews", user_id=trader_id, analyst_id=other_analyst, rating=5)


@pytest.mark.parametrize(
    ("column", "constraint"),
    [
        ("helpfulness_upvotes", "reviews_helpfulness_upvotes_non_negative"),
        ("helpfulness_downvotes", "reviews_helpfulness_downvotes_non_negative"),
        ("subscription_duration_days", "reviews_subscription_duration_days_non_negative"),
    ],
)
async def test_review_negative_count_is_rejected(
    db: asyncpg.Connection, analyst_id: UUID, trader_id: UUID, column: str, constraint: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        constraint,
        "reviews",
        user_id=trader_id,
        analyst_id=analyst_id,
        rating=3,
        **{column: -1},
    )


@pytest.mark.parametrize("column", ["user_id", "analyst_id", "moderated_by"])
async def test_review_with_unknown_user_reference_is_rejected(
    db: asyncpg.Connection, analyst_id: UUID, trader_id: UUID, column: str
) -> None:
    fields: dict[str, Any] = {"user_id": trader_id, "analyst_id": analyst_id, "rating": 3}
    fields[column] = uuid4()
    await rejects(
        db, asyncpg.ForeignKeyViolationError, f"reviews_{column}_fkey", "reviews", **fields
    )


# -- reviews: analyst statistics --------------------------------------------------------------


async def rating_stats(db: asyncpg.Connection, analyst_id: UUID) -> tuple[Decimal, int]:
    row = await profile(db, analyst_id)
    return row["avg_rating"], row["total_reviews"]


async def reviewers(db: asyncpg.Connection, n: int) -> list[UUID]:
    return [await make_user(db) for _ in range(n)]


async def test_review_stats_on_insert_with_rounding(
    db: asyncpg.Connection, analyst_id: UUID
) -> None:
    a, b, c = await reviewers(db, 3)
    await insert(db, "reviews", user_id=a, analyst_id=analyst_id, rating=5)
    assert await rating_stats(db, analyst_id) == (Decimal("5.00"), 1)
    await insert(db, "reviews", user_id=b, analyst_id=analyst_id, rating=4)
    assert await rating_stats(db, analyst_id) == (Decimal("4.50"), 2)
    await insert(db, "reviews", user_id=c, analyst_id=analyst_id, rating=4)
    assert await rating_stats(db, analyst_id) == (Decimal("4.33"), 3)


async def test_review_stats_on_rating_change(db: asyncpg.Connection, analyst_id: UUID) -> None:
    a, b = await reviewers(db, 2)
    await insert(db, "reviews", user_id=a, analyst_id=analyst_id, rating=5)
    second = await insert(db, "reviews", user_id=b, analyst_id=analyst_id, rating=4)
    await db.execute("UPDATE analyst.reviews SET rating = 1 WHERE id = $1", second)
    assert await rating_stats(db, analyst_id) == (Decimal("3.00"), 2)


async def test_unapproved_review_is_not_counted(db: asyncpg.Connection, analyst_id: UUID) -> None:
    a, b = await reviewers(db, 2)
    await insert(db, "reviews", user_id=a, analyst_id=analyst_id, rating=5)
    second = await insert(db, "reviews", user_id=b, analyst_id=analyst_id, rating=1)
    await db.execute("UPDATE analyst.reviews SET is_approved = false WHERE id = $1", second)
    assert await rating_stats(db, analyst_id) == (Decimal("5.00"), 1)
    await db.execute("UPDATE analyst.reviews SET is_approved = true WHERE id = $1", second)
    assert await rating_stats(db, analyst_id) == (Decimal("3.00"), 2)
    await insert(
        db,
        "reviews",
        user_id=await make_user(db),
        analyst_id=analyst_id,
        rating=1,
        is_approved=False,
    )
    assert await rating_stats(db, analyst_id) == (Decimal("3.00"), 2)


async def test_soft_delete_undelete_and_hard_delete_of_a_review(
    db: asyncpg.Connection, analyst_id: UUID
) -> None:
    a, b = await reviewers(db, 2)
    first = await insert(db, "reviews", user_id=a, analyst_id=analyst_id, rating=5)
    second = await insert(db, "reviews", user_id=b, analyst_id=analyst_id, rating=2)

    await db.execute("UPDATE analyst.reviews SET deleted_at = now() WHERE id = $1", second)
    assert await rating_stats(db, analyst_id) == (Decimal("5.00"), 1)
    await db.execute("UPDATE analyst.reviews SET deleted_at = NULL WHERE id = $1", second)
    assert await rating_stats(db, analyst_id) == (Decimal("3.50"), 2)

    await db.execute("DELETE FROM analyst.reviews WHERE id = $1", first)
    assert await rating_stats(db, analyst_id) == (Decimal("2.00"), 1)
    await db.execute("DELETE FROM analyst.reviews WHERE id = $1", second)
    assert await rating_stats(db, analyst_id) == (Decimal("0.00"), 0)


async def test_moving_a_review_to_another_analyst_updates_both(
    db: asyncpg.Connection, analyst_id: UUID, trader_id: UUID
) -> None:
    other = await make_analyst(db)
    review_id = await insert(db, "reviews", user_id=trader_id, analyst_id=analyst_id, rating=4)
    await db.execute("UPDATE analyst.reviews SET analyst_id = $1 WHERE id = $2", other, review_id)
    assert await rating_stats(db, analyst_id) == (Decimal("0.00"), 0)
    assert await rating_stats(db, other) == (Decimal("4.00"), 1)


async def test_review_stats_ignore_other_analysts_and_text_edits(
    db: asyncpg.Connection, analyst_id: UUID, trader_id: UUID
) -> None:
    other = await make_analyst(db)
    review_id = await insert(db, "reviews", user_id=trader_id, analyst_id=analyst_id, rating=4)
    await insert(db, "reviews", user_id=trader_id, analyst_id=other, rating=1)
    await db.execute(
        "UPDATE analyst.reviews SET review_text = 'great', helpfulness_upvotes = 3,"
        " analyst_response = 'thanks' WHERE id = $1",
        review_id,
    )
    assert await rating_stats(db, analyst_id) == (Decimal("4.00"), 1)
    assert await rating_stats(db, other) == (Decimal("1.00"), 1)


async def test_review_stats_after_one_statement_for_several_analysts(
    db: asyncpg.Connection, analyst_id: UUID
) -> None:
    other = await make_analyst(db)
    users = await reviewers(db, 4)
    await db.execute(
        "INSERT INTO analyst.reviews (user_id, analyst_id, rating)"
        " SELECT u, CASE WHEN i <= 2 THEN $2::uuid ELSE $3::uuid END, i"
        " FROM unnest($1::uuid[]) WITH ORDINALITY AS t(u, i)",
        users,
        analyst_id,
        other,
    )
    assert await rating_stats(db, analyst_id) == (Decimal("1.50"), 2)
    assert await rating_stats(db, other) == (Decimal("3.50"), 2)
    await db.execute("UPDATE analyst.reviews SET is_approved = false WHERE rating IN (1, 4)")
    assert await rating_stats(db, analyst_id) == (Decimal("2.00"), 1)
    assert await rating_stats(db, other) == (Decimal("3.00"), 1)


# -- catalog ----------------------------------------------------------------------------------

TABLES = ["posts", "bookmarks", "reviews"]

DOCUMENTED_INDEXES = {
    "idx_posts_analyst_timeline": "(analyst_id, created_at DESC) WHERE (deleted_at IS NULL)",
    "idx_posts_urgent": "(created_at DESC) WHERE (is_urgent AND (deleted_at IS NULL))",
    "idx_posts_stock_symbol": "(stock_symbol, created_at DESC)",
    "idx_posts_fts": "USING gin (to_tsvector('english'::regconfig,",
    "idx_posts_analyst_id": "(analyst_id)",
    "idx_bookmarks_user_id": "(user_id, created_at DESC)",
    "idx_bookmarks_post_id": "(post_id)",
    "idx_reviews_user_id": "(user_id)",
    "idx_reviews_analyst_id": "(analyst_id, created_at DESC)",
    "idx_reviews_moderated_by": "(moderated_by)",
    "idx_reviews_user_analyst_live": "(user_id, analyst_id) WHERE (deleted_at IS NULL)",
}


@pytest.mark.parametrize(("name", "definition"), DOCUMENTED_INDEXES.items())
async def test_documented_index_exists(db: asyncpg.Connection, name: str, definition: str) -> None:
    await assert_index(db, name, definition)


async def test_every_foreign_key_column_leads_an_index(db: asyncpg.Connection) -> None:
    names = [f"analyst.{t}" for t in TABLES]
    assert await db.fetch(FK_COLUMNS_WITHOUT_INDEX, names) == []
    assert await fk_columns(db, names) >= {
        ("analyst.posts", "analyst_id"),
        ("analyst.bookmarks", "user_id"),
        ("analyst.bookmarks", "post_id"),
        ("analyst.reviews", "user_id"),
        ("analyst.reviews", "analyst_id"),
        ("analyst.reviews", "moderated_by"),
    }


@pytest.mark.parametrize("table", TABLES)
async def test_updated_at_trigger_and_now_defaults(db: asyncpg.Connection, table: str) -> None:
    await assert_updated_at_installed(db, table)
