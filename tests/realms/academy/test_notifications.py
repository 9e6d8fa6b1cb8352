"""The academy's notifications (issue 14, item 4) over the real api, jobs and a gateway: a
session starting in 15 minutes (the reminder job), a session started, a reply to one's post
or comment, an achievement unlocked, a streak about to break (the evening job), a
subscription past due. In-app always (the realm's inbox at /v1/academy/notifications, and
the user's sockets), push and e-mail jobs per the user's preferences and reach; each event
once per user however often its cause runs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from aiohttp.test_utils import TestClient

from realms.academy import jobs
from tests.gateway.harness import GatewayProcess, WsClient
from tests.realms.academy.conftest import Academy
from tests.realms.academy.helpers import Rows
from tests.realms.academy.live import connect
from tests.realms.academy.test_jobs import FixedClock

SESSIONS = "/v1/academy/sessions"
INBOX = "/v1/academy/notifications"


async def inbox(api: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = await api.get(INBOX, headers=headers)
    assert r.status == 200, await r.text()
    items: list[dict[str, Any]] = (await r.json())["items"]
    return items


async def types(api: TestClient, headers: dict[str, str]) -> list[str]:
    return [n["notification_type"] for n in await inbox(api, headers)]


async def jobs_of(db: asyncpg.Connection, user: UUID) -> set[str]:
    """The delivery channels queued for the user's academy notifications."""
    rows = await db.fetch(
        "SELECT channel FROM gateway.notification_deliveries WHERE realm = 'academy'"
        " AND user_id = $1",
        str(user),
    )
    return {r["channel"] for r in rows}


async def schedule(
    api: TestClient, host: dict[str, str], *, at: str = "2030-01-01T10:00:00Z", **fields: Any
) -> str:
    body = {"title": "Breakouts", "scheduled_at": at, "duration_min": 30, **fields}
    r = await api.post(SESSIONS, json=body, headers=host)
    assert r.status == 201, await r.text()
    return str((await r.json())["id"])


async def test_session_started_tells_registered_users_in_app_and_by_push_per_preferences(
    academy_api: TestClient,
    academy: Academy,
    db: asyncpg.Connection,
    gateway: GatewayProcess,
    secret: str,
    sockets: list[WsClient],
) -> None:
    _, host = await academy.user()
    pushed, hp = await academy.user(email_confirmed_at=datetime.now(UTC))
    muted, hm = await academy.user()
    _, hw = await academy.user()  # will be waitlisted
    session_id = await schedule(academy_api, host, max_participants=2)
    for headers in (hp, hm, hw):
        await academy_api.post(f"{SESSIONS}/{session_id}/registration", headers=headers)
    device = {"token": "fcm-token-academy-1", "platform": "android"}
    for headers in (hp, hm):
        device["token"] += "x"
        assert (
            await academy_api.post("/v1/academy/devices", json=device, headers=headers)
        ).status == 201
    # `muted` wants no push for this category; in-app cannot be silenced by that.
    preference = {"category": "session_started", "channel": "push", "enabled": False}
    r = await academy_api.put("/v1/academy/notifications/preferences", json=preference, headers=hm)
    assert r.status == 204
    client = await connect(gateway, secret, pushed, sockets)

    assert (await academy_api.post(f"{SESSIONS}/{session_id}/start", headers=host)).status == 200
    live = await client.expect("notification")
    assert live["notification_type"] == "session_started" and "Breakouts" in live["title"]

    (note,) = await inbox(academy_api, hp)
    assert note["notification_type"] == "session_started"
    assert note["related_entity_id"] == session_id and note["priority"] == "high"
    assert await types(academy_api, hm) == ["session_started"]
    assert await types(academy_api, hw) == []  # waitlisted: not registered
    assert await jobs_of(db, pushed) == {"push", "email"}  # a device and a confirmed e-mail
    assert await jobs_of(db, muted) == set()  # push muted, e-mail unconfirmed


