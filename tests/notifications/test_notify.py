"""kernel.notify: notifications and their jobs, set-based, idempotent, in the caller's
transaction, honouring flags, preferences and reachability; the NOTIFYs that wake consumers."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

import asyncpg
import msgspec
import pytest

from kernel.notify import (
    admins,
    audience,
    notify,
    set_preference,
    set_settings,
    subscribers_of,
    subscribers_of_tier,
)
from tests.factories import make_analyst, make_subscription, make_tier, make_user
from tests.notifications.conftest import job_rows, recipient


async def _notifications(db: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT * FROM analyst.notifications ORDER BY created_at, id"
    )
    return rows


async def test_notify_creates_a_notification_and_its_jobs_per_recipient(
    db: asyncpg.Connection,
) -> None:
    a = await recipient(db, devices=1)
    b = await recipient(db)  # no device: no push job
    created = await notify(
        db,
        event_key="post:1:published",
        recipients=[a, b],
        notification_type="new_post",
        title="Breakout",
        message="NIFTY above 22,000",
        action_url="https://app.example/p/1",
        related_entity_type="post",
        related_entity_id=uuid.uuid4(),
        priority="high",
    )
    assert created == 2
    rows = {r["user_id"]: r for r in await _notifications(db)}
    assert rows[a]["idempotency_key"] == f"post:1:published:{a}"
    assert rows[a]["status"] == "sent" and rows[a]["sent_at"] is not None  # in-app is stored
    assert (rows[a]["send_push"], rows[a]["send_email"]) == (True, True)
    assert (rows[b]["send_push"], rows[b]["send_email"]) == (False, True)
    assert rows[a]["priority"] == "high" and rows[a]["title"] == "Breakout"
    jobs = {(j["user_id"], j["channel"]) for j in await job_rows(db)}
    assert jobs == {(a, "push"), (a, "email"), (b, "email")}
    assert {j["status"] for j in await job_rows(db)} == {"pending"}
    assert {j["priority"] for j in await job_rows(db)} == {"high"}


async def test_the_same_event_never_notifies_a_user_twice(db: asyncpg.Connection) -> None:
    a, b = await recipient(db), await recipient(db)
    assert await notify(db, event_key="e1", recipients=[a], notification_type="new_post") == 1
    # a replay with one more recipient creates only the new one's notification
    assert await notify(db, event_key="e1", recipients=[a, b], notification_type="new_post") == 1
    assert await notify(db, event_key="e1", recipients=[a, b], notification_type="new_post") == 0
    assert len(await _notifications(db)) == 2
    assert len(await job_rows(db, "email")) == 2
    # another event is another notification
    assert await notify(db, event_key="e2", recipients=[a], notification_type="new_post") == 1


async def test_a_recipient_listed_twice_gets_one_notification(db: asyncpg.Connection) -> None:
    a = await recipient(db)
    assert await notify(db, event_key="dup", recipients=[a, a, a], notification_type="x") == 1


async def test_notify_commits_and_rolls_back_with_the_callers_transaction(
    db: asyncpg.Connection,
) -> None:
    a = await recipient(db, devices=1)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with db.transaction():
            await notify(db, event_key="rb", recipients=[a], notification_type="new_post")
            raise Boom
    assert await _notifications(db) == [] and await job_rows(db) == []
    async with db.transaction():
        await notify(db, event_key="rb", recipients=[a], notification_type="new_post")
    assert len(await _notifications(db)) == 1 and len(await job_rows(db)) == 2


async def test_inactive_deleted_and_unknown_users_are_left_out(db: asyncpg.Connection) -> None:
    ok = await recipient(db)
    inactive = await recipient(db, is_active=False)
    deleted = await recipient(db, deleted_at=await db.fetchval("SELECT now()"))
    created = await notify(
        db,
        event_key="k",
        recipients=[ok, inactive, deleted, uuid.uuid4()],
        notification_type="new_post",
    )
    assert created == 1
    assert [r["user_id"] for r in await _notifications(db)] == [ok]


async def test_active_subscribers_of_an_analyst_is_a_named_audience(
    db: asyncpg.Connection,
) -> None:
    analyst = await make_analyst(db)
    tier = await make_tier(db, analyst)
    other_tier = await make_tier(db, await make_analyst(db))
    active, cancelled, expired, elsewhere = [await recipient(db) for _ in range(4)]
    await make_subscription(db, active, tier)
    await make_subscription(db, cancelled, tier, status="cancelled")
    past = await db.fetchval("SELECT now() - interval '1 day'")
    start = past - dt.timedelta(days=30)
    await make_subscription(db, expired, tier, start_date=start, expires_at=past)
    await make_subscription(db, elsewhere, other_tier)
    assert (
        await notify(
            db, event_key="a1", recipients=subscribers_of(analyst), notification_type="new_post"
        )
        == 1
    )
    assert [r["user_id"] for r in await _notifications(db)] == [active]
    assert (
        await notify(
            db, event_key="t1", recipients=subscribers_of_tier(other_tier), notification_type="x"
        )
        == 1
    )
    admin = await make_user(db, user_type="admin")
    assert await notify(db, event_key="m1", recipients=admins(), notification_type="flag") == 1
    assert (await _notifications(db))[-1]["user_id"] == admin


def test_audiences_are_checked_by_name_and_arity() -> None:
    with pytest.raises(ValueError, match="unknown audience"):
        audience("everyone")
    with pytest.raises(ValueError, match="takes"):
        audience("analyst_active_subscribers", "not-a-uuid")


async def test_bad_arguments_are_refused_before_any_sql(db: asyncpg.Connection) -> None:
    a = await recipient(db)
    for bad in (
        {"notification_type": "New Post"},
        {"notification_type": "x", "priority": "critical"},
        {"notification_type": "x", "title": "t" * 256},
    ):
        with pytest.raises(ValueError):
            await notify(db, event_key="bad", recipients=[a], **bad)  # type: ignore[arg-type]


async def test_send_flags_choose_the_channels(db: asyncpg.Connection) -> None:
    a = await recipient(db, devices=1)
    await notify(db, event_key="f1", recipients=[a], notification_type="x", send_push=False)
    assert [j["channel"] for j in await job_rows(db)] == ["email"]
    await notify(
        db,
        event_key="f2",
        recipients=[a],
        notification_type="x",
        send_in_app=False,
        send_email=False,
    )
    row = (await _notifications(db))[-1]
    assert (row["send_in_app"], row["send_push"], row["send_email"]) == (False, True, False)
    assert row["status"] == "pending"  # nothing delivered yet: the push job decides
    # a user no channel can reach gets no row
    unreachable = await recipient(db, verified=False)
    assert (
        await notify(
            db, event_key="f3", recipients=[unreachable], notification_type="x", send_in_app=False
        )
        == 0
    )


async def test_unverified_address_gets_no_email_job(db: asyncpg.Connection) -> None:
    a = await recipient(db, verified=False)
    await notify(db, event_key="u", recipients=[a], notification_type="x")
    assert await job_rows(db) == []
    assert (await _notifications(db))[0]["send_email"] is False


async def test_the_most_specific_preference_wins(db: asyncpg.Connection) -> None:
    everything_off = await recipient(db, devices=1)
    await set_preference(db, everything_off, "*", "*", False)
    type_back_on = await recipient(db, devices=1)
    await set_preference(db, type_back_on, "*", "*", False)
    await set_preference(db, type_back_on, "new_post", "*", True)
    email_off_for_type = await recipient(db, devices=1)
    await set_preference(db, email_off_for_type, "new_post", "email", False)
    push_off_everywhere_but_on_for_type = await recipient(db, devices=1)
    await set_preference(db, push_off_everywhere_but_on_for_type, "*", "push", False)
    await set_preference(db, push_off_everywhere_but_on_for_type, "new_post", "push", True)
    other_type_off = await recipient(db, devices=1)
    await set_preference(db, other_type_off, "payment_success", "*", False)
    in_app_off = await recipient(db, devices=1)
    await set_preference(db, in_app_off, "new_post", "in_app", False)
    users = [
        everything_off,
        type_back_on,
        email_off_for_type,
        push_off_everywhere_but_on_for_type,
        other_type_off,
        in_app_off,
    ]
    await notify(db, event_key="p", recipients=users, notification_type="new_post")
    got = {
        r["user_id"]: (r["send_in_app"], r["send_push"], r["send_email"])
        for r in await _notifications(db)
    }
    assert everything_off not in got
    assert got[type_back_on] == (True, True, True)
    assert got[email_off_for_type] == (True, True, False)
    assert got[push_off_everywhere_but_on_for_type] == (True, True, True)
    assert got[other_type_off] == (True, True, True)
    assert got[in_app_off] == (False, True, True)


async def test_transactional_notices_can_bypass_preferences(db: asyncpg.Connection) -> None:
    a = await recipient(db)
    await set_preference(db, a, "*", "*", False)
    assert await notify(db, event_key="r", recipients=[a], notification_type="receipt") == 0
    assert (
        await notify(
            db,
            event_key="r",
            recipients=[a],
            notification_type="receipt",
            bypass_preferences=True,
        )
        == 1
    )


async def test_daily_digest_items_share_one_digest_job_per_user_and_day(
    db: asyncpg.Connection,
) -> None:
    a = await recipient(db, devices=1)
    b = await recipient(db)
    await set_settings(db, b, time_zone="Asia/Kolkata", digest_at="07:30")
    for n in range(3):
        await notify(
            db,
            event_key=f"d{n}",
            recipients=[a, b],
            notification_type="new_post",
            notification_group="daily_digest",
        )
    jobs = await job_rows(db)
    assert sorted((j["channel"], j["user_id"]) for j in jobs) == sorted(
        [("digest", a), ("digest", b)]
    )  # no push, no single e-mails
    by_user = {j["user_id"]: j for j in jobs}
    local_b = await db.fetchval("SELECT (now() AT TIME ZONE 'Asia/Kolkata')::date")
    assert by_user[b]["digest_date"] == local_b
    due_b = await db.fetchval(
        "SELECT (($1::date + 1) + time '07:30') AT TIME ZONE 'Asia/Kolkata'", local_b
    )
    assert by_user[b]["next_attempt_at"] == due_b
    rows = await _notifications(db)
    assert len(rows) == 6 and all(r["send_email"] and not r["send_push"] for r in rows)


async def test_notify_wakes_the_gateway_and_the_workers(dsn: str, db: asyncpg.Connection) -> None:
    a = await recipient(db)
    listener = await asyncpg.connect(dsn)
    heard: dict[str, list[str]] = {"sb_notification": [], "sb_delivery": []}
    both = asyncio.Event()

    def on(_c: object, _pid: int, channel: str, payload: str) -> None:
        heard[channel].append(payload)
        if all(heard.values()):
            both.set()

    try:
        await listener.add_listener("sb_notification", on)
        await listener.add_listener("sb_delivery", on)
        await notify(db, event_key="w", recipients=[a], notification_type="x")
        await asyncio.wait_for(both.wait(), 10)
    finally:
        await listener.close()
    nid = await db.fetchval("SELECT id FROM analyst.notifications")
    assert msgspec.json.decode(heard["sb_notification"][0]) == {
        "realm": "analyst",
        "user_id": str(a),
        "id": str(nid),
    }
    assert len(heard["sb_delivery"]) == 1  # one per statement, not per job


async def test_a_hundred_thousand_recipients_in_one_call_each_once(db: asyncpg.Connection) -> None:
    await db.execute(
        """INSERT INTO analyst.users (email, password_hash, user_type, email_verified)
           SELECT 'bulk' || g || '@example.com', 'x', 'trader', true
             FROM generate_series(1, 100000) g"""
    )
    await db.execute(
        """INSERT INTO gateway.push_devices (realm, user_id, token, platform)
           SELECT 'analyst', id, 'bulk-' || id, 'android' FROM analyst.users"""
    )
    ids = [r["id"] for r in await db.fetch("SELECT id FROM analyst.users")]
    started = time.perf_counter()
    async with db.transaction():
        created = await notify(
            db, event_key="bulk", recipients=ids, notification_type="new_post", title="All"
        )
    elapsed = time.perf_counter() - started
    print(f"notify() to {created} recipients (+{2 * created} jobs): {elapsed:.2f} s")
    assert created == 100_000
    assert await db.fetchval("SELECT count(*) FROM gateway.notification_deliveries") == 200_000
    # Speed is measured by loadtests/bench_notifications.py, never asserted here.
    assert await notify(db, event_key="bulk", recipients=ids, notification_type="new_post") == 0
    assert await db.fetchval("SELECT count(*) FROM gateway.notification_deliveries") == 200_000


async def test_read_notifications_still_archive_with_the_new_column(
    db: asyncpg.Connection,
) -> None:
    if await db.fetchval("SELECT to_regproc('analyst.archive_read_notifications')") is None:
        pytest.skip("no archive function in this schema")
    a = await recipient(db)
    await notify(db, event_key="old", recipients=[a], notification_type="x")
    await db.execute(
        """UPDATE analyst.notifications
              SET read_at = now(), created_at = now() - interval '40 days'"""
    )
    assert await db.fetchval("SELECT analyst.archive_read_notifications()") == 1
    assert (
        await db.fetchval("SELECT idempotency_key FROM analyst.notifications_archive") == f"old:{a}"
    )
