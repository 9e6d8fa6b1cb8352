"""Lessons (learners see active ones only; admins manage them) and progress: completing a
lesson gives XP, the level of calculate_user_level, the leaderboards (weekly by the seed's
trigger), the streak, an activity log row and the achievements whose requirements are met."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from aiohttp.test_utils import TestClient

from tests.realms.academy.conftest import Academy
from tests.realms.academy.helpers import next_gate

LESSONS = "/v1/academy/lessons"


async def lesson(db: asyncpg.Connection, xp: int = 100, **fields: Any) -> UUID:
    fields.setdefault("is_active", True)
    row_id: UUID = await db.fetchval(
        "INSERT INTO academy.lessons (level_id, gate_id, title, content_data, xp_reward,"
        " is_active, prerequisites) VALUES (1, $1, 'L', '{}', $2, $3, $4) RETURNING id",
        next_gate(),
        xp,
        fields["is_active"],
        fields.get("prerequisites"),
    )
    return row_id


async def complete(api: TestClient, headers: dict[str, str], lesson_id: UUID) -> Any:
    r = await api.post(f"{LESSONS}/{lesson_id}/complete", json={"score": 90}, headers=headers)
    assert r.status == 200, await r.text()
    return await r.json()


async def test_learners_see_active_lessons_only_and_admins_see_all(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    active, hidden = await lesson(db), await lesson(db, is_active=False)
    _, learner = await academy.user()
    _, admin = await academy.user(admin=True)
    seen = {x["id"] for x in await (await academy_api.get(LESSONS, headers=learner)).json()}
    assert seen == {str(active)}
    assert (await academy_api.get(f"{LESSONS}/{hidden}", headers=learner)).status == 404
    seen = {x["id"] for x in await (await academy_api.get(LESSONS, headers=admin)).json()}
    assert seen == {str(active), str(hidden)}


async def test_only_admins_create_edit_and_delete_lessons(
    academy_api: TestClient, academy: Academy
) -> None:
    _, learner = await academy.user()
    _, admin = await academy.user(admin=True)
    body = {
        "level_id": 3,
        "gate_id": 7,
        "title": "Risk",
        "content_data": {"b": []},
        "xp_reward": 250,
        "estimated_time_s": 600,
    }
    assert (await academy_api.post(LESSONS, json=body, headers=learner)).status == 403
    r = await academy_api.post(LESSONS, json=body, headers=admin)
    assert r.status == 201, await r.text()
    created = await r.json()
    assert created["estimated_time_s"] == 600 and created["xp_reward"] == 250
    assert (await academy_api.post(LESSONS, json=body, headers=admin)).status == 409
    path = f"{LESSONS}/{created['id']}"
    assert (await academy_api.patch(path, json={"title": "x"}, headers=learner)).status == 403
    r = await academy_api.patch(path, json={"is_active": False}, headers=admin)
    assert (await r.json())["is_active"] is False
    assert (await academy_api.delete(path, headers=learner)).status == 403
    assert (await academy_api.delete(path, headers=admin)).status == 204
    assert (await academy_api.get(path, headers=admin)).status == 404


async def test_completing_a_lesson_updates_xp_level_leaderboard_streak_and_log(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    user, headers = await academy.user()
    big = await lesson(db, xp=3500)
    done = await complete(academy_api, headers, big)
    assert done["xp_earned"] == 3500 and done["total_xp"] == 3500
    level = await db.fetchval("SELECT academy.calculate_user_level(3500)")
    assert done["level"] == level == 2 and done["level_up"] is True
    assert done["current_streak"] == 1 and done["weekly_rank"] == 1
    weekly = await db.fetchrow(
        "SELECT xp_points, lessons_completed, streak_days FROM academy.leaderboard"
        " WHERE user_id = $1 AND period = 'weekly'",
        user,
    )
    assert dict(weekly) == {"xp_points": 3500, "lessons_completed": 1, "streak_days": 1}
    periods = await db.fetch(
        "SELECT period, xp_points FROM academy.leaderboard WHERE user_id = $1 ORDER BY period",
        user,
    )
    assert {r["period"]: r["xp_points"] for r in periods} == {
        "all_time": 3500,
        "daily": 3500,
        "monthly": 3500,
        "weekly": 3500,
    }
    assert (
        await db.fetchval(
            "SELECT count(*) FROM academy.user_activity_log WHERE user_id = $1"
            " AND activity_type = 'lesson_complete' AND entity_id = $2",
            user,
            big,
        )
        == 1
    )
    profile = await db.fetchrow(
        "SELECT total_xp, current_level FROM academy.user_profiles WHERE id = $1", user
    )
    assert dict(profile) == {"total_xp": 3500, "current_level": 2}


async def test_completing_a_lesson_twice_counts_once(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    user, headers = await academy.user()
    once = await lesson(db, xp=100)
    await complete(academy_api, headers, once)
    again = await complete(academy_api, headers, once)
    assert again["already_completed"] is True and again["total_xp"] == 100
    assert (
        await db.fetchval(
            "SELECT sum(xp_points) FROM academy.leaderboard"
            " WHERE user_id = $1 AND period = 'weekly'",
            user,
        )
        == 100
    )


async def test_streak_grows_on_consecutive_days_and_restarts_after_a_gap(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    user, headers = await academy.user()
    today = await db.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
    await db.execute(
        "INSERT INTO academy.user_streaks (user_id, current_streak, longest_streak,"
        " last_activity_date) VALUES ($1, 4, 4, $2)",
        user,
        today - timedelta(days=1),
    )
    assert (await complete(academy_api, headers, await lesson(db)))["current_streak"] == 5
    assert (await complete(academy_api, headers, await lesson(db)))["current_streak"] == 5
    await db.execute(
        "UPDATE academy.user_streaks SET last_activity_date = $2 WHERE user_id = $1",
        user,
        today - timedelta(days=3),
    )
    done = await complete(academy_api, headers, await lesson(db))
    assert (done["current_streak"], done["longest_streak"]) == (1, 5)


async def test_achievements_unlock_by_their_requirements_once(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    user, headers = await academy.user()
    _, admin = await academy.user(admin=True)
    two = {
        "code": "two-lessons",
        "title": "Two",
        "description": "Complete two lessons",
        "requirements": {"lessons_completed": 2},
        "xp_reward": 50,
    }
    r = await academy_api.post("/v1/academy/achievements", json=two, headers=admin)
    assert r.status == 201, await r.text()
    bad = {**two, "code": "x", "requirements": {"moon_phase": 3}}
    assert (
        await academy_api.post("/v1/academy/achievements", json=bad, headers=admin)
    ).status == 400
    assert (
        await academy_api.post("/v1/academy/achievements", json=two, headers=headers)
    ).status == 403

    first = await complete(academy_api, headers, await lesson(db, xp=10))
    assert first["achievements"] == []
    second = await complete(academy_api, headers, await lesson(db, xp=10))
    assert [a["code"] for a in second["achievements"]] == ["two-lessons"]
    assert second["total_xp"] == 10 + 10 + 50  # the achievement's XP counts on the profile
    third = await complete(academy_api, headers, await lesson(db, xp=10))
    assert third["achievements"] == []
    mine = await (await academy_api.get("/v1/academy/me/achievements", headers=headers)).json()
    assert [m["achievement"]["code"] for m in mine] == ["two-lessons"]
    assert (
        await db.fetchval(
            "SELECT count(*) FROM academy.user_activity_log WHERE user_id = $1"
            " AND activity_type = 'achievement_gain'",
            user,
        )
        == 1
    )


async def test_a_lessons_prerequisites_must_be_completed_first(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    _, headers = await academy.user()
    basics = await lesson(db)
    advanced = await lesson(db, prerequisites=[basics])
    r = await academy_api.post(f"{LESSONS}/{advanced}/complete", json={}, headers=headers)
    assert r.status == 403
    await complete(academy_api, headers, basics)
    await complete(academy_api, headers, advanced)


async def test_inactive_lessons_cannot_be_completed(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    _, headers = await academy.user()
    hidden = await lesson(db, is_active=False)
    r = await academy_api.post(f"{LESSONS}/{hidden}/complete", json={}, headers=headers)
    assert r.status == 404


async def test_200_concurrent_completions_leave_leaderboard_equal_to_their_xp(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    lessons = [await lesson(db, xp=xp) for xp in (10, 25, 40)]
    users = [await academy.user() for _ in range(200)]

    async def learn(i: int, headers: dict[str, str]) -> int:
        done = await complete(academy_api, headers, lessons[i % 3])
        return int(done["xp_earned"])

    earned = await asyncio.gather(*(learn(i, h) for i, (_, h) in enumerate(users)))
    for period in ("weekly", "daily", "monthly", "all_time"):
        total = await db.fetchval(
            "SELECT sum(xp_points) FROM academy.leaderboard WHERE period = $1", period
        )
        assert total == sum(earned), period
    assert await db.fetchval("SELECT sum(total_xp) FROM academy.user_profiles") == sum(earned)


async def test_leaderboard_ranks_by_xp_with_shared_ranks_and_pages(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    low, high = await lesson(db, xp=10), await lesson(db, xp=90)
    a, ha = await academy.user()
    b, hb = await academy.user()
    c, hc = await academy.user()
    await complete(academy_api, ha, high)
    await complete(academy_api, hb, high)
    await complete(academy_api, hc, low)
    r = await academy_api.get("/v1/academy/leaderboard?period=weekly&limit=2", headers=hc)
    page = await r.json()
    assert [(e["rank"], e["xp_points"]) for e in page["items"]] == [(1, 90), (1, 90)]
    r = await academy_api.get(
        f"/v1/academy/leaderboard?period=weekly&limit=2&cursor={page['next_cursor']}", headers=hc
    )
    rest = await r.json()
    assert [(e["user_id"], e["rank"]) for e in rest["items"]] == [(str(c), 3)]
    assert rest["next_cursor"] is None
    r = await academy_api.get(
        f"/v1/academy/leaderboard?period=monthly&on={date(2001, 1, 1)}", headers=hc
    )
    assert (await r.json())["items"] == []
    del a, b


async def test_stats_come_from_the_callers_own_rows(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    _, headers = await academy.user()
    _, other = await academy.user()
    await complete(academy_api, other, await lesson(db, xp=500))
    await complete(academy_api, headers, await lesson(db, xp=30))
    stats = await (await academy_api.get("/v1/academy/stats", headers=headers)).json()
    assert (stats["completed_lessons"], stats["total_xp"]) == (1, 30)
    progress = await (await academy_api.get("/v1/academy/progress", headers=headers)).json()
    assert len(progress) == 1 and progress[0]["xp_earned"] == 30