async def test_the_reminder_job_tells_registered_users_once_15_minutes_ahead(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    _, host = await academy.user()
    _, headers = await academy.user()
    now = datetime(2030, 1, 1, 9, 50, tzinfo=UTC)
    soon = await schedule(academy_api, host, at="2030-01-01T10:00:00Z")
    later = await schedule(academy_api, host, at="2030-01-01T10:30:00Z")
    for session_id in (soon, later):
        await academy_api.post(f"{SESSIONS}/{session_id}/registration", headers=headers)

    assert await jobs.remind_starting_sessions(db, FixedClock(now)) == 1
    (note,) = await inbox(academy_api, headers)
    assert note["notification_type"] == "session_starting_soon"
    assert note["related_entity_id"] == soon and note["title"].startswith("Starting in 10 minutes")
    assert await jobs.remind_starting_sessions(db, FixedClock(now)) == 0  # once
    later_now = now + timedelta(minutes=30)  # `soon` is past; `later` is 10 minutes away
    assert await jobs.remind_starting_sessions(db, FixedClock(later_now)) == 1
    assert [n["related_entity_id"] for n in await inbox(academy_api, headers)] == [later, soon]


async def test_replies_tell_the_post_and_comment_authors_but_not_oneself(
    academy_api: TestClient, academy: Academy
) -> None:
    _, author = await academy.user()
    _, commenter = await academy.user()
    _, replier = await academy.user()
    r = await academy_api.post(
        "/v1/academy/posts", json={"title": "Is RSI enough?"}, headers=author
    )
    post = await r.json()
    comments = f"/v1/academy/posts/{post['id']}/comments"
    await academy_api.post(comments, json={"content": "my own note"}, headers=author)
    assert await types(academy_api, author) == []
    r = await academy_api.post(comments, json={"content": "No, add volume."}, headers=commenter)
    comment = await r.json()
    (note,) = await inbox(academy_api, author)
    assert (note["notification_type"], note["message"]) == ("reply", "No, add volume.")
    assert "Is RSI enough?" in note["title"] and note["related_entity_id"] == comment["id"]
    body = {"content": "Agreed.", "parent_comment_id": comment["id"]}
    assert (await academy_api.post(comments, json=body, headers=replier)).status == 201
    assert await types(academy_api, commenter) == ["reply"]
    assert await types(academy_api, author) == ["reply", "reply"]
    assert await types(academy_api, replier) == []


async def test_an_unlocked_achievement_is_notified_once(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    _, headers = await academy.user()
    await db.execute(
        "INSERT INTO academy.achievements (code, title, description, requirements, xp_reward)"
        " VALUES ('first', 'First steps', 'One lesson', '{\"lessons_completed\": 1}', 25)"
    )
    lessons = [
        await db.fetchval(
            "INSERT INTO academy.lessons (level_id, gate_id, title, content_data, xp_reward)"
            " VALUES (88, $1, 'L', '{}', 10) RETURNING id",
            gate,
        )
        for gate in (1, 2)
    ]
    for lesson in lessons:
        r = await academy_api.post(
            f"/v1/academy/lessons/{lesson}/complete", json={}, headers=headers
        )
        assert r.status == 200
    (note,) = await inbox(academy_api, headers)
    assert note["notification_type"] == "achievement_unlocked"
    assert note["title"] == "Achievement unlocked: First steps" and note["message"] == "+25 XP"


async def test_the_evening_job_warns_of_streaks_about_to_break(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    evening = datetime(2030, 1, 1, 18, 0, tzinfo=UTC)
    streaks = {}
    for name, last, streak in (
        ("at_risk", date(2029, 12, 31), 4),  # active yesterday, not yet today
        ("safe", date(2030, 1, 1), 5),  # already active today
        ("broken", date(2029, 12, 30), 0),  # already reset
    ):
        user, headers = await academy.user()
        await db.execute(
            "INSERT INTO academy.user_streaks (user_id, current_streak, last_activity_date)"
            " VALUES ($1, $2, $3)",
            user,
            streak,
            last,
        )
        streaks[name] = headers
    assert await jobs.warn_streaks_at_risk(db, FixedClock(evening)) == 1
    assert await jobs.warn_streaks_at_risk(db, FixedClock(evening)) == 0  # once a day
    (note,) = await inbox(academy_api, streaks["at_risk"])
    assert note["notification_type"] == "streak_at_risk"
    assert await types(academy_api, streaks["safe"]) == []
    assert await types(academy_api, streaks["broken"]) == []


async def test_a_subscription_past_due_is_notified_once_per_period(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection, rows: Rows
) -> None:
    user, headers = await academy.user()
    plan = await rows.create("subscription_plans", plan_type="monthly")
    now = datetime(2030, 2, 1, 0, 10, tzinfo=UTC)
    subscription = await rows.create(
        "user_subscriptions",
        user_id=user,
        plan_id=plan,
        status="active",
        current_period_start=now - timedelta(days=31),
        current_period_end=now - timedelta(minutes=5),
    )
    assert await jobs.move_subscriptions(db, FixedClock(now)) == 1
    assert await jobs.move_subscriptions(db, FixedClock(now)) == 0
    (note,) = await inbox(academy_api, headers)
    assert note["notification_type"] == "subscription_past_due"
    assert note["related_entity_id"] == str(subscription) and note["priority"] == "high"


async def test_the_inbox_is_the_callers_own_and_marks_read(
    academy_api: TestClient, academy: Academy
) -> None:
    _, author = await academy.user()
    _, commenter = await academy.user()
    post = await (
        await academy_api.post("/v1/academy/posts", json={"title": "Gaps"}, headers=author)
    ).json()
    await academy_api.post(
        f"/v1/academy/posts/{post['id']}/comments", json={"content": "+1"}, headers=commenter
    )
    r = await academy_api.get(f"{INBOX}/unread-count", headers=author)
    assert (await r.json())["unread"] == 1
    assert await inbox(academy_api, commenter) == []
    r = await academy_api.post(f"{INBOX}/read", json={"all": True}, headers=author)
    assert (await r.json()) == {"marked": 1, "unread": 0}
