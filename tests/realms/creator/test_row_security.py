"""realms/creator/sql/3010: row-level security. Each test runs its queries as a throwaway
non-owner role (SET LOCAL ROLE) with creator.user_id set, as a request would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.realms.creator.rows import (
    Chat,
    completed,
    db_now,
    insert,
    make_creator,
    make_report,
    make_stream,
    make_subscription,
    make_tip,
    make_transaction,
    make_user,
    make_violation,
)

PROTECTED = [
    "conversations",
    "messages",
    "transactions",
    "tips",
    "subscriptions",
    "stream_access",
    "revenue_analytics",
    "notifications",
    "user_sessions",
    "user_violations",
    "content_reports",
    "audit_logs",
    "system_logs",
]


class Requests:
    """Runs SQL as a non-owner role acting for one user, like the API would."""

    def __init__(self, db: asyncpg.Connection, role: str) -> None:
        self.db, self.role = db, role

    async def fetch(self, user_id: UUID | None, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self.db.transaction():
            await self.db.execute(f'SET LOCAL ROLE "{self.role}"')
            await self.db.execute(
                "SELECT set_config('creator.user_id', $1, true)", str(user_id or "")
            )
            return list(await self.db.fetch(sql, *args))

    async def ids(self, user_id: UUID | None, table: str) -> set[UUID]:
        return {r["id"] for r in await self.fetch(user_id, f"SELECT id FROM creator.{table}")}


@pytest.fixture
async def requests(db: asyncpg.Connection) -> AsyncIterator[Requests]:
    role = f"sb_creator_rls_{uuid4().hex[:12]}"
    await db.execute(f'CREATE ROLE "{role}" NOLOGIN')
    try:
        await db.execute(f'GRANT USAGE ON SCHEMA creator TO "{role}"')
        await db.execute(
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA creator TO "{role}"'
        )
        yield Requests(db, role)
    finally:
        await db.execute(f'DROP OWNED BY "{role}"')
        await db.execute(f'DROP ROLE "{role}"')


@pytest.mark.parametrize("table", PROTECTED)
async def test_row_level_security_is_enabled(db: asyncpg.Connection, table: str) -> None:
    enabled = await db.fetchval(
        "SELECT relrowsecurity FROM pg_class WHERE oid = $1::regclass", f"creator.{table}"
    )
    assert enabled is True


async def test_the_owner_bypasses_the_policies(db: asyncpg.Connection) -> None:
    chat = await Chat.open(db)
    await chat.send()
    assert await db.fetchval("SELECT count(*) FROM creator.messages") == 1


async def test_without_a_user_no_private_row_is_visible(
    db: asyncpg.Connection, requests: Requests
) -> None:
    chat = await Chat.open(db)
    await chat.send()
    await make_tip(db, await make_user(db), chat.creator_id)
    for table in ("conversations", "messages", "transactions", "tips"):
        assert await requests.ids(None, table) == set()


# -- conversations and messages -------------------------------------------------------------------


async def test_parties_and_staff_see_a_conversation_and_its_messages(
    db: asyncpg.Connection, requests: Requests
) -> None:
    chat, other = await Chat.open(db), await Chat.open(db)
    mine = await chat.send()
    await other.send()
    moderator = await make_user(db, "moderator")
    for user_id in (chat.fan_id, chat.creator_id):
        assert await requests.ids(user_id, "conversations") == {chat.id}
        assert await requests.ids(user_id, "messages") == {mine}
    assert await requests.ids(await make_user(db), "messages") == set()
    assert len(await requests.ids(moderator, "messages")) == 2


async def test_a_party_sends_through_the_policies_and_a_stranger_cannot(
    db: asyncpg.Connection, requests: Requests
) -> None:
    chat = await Chat.open(db)
    send = (
        "INSERT INTO creator.messages (conversation_id, sender_id, body)"
        " VALUES ($1, $2, 'hi') RETURNING seq"
    )
    assert [r["seq"] for r in await requests.fetch(chat.fan_id, send, chat.id, chat.fan_id)] == [1]
    assert await chat.unread() == (0, 1)
    stranger = await make_user(db)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await requests.fetch(stranger, send, chat.id, stranger)


# -- money ----------------------------------------------------------------------------------------


async def test_payer_and_creator_see_a_payment_but_not_an_anonymous_tippers(
    db: asyncpg.Connection, requests: Requests
) -> None:
    fan, creator_id = await make_user(db), await make_creator(db)
    named = await make_tip(db, fan, creator_id)
    anonymous = await make_tip(db, fan, creator_id, is_anonymous=True)
    tx_of = {
        tip: await db.fetchval("SELECT transaction_id FROM creator.tips WHERE id = $1", tip)
        for tip in (named, anonymous)
    }
    assert await requests.ids(fan, "tips") == {named, anonymous}
    assert await requests.ids(fan, "transactions") == set(tx_of.values())
    assert await requests.ids(creator_id, "tips") == {named}
    assert await requests.ids(creator_id, "transactions") == {tx_of[named]}
    assert await requests.ids(await make_user(db), "transactions") == set()
    admin = await make_user(db, "admin")
    assert await requests.ids(admin, "tips") == {named, anonymous}


async def test_creator_learns_of_anonymous_tips_only_without_the_tipper(
    db: asyncpg.Connection, requests: Requests
) -> None:
    fan, creator_id = await make_user(db), await make_creator(db)
    tip = await make_tip(db, fan, creator_id, is_anonymous=True)
    await completed(
        db, await db.fetchval("SELECT transaction_id FROM creator.tips WHERE id = $1", tip)
    )
    rows = await requests.fetch(
        creator_id,
        "SELECT id, tipper_id FROM creator.tips_received WHERE creator_id = $1",
        creator_id,
    )
    assert [(r["id"], r["tipper_id"]) for r in rows] == [(tip, None)]


async def test_subscriptions_are_visible_to_both_sides_only(
    db: asyncpg.Connection, requests: Requests
) -> None:
    fan, creator_id = await make_user(db), await make_creator(db)
    sub = await make_subscription(db, fan, creator_id)
    await make_subscription(db, await make_user(db), await make_creator(db))
    assert await requests.ids(fan, "subscriptions") == {sub}
    assert await requests.ids(creator_id, "subscriptions") == {sub}


async def test_revenue_is_visible_to_its_creator_and_staff(
    db: asyncpg.Connection, requests: Requests
) -> None:
    creator_id = await make_creator(db)
    fields = {
        "period_type": "day",
        "period_start": await db.fetchval("SELECT date_trunc('day', now(), 'UTC')"),
        "revenue_type": "tip",
        "currency": "USD",
    }
    own = await insert(db, "revenue_analytics", creator_id=creator_id, **fields)
    platform = await insert(db, "revenue_analytics", **fields)
    assert await requests.ids(creator_id, "revenue_analytics") == {own}
    assert await requests.ids(await make_user(db, "admin"), "revenue_analytics") == {
        own,
        platform,
    }


# -- streams --------------------------------------------------------------------------------------


async def test_stream_access_is_visible_to_the_viewer_and_the_streamer(
    db: asyncpg.Connection, requests: Requests
) -> None:
    creator_id = await make_creator(db)
    stream = await make_stream(db, creator_id)
    fan = await make_user(db)
    access = await insert(db, "stream_access", live_stream_id=stream, user_id=fan)
    await insert(db, "stream_access", live_stream_id=stream, user_id=await make_user(db))
    assert await requests.ids(fan, "stream_access") == {access}
    assert len(await requests.ids(creator_id, "stream_access")) == 2


# -- personal rows --------------------------------------------------------------------------------


async def test_notifications_and_sessions_are_their_owners_alone(
    db: asyncpg.Connection, requests: Requests
) -> None:
    fan, admin = await make_user(db), await make_user(db, "admin")
    note = await insert(
        db, "notifications", user_id=fan, notification_type="new_message", title="New message"
    )
    session = await insert(
        db,
        "user_sessions",
        user_id=fan,
        token_hash=uuid4().hex + uuid4().hex,
        expires_at=await db_now(db, "1 day"),
    )
    assert await requests.ids(fan, "notifications") == {note}
    assert await requests.ids(fan, "user_sessions") == {session}
    assert await requests.ids(admin, "notifications") == set()
    assert await requests.ids(admin, "user_sessions") == set()


async def test_users_see_their_violations_but_only_staff_record_them(
    db: asyncpg.Connection, requests: Requests
) -> None:
    offender, moderator = await make_user(db), await make_user(db, "moderator")
    violation = await make_violation(db, offender)
    await make_violation(db, await make_user(db))
    assert await requests.ids(offender, "user_violations") == {violation}
    assert len(await requests.ids(moderator, "user_violations")) == 2
    record = (
        "INSERT INTO creator.user_violations (user_id, violation_type, severity,"
        " enforcement_action) VALUES ($1, 'spam', 'low', 'warning') RETURNING id"
    )
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await requests.fetch(offender, record, offender)
    assert await requests.fetch(moderator, record, offender)


async def test_reports_are_visible_to_their_reporter_and_staff(
    db: asyncpg.Connection, requests: Requests
) -> None:
    reporter, reported = await make_user(db), await make_creator(db)
    report = await make_report(db, reporter, target_type="user", reported_user_id=reported)
    assert await requests.ids(reporter, "content_reports") == {report}
    assert await requests.ids(reported, "content_reports") == set()
    assert await requests.ids(await make_user(db, "moderator"), "content_reports") == {report}


async def test_logs_are_for_staff_and_audit_rows_are_written_for_anyone(
    db: asyncpg.Connection, requests: Requests
) -> None:
    fan, admin = await make_user(db), await make_user(db, "admin")
    await insert(db, "system_logs", level="error", message="boom", service="gateway")
    assert await requests.ids(fan, "system_logs") == set()
    assert await requests.ids(fan, "audit_logs") == set()
    assert len(await requests.ids(admin, "system_logs")) == 1
    creator_id = await make_creator(db)
    pay = (
        "INSERT INTO creator.transactions (user_id, creator_id, transaction_type, gross_amount,"
        " platform_fee, net_amount, idempotency_key) VALUES ($1, $2, 'tip', 100, 0, 100, $3)"
        " RETURNING id"
    )
    [row] = await requests.fetch(fan, pay, fan, creator_id, "k-" + uuid4().hex)
    audited = await db.fetchval(
        "SELECT count(*) FROM creator.audit_logs WHERE entity_id = $1", row["id"]
    )
    assert audited == 1
    assert row["id"] in {
        r["entity_id"]
        for r in await requests.fetch(admin, "SELECT entity_id FROM creator.audit_logs")
    }


async def test_a_payer_cannot_record_a_payment_for_someone_else(
    db: asyncpg.Connection, requests: Requests
) -> None:
    fan, other, creator_id = await make_user(db), await make_user(db), await make_creator(db)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await requests.fetch(
            fan,
            "INSERT INTO creator.transactions (user_id, creator_id, transaction_type,"
            " gross_amount, platform_fee, net_amount, idempotency_key)"
            " VALUES ($1, $2, 'tip', 100, 0, 100, 'k1')",
            other,
            creator_id,
        )
    assert await make_transaction(db, other, creator_id)
