"""Live sessions over REST: hosts schedule, start, end and cancel their own; registration
under max_participants with a waitlist (500 concurrent registrations for 100 seats: exactly
100 registered, 400 waitlisted), prerequisites, and feedback 1-5 from attendees only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from aiohttp.test_utils import TestClient

from tests.realms.academy.conftest import Academy

SESSIONS = "/v1/academy/sessions"


async def schedule(api: TestClient, headers: dict[str, str], **fields: Any) -> Any:
    body = {
        "title": "Weekly Q&A",
        "scheduled_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "duration_min": 60,
        **fields,
    }
    r = await api.post(SESSIONS, json=body, headers=headers)
    assert r.status == 201, await r.text()
    return await r.json()


async def register(api: TestClient, session: Any, headers: dict[str, str]) -> Any:
    return await api.post(f"{SESSIONS}/{session['id']}/registration", headers=headers)


async def test_500_concurrent_registrations_for_100_seats(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    _, host = await academy.user()
    session = await schedule(academy_api, host, max_participants=100)
    users = [await academy.user() for _ in range(500)]

    async def one(headers: dict[str, str]) -> str:
        r = await register(academy_api, session, headers)
        assert r.status == 201, await r.text()
        return str((await r.json())["attendance_status"])

    outcomes = await asyncio.gather(*(one(h) for _, h in users))
    assert outcomes.count("registered") == 100 and outcomes.count("waitlisted") == 400
    counted = await db.fetch(
        "SELECT attendance_status, count(*) FROM academy.session_participants"
        " WHERE session_id = $1::uuid GROUP BY 1",
        session["id"],
    )
    assert {r[0]: r[1] for r in counted} == {"registered": 100, "waitlisted": 400}
    got = await (await academy_api.get(f"{SESSIONS}/{session['id']}", headers=host)).json()
    assert (got["registered"], got["waitlisted"]) == (100, 400)


async def test_waitlist_moves_up_in_order_when_a_registered_user_cancels(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    _, host = await academy.user()
    session = await schedule(academy_api, host, max_participants=1)
    a, ha = await academy.user()
    b, hb = await academy.user()
    c, hc = await academy.user()
    assert (await (await register(academy_api, session, ha)).json())[
        "attendance_status"
    ] == "registered"
    second = await (await register(academy_api, session, hb)).json()
    third = await (await register(academy_api, session, hc)).json()
    assert (second["waitlist_position"], third["waitlist_position"]) == (1, 2)
    assert (await register(academy_api, session, hb)).status == 409
    assert (
        await academy_api.delete(f"{SESSIONS}/{session['id']}/registration", headers=ha)
    ).status == 204
    statuses = dict(
        await db.fetch(
            "SELECT user_id, attendance_status FROM academy.session_participants"
            " WHERE session_id = $1::uuid",
            session["id"],
        )
    )
    assert statuses == {b: "registered", c: "waitlisted"}
    del a


async def test_prerequisites_min_level_and_required_lessons_are_enforced(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    _, host = await academy.user()
    lesson: UUID = await db.fetchval(
        "INSERT INTO academy.lessons (level_id, gate_id, title, content_data)"
        " VALUES (90, 1, 'Basics', '{}') RETURNING id"
    )
    session = await schedule(
        academy_api, host, prerequisites={"min_level": 2, "required_lessons": [str(lesson)]}
    )
    user, headers = await academy.user()
    r = await register(academy_api, session, headers)
    assert r.status == 403 and "level 2" in (await r.json())["error"]["message"]
    await db.execute(
        "UPDATE academy.user_profiles SET total_xp = 3000, current_level = 2 WHERE id = $1", user
    )
    r = await register(academy_api, session, headers)
    assert r.status == 403 and "required lesson" in (await r.json())["error"]["message"]
    done = await academy_api.post(
        f"/v1/academy/lessons/{lesson}/complete", json={}, headers=headers
    )
    assert done.status == 200
    assert (await register(academy_api, session, headers)).status == 201


async def test_only_the_host_starts_and_ends_and_states_move_forward_only(
    academy_api: TestClient, academy: Academy
) -> None:
    _, host = await academy.user()
    _, other = await academy.user()
    session = await schedule(academy_api, host)
    path = f"{SESSIONS}/{session['id']}"
    assert (await academy_api.post(f"{path}/start", headers=other)).status == 403
    assert (await academy_api.post(f"{path}/end", headers=host)).status == 409
    r = await academy_api.post(f"{path}/start", headers=host)
    assert (await r.json())["status"] == "live"
    r = await academy_api.post(f"{path}/end", headers=host)
    assert (await r.json())["status"] == "ended"
    assert (await register(academy_api, session, other)).status == 403
    assert (await academy_api.post(f"{path}/cancel", headers=host)).status == 409


async def test_feedback_is_1_to_5_and_only_from_attendees(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    _, host = await academy.user()
    session = await schedule(academy_api, host)
    user, headers = await academy.user()
    await register(academy_api, session, headers)
    path = f"{SESSIONS}/{session['id']}/feedback"
    r = await academy_api.put(path, json={"rating": 5}, headers=headers)
    assert r.status == 400  # registered, never attended
    await db.execute(
        "UPDATE academy.session_participants SET attendance_status = 'attended' WHERE user_id = $1",
        user,
    )
    for rating in (0, 6):
        r = await academy_api.put(path, json={"rating": rating}, headers=headers)
        assert r.status == 400 and (await r.json())["error"]["code"] == "bad_request"
    r = await academy_api.put(path, json={"rating": 4, "text": "good"}, headers=headers)
    assert r.status == 200 and (await r.json())["feedback_rating"] == 4
    assert (
        await db.fetchval(
            "SELECT feedback_rating FROM academy.session_participants WHERE user_id = $1", user
        )
        == 4
    )
