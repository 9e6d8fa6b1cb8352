"""realms/creator/sql/3009: the seed's retention policies. Ages are set with explicit
timestamps, never by waiting."""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.realms.creator.rows import (
    Chat,
    column,
    completed,
    db_now,
    insert,
    make_content,
    make_creator,
    make_transaction,
    make_user,
)


async def count(db: asyncpg.Connection, table: str) -> int:
    result: int = await db.fetchval(f"SELECT count(*) FROM creator.{table}")
    return result


# -- analytics events: 2 years, archive -----------------------------------------------------------


async def test_analytics_events_older_than_2_years_move_to_the_archive(
    db: asyncpg.Connection,
) -> None:
    content_id = await make_content(db, await make_creator(db))
    viewer = await make_user(db)
    old, recent = await db_now(db, "-2 years -1 day"), await db_now(db, "-2 years +1 day")
    old_view = await insert(
        db,
        "content_analytics",
        content_id=content_id,
        user_id=viewer,
        event_type="view",
        view_duration_seconds=12,
        country="FR",
        device_type="tablet",
        created_at=old,
    )
    await insert(
        db, "content_analytics", content_id=content_id, event_type="like", created_at=recent
    )
    old_login = await insert(
        db, "user_analytics", user_id=viewer, event_type="login", city="Lyon", created_at=old
    )
    await insert(db, "user_analytics", user_id=viewer, event_type="logout", created_at=recent)

    result = await db.fetch("SELECT * FROM creator.archive_analytics_events()")
    assert {r["source"]: r["archived"] for r in result} == {
        "content_analytics": 1,
        "user_analytics": 1,
    }
    assert await count(db, "content_analytics") == 1 and await count(db, "user_analytics") == 1
    moved = await db.fetchrow(
        "SELECT * FROM creator.content_analytics_archive WHERE id = $1", old_view
    )
    assert (moved["user_id"], moved["view_duration_seconds"], moved["country"]) == (
        viewer,
        12,
        "FR",
    )
    assert (moved["created_at"], moved["exported_at"]) == (old, None)
    assert moved["archived_at"] is not None
    assert await column(db, "user_analytics_archive", "city", old_login) == "Lyon"


async def test_exported_archive_rows_are_purged_and_the_rest_kept(db: asyncpg.Connection) -> None:
    content_id = await make_content(db, await make_creator(db))
    old = await db_now(db, "-3 years")
    for _ in range(3):
        await insert(
            db, "content_analytics", content_id=content_id, event_type="view", created_at=old
        )
    await insert(
        db, "user_analytics", user_id=await make_user(db), event_type="login", created_at=old
    )
    await db.fetch("SELECT * FROM creator.archive_analytics_events()")
    await db.execute(
        "UPDATE creator.content_analytics_archive SET exported_at = now()"
        " WHERE id IN (SELECT id FROM creator.content_analytics_archive LIMIT 2)"
    )
    await db.execute("UPDATE creator.user_analytics_archive SET exported_at = now()")
    assert await db.fetchval("SELECT creator.purge_exported_analytics()") == 3
    assert await count(db, "content_analytics_archive") == 1
    assert await count(db, "user_analytics_archive") == 0


async def test_archive_keeps_rows_whose_content_was_purged(db: asyncpg.Connection) -> None:
    content_id = await make_content(db, await make_creator(db))
    await insert(
        db,
        "content_analytics",
        content_id=content_id,
        event_type="view",
        created_at=await db_now(db, "-3 years"),
    )
    await db.fetch("SELECT * FROM creator.archive_analytics_events()")
    await db.execute("DELETE FROM creator.content WHERE id = $1", content_id)
    assert await count(db, "content_analytics_archive") == 1


# -- audit logs: 7 years ------------------------------------------------------------------------


async def test_audit_logs_are_purged_after_7_years_only(db: asyncpg.Connection) -> None:
    before = await count(db, "audit_logs")
    for offset in ("-7 years -1 day", "-8 years"):
        await insert(
            db, "audit_logs", category="security", action="x", created_at=await db_now(db, offset)
        )
    kept = await insert(
        db,
        "audit_logs",
        category="security",
        action="x",
        created_at=await db_now(db, "-7 years +1 day"),
    )
    assert await db.fetchval("SELECT creator.purge_expired_audit_logs()") == 2
    assert await count(db, "audit_logs") == before + 1
    assert await column(db, "audit_logs", "action", kept) == "x"


# -- system logs: 90 days -----------------------------------------------------------------------


async def test_system_logs_are_deleted_after_90_days(db: asyncpg.Connection) -> None:
    for offset in ("-91 days", "-90 days -1 second", "-89 days", "0 days"):
        await insert(
            db,
            "system_logs",
            level="info",
            message=offset,
            service="api",
            created_at=await db_now(db, offset),
        )
    assert await db.fetchval("SELECT creator.purge_system_logs()") == 2
    left = await db.fetch("SELECT message FROM creator.system_logs ORDER BY created_at")
    assert [r["message"] for r in left] == ["-89 days", "0 days"]


# -- deleted content: 30 days, permanent deletion -----------------------------------------------


