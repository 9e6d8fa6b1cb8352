"""workers/jobs.py and `python -m workers`: what each declared job changes (and leaves alone),
the archive tables, and the command line (run one job by hand, list jobs, serve until SIGTERM).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from kernel.db import create_pool
from kernel.jobs import Daily, Hourly, Monthly, SystemClock, Weekly
from kernel.realms import enabled_realms
from realms.analyst.jobs import (
    ANALYZED_TABLES,
    JOBS,
    analyze_tables,
    archive_closed_tickets,
    archive_read_notifications,
    cleanup_otps,
    expire_subscriptions,
    job_named,
    recompute_monthly_revenue,
)
from tests.factories import insert_row, make_analyst, make_subscription, make_tier, make_user
from workers.scheduler import run_by_hand

ROOT = Path(__file__).resolve().parents[2]
DAY = timedelta(days=1)


class FixedClock:
    """The time the jobs read; they never sleep."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        raise AssertionError("jobs do not sleep")


async def db_now(db: asyncpg.Connection) -> datetime:
    value = await db.fetchval("SELECT now()")
    assert isinstance(value, datetime)
    return value


async def ids(db: asyncpg.Connection, table: str) -> set[uuid.UUID]:
    return {r["id"] for r in await db.fetch(f"SELECT id FROM analyst.{table}")}


def test_the_declared_jobs_and_their_schedules() -> None:
    assert {job.name: type(job.schedule) for job in JOBS} == {
        "expire_subscriptions": Daily,
        "cleanup_otps": Daily,
        "archive_read_notifications": Monthly,
        "archive_closed_tickets": Monthly,
        "recompute_monthly_revenue": Monthly,
        "analyze_tables": Weekly,
        "suspend_lapsed_subscriptions": Hourly,
        "renew_subscriptions": Hourly,
        "notify_expiring_subscriptions": Daily,
        "queue_payouts": Daily,
        "send_payouts": Hourly,
    }
    assert job_named("cleanup_otps") is JOBS[1]
    assert job_named("nope") is None
    assert all(job.summary and job.retry.attempts == 3 for job in JOBS)


# --- daily -------------------------------------------------------------------------------------


async def test_expire_touches_only_active_subscriptions_past_expires_at(
    db: asyncpg.Connection,
) -> None:
    analyst = await make_analyst(db)
    tier = await make_tier(db, analyst)
    now = await db_now(db)
    subs = {
        name: await make_subscription(db, await make_user(db), tier, status=status, expires_at=at)
        for name, status, at in [
            ("active_past", "active", now - timedelta(minutes=1)),
            ("active_future", "active", now + DAY),
            ("cancelled_past", "cancelled", now - DAY),
            ("suspended_past", "suspended", now - DAY),
            ("active_open_ended", "active", None),
        ]
    }
    assert await expire_subscriptions(db, FixedClock(now)) == 1
    rows = await db.fetch("SELECT id, status FROM analyst.subscriptions")
    status = {r["id"]: r["status"] for r in rows}
    assert {name: status[sub] for name, sub in subs.items()} == {
        "active_past": "expired",
        "active_future": "active",
        "cancelled_past": "cancelled",
        "suspended_past": "suspended",
        "active_open_ended": "active",
    }
    assert await expire_subscriptions(db, FixedClock(now)) == 0


async def test_cleanup_deletes_only_otps_expired_more_than_a_day_ago(
    db: asyncpg.Connection,
) -> None:
    now = await db_now(db)

    async def otp(expires_at: datetime) -> uuid.UUID:
        values = {"email": "a@example.com", "otp_code": "123456", "purpose": "login"}
        return await insert_row(db, "otp_verifications", {**values, "expires_at": expires_at})

    old = await otp(now - timedelta(hours=25))
    recent = await otp(now - timedelta(hours=23))
    live = await otp(now + timedelta(minutes=5))
    assert await cleanup_otps(db, FixedClock(now)) == 1
    assert await ids(db, "otp_verifications") == {recent, live}
    assert old not in await ids(db, "otp_verifications")


# --- monthly archiving -------------------------------------------------------------------------


async def columns(db: asyncpg.Connection, table: str) -> dict[str, tuple[Any, ...]]:
    rows = await db.fetch(
        "SELECT column_name, data_type, character_maximum_length, is_nullable, column_default"
        "  FROM information_schema.columns"
        " WHERE table_schema = 'analyst' AND table_name = $1",
        table,
    )
    return {r["column_name"]: tuple(r)[1:] for r in rows}


@pytest.mark.parametrize("source", ["notifications", "support_tickets"])
async def test_an_archive_has_its_sources_columns_and_archived_at(
    db: asyncpg.Connection, source: str
) -> None:
    """A migration that adds a column to a source must add it to the archive too."""
    archive = await columns(db, f"{source}_archive")
    assert archive.pop("archived_at")[:3] == ("timestamp with time zone", None, "NO")
    assert archive == await columns(db, source)


