"""Quiet hours in the user's time zone (urgent bypasses them) and the daily digest (one e-mail
per user per day listing the day's grouped items)."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import pytest

from kernel.config import Settings
from kernel.notify import notify, set_settings
from kernel.tracking import record_open, verify_tracking_token
from tests.notifications.conftest import WorkerFactory, drain, job_rows, recipient
from tests.notifications.fakes import FakeClock, FakeFcm, SmtpSink
from workers.delivery.quiet_hours import held_until, quiet_until

UTC = dt.UTC
T = dt.time


def _utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "zone", "window", "expected"),
    [
        # same-day window in UTC
        (_utc(2025, 3, 1, 13, 0), "UTC", (T(12), T(14)), _utc(2025, 3, 1, 14, 0)),
        (_utc(2025, 3, 1, 14, 0), "UTC", (T(12), T(14)), None),  # the end is not quiet
        (_utc(2025, 3, 1, 12, 0), "UTC", (T(12), T(14)), _utc(2025, 3, 1, 14, 0)),
        # across midnight: late evening and early morning are quiet, midday is not
        (_utc(2025, 3, 1, 23, 0), "UTC", (T(22), T(7)), _utc(2025, 3, 2, 7, 0)),
        (_utc(2025, 3, 2, 3, 0), "UTC", (T(22), T(7)), _utc(2025, 3, 2, 7, 0)),
        (_utc(2025, 3, 2, 12, 0), "UTC", (T(22), T(7)), None),
        # in the user's zone: 17:00 UTC is 22:30 in Kolkata, quiet until 07:00 IST = 01:30 UTC
        (_utc(2025, 3, 1, 17, 0), "Asia/Kolkata", (T(22), T(7)), _utc(2025, 3, 2, 1, 30)),
        (_utc(2025, 3, 1, 17, 0), "UTC", (T(22), T(7)), None),
        # New York springs forward on 2025-03-09: 02:30 does not exist that night
        (_utc(2025, 3, 9, 6, 0), "America/New_York", (T(1), T(2, 30)), _utc(2025, 3, 9, 7, 30)),
        (_utc(2025, 3, 1, 12, 0), "UTC", None, None),
    ],
)
def test_quiet_until(
    now: dt.datetime, zone: str, window: tuple[dt.time, dt.time] | None, expected: object
) -> None:
    assert quiet_until(now, zone, window) == expected


def test_urgent_is_never_held() -> None:
    now = _utc(2025, 3, 1, 23, 0)
    assert held_until(now, "high", "UTC", (T(22), T(7))) is not None
    assert held_until(now, "urgent", "UTC", (T(22), T(7))) is None


def test_an_unknown_zone_counts_as_utc() -> None:
    now = _utc(2025, 3, 1, 23, 0)
    assert quiet_until(now, "Mars/Olympus", (T(22), T(7))) == _utc(2025, 3, 2, 7, 0)


async def _quiet_now(db: asyncpg.Connection, user: uuid.UUID, clock: FakeClock) -> dt.datetime:
    """Give the user a quiet window (Asia/Kolkata) around the clock's now; return its end."""
    local = clock().astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
    start = (local - dt.timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (local + dt.timedelta(hours=2)).time().replace(second=0, microsecond=0)
    await set_settings(
        db, user, time_zone="Asia/Kolkata", quiet_hours=(start.isoformat(), end.isoformat())
    )
    until = quiet_until(clock(), "Asia/Kolkata", (start, end))
    assert until is not None
    return until


async def test_quiet_hours_hold_push_and_email_until_they_end(
    db: asyncpg.Connection,
    fcm: FakeFcm,
    smtp: SmtpSink,
    make_worker: WorkerFactory,
    clock: FakeClock,
) -> None:
    user = await recipient(db, devices=1)
    until = await _quiet_now(db, user, clock)
    await notify(db, event_key="q", recipients=[user], notification_type="new_post", title="t")
    clock.catch_up()  # still inside the window, which is three hours wide
    worker = make_worker()
    assert await worker.run_once() == 2
    jobs = await job_rows(db)
    assert [(j["status"], j["attempts"]) for j in jobs] == [("pending", 0), ("pending", 0)]
    assert {j["next_attempt_at"] for j in jobs} == {until}
    assert fcm.requests == [] and smtp.messages == []
    # in-app was not held: the notification is in the inbox already
    assert await db.fetchval("SELECT status FROM analyst.notifications") == "sent"
    clock.set(until)
    assert await drain(worker) == 2
    assert len(fcm.sent) == 1 and len(smtp.messages) == 1
    assert [j["attempts"] for j in await job_rows(db)] == [1, 1]


async def test_urgent_notifications_go_out_during_quiet_hours(
    db: asyncpg.Connection,
    fcm: FakeFcm,
    smtp: SmtpSink,
    make_worker: WorkerFactory,
    clock: FakeClock,
) -> None:
    user = await recipient(db, devices=1)
    await _quiet_now(db, user, clock)
    await notify(
        db,
        event_key="u",
        recipients=[user],
        notification_type="urgent_post",
        title="Exit",
        priority="urgent",
    )
    clock.catch_up()
    await drain(make_worker())
    assert len(fcm.sent) == 1 and len(smtp.messages) == 1


async def _digest_items(db: asyncpg.Connection, users: list[uuid.UUID], n: int) -> None:
    for i in range(n):
        await notify(
            db,
            event_key=f"digest-item-{i}",
            recipients=users,
            notification_type="new_post",
            title=f"Post {i}",
            message=f"Body {i}",
            action_url=f"https://app.example/p/{i}",
            notification_group="daily_digest",
        )


async def test_one_digest_email_per_user_per_day_lists_the_days_items(
    db: asyncpg.Connection,
    fcm: FakeFcm,
    smtp: SmtpSink,
    make_worker: WorkerFactory,
    clock: FakeClock,
    settings: Settings,
) -> None:
    a = await recipient(db, devices=1)
    b = await recipient(db)
    await set_settings(db, b, time_zone="Asia/Kolkata", digest_at="07:30")
    await _digest_items(db, [a, b], 3)
    worker = make_worker()
    assert await worker.run_once() == 0  # not before the digest time
    jobs = {j["user_id"]: j for j in await job_rows(db)}
    clock.set(max(j["next_attempt_at"] for j in jobs.values()))
    assert await drain(worker) == 2
    assert fcm.requests == []  # grouped items send no push of their own
    assert len(smtp.messages) == 2
    addresses = {
        r["id"]: r["email"]
        for r in await db.fetch("SELECT id, email FROM analyst.users WHERE id = ANY($1)", [a, b])
    }
    by_to = {m["To"]: m for m in smtp.messages}
    for user in (a, b):
        message = by_to[addresses[user]]
        day = jobs[user]["digest_date"].isoformat()
        assert message["Subject"] == f"Your daily digest for {day}: 3 updates"
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert [line for line in text.splitlines() if line.startswith("- ")] == [
            "- Post 0: Body 0",
            "- Post 1: Body 1",
            "- Post 2: Body 2",
        ]
        assert message["List-Unsubscribe"]
    rows = await db.fetch("SELECT email_sent, email_sent_at FROM analyst.notifications")
    assert all(r["email_sent"] and r["email_sent_at"] is not None for r in rows)
    digest = jobs[a]
    stored = await db.fetchval(
        "SELECT digest_items FROM gateway.notification_deliveries WHERE id = $1", digest["id"]
    )
    assert len(stored) == 3
    # the digest's open pixel marks every item it listed as opened
    html = by_to[addresses[a]].get_body(("html",)).get_content()  # type: ignore[union-attr]
    pixel = html.split('<img src="')[1].split('"')[0].replace("&amp;", "&")
    token = pixel.split("t=")[1]
    assert verify_tracking_token(settings.secret, token, "open").d == digest["id"]
    assert await record_open(db, settings.secret, token) == 3


async def test_items_read_in_app_are_left_out_of_the_digest(
    db: asyncpg.Connection, smtp: SmtpSink, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    a = await recipient(db)
    await _digest_items(db, [a], 2)
    await db.execute("UPDATE analyst.notifications SET read_at = now() WHERE title = 'Post 0'")
    [job] = await job_rows(db)
    clock.set(job["next_attempt_at"])
    await drain(make_worker())
    [message] = smtp.messages
    assert message["Subject"].endswith(": 1 update")
    # everything read: nothing to send
    b = await recipient(db)
    await _digest_items(db, [b], 1)
    await db.execute("UPDATE analyst.notifications SET read_at = now() WHERE user_id = $1", b)
    job = (await job_rows(db))[-1]
    clock.set(job["next_attempt_at"])
    await drain(make_worker("w2"))
    assert len(smtp.messages) == 1
    assert (await job_rows(db))[-1]["status"] == "skipped"
