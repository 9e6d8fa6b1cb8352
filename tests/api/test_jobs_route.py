"""/v1/admin/jobs and /v1/admin/jobs/runs: the declared jobs and their runs, for admins only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from kernel.db import create_pool
from kernel.jobs import next_after
from kernel.tokens import sign_access_token
from realms.analyst.jobs import JOBS, job_named
from tests.factories import make_user
from tests.workers.test_scheduler import ManualClock, utc
from workers.scheduler import run_by_hand

PATHS = ("/v1/admin/jobs", "/v1/admin/jobs/runs")
SLOT = utc(2031, 3, 3, 0, 5)


def bearer(secret: str, user_id: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_access_token(secret, str(user_id), 'analyst', 600)}"}


async def get(
    api: TestClient, path: str, status: int, headers: dict[str, str] | None = None, **query: Any
) -> Any:
    response = await api.get(path, headers=headers, params=query)
    assert response.status == status, await response.text()
    return await response.json()


@pytest.fixture
async def admin(db: asyncpg.Connection, secret: str) -> dict[str, str]:
    return bearer(secret, await make_user(db, user_type="admin"))


async def insert_run(db: asyncpg.Connection, job: str, at: datetime, **fields: Any) -> int:
    values: dict[str, Any] = {
        "job": job,
        "scheduled_for": at,
        "status": "succeeded",
        "node": "host:1",
        "started_at": at,
        "finished_at": at + timedelta(seconds=2),
        "rows_touched": 3,
        **fields,
    }
    columns = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    run_id = await db.fetchval(
        f"INSERT INTO gateway.job_runs ({columns}) VALUES ({params}) RETURNING id",
        *values.values(),
    )
    assert isinstance(run_id, int)
    return run_id


# --- who may look ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_anonymous_callers_get_401(api: TestClient, path: str) -> None:
    body = await get(api, path, 401)
    assert body["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("user_type", ["trader", "analyst"])
async def test_only_admins_may_look(
    api: TestClient, db: asyncpg.Connection, secret: str, path: str, user_type: str
) -> None:
    user = await make_user(db, user_type=user_type)
    body = await get(api, path, 403, bearer(secret, user))
    assert body["error"]["code"] == "forbidden"


async def test_both_routes_are_in_the_openapi_document(api: TestClient) -> None:
    document = await get(api, "/openapi.json", 200)
    for path in PATHS:
        operation = document["paths"][path]["get"]
        assert {"200", "401", "403"} <= set(operation["responses"])
        assert operation["security"] == [{"bearer": []}]


# --- the jobs --------------------------------------------------------------------------------


async def test_the_declared_jobs_with_schedule_next_time_and_latest_run(
    api: TestClient, db: asyncpg.Connection, admin: dict[str, str]
) -> None:
    older = await insert_run(db, "renew_subscriptions", SLOT - timedelta(hours=1))
    latest = await insert_run(
        db,
        "renew_subscriptions",
        SLOT,
        status="failed",
        rows_touched=None,
        attempts=2,
        error="RuntimeError: disk on fire",
        retry_at=SLOT + timedelta(minutes=20),
    )
    await insert_run(db, "retired_job", SLOT)  # runs of a job no longer declared: not listed

    before = datetime.now(UTC)
    jobs = await get(api, "/v1/admin/jobs", 200, admin)
    after = datetime.now(UTC)

    assert [j["name"] for j in jobs] == [job.name for job in JOBS]
    by_name = {j["name"]: j for j in jobs}
    for job in JOBS:
        out = by_name[job.name]
        assert out["summary"] == job.summary
        assert out["schedule_text"] == job.schedule.describe()
        assert (out["attempts"], out["timeout_s"]) == (3, 1800.0)
        next_run = datetime.fromisoformat(out["next_run_at"])
        assert next_after(job.schedule, before) <= next_run <= next_after(job.schedule, after)
    assert by_name["renew_subscriptions"]["schedule"] == {"type": "hourly", "minute": 2}
    assert by_name["suspend_lapsed_subscriptions"]["schedule"] == {"type": "hourly", "minute": 0}
    assert by_name["expire_subscriptions"]["schedule"] == {"type": "daily", "hour": 0, "minute": 5}
    assert by_name["analyze_tables"]["schedule"] == {
        "type": "weekly",
        "weekday": 6,
        "hour": 2,
        "minute": 0,
    }
    assert by_name["archive_closed_tickets"]["schedule"] == {
        "type": "monthly",
        "day": 1,
        "hour": 1,
        "minute": 30,
    }

    last = by_name["renew_subscriptions"]["last_run"]
    assert last["id"] == latest != older
    assert (last["status"], last["attempts"], last["error"], last["rows_touched"]) == (
        "failed",
        2,
        "RuntimeError: disk on fire",
        None,
    )
    assert datetime.fromisoformat(last["retry_at"]) == SLOT + timedelta(minutes=20)
    assert by_name["cleanup_otps"]["last_run"] is None


# --- the runs --------------------------------------------------------------------------------


async def test_recent_runs_newest_first_with_their_outcome(
    api: TestClient, db: asyncpg.Connection, admin: dict[str, str], dsn: str
) -> None:
    for hours in (3, 2, 1):
        await insert_run(db, "renew_subscriptions", SLOT - timedelta(hours=hours))
    await insert_run(
        db,
        "expire_subscriptions",
        SLOT,
        status="failed",
        rows_touched=None,
        attempts=3,
        error="TimeoutError: timed out after 1800 s",
        node="worker-b:42",
    )
    await insert_run(
        db,
        "analyze_tables",
        SLOT + timedelta(minutes=1),
        status="running",
        finished_at=None,
        rows_touched=None,
        retry_at=SLOT + timedelta(minutes=32),
    )
    # A real run, by hand, through the scheduler.
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        job = job_named("suspend_lapsed_subscriptions")
        assert job is not None
        clock = ManualClock(SLOT + timedelta(hours=1))
        record = await run_by_hand(pool, job, clock=clock, node="cli:7")
    finally:
        await pool.close()

    runs = await get(api, "/v1/admin/jobs/runs", 200, admin)
    assert [(r["job"], datetime.fromisoformat(r["scheduled_for"])) for r in runs] == [
        ("suspend_lapsed_subscriptions", SLOT + timedelta(hours=1)),
        ("analyze_tables", SLOT + timedelta(minutes=1)),
        ("expire_subscriptions", SLOT),
        ("renew_subscriptions", SLOT - timedelta(hours=1)),
        ("renew_subscriptions", SLOT - timedelta(hours=2)),
        ("renew_subscriptions", SLOT - timedelta(hours=3)),
    ]
    by_hand, running, failed = runs[:3]
    assert by_hand == {
        "id": record.id,
        "job": "suspend_lapsed_subscriptions",
        "scheduled_for": by_hand["scheduled_for"],
        "manual": True,
        "status": "succeeded",
        "attempts": 1,
        "node": "cli:7",
        "started_at": by_hand["started_at"],
        "finished_at": by_hand["finished_at"],
        "rows_touched": 0,
        "error": None,
        "retry_at": None,
    }
    assert datetime.fromisoformat(by_hand["started_at"]) == SLOT + timedelta(hours=1)
    assert datetime.fromisoformat(by_hand["finished_at"]) == SLOT + timedelta(hours=1)
    assert (running["status"], running["finished_at"]) == ("running", None)
    assert (failed["status"], failed["attempts"], failed["node"]) == ("failed", 3, "worker-b:42")
    assert failed["error"] == "TimeoutError: timed out after 1800 s"
    assert failed["rows_touched"] is None

    renewals = await get(api, "/v1/admin/jobs/runs", 200, admin, job="renew_subscriptions")
    assert [r["job"] for r in renewals] == ["renew_subscriptions"] * 3
    assert all(r["rows_touched"] == 3 and not r["manual"] for r in renewals)
    two = await get(api, "/v1/admin/jobs/runs", 200, admin, job="renew_subscriptions", limit=2)
    assert [r["id"] for r in two] == [r["id"] for r in renewals[:2]]
    assert await get(api, "/v1/admin/jobs/runs", 200, admin, job="cleanup_otps") == []


@pytest.mark.parametrize(
    "query",
    [{"limit": "0"}, {"limit": "1001"}, {"limit": "many"}, {"job": "Renew-Subscriptions"}],
)
async def test_bad_queries_are_400(
    api: TestClient, admin: dict[str, str], query: dict[str, str]
) -> None:
    body = await get(api, "/v1/admin/jobs/runs", 400, admin, **query)
    assert body["error"]["code"] == "bad_request"