async def test_archiving_refuses_to_drop_a_column_the_archive_lacks(
    db: asyncpg.Connection,
) -> None:
    await db.execute("ALTER TABLE analyst.support_tickets ADD COLUMN mood text")
    with pytest.raises(asyncpg.RaiseError, match=r"support_tickets_archive lacks column\(s\) mood"):
        await archive_closed_tickets(db, FixedClock(await db_now(db)))


async def archive_counts(db: asyncpg.Connection, table: str) -> int:
    return int(
        await db.fetchval(
            f"SELECT (SELECT count(*) FROM analyst.{table})"
            f"     + (SELECT count(*) FROM analyst.{table}_archive)"
        )
    )


async def assert_moved_unchanged(
    db: asyncpg.Connection, table: str, before: dict[uuid.UUID, dict[str, Any]], at: datetime
) -> None:
    archived = await db.fetch(f"SELECT * FROM analyst.{table}_archive")
    for row in archived:
        values = dict(row)
        assert values.pop("archived_at") == at
        assert values == before[values["id"]]


async def test_read_notifications_older_than_30_days_move_to_the_archive(
    db: asyncpg.Connection,
) -> None:
    user = await make_user(db)
    now = await db_now(db)

    async def notification(age: timedelta, **fields: Any) -> uuid.UUID:
        values = {"user_id": user, "notification_type": "new_post", "created_at": now - age}
        return await insert_row(db, "notifications", {**values, **fields})

    moved = {
        await notification(31 * DAY, status="read", read_at=now - 30 * DAY),
        await notification(31 * DAY, status="read"),  # read, without a read_at
        await notification(400 * DAY, status="sent", read_at=now - 300 * DAY),
    }
    kept = {
        await notification(29 * DAY, status="read", read_at=now - 29 * DAY),
        await notification(90 * DAY, status="sent"),  # never read
        await notification(90 * DAY, status="pending"),
        await notification(90 * DAY, status="failed"),
    }
    before = {r["id"]: dict(r) for r in await db.fetch("SELECT * FROM analyst.notifications")}
    total = await archive_counts(db, "notifications")

    assert await archive_read_notifications(db, FixedClock(now)) == 3
    assert await ids(db, "notifications") == kept
    assert await ids(db, "notifications_archive") == moved
    assert await archive_counts(db, "notifications") == total
    await assert_moved_unchanged(db, "notifications", before, now)
    assert await archive_read_notifications(db, FixedClock(now)) == 0


async def test_tickets_closed_more_than_60_days_ago_move_to_the_archive(
    db: asyncpg.Connection,
) -> None:
    user = await make_user(db)
    now = await db_now(db)

    async def ticket(status: str, closed_ago: timedelta | None, **fields: Any) -> uuid.UUID:
        closed_at = None if closed_ago is None else now - closed_ago
        values = {"user_id": user, "subject": "help", "status": status, "closed_at": closed_at}
        return await insert_row(db, "support_tickets", {**values, **fields})

    moved = {
        await ticket("closed", 61 * DAY, created_at=now - 90 * DAY),
        await ticket("closed", 365 * DAY, attachments=[{"name": "a.png"}]),
    }
    kept = {
        await ticket("closed", 59 * DAY),
        await ticket("closed", None),  # closed, but no closed_at: no age
        await ticket("resolved", None, resolved_at=now - 100 * DAY),
        await ticket("open", None, created_at=now - 400 * DAY),
    }
    before = {r["id"]: dict(r) for r in await db.fetch("SELECT * FROM analyst.support_tickets")}
    total = await archive_counts(db, "support_tickets")

    assert await archive_closed_tickets(db, FixedClock(now)) == 2
    assert await ids(db, "support_tickets") == kept
    assert await ids(db, "support_tickets_archive") == moved
    assert await archive_counts(db, "support_tickets") == total
    await assert_moved_unchanged(db, "support_tickets", before, now)
    assert await archive_closed_tickets(db, FixedClock(now)) == 0


async def test_archiving_uses_the_clock_not_the_database_time(db: asyncpg.Connection) -> None:
    user = await make_user(db)
    now = await db_now(db)
    values = {"user_id": user, "notification_type": "new_post", "status": "read"}
    await insert_row(db, "notifications", {**values, "created_at": now - 10 * DAY})
    assert await archive_read_notifications(db, FixedClock(now)) == 0
    assert await archive_read_notifications(db, FixedClock(now + 21 * DAY)) == 1


# --- monthly revenue, weekly analyze -----------------------------------------------------------


