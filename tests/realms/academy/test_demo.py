"""`make demo` (python -m tools.demo) for realm academy, run as the command it is: the demo
data (lessons, users, a live session with its chat, a scheduled one, a community thread),
seeded once however often it runs; the printed logins work on the api, the password signs
in, and the live session's room is open to its host and registered learners."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.conftest import ROOT
from tests.gateway.harness import GatewayProcess, WsClient
from tests.realms.academy.live import connect_with
from tools.analyst import DEMO_PASSWORD


async def run_demo(dsn: str, secret: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "SWITCHBOARD_SECRET": secret,
        "BCRYPT_ROUNDS": "4",
        "SWITCHBOARD_REALMS": "academy",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.demo",
        "--json",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    (realm,) = json.loads(out)["realms"]
    assert realm["realm"] == "academy"
    result: dict[str, Any] = realm
    return result


COUNTS = """
SELECT (SELECT count(*) FROM academy.users) AS users,
       (SELECT count(*) FROM academy.lessons) AS lessons,
       (SELECT count(*) FROM academy.user_progress WHERE completed) AS completions,
       (SELECT count(*) FROM academy.live_sessions) AS sessions,
       (SELECT count(*) FROM academy.session_participants) AS registrations,
       (SELECT count(*) FROM academy.session_messages) AS messages,
       (SELECT count(*) FROM academy.community_posts) AS posts,
       (SELECT count(*) FROM academy.community_comments) AS comments
"""


async def test_demo_seeds_academy_once_with_working_logins_and_a_live_room(
    dsn: str,
    secret: str,
    db: asyncpg.Connection,
    academy_api: TestClient,
    gateway: GatewayProcess,
    sockets: list[WsClient],
) -> None:
    first = await run_demo(dsn, secret)
    counts = dict(await db.fetchrow(COUNTS))
    again = await run_demo(dsn, secret)
    assert (
        dict(await db.fetchrow(COUNTS))
        == counts
        == {
            "users": 4,
            "lessons": 6,
            "completions": 5,
            "sessions": 2,
            "registrations": 3,
            "messages": 7,
            "posts": 1,
            "comments": 1,
        }
    )
    assert [u["user_id"] for u in again["users"]] == [u["user_id"] for u in first["users"]]
    assert again["channels"] == first["channels"]
    users = {u["name"]: u for u in again["users"]}
    assert {name: u["role"] for name, u in users.items()} == {
        "Hana": "host",
        "Leo": "learner",
        "Mia": "learner",
        "Ada": "admin",
    }

    # Leo's four lessons went through the realm's progress rules: XP, level, leaderboards.
    leo = await db.fetchrow(
        "SELECT total_xp, current_level FROM academy.user_profiles WHERE id = $1::uuid",
        users["Leo"]["user_id"],
    )
    assert leo["total_xp"] == 50 + 50 + 75 + 100
    assert leo["current_level"] == await db.fetchval(
        "SELECT academy.calculate_user_level($1)", leo["total_xp"]
    )
    assert (
        await db.fetchval(
            "SELECT xp_points FROM academy.leaderboard WHERE user_id = $1::uuid"
            " AND period = 'all_time'",
            users["Leo"]["user_id"],
        )
        == 275
    )

    # The printed tokens are the users they name; the password signs in.
    for user in again["users"]:
        headers = {"Authorization": f"Bearer {user['access_token']}"}
        me = await (await academy_api.get("/v1/academy/me", headers=headers)).json()
        assert me["account"]["id"] == user["user_id"]
        assert me["account"]["is_admin"] is (user["role"] == "admin")
    r = await academy_api.post(
        "/v1/academy/auth/login",
        json={"email": "mia.learner@example.com", "password": DEMO_PASSWORD},
    )
    assert r.status == 200, await r.text()

    # The live session's room: host and a registered learner join and see its chat.
    channel = next(c["channel"] for c in again["channels"] if c["name"] == "Live session")
    host = await connect_with(gateway, users["Hana"]["access_token"], sockets)
    assert (await host.ok("join", channel=channel))["role"] == "owner"
    learner = await connect_with(gateway, users["Leo"]["access_token"], sockets)
    await learner.ok("join", channel=channel)
    history = await learner.ok("history", channel=channel, limit=50)
    assert [m["seq"] for m in history["messages"]] == list(range(1, 8))
    sent = await learner.ok("send", channel=channel, text="thanks Hana")
    assert sent["seq"] == 8
