"""A realm plugs in without touching the processes: the test-only realm in tests/echo_realm
(its own schema with BIGINT user ids, one namespace, one route, one job) is served by real
gateway, api and worker processes through SWITCHBOARD_REALMS alone, and tokens of one realm
reach nothing of another, over the socket and over REST."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from kernel.config import load_settings
from kernel.db import connect, create_pool
from kernel.realms import enabled_realms
from tests.echo_realm.fixtures import (
    ALICE,
    BOB,
    CAROL,
    ECHO,
    FixedClock,
    analyst_user,
    connected,
    echo_dsn,
    echo_gateway,
    token,
)
from tests.factories import make_user
from tests.gateway.harness import GatewayProcess, WsClient
from workers.scheduler import run_by_hand

__all__ = ["analyst_user", "echo_dsn", "echo_gateway"]  # fixtures used by name

ROOT = Path(__file__).resolve().parent.parent

# --- gateway ----------------------------------------------------------------------------------


async def test_an_echo_user_connects_with_a_bigint_id_to_its_own_stream(
    echo_gateway: GatewayProcess, secret: str
) -> None:
    client = await WsClient.open(echo_gateway.url, token(secret, ALICE, "echo"))
    welcome = await client.expect("welcome")
    assert (welcome["user_id"], welcome["realm"]) == (ALICE, "echo")
    stream = await client.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
    assert stream["channel"] == "echo.user:1"
    await client.close()


async def test_room_members_chat_with_seq_resume_and_idempotent_client_id(
    echo_gateway: GatewayProcess, secret: str
) -> None:
    alice = await connected(echo_gateway, secret, ALICE)
    bob = await connected(echo_gateway, secret, BOB)
    assert (await alice.ok("join", channel="echo.room:1"))["last_seq"] == 0
    await bob.ok("join", channel="echo.room:1")
    ack = await alice.ok("send", channel="echo.room:1", text="hello", client_id="c1")
    assert ack["seq"] == 1
    received = await bob.expect(lambda f: f.get("op") == "msg")
    assert (received["seq"], received["text"], received["user_id"]) == (1, "hello", ALICE)
    again = await alice.ok("send", channel="echo.room:1", text="hello", client_id="c1")
    assert (again["seq"], again["duplicate"]) == (1, True)
    await alice.ok("send", channel="echo.room:1", text="second")
    late = await connected(echo_gateway, secret, BOB)
    resumed = await late.ok("join", channel="echo.room:1", since=1)
    assert resumed["replayed"] == 1
    assert (await late.expect(lambda f: f.get("op") == "msg"))["text"] == "second"
    history = await alice.ok("history", channel="echo.room:1")
    assert [m["seq"] for m in history["messages"]] == [1, 2]
    for client in (alice, bob, late):
        await client.close()


async def test_a_user_outside_the_room_cannot_join_it(
    echo_gateway: GatewayProcess, secret: str
) -> None:
    carol = await connected(echo_gateway, secret, CAROL)
    refusal = await carol.call("join", channel="echo.room:1")
    assert refusal["op"] == "error" and refusal["code"] == "forbidden"
    await carol.close()


async def test_an_analyst_token_reaches_nothing_of_the_echo_realm(
    echo_gateway: GatewayProcess, secret: str, analyst_user: uuid.UUID
) -> None:
    trader = await connected(echo_gateway, secret, str(analyst_user), realm="analyst")
    for channel in ("echo.room:1", "echo.user:1"):
        refusal = await trader.call("join", channel=channel)
        assert (refusal["op"], refusal["code"]) == ("error", "forbidden"), channel
        assert "realm" in refusal["message"]
    refusal = await trader.call("send", channel="echo.room:1", text="hi")
    assert refusal["code"] == "forbidden"
    await trader.close()


async def test_an_echo_token_reaches_nothing_of_the_analyst_realm(
    echo_gateway: GatewayProcess, secret: str, analyst_user: uuid.UUID
) -> None:
    alice = await connected(echo_gateway, secret, ALICE)
    for channel in (f"community:{uuid.uuid4()}", f"user:{analyst_user}"):
        refusal = await alice.call("join", channel=channel)
        assert (refusal["op"], refusal["code"]) == ("error", "forbidden"), channel
    await alice.close()


@pytest.mark.parametrize(
    ("realm", "subject"),
    [("nowhere", ALICE), ("echo", "not-a-number"), ("echo", "0"), ("echo", str(2**70))],
    ids=["unserved_realm", "non_numeric_id", "zero_id", "huge_id"],
)
async def test_a_token_of_an_unserved_realm_or_a_bad_subject_is_unauthorized(
    echo_gateway: GatewayProcess, secret: str, realm: str, subject: str
) -> None:
    client = await WsClient.open(echo_gateway.url, token(secret, subject, realm))
    refusal = await client.expect("error")
    assert refusal["code"] == "unauthorized"
    assert await client.closed() == 4001


# --- api --------------------------------------------------------------------------------------


@pytest.fixture
async def echo_api(echo_dsn: str, secret: str, aiohttp_client: Any) -> AsyncIterator[Any]:
    settings = load_settings({"DATABASE_URL": echo_dsn, "SWITCHBOARD_SECRET": secret})
    realms = enabled_realms({"SWITCHBOARD_REALMS": ECHO})
    client = await aiohttp_client(create_app(settings, realms=realms))
    yield client
    await client.close()


def bearer(secret: str, user: str | uuid.UUID, realm: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(secret, user, realm)}"}


async def test_the_echo_route_is_served_under_its_realm_prefix(echo_api: Any, secret: str) -> None:
    response = await echo_api.get("/v1/echo/rooms", headers=bearer(secret, ALICE, "echo"))
    assert response.status == 200
    assert await response.json() == [{"id": 1, "title": "lobby"}]
    carol = await echo_api.get("/v1/echo/rooms", headers=bearer(secret, CAROL, "echo"))
    assert await carol.json() == []
    document = await (await echo_api.get("/openapi.json")).json()
    assert "get" in document["paths"]["/v1/echo/rooms"]
    assert "/v1/rooms" not in document["paths"]  # only the analyst realm keeps old paths


async def test_rest_refuses_tokens_across_realms(
    echo_api: Any, secret: str, analyst_user: uuid.UUID
) -> None:
    analyst_on_echo = await echo_api.get(
        "/v1/echo/rooms", headers=bearer(secret, analyst_user, "analyst")
    )
    assert analyst_on_echo.status == 403
    assert (await analyst_on_echo.json())["error"]["code"] == "forbidden"
    echo_on_analyst = await echo_api.get("/v1/analyst/me", headers=bearer(secret, ALICE, "echo"))
    assert echo_on_analyst.status == 403
    unserved = await echo_api.get("/v1/echo/rooms", headers=bearer(secret, ALICE, "nowhere"))
    assert unserved.status == 401
    assert "nowhere" in (await unserved.json())["error"]["message"]
    unknown_realm_path = await echo_api.get(
        "/v1/nowhere/rooms", headers=bearer(secret, ALICE, "echo")
    )
    assert unknown_realm_path.status == 404


async def test_the_analyst_paths_answer_with_and_without_the_realm_prefix(
    echo_api: Any, secret: str, analyst_user: uuid.UUID
) -> None:
    headers = bearer(secret, analyst_user, "analyst")
    prefixed = await echo_api.get("/v1/analyst/me", headers=headers)
    legacy = await echo_api.get("/v1/me", headers=headers)
    assert prefixed.status == legacy.status == 200
    assert await prefixed.json() == await legacy.json()


async def test_admins_see_the_jobs_of_their_own_realm_only(
    echo_api: Any, echo_dsn: str, secret: str
) -> None:
    conn = await connect(echo_dsn)
    try:
        await conn.execute("UPDATE echo.users SET is_staff = true WHERE id = 1")
        analyst_admin = await make_user(conn, user_type="admin")
    finally:
        await conn.close()
    echo_jobs = await (
        await echo_api.get("/v1/admin/jobs", headers=bearer(secret, ALICE, "echo"))
    ).json()
    assert [job["name"] for job in echo_jobs] == ["echo_purge"]
    analyst_jobs = await (
        await echo_api.get("/v1/admin/jobs", headers=bearer(secret, analyst_admin, "analyst"))
    ).json()
    assert "echo_purge" not in {job["name"] for job in analyst_jobs}
    assert "expire_subscriptions" in {job["name"] for job in analyst_jobs}


# --- workers ----------------------------------------------------------------------------------


def test_the_worker_lists_the_echo_job_when_the_realm_is_enabled() -> None:
    env = {**os.environ, "SWITCHBOARD_REALMS": ECHO}
    listed = subprocess.run(
        [sys.executable, "-m", "workers", "jobs"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert "echo_purge" in listed.stdout
    assert "expire_subscriptions" in listed.stdout
    without = subprocess.run(
        [sys.executable, "-m", "workers", "jobs"],
        cwd=ROOT,
        env={**os.environ, "SWITCHBOARD_REALMS": "analyst"},
        capture_output=True,
        text=True,
    )
    assert "echo_purge" not in without.stdout


async def test_the_echo_job_runs_on_its_own_schema(echo_dsn: str) -> None:
    now = datetime(2031, 5, 1, 3, 0, tzinfo=UTC)
    pool = await create_pool(echo_dsn, min_size=1, max_size=2)
    try:
        await pool.execute(
            "INSERT INTO echo.messages (room_id, seq, user_id, body, created_at)"
            " VALUES (1, 1, 1, 'old', $1), (1, 2, 1, 'new', $2)",
            now - timedelta(days=31),
            now - timedelta(days=1),
        )
        (job,) = [
            job
            for realm, job in enabled_realms({"SWITCHBOARD_REALMS": ECHO}).jobs()
            if realm == "echo"
        ]
        record = await run_by_hand(pool, job, clock=FixedClock(now), node="test")
        assert (record.status, record.rows_touched) == ("succeeded", 1)
        assert await pool.fetchval("SELECT array_agg(body) FROM echo.messages") == ["new"]
    finally:
        await pool.close()


# --- the processes know no realm ----------------------------------------------------------------


def test_no_process_package_names_the_echo_realm() -> None:
    for package in ("gateway", "api", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            assert not re.search(r"\becho\b", text), f"{path} mentions the echo realm"
            assert "tests." not in text, f"{path} imports from tests"