async def test_revenue_recompute_writes_each_analysts_calculated_revenue(
    db: asyncpg.Connection,
) -> None:
    busy, idle, untouched = [await make_analyst(db) for _ in range(3)]
    tier = await make_tier(db, busy)
    await make_subscription(db, await make_user(db), tier, price_paid=99900, final_price=49900)
    await make_subscription(
        db, await make_user(db), tier, billing_cycle="yearly", price_paid=1200000
    )
    await make_subscription(db, await make_user(db), tier, status="cancelled", price_paid=99900)
    await db.execute(
        "UPDATE analyst.analyst_profiles SET monthly_revenue = 7 WHERE user_id = ANY($1)",
        [busy, idle],
    )
    now = await db_now(db)

    assert await recompute_monthly_revenue(db, FixedClock(now)) == 2  # `untouched` was right
    rows = await db.fetch(
        "SELECT user_id, monthly_revenue,"
        "       analyst.calculate_analyst_monthly_revenue(user_id) AS calculated"
        "  FROM analyst.analyst_profiles"
    )
    assert {r["user_id"]: r["monthly_revenue"] for r in rows} == {
        busy: 49900 + 100000,
        idle: 0,
        untouched: 0,
    }
    assert all(r["monthly_revenue"] == r["calculated"] for r in rows)
    assert await recompute_monthly_revenue(db, FixedClock(now)) == 0


async def test_analyze_refreshes_statistics_of_the_busiest_tables(db: asyncpg.Connection) -> None:
    assert await analyze_tables(db, FixedClock(await db_now(db))) == len(ANALYZED_TABLES)
    rows = await db.fetch(
        "SELECT schemaname || '.' || relname AS name, last_analyze FROM pg_stat_user_tables"
    )
    analyzed = {r["name"] for r in rows if r["last_analyze"] is not None}
    assert set(ANALYZED_TABLES) <= analyzed


async def test_every_declared_job_runs_through_the_scheduler(
    dsn: str, db: asyncpg.Connection
) -> None:
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        records = [await run_by_hand(pool, job, clock=SystemClock(), node="t") for job in JOBS]
    finally:
        await pool.close()
    assert [(r.job, r.status, r.error) for r in records] == [
        (job.name, "succeeded", None) for job in JOBS
    ]


# --- the command line --------------------------------------------------------------------------


async def workers_command(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# The analyst realm's catalogue (JOBS) is what these tests pin; other realms' jobs have theirs.
ANALYST_ONLY = {"SWITCHBOARD_REALMS": "analyst"}


def worker_env(dsn: str, secret: str) -> dict[str, str]:
    return {**os.environ, **ANALYST_ONLY, "DATABASE_URL": dsn, "SWITCHBOARD_SECRET": secret}


async def test_run_by_hand_prints_the_rows_touched(
    dsn: str, db: asyncpg.Connection, secret: str
) -> None:
    tier = await make_tier(db, await make_analyst(db))
    now = await db_now(db)
    for _ in range(2):
        await make_subscription(db, await make_user(db), tier, expires_at=now - DAY)

    code, out, err = await workers_command(
        "run", "expire_subscriptions", env=worker_env(dsn, secret)
    )
    assert code == 0, err
    assert out.startswith("expire_subscriptions: 2 rows touched (run ")
    run = await db.fetchrow("SELECT * FROM gateway.job_runs")
    assert (run["job"], run["manual"], run["status"], run["rows_touched"]) == (
        "expire_subscriptions",
        True,
        "succeeded",
        2,
    )


async def test_run_of_an_unknown_job_fails_and_lists_the_jobs(dsn: str, secret: str) -> None:
    code, out, err = await workers_command("run", "expire_everything", env=worker_env(dsn, secret))
    assert code != 0 and out == ""
    assert "unknown job 'expire_everything'" in err
    assert all(job.name in err for job in JOBS)


async def test_jobs_lists_each_job_with_its_next_time() -> None:
    code, out, _ = await workers_command("jobs", env={**os.environ, **ANALYST_ONLY})
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == [job.name for job in JOBS]
    assert all(" next 20" in line and "UTC" in line for line in lines)


async def test_the_worker_catches_up_on_start_and_stops_on_sigterm(
    dsn: str, db: asyncpg.Connection, secret: str
) -> None:
    # every realm's jobs (the default SWITCHBOARD_REALMS), each run once on a fresh database
    every_job = {job.name for _, job in enabled_realms({}).jobs()}
    assert {job.name for job in JOBS} < every_job
    env = {**worker_env(dsn, secret), "LOG_FORMAT": "kv"}
    del env["SWITCHBOARD_REALMS"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers",
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    finished: set[str] = set()
    try:
        async with asyncio.timeout(60):
            # A fresh database has no runs: each job's latest time is run once, at start.
            while len(finished) < len(every_job):
                line = (await proc.stderr.readline()).decode()
                assert line, "the worker exited early"
                if "event=job_succeeded" in line:
                    finished.add(line.split("job=")[1].split()[0])
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await proc.communicate()
    assert proc.returncode == 0
    assert finished == every_job
    statuses = await db.fetch("SELECT DISTINCT status FROM gateway.job_runs")
    assert [r["status"] for r in statuses] == ["succeeded"]
