"""sql/0005_analyst_chat.sql: chat_channels, chat_messages, update_chat_channel_stats(),
check_chat_rate_limit(). Real Postgres with every migration applied (the `db` fixture).

Time windows are moved with explicit created_at values, never by sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.factories import make_analyst, make_tier, make_user
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


class Chat:
    """An analyst, one of their channels, and a member; helpers to write messages."""

    def __init__(self, db: asyncpg.Connection, analyst_id: UUID, channel_id: UUID, user_id: UUID):
        self.db, self.analyst_id, self.channel_id, self.user_id = (
            db,
            analyst_id,
            channel_id,
            user_id,
        )

    async def send(self, message: str = "hello", **fields: Any) -> UUID:
        fields.setdefault("channel_id", self.channel_id)
        fields.setdefault("user_id", self.user_id)
        fields.setdefault("analyst_id", self.analyst_id)
        return await insert(self.db, "chat_messages", message=message, **fields)

    async def send_many(
        self, n: int, age: str, *, user_id: UUID | None = None, channel_id: UUID | None = None
    ) -> None:
        """n messages created `age` ago (an SQL interval, e.g. '61 seconds')."""
        await self.db.execute(
            "INSERT INTO analyst.chat_messages"
            " (channel_id, user_id, analyst_id, message, created_at)"
            " SELECT $1, $2, $3, 'msg ' || g, now() - $4::text::interval"
            " FROM generate_series(1, $5) g",
            channel_id or self.channel_id,
            user_id or self.user_id,
            self.analyst_id,
            age,
            n,
        )

    async def allowed(
        self, limit: int | None, *, user_id: UUID | None = None, channel_id: UUID | None = None
    ) -> bool:
        result: bool = await self.db.fetchval(
            "SELECT analyst.check_chat_rate_limit($1, $2, $3)",
            user_id or self.user_id,
            channel_id or self.channel_id,
            limit,
        )
        return result

    async def stats(self, channel_id: UUID | None = None) -> tuple[int, datetime | None]:
        row = await self.db.fetchrow(
            "SELECT total_messages, last_message_at FROM analyst.chat_channels WHERE id = $1",
            channel_id or self.channel_id,
        )
        return row["total_messages"], row["last_message_at"]


async def make_channel(db: asyncpg.Connection, analyst_id: UUID, **fields: Any) -> UUID:
    fields.setdefault("channel_name", f"room-{uuid4().hex[:8]}")
    fields.setdefault("channel_type", "community")
    return await insert(db, "chat_channels", analyst_id=analyst_id, **fields)


@pytest.fixture
async def chat(db: asyncpg.Connection) -> Chat:
    analyst_id = await make_analyst(db)
    channel_id = await make_channel(db, analyst_id)
    return Chat(db, analyst_id, channel_id, await make_user(db))


# -- chat_channels ----------------------------------------------------------------------------


async def test_channel_defaults(db: asyncpg.Connection, chat: Chat) -> None:
    row = await db.fetchrow("SELECT * FROM analyst.chat_channels WHERE id = $1", chat.channel_id)
    assert row["message_rate_limit"] == 10
    assert (row["is_active"], row["is_archived"]) == (True, False)
    assert (row["is_rate_limited"], row["require_subscription"]) == (True, True)
    assert (row["total_messages"], row["active_members_count"]) == (0, 0)
    assert row["max_members"] is None and row["minimum_tier_required"] is None
    assert row["last_message_at"] is None
    assert row["created_at"] is not None and row["updated_at"] is not None


@pytest.mark.parametrize("channel_type", ["community", "premium", "support"])
async def test_channel_type_documented_value_is_accepted(
    db: asyncpg.Connection, chat: Chat, channel_type: str
) -> None:
    await make_channel(db, chat.analyst_id, channel_type=channel_type)


@pytest.mark.parametrize("channel_type", ["private", "Community", ""])
async def test_channel_type_undocumented_value_is_rejected(
    db: asyncpg.Connection, chat: Chat, channel_type: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "chat_channels_channel_type_valid",
        "chat_channels",
        analyst_id=chat.analyst_id,
        channel_name="x",
        channel_type=channel_type,
    )


@pytest.mark.parametrize("column", ["analyst_id", "channel_name", "channel_type"])
async def test_channel_required_column_cannot_be_null(
    db: asyncpg.Connection, chat: Chat, column: str
) -> None:
    fields: dict[str, Any] = {
        "analyst_id": chat.analyst_id,
        "channel_name": "x",
        "channel_type": "community",
    }
    fields[column] = None
    await rejects(db, asyncpg.NotNullViolationError, None, "chat_channels", **fields)


@pytest.mark.parametrize(
    ("column", "value", "constraint"),
    [
        ("message_rate_limit", 0, "chat_channels_message_rate_limit_positive"),
        ("message_rate_limit", -5, "chat_channels_message_rate_limit_positive"),
        ("max_members", 0, "chat_channels_max_members_positive"),
        ("max_members", -1, "chat_channels_max_members_positive"),
        ("total_messages", -1, "chat_channels_total_messages_non_negative"),
        ("active_members_count", -1, "chat_channels_active_members_count_non_negative"),
    ],
)
async def test_channel_bad_number_is_rejected(
    db: asyncpg.Connection, chat: Chat, column: str, value: int, constraint: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        constraint,
        "chat_channels",
        analyst_id=chat.analyst_id,
        channel_name="x",
        channel_type="premium",
        **{column: value},
    )


@pytest.mark.parametrize(
    ("column", "value"),
    [("message_rate_limit", 1), ("max_members", 1), ("max_members", None), ("max_members", 500)],
)
async def test_channel_good_number_is_accepted(
    db: asyncpg.Connection, chat: Chat, column: str, value: int | None
) -> None:
    channel_id = await make_channel(db, chat.analyst_id, **{column: value})
    stored = await db.fetchval(
        f"SELECT {column} FROM analyst.chat_channels WHERE id = $1", channel_id
    )
    assert stored == value


async def test_channel_minimum_tier_must_exist(db: asyncpg.Connection, chat: Chat) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError) as info:
        await make_channel(db, chat.analyst_id, minimum_tier_required=uuid4())
    assert info.value.constraint_name in {
        "chat_channels_minimum_tier_required_fkey",
        "chat_channels_tier_matches_analyst",
    }


async def test_channel_minimum_tier_of_the_same_analyst_is_accepted(
    db: asyncpg.Connection, chat: Chat
) -> None:
    tier_id = await make_tier(db, chat.analyst_id)
    channel_id = await make_channel(
        db, chat.analyst_id, channel_type="premium", minimum_tier_required=tier_id
    )
    stored = await db.fetchval(
        "SELECT minimum_tier_required FROM analyst.chat_channels WHERE id = $1", channel_id
    )
    assert stored == tier_id


async def test_channel_minimum_tier_of_another_analyst_is_rejected(
    db: asyncpg.Connection, chat: Chat
) -> None:
    foreign_tier = await make_tier(db, await make_analyst(db))
    with pytest.raises(asyncpg.ForeignKeyViolationError) as info:
        await make_channel(db, chat.analyst_id, minimum_tier_required=foreign_tier)
    assert info.value.constraint_name == "chat_channels_tier_matches_analyst"


async def test_channel_by_unknown_analyst_is_rejected(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError) as info:
        await make_channel(db, uuid4())
    assert info.value.constraint_name == "chat_channels_analyst_id_fkey"


# -- chat_messages: columns and constraints ---------------------------------------------------


async def test_message_defaults(db: asyncpg.Connection, chat: Chat) -> None:
    row = await db.fetchrow("SELECT * FROM analyst.chat_messages WHERE id = $1", await chat.send())
    assert row["message_type"] == "text"
    assert (row["is_deleted"], row["is_flagged"], row["is_pinned"]) == (False, False, False)
    assert row["created_at"] is not None and row["updated_at"] is not None


@pytest.mark.parametrize("length", [1, 2, 1999, 2000])
async def test_chat_message_of_1_to_2000_chars_is_accepted(
    db: asyncpg.Connection, chat: Chat, length: int
) -> None:
    message_id = await chat.send("x" * length)
    stored = await db.fetchval(
        "SELECT message FROM analyst.chat_messages WHERE id = $1", message_id
    )
    assert len(stored) == length


async def test_chat_message_limit_counts_characters_not_bytes(chat: Chat) -> None:
    await chat.send("₹" * 2000)  # 6000 bytes in UTF-8


@pytest.mark.parametrize("message", ["", "x" * 2001, "₹" * 2001])
async def test_chat_message_empty_or_longer_than_2000_chars_is_rejected(
    chat: Chat, message: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await chat.send(message)
    assert info.value.constraint_name == "chat_messages_message_length"


async def test_chat_message_without_text_is_rejected(chat: Chat) -> None:
    with pytest.raises(asyncpg.NotNullViolationError):
        await chat.send(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("message_type", ["text", "image", "file", "system"])
async def test_message_type_documented_value_is_accepted(
    db: asyncpg.Connection, chat: Chat, message_type: str
) -> None:
    message_id = await chat.send(message_type=message_type)
    stored = await db.fetchval(
        "SELECT message_type FROM analyst.chat_messages WHERE id = $1", message_id
    )
    assert stored == message_type


@pytest.mark.parametrize("message_type", ["video", "TEXT", ""])
async def test_message_type_undocumented_value_is_rejected(chat: Chat, message_type: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await chat.send(message_type=message_type)
    assert info.value.constraint_name == "chat_messages_message_type_valid"


async def test_message_without_author_is_rejected_unless_system(chat: Chat) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await chat.send(user_id=None)
    assert info.value.constraint_name == "chat_messages_author_required"
    await chat.send("Channel rules updated", user_id=None, message_type="system")


async def test_message_analyst_must_be_its_channels_analyst(
    db: asyncpg.Connection, chat: Chat
) -> None:
    stranger = await make_analyst(db)
    with pytest.raises(asyncpg.ForeignKeyViolationError) as info:
        await chat.send(analyst_id=stranger)
    assert info.value.constraint_name == "chat_messages_analyst_matches_channel"


async def test_handing_a_channel_to_another_analyst_carries_its_messages(
    db: asyncpg.Connection, chat: Chat
) -> None:
    message_id = await chat.send()
    successor = await make_analyst(db)
    await db.execute(
        "UPDATE analyst.chat_channels SET analyst_id = $1 WHERE id = $2", successor, chat.channel_id
    )
    stored = await db.fetchval(
        "SELECT analyst_id FROM analyst.chat_messages WHERE id = $1", message_id
    )
    assert stored == successor


async def test_message_without_analyst_is_rejected(chat: Chat) -> None:
    with pytest.raises(asyncpg.NotNullViolationError):
        await chat.send(analyst_id=None)


@pytest.mark.parametrize(
    "column",
    ["channel_id", "user_id", "reply_to_message_id", "deleted_by", "flagged_by", "pinned_by"],
)
async def test_message_with_unknown_reference_is_rejected(chat: Chat, column: str) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError) as info:
        await chat.send(**{column: uuid4()})
    expected = {f"chat_messages_{column}_fkey"}
    if column == "channel_id":
        expected.add("chat_messages_analyst_matches_channel")
    assert info.value.constraint_name in expected


async def test_reply_and_moderation_references_are_accepted(
    db: asyncpg.Connection, chat: Chat
) -> None:
    original = await chat.send("first")
    reply = await chat.send(
        "re: first",
        reply_to_message_id=original,
        is_flagged=True,
        flagged_by=chat.analyst_id,
        flagged_reason="off topic",
        is_pinned=True,
        pinned_by=chat.analyst_id,
        pinned_at=T0,
        attachment_url="https://cdn.example.com/a.png",
    )
    stored = await db.fetchval(
        "SELECT reply_to_message_id FROM analyst.chat_messages WHERE id = $1", reply
    )
    assert stored == original


async def test_hard_deleting_a_replied_to_message_clears_the_reply_link(
    db: asyncpg.Connection, chat: Chat
) -> None:
    original = await chat.send("first")
    reply = await chat.send("re: first", reply_to_message_id=original)
    await db.execute("DELETE FROM analyst.chat_messages WHERE id = $1", original)
    stored = await db.fetchval(
        "SELECT reply_to_message_id FROM analyst.chat_messages WHERE id = $1", reply
    )
    assert stored is None


async def test_deleting_a_channel_deletes_its_messages(db: asyncpg.Connection, chat: Chat) -> None:
    await chat.send()
    await db.execute("DELETE FROM analyst.chat_channels WHERE id = $1", chat.channel_id)
    assert await db.fetchval("SELECT count(*) FROM analyst.chat_messages") == 0


@pytest.mark.parametrize("table", ["chat_channels", "chat_messages"])
async def test_update_moves_updated_at(db: asyncpg.Connection, chat: Chat, table: str) -> None:
    if table == "chat_channels":
        row_id = await make_channel(db, chat.analyst_id, created_at=T0, updated_at=T0)
        change = "UPDATE analyst.chat_channels SET channel_description = 'x' WHERE id = $1"
    else:
        row_id = await chat.send(created_at=T0, updated_at=T0)
        change = "UPDATE analyst.chat_messages SET is_pinned = true WHERE id = $1"
    await db.execute(change, row_id)
    created, updated = await db.fetchrow(
        f"SELECT created_at, updated_at FROM analyst.{table} WHERE id = $1", row_id
    )
    assert created == T0
    assert updated > T0


# -- update_chat_channel_stats() --------------------------------------------------------------


async def test_new_message_counts_and_moves_last_message_at(chat: Chat) -> None:
    assert await chat.stats() == (0, None)
    await chat.send(created_at=T0)
    assert await chat.stats() == (1, T0)
    await chat.send(created_at=T0 - timedelta(minutes=5))  # older: last_message_at stays
    assert await chat.stats() == (2, T0)
    await chat.send(created_at=T0 + timedelta(seconds=1))
    assert await chat.stats() == (3, T0 + timedelta(seconds=1))


async def test_soft_delete_and_undelete_of_a_message(db: asyncpg.Connection, chat: Chat) -> None:
    await chat.send(created_at=T0)
    newest = await chat.send(created_at=T0 + timedelta(seconds=1))
    soft_delete = (
        "UPDATE analyst.chat_messages SET is_deleted = true, deleted_at = now(),"
        " deleted_by = $2 WHERE id = $1"
    )
    await db.execute(soft_delete, newest, chat.analyst_id)
    assert await chat.stats() == (1, T0 + timedelta(seconds=1))  # last_message_at is not undone
    await db.execute(soft_delete, newest, chat.analyst_id)  # already deleted: no change
    assert await chat.stats() == (1, T0 + timedelta(seconds=1))
    await db.execute(
        "UPDATE analyst.chat_messages SET is_deleted = false, deleted_at = NULL WHERE id = $1",
        newest,
    )
    assert await chat.stats() == (2, T0 + timedelta(seconds=1))


async def test_hard_delete_of_a_message(db: asyncpg.Connection, chat: Chat) -> None:
    live = await chat.send(created_at=T0)
    await chat.send(created_at=T0)
    already_deleted = await chat.send(created_at=T0, is_deleted=True)
    assert await chat.stats() == (2, T0)
    await db.execute("DELETE FROM analyst.chat_messages WHERE id = $1", already_deleted)
    assert await chat.stats() == (2, T0)
    await db.execute("DELETE FROM analyst.chat_messages WHERE id = $1", live)
    assert await chat.stats() == (1, T0)


async def test_message_inserted_already_deleted_is_not_counted(chat: Chat) -> None:
    await chat.send(created_at=T0, is_deleted=True)
    assert await chat.stats() == (0, None)


async def test_other_updates_leave_the_channel_stats_alone(
    db: asyncpg.Connection, chat: Chat
) -> None:
    message_id = await chat.send(created_at=T0)
    await db.execute(
        "UPDATE analyst.chat_messages SET is_pinned = true, is_flagged = true WHERE id = $1",
        message_id,
    )
    assert await chat.stats() == (1, T0)


async def test_total_messages_never_goes_below_zero(db: asyncpg.Connection, chat: Chat) -> None:
    message_id = await chat.send()
    await db.execute(
        "UPDATE analyst.chat_channels SET total_messages = 0 WHERE id = $1", chat.channel_id
    )
    await db.execute("DELETE FROM analyst.chat_messages WHERE id = $1", message_id)
    assert (await chat.stats())[0] == 0


async def test_channel_stats_are_per_channel_and_survive_a_bulk_load(
    db: asyncpg.Connection, chat: Chat
) -> None:
    other = await make_channel(db, chat.analyst_id)
    await chat.send_many(300, "5 minutes")
    total, last = await chat.stats()
    assert total == 300 and last is not None
    assert await chat.stats(other) == (0, None)


async def test_one_statement_soft_deleting_across_channels(
    db: asyncpg.Connection, chat: Chat
) -> None:
    other = await make_channel(db, chat.analyst_id)
    await chat.send_many(5, "1 minute")
    await chat.send_many(4, "1 minute", channel_id=other)
    await db.execute(
        "UPDATE analyst.chat_messages SET is_deleted = true WHERE message IN ('msg 1', 'msg 2')"
    )
    assert (await chat.stats())[0] == 3
    assert (await chat.stats(other))[0] == 2
    await db.execute("DELETE FROM analyst.chat_messages WHERE message = 'msg 3'")
    assert (await chat.stats())[0] == 2
    assert (await chat.stats(other))[0] == 1


async def test_a_batch_of_messages_updates_its_channel_once(
    db: asyncpg.Connection, chat: Chat
) -> None:
    # Unreported row updates of chat_channels; nothing is reported inside a transaction.
    pending = (
        "SELECT n_tup_upd FROM pg_stat_xact_user_tables"
        " WHERE schemaname = 'analyst' AND relname = 'chat_channels'"
    )
    async with db.transaction():
        before = await db.fetchval(pending)
        await chat.send_many(200, "1 second")
        updates = await db.fetchval(pending) - before
    assert updates == 1
    assert (await chat.stats())[0] == 200


async def test_restoring_a_message_inserted_as_deleted_counts_it(
    db: asyncpg.Connection, chat: Chat
) -> None:
    message_id = await chat.send(created_at=T0, is_deleted=True)
    await db.execute(
        "UPDATE analyst.chat_messages SET is_deleted = false WHERE id = $1", message_id
    )
    assert await chat.stats() == (1, T0)


# -- check_chat_rate_limit() ------------------------------------------------------------------


async def test_rate_limit_allows_while_fewer_than_the_limit(chat: Chat) -> None:
    assert await chat.allowed(10) is True
    await chat.send_many(9, "1 second")
    assert await chat.allowed(10) is True


async def test_rate_limit_refuses_at_the_limit(chat: Chat) -> None:
    await chat.send_many(10, "1 second")
    assert await chat.allowed(10) is False
    await chat.send_many(1, "1 second")
    assert await chat.allowed(10) is False


async def test_rate_limit_allows_again_once_messages_leave_the_window(
    db: asyncpg.Connection, chat: Chat
) -> None:
    await chat.send_many(10, "50 seconds")
    assert await chat.allowed(10) is False
    # Eleven seconds pass: every message is now 61 s old.
    await db.execute(
        "UPDATE analyst.chat_messages SET created_at = created_at - interval '11 seconds'"
    )
    assert await chat.allowed(10) is True


async def test_rate_limit_counts_59_second_old_messages_but_not_61(chat: Chat) -> None:
    await chat.send_many(10, "61 seconds")
    assert await chat.allowed(10) is True
    await chat.send_many(9, "59 seconds")
    assert await chat.allowed(10) is True
    await chat.send_many(1, "59 seconds")
    assert await chat.allowed(10) is False


async def test_rate_limit_window_is_strictly_younger_than_one_minute(
    db: asyncpg.Connection, chat: Chat
) -> None:
    # One transaction, so now() is the same instant for the inserts and the check.
    async with db.transaction():
        await chat.send_many(1, "60 seconds")
        assert await chat.allowed(1) is True
        await chat.send_many(1, "59.999 seconds")
        assert await chat.allowed(1) is False


async def test_rate_limit_of_1(chat: Chat) -> None:
    assert await chat.allowed(1) is True
    await chat.send_many(1, "0 seconds")
    assert await chat.allowed(1) is False


async def test_rate_limit_counts_soft_deleted_messages(db: asyncpg.Connection, chat: Chat) -> None:
    await chat.send_many(3, "1 second")
    await db.execute("UPDATE analyst.chat_messages SET is_deleted = true")
    assert await chat.allowed(3) is False


async def test_rate_limit_is_per_user_and_per_channel(db: asyncpg.Connection, chat: Chat) -> None:
    other_user = await make_user(db)
    other_channel = await make_channel(db, chat.analyst_id)
    await chat.send_many(10, "1 second")
    assert await chat.allowed(10) is False
    assert await chat.allowed(10, user_id=other_user) is True
    assert await chat.allowed(10, channel_id=other_channel) is True
    await chat.send_many(10, "1 second", user_id=other_user, channel_id=other_channel)
    assert await chat.allowed(10, channel_id=other_channel) is True
    assert await chat.allowed(10, user_id=other_user) is True


async def test_rate_limit_null_means_unlimited_and_zero_allows_nothing(chat: Chat) -> None:
    await chat.send_many(50, "1 second")
    assert await chat.allowed(None) is True
    assert await chat.allowed(0) is False
    assert await chat.allowed(51) is True


async def test_rate_limit_function_signature(db: asyncpg.Connection) -> None:
    row = await db.fetchrow(
        "SELECT pg_get_function_identity_arguments(p.oid) AS args,"
        " p.prorettype::regtype::text AS returns, p.provolatile::text AS provolatile"
        " FROM pg_proc p WHERE p.oid = 'analyst.check_chat_rate_limit'::regproc"
    )
    assert row["args"] == "p_user_id uuid, p_channel_id uuid, p_rate_limit integer"
    assert row["returns"] == "boolean"
    assert row["provolatile"] == "s"


async def test_rate_limit_query_uses_the_composite_index(
    db: asyncpg.Connection, chat: Chat
) -> None:
    # A busy channel: many members' messages, a few of this user's.
    for _ in range(20):
        await chat.send_many(100, "10 seconds", user_id=await make_user(db))
    await chat.send_many(5, "10 seconds")
    await db.execute("ANALYZE analyst.chat_messages")
    async with db.transaction():
        await db.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in await db.fetch(
                "EXPLAIN SELECT 1 FROM analyst.chat_messages WHERE user_id = $1"
                " AND channel_id = $2 AND created_at > now() - interval '1 minute'",
                chat.user_id,
                chat.channel_id,
            )
        )
    assert "idx_chat_messages_user_id" in plan


# -- catalog ----------------------------------------------------------------------------------

TABLES = ["chat_channels", "chat_messages"]

DOCUMENTED_INDEXES = {
    "idx_chat_channels_analyst_id": "(analyst_id)",
    "idx_chat_channels_minimum_tier_required": "(minimum_tier_required)",
    "idx_chat_messages_channel_id": "(channel_id, created_at DESC)",
    "idx_chat_messages_user_id": "(user_id, channel_id, created_at)",
    "idx_chat_messages_analyst_id": "(analyst_id)",
    "idx_chat_messages_reply_to_message_id": "(reply_to_message_id)",
    "idx_chat_messages_deleted_by": "(deleted_by)",
    "idx_chat_messages_flagged_by": "(flagged_by)",
    "idx_chat_messages_pinned_by": "(pinned_by)",
    "idx_chat_messages_pinned": "(channel_id, pinned_at DESC)",
}


@pytest.mark.parametrize(("name", "definition"), DOCUMENTED_INDEXES.items())
async def test_documented_index_exists(db: asyncpg.Connection, name: str, definition: str) -> None:
    await assert_index(db, name, definition)


async def test_every_foreign_key_column_leads_an_index(db: asyncpg.Connection) -> None:
    names = [f"analyst.{t}" for t in TABLES]
    assert await db.fetch(FK_COLUMNS_WITHOUT_INDEX, names) == []
    assert await fk_columns(db, names) >= {
        ("analyst.chat_channels", "analyst_id"),
        ("analyst.chat_channels", "minimum_tier_required"),
        ("analyst.chat_messages", "channel_id"),
        ("analyst.chat_messages", "user_id"),
        ("analyst.chat_messages", "analyst_id"),
        ("analyst.chat_messages", "reply_to_message_id"),
        ("analyst.chat_messages", "deleted_by"),
        ("analyst.chat_messages", "flagged_by"),
        ("analyst.chat_messages", "pinned_by"),
    }


async def test_documented_references_are_foreign_keys(db: asyncpg.Connection) -> None:
    rows = await db.fetch(
        "SELECT conname, confrelid::regclass::text AS target FROM pg_constraint"
        " WHERE contype = 'f' AND conname = ANY ($1::text[])",
        ["chat_messages_reply_to_message_id_fkey", "chat_channels_minimum_tier_required_fkey"],
    )
    assert {r["conname"]: r["target"] for r in rows} == {
        "chat_messages_reply_to_message_id_fkey": "analyst.chat_messages",
        "chat_channels_minimum_tier_required_fkey": "analyst.subscription_tiers",
    }


@pytest.mark.parametrize("table", TABLES)
async def test_updated_at_trigger_and_now_defaults(db: asyncpg.Connection, table: str) -> None:
    await assert_updated_at_installed(db, table)