async def test_content_deleted_over_30_days_ago_is_purged_with_its_engagement(
    db: asyncpg.Connection,
) -> None:
    creator_id, fan = await make_creator(db), await make_user(db)
    expired = await make_content(
        db, creator_id, is_premium=True, price=300, deleted_at=await db_now(db, "-31 days")
    )
    recent = await make_content(db, creator_id, deleted_at=await db_now(db, "-29 days"))
    live = await make_content(db, creator_id)
    purchase = await completed(
        db,
        await make_transaction(
            db, fan, creator_id, "content_purchase", gross_amount=300, content_id=expired
        ),
    )
    for content_id in (expired, recent, live):
        await insert(db, "likes", user_id=fan, content_id=content_id)
        await insert(db, "comments", content_id=content_id, user_id=fan, body="wow")
        await insert(db, "content_analytics", content_id=content_id, event_type="view")

    assert await db.fetchval("SELECT creator.purge_deleted_content()") == 1
    remaining = {r["id"] for r in await db.fetch("SELECT id FROM creator.content")}
    assert remaining == {recent, live}
    for table in ("likes", "comments", "content_analytics"):
        assert await count(db, table) == 2
    assert await column(db, "transactions", "content_id", purchase) is None
    assert await column(db, "transactions", "status", purchase) == "completed"


async def test_deleted_comment_loses_its_body_after_30_days_but_keeps_its_thread(
    db: asyncpg.Connection,
) -> None:
    creator_id, fan = await make_creator(db), await make_user(db)
    post = await make_content(db, creator_id)
    old = await insert(
        db,
        "comments",
        content_id=post,
        user_id=fan,
        body="bye",
        deleted_at=await db_now(db, "-31 days"),
    )
    reply = await insert(
        db, "comments", content_id=post, user_id=creator_id, body="reply", parent_comment_id=old
    )
    recent = await insert(
        db,
        "comments",
        content_id=post,
        user_id=fan,
        body="oops",
        deleted_at=await db_now(db, "-29 days"),
    )
    assert await db.fetchval("SELECT creator.scrub_deleted_comments()") == 1
    assert await column(db, "comments", "body", old) is None
    assert await column(db, "comments", "body", reply) == "reply"
    assert await column(db, "comments", "body", recent) == "oops"
    assert await db.fetchval("SELECT creator.scrub_deleted_comments()") == 0


async def test_deleted_message_loses_its_content_after_30_days_but_keeps_its_seq(
    db: asyncpg.Connection,
) -> None:
    chat = await Chat.open(db)
    old = await chat.send(
        chat.creator_id,
        body="secret",
        price=900,
        preview={"blurhash": "x"},
        attachments=[{"type": "image", "url": "https://cdn.example.com/s.jpg"}],
    )
    recent = await chat.send(chat.creator_id, body="recent")
    live = await chat.send(chat.creator_id, body="live")
    for message_id, offset in ((old, "-31 days"), (recent, "-29 days")):
        await db.execute(
            "UPDATE creator.messages SET is_deleted = true, deleted_at = now() + $2::text::interval"
            " WHERE id = $1",
            message_id,
            offset,
        )
    assert await db.fetchval("SELECT creator.scrub_deleted_messages()") == 1
    row = await db.fetchrow("SELECT * FROM creator.messages WHERE id = $1", old)
    assert (row["body"], row["attachments"], row["preview"]) == (None, [], None)
    assert (row["seq"], row["is_deleted"], row["edited_at"]) == (1, True, None)
    assert await column(db, "messages", "body", recent) == "recent"
    assert await column(db, "messages", "body", live) == "live"
    assert await chat.unread() == (1, 0)


# -- user sessions: 30 days ---------------------------------------------------------------------


async def test_sessions_inactive_for_30_days_are_cleaned_up(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)

    async def session(created: str, last_active: str | None) -> UUID:
        created_at = await db_now(db, created)
        return await insert(
            db,
            "user_sessions",
            user_id=user_id,
            token_hash=uuid4().hex + uuid4().hex,
            created_at=created_at,
            last_active_at=await db_now(db, last_active) if last_active else None,
            expires_at=await db_now(db, "60 days"),
        )

    never_used = await session("-31 days", None)
    idle = await session("-60 days", "-31 days")
    recently_used = await session("-60 days", "-29 days")
    new = await session("-1 day", None)
    assert await db.fetchval("SELECT creator.cleanup_user_sessions()") == 2
    remaining = {r["id"] for r in await db.fetch("SELECT id FROM creator.user_sessions")}
    assert remaining == {recently_used, new}
    assert never_used not in remaining and idle not in remaining


# -- all policies -------------------------------------------------------------------------------


async def test_apply_retention_policies_runs_every_policy(db: asyncpg.Connection) -> None:
    await insert(
        db,
        "system_logs",
        level="debug",
        message="old",
        service="api",
        created_at=await db_now(db, "-100 days"),
    )
    await make_content(db, await make_creator(db), deleted_at=await db_now(db, "-40 days"))
    result = {
        r["policy"]: r["affected"]
        for r in await db.fetch("SELECT * FROM creator.apply_retention_policies()")
    }
    assert result == {
        "archive_content_analytics": 0,
        "archive_user_analytics": 0,
        "purge_exported_analytics": 0,
        "purge_expired_audit_logs": 0,
        "purge_system_logs": 1,
        "purge_deleted_content": 1,
        "scrub_deleted_comments": 0,
        "scrub_deleted_messages": 0,
        "cleanup_user_sessions": 0,
    }


@pytest.mark.parametrize(
    "function",
    [
        "archive_analytics_events",
        "purge_exported_analytics",
        "purge_expired_audit_logs",
        "purge_system_logs",
        "purge_deleted_content",
        "scrub_deleted_comments",
        "scrub_deleted_messages",
        "cleanup_user_sessions",
        "apply_retention_policies",
    ],
)
async def test_retention_functions_take_no_arguments(db: asyncpg.Connection, function: str) -> None:
    args = await db.fetchval(
        "SELECT pg_get_function_identity_arguments(p.oid) FROM pg_proc p"
        " WHERE p.pronamespace = 'creator'::regnamespace AND p.proname = $1",
        function,
    )
    assert args == ""
