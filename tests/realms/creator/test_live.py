"""realms/creator/sql/3004: creator.live_streams and creator.stream_access, issue_stream_key(),
stream_id_for_key(), record_stream_join(), record_stream_leave()."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.realms.creator.rows import (
    column,
    db_now,
    fails,
    insert,
    make_content,
    make_creator,
    make_stream,
    make_transaction,
    make_user,
    rejects,
)


async def go_live(db: asyncpg.Connection, stream_id: UUID) -> None:
    await db.execute("UPDATE creator.live_streams SET status = 'live' WHERE id = $1", stream_id)


async def join(db: asyncpg.Connection, stream_id: UUID, user_id: UUID, at: datetime) -> bool:
    result: bool = await db.fetchval(
        "SELECT creator.record_stream_join($1, $2, $3)", stream_id, user_id, at
    )
    return result


async def leave(db: asyncpg.Connection, stream_id: UUID, user_id: UUID, at: datetime) -> bool:
    result: bool = await db.fetchval(
        "SELECT creator.record_stream_leave($1, $2, $3)", stream_id, user_id, at
    )
    return result


async def access(db: asyncpg.Connection, stream_id: UUID, user_id: UUID) -> asyncpg.Record:
    row = await db.fetchrow(
        "SELECT * FROM creator.stream_access WHERE live_stream_id = $1 AND user_id = $2",
        stream_id,
        user_id,
    )
    assert row is not None
    return row


@pytest.fixture
async def stream(db: asyncpg.Connection) -> UUID:
    return await make_stream(db, await make_creator(db))


# -- live_streams -------------------------------------------------------------------------------


async def test_stream_defaults(db: asyncpg.Connection, stream: UUID) -> None:
    row = await db.fetchrow("SELECT * FROM creator.live_streams WHERE id = $1", stream)
    assert row["status"] == "scheduled"
    assert (row["current_viewers"], row["peak_viewers"]) == (0, 0)
    assert (row["is_premium"], row["chat_enabled"]) == (False, True)
    assert row["stream_key_hash"] is None and row["price"] is None


@pytest.mark.parametrize("status", ["scheduled", "live", "ended", "cancelled"])
async def test_documented_stream_status_is_accepted(db: asyncpg.Connection, status: str) -> None:
    started = await db_now(db, "-1 hour")
    assert await make_stream(db, await make_creator(db), status=status, started_at=started)


@pytest.mark.parametrize("status", ["paused", "Live", "offline"])
async def test_undocumented_stream_status_is_rejected(db: asyncpg.Connection, status: str) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "live_streams_status_valid",
        "live_streams",
        creator_id=await make_creator(db),
        title="x",
        status=status,
    )


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"title": "  "}, "live_streams_title_not_blank"),
        ({"is_premium": True}, "live_streams_price_matches_premium"),
        ({"is_premium": True, "price": 0}, "live_streams_price_matches_premium"),
        ({"price": 500}, "live_streams_price_matches_premium"),
        ({"stream_key_hash": "Z" * 64}, "live_streams_stream_key_hash_format"),
        ({"current_viewers": 3}, "live_streams_viewers_only_when_live"),
        ({"status": "ended"}, "live_streams_ended_has_times"),
    ],
)
async def test_inconsistent_stream_is_rejected(
    db: asyncpg.Connection, fields: dict[str, Any], constraint: str
) -> None:
    values: dict[str, Any] = {"creator_id": await make_creator(db), "title": "Live"}
    values.update(fields)
    await rejects(db, asyncpg.CheckViolationError, constraint, "live_streams", **values)


async def test_negative_viewer_count_is_rejected(db: asyncpg.Connection, stream: UUID) -> None:
    await go_live(db, stream)
    await fails(
        db,
        asyncpg.CheckViolationError,
        "live_streams_current_viewers_non_negative",
        "UPDATE creator.live_streams SET current_viewers = -1 WHERE id = $1",
        stream,
    )


async def test_stream_cannot_end_before_it_started(db: asyncpg.Connection) -> None:
    started = await db_now(db)
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "live_streams_ends_after_start",
        "live_streams",
        creator_id=await make_creator(db),
        title="x",
        started_at=started,
        ended_at=started - timedelta(seconds=1),
    )


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"status": "live"}, "live_streams_live_has_start"),
        (
            {"status": "live", "started_at": "now", "current_viewers": 9, "peak_viewers": 3},
            "live_streams_peak_at_least_current",
        ),
    ],
)
async def test_invariants_hold_even_without_the_state_trigger(
    db: asyncpg.Connection, fields: dict[str, Any], constraint: str
) -> None:
    # trg_live_streams_state always satisfies these; the CHECKs are what they rest on.
    if fields.get("started_at") == "now":
        fields["started_at"] = await db_now(db)
    creator_id = await make_creator(db)
    with pytest.raises(asyncpg.CheckViolationError) as info:
        async with db.transaction():
            await db.execute(
                "ALTER TABLE creator.live_streams DISABLE TRIGGER trg_live_streams_state"
            )
            await insert(db, "live_streams", creator_id=creator_id, title="x", **fields)
    assert info.value.constraint_name == constraint


async def test_only_a_creator_can_stream(db: asyncpg.Connection) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "live_streams_creator_is_creator",
        "live_streams",
        creator_id=await make_user(db),
        title="x",
    )


async def test_stream_of_unknown_creator_is_rejected(db: asyncpg.Connection) -> None:
    await rejects(
        db,
        asyncpg.ForeignKeyViolationError,
        "live_streams_creator_id_fkey",
        "live_streams",
        creator_id=uuid4(),
        title="x",
    )


async def test_hard_deleting_a_creator_with_streams_fails(
    db: asyncpg.Connection, stream: UUID
) -> None:
    creator_id = await column(db, "live_streams", "creator_id", stream)
    await fails(
        db,
        asyncpg.ForeignKeyViolationError,
        "live_streams_creator_id_fkey",
        "DELETE FROM creator.users WHERE id = $1",
        creator_id,
    )


async def test_stream_links_one_post_and_outlives_it(db: asyncpg.Connection) -> None:
    creator_id = await make_creator(db)
    post = await make_content(db, creator_id, content_type="live_stream")
    stream_id = await make_stream(db, creator_id, content_id=post)
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "live_streams_content_id_key",
        "live_streams",
        creator_id=creator_id,
        title="again",
        content_id=post,
    )
    await db.execute("DELETE FROM creator.content WHERE id = $1", post)
    assert await column(db, "live_streams", "content_id", stream_id) is None


async def test_going_live_and_ending_stamp_their_times(
    db: asyncpg.Connection, stream: UUID
) -> None:
    await go_live(db, stream)
    started = await column(db, "live_streams", "started_at", stream)
    assert started is not None
    await db.execute("UPDATE creator.live_streams SET status = 'ended' WHERE id = $1", stream)
    assert await column(db, "live_streams", "ended_at", stream) >= started


async def test_peak_viewers_follows_the_highest_current_count(
    db: asyncpg.Connection, stream: UUID
) -> None:
    await go_live(db, stream)
    for current, peak in ((10, 10), (50, 50), (20, 50), (51, 51)):
        await db.execute(
            "UPDATE creator.live_streams SET current_viewers = $2 WHERE id = $1", stream, current
        )
        assert await column(db, "live_streams", "peak_viewers", stream) == peak
    await db.execute("UPDATE creator.live_streams SET peak_viewers = 0 WHERE id = $1", stream)
    assert await column(db, "live_streams", "peak_viewers", stream) == 51


@pytest.mark.parametrize("final", ["ended", "cancelled"])
async def test_ending_a_stream_empties_it_and_keeps_the_peak(
    db: asyncpg.Connection, stream: UUID, final: str
) -> None:
    await go_live(db, stream)
    await db.execute("UPDATE creator.live_streams SET current_viewers = 42 WHERE id = $1", stream)
    await db.execute("UPDATE creator.live_streams SET status = $2 WHERE id = $1", stream, final)
    row = await db.fetchrow("SELECT * FROM creator.live_streams WHERE id = $1", stream)
    assert (row["current_viewers"], row["peak_viewers"]) == (0, 42)


async def test_stream_update_moves_updated_at(db: asyncpg.Connection) -> None:
    past = await db_now(db, "-1 day")
    stream_id = await make_stream(db, await make_creator(db), created_at=past, updated_at=past)
    await db.execute("UPDATE creator.live_streams SET title = 'New' WHERE id = $1", stream_id)
    assert await column(db, "live_streams", "updated_at", stream_id) > past


# -- stream keys --------------------------------------------------------------------------------


async def test_issued_stream_key_is_stored_only_as_its_sha256(
    db: asyncpg.Connection, stream: UUID
) -> None:
    key = await db.fetchval("SELECT creator.issue_stream_key($1)", stream)
    assert key.startswith("sk_") and len(key) == 67
    stored = await column(db, "live_streams", "stream_key_hash", stream)
    assert stored == hashlib.sha256(key.encode()).hexdigest()
    row = await db.fetchrow("SELECT * FROM creator.live_streams WHERE id = $1", stream)
    assert key not in {str(v) for v in row.values()}
    assert await column(db, "live_streams", "stream_key_created_at", stream) is not None


async def test_stream_key_finds_its_stream_until_replaced(
    db: asyncpg.Connection, stream: UUID
) -> None:
    first = await db.fetchval("SELECT creator.issue_stream_key($1)", stream)
    assert await db.fetchval("SELECT creator.stream_id_for_key($1)", first) == stream
    second = await db.fetchval("SELECT creator.issue_stream_key($1)", stream)
    assert second != first
    assert await db.fetchval("SELECT creator.stream_id_for_key($1)", first) is None
    assert await db.fetchval("SELECT creator.stream_id_for_key($1)", second) == stream


async def test_stream_key_of_unknown_stream_is_null(db: asyncpg.Connection) -> None:
    assert await db.fetchval("SELECT creator.issue_stream_key($1)", uuid4()) is None


async def test_stream_key_hash_is_unique(db: asyncpg.Connection, stream: UUID) -> None:
    await db.fetchval("SELECT creator.issue_stream_key($1)", stream)
    taken = await column(db, "live_streams", "stream_key_hash", stream)
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "live_streams_stream_key_hash_key",
        "live_streams",
        creator_id=await make_creator(db),
        title="x",
        stream_key_hash=taken,
    )


# -- stream_access ------------------------------------------------------------------------------


async def test_access_defaults(db: asyncpg.Connection, stream: UUID) -> None:
    access_id = await insert(
        db, "stream_access", live_stream_id=stream, user_id=await make_user(db)
    )
    row = await db.fetchrow("SELECT * FROM creator.stream_access WHERE id = $1", access_id)
    assert row["access_type"] == "free"
    assert (row["join_count"], row["watch_seconds"], row["chat_messages_sent"]) == (0, 0, 0)
    assert row["first_joined_at"] is None and row["transaction_id"] is None


async def test_one_access_row_per_viewer_and_stream(db: asyncpg.Connection, stream: UUID) -> None:
    fan = await make_user(db)
    await insert(db, "stream_access", live_stream_id=stream, user_id=fan)
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "stream_access_live_stream_id_user_id_key",
        "stream_access",
        live_stream_id=stream,
        user_id=fan,
    )


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"access_type": "vip"}, "stream_access_access_type_valid"),
        ({"access_type": "paid"}, "stream_access_paid_has_transaction"),
        ({"watch_seconds": -1}, "stream_access_counters_non_negative"),
        ({"chat_messages_sent": -1}, "stream_access_counters_non_negative"),
        ({"reactions_sent": -1}, "stream_access_counters_non_negative"),
        ({"join_count": 1}, "stream_access_joined_matches_join_count"),
        (
            {"first_joined_at": "now", "last_joined_at": "now"},
            "stream_access_joined_matches_join_count",
        ),
        (
            {"join_count": 1, "first_joined_at": "now", "last_joined_at": "earlier"},
            "stream_access_join_times_ordered",
        ),
        (
            {
                "join_count": 1,
                "first_joined_at": "now",
                "last_joined_at": "now",
                "last_left_at": "earlier",
            },
            "stream_access_left_after_first_join",
        ),
    ],
)
async def test_inconsistent_access_row_is_rejected(
    db: asyncpg.Connection, stream: UUID, fields: dict[str, Any], constraint: str
) -> None:
    now = await db_now(db)
    moments = {"now": now, "earlier": now - timedelta(minutes=1)}
    values = {k: moments.get(v, v) if isinstance(v, str) else v for k, v in fields.items()}
    await rejects(
        db,
        asyncpg.CheckViolationError,
        constraint,
        "stream_access",
        live_stream_id=stream,
        user_id=await make_user(db),
        **values,
    )


async def test_premium_stream_cannot_be_watched_for_free(db: asyncpg.Connection) -> None:
    premium = await make_stream(db, await make_creator(db), is_premium=True, price=999)
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "stream_access_premium_requires_payment",
        "stream_access",
        live_stream_id=premium,
        user_id=await make_user(db),
    )
    access_id = await insert(
        db,
        "stream_access",
        live_stream_id=premium,
        user_id=await make_user(db),
        access_type="complimentary",
    )
    await fails(
        db,
        asyncpg.CheckViolationError,
        "stream_access_premium_requires_payment",
        "UPDATE creator.stream_access SET access_type = 'free' WHERE id = $1",
        access_id,
    )


async def test_paid_access_rests_on_the_viewers_payment_for_that_stream(
    db: asyncpg.Connection,
) -> None:
    creator_id = await make_creator(db)
    premium = await make_stream(db, creator_id, is_premium=True, price=999)
    other = await make_stream(db, creator_id, is_premium=True, price=999)
    fan, someone = await make_user(db), await make_user(db)
    payment = await make_transaction(
        db, fan, creator_id, "stream_access", gross_amount=999, live_stream_id=premium
    )
    for user_id, stream_id in ((someone, premium), (fan, other)):
        await rejects(
            db,
            asyncpg.ForeignKeyViolationError,
            "stream_access_transaction_fkey",
            "stream_access",
            live_stream_id=stream_id,
            user_id=user_id,
            access_type="paid",
            transaction_id=payment,
        )
    assert await insert(
        db,
        "stream_access",
        live_stream_id=premium,
        user_id=fan,
        access_type="paid",
        transaction_id=payment,
    )


@pytest.mark.parametrize("deleted", ["stream", "viewer"])
async def test_access_rows_go_with_their_stream_or_viewer(
    db: asyncpg.Connection, stream: UUID, deleted: str
) -> None:
    fan = await make_user(db)
    await insert(db, "stream_access", live_stream_id=stream, user_id=fan)
    if deleted == "stream":
        await db.execute("DELETE FROM creator.live_streams WHERE id = $1", stream)
    else:
        await db.execute("DELETE FROM creator.users WHERE id = $1", fan)
    assert await db.fetchval("SELECT count(*) FROM creator.stream_access") == 0


@pytest.mark.parametrize("side", ["live_stream_id", "user_id"])
async def test_access_to_unknown_stream_or_by_unknown_user_is_rejected(
    db: asyncpg.Connection, stream: UUID, side: str
) -> None:
    fields = {"live_stream_id": stream, "user_id": await make_user(db)}
    fields[side] = uuid4()
    await rejects(
        db,
        asyncpg.ForeignKeyViolationError,
        f"stream_access_{side}_fkey",
        "stream_access",
        **fields,
    )


# -- joins, leaves, watch time --------------------------------------------------------------------


async def test_first_join_creates_free_access_and_starts_a_session(
    db: asyncpg.Connection, stream: UUID
) -> None:
    fan = await make_user(db)
    t0 = await db_now(db)
    assert await join(db, stream, fan, t0) is True
    row = await access(db, stream, fan)
    assert (row["access_type"], row["join_count"]) == ("free", 1)
    assert row["first_joined_at"] == t0 == row["last_joined_at"]


async def test_second_join_while_watching_starts_nothing(
    db: asyncpg.Connection, stream: UUID
) -> None:
    fan = await make_user(db)
    t0 = await db_now(db)
    await join(db, stream, fan, t0)
    assert await join(db, stream, fan, t0 + timedelta(seconds=5)) is False
    row = await access(db, stream, fan)
    assert (row["join_count"], row["last_joined_at"]) == (1, t0)


async def test_watch_time_adds_up_over_sessions(db: asyncpg.Connection, stream: UUID) -> None:
    fan = await make_user(db)
    t0 = await db_now(db)
    await join(db, stream, fan, t0)
    assert await leave(db, stream, fan, t0 + timedelta(seconds=90.7)) is True
    assert await leave(db, stream, fan, t0 + timedelta(seconds=200)) is False
    assert await join(db, stream, fan, t0 + timedelta(minutes=10)) is True
    await leave(db, stream, fan, t0 + timedelta(minutes=11))
    row = await access(db, stream, fan)
    assert (row["watch_seconds"], row["join_count"]) == (150, 2)
    assert row["first_joined_at"] == t0
    assert row["last_left_at"] == t0 + timedelta(minutes=11)


async def test_leave_without_join_does_nothing(db: asyncpg.Connection, stream: UUID) -> None:
    assert await leave(db, stream, await make_user(db), await db_now(db)) is False
    assert await db.fetchval("SELECT count(*) FROM creator.stream_access") == 0


async def test_joining_a_premium_stream_needs_paid_access(db: asyncpg.Connection) -> None:
    creator_id = await make_creator(db)
    premium = await make_stream(db, creator_id, is_premium=True, price=500)
    fan = await make_user(db)
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await join(db, premium, fan, await db_now(db))
    assert info.value.constraint_name == "stream_access_premium_requires_payment"
    payment = await make_transaction(
        db, fan, creator_id, "stream_access", gross_amount=500, live_stream_id=premium
    )
    await insert(
        db,
        "stream_access",
        live_stream_id=premium,
        user_id=fan,
        access_type="paid",
        transaction_id=payment,
    )
    assert await join(db, premium, fan, await db_now(db)) is True
    assert (await access(db, premium, fan))["access_type"] == "paid"


@pytest.mark.parametrize("final", ["ended", "cancelled"])
async def test_ending_a_stream_closes_every_open_session(
    db: asyncpg.Connection, stream: UUID, final: str
) -> None:
    await go_live(db, stream)
    t0 = await db_now(db, "-10 minutes")
    watching, gone = await make_user(db), await make_user(db)
    await join(db, stream, watching, t0)
    await join(db, stream, gone, t0)
    await leave(db, stream, gone, t0 + timedelta(minutes=1))
    await db.execute("UPDATE creator.live_streams SET status = $2 WHERE id = $1", stream, final)
    closed = await access(db, stream, watching)
    assert closed["last_left_at"] >= closed["last_joined_at"]
    assert 595 <= closed["watch_seconds"] <= 700
    assert (await access(db, stream, gone))["watch_seconds"] == 60
    assert await join(db, stream, watching, await db_now(db)) is True
