"""Retries in due order: a retry is claimed at its due time like any job, so it goes after the
jobs that were due before it and before every job due after it (fresh or not), in a claim of
any size and in a busy worker's loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg

from kernel.notify import notify
from tests.notifications.conftest import WorkerFactory, job_rows, recipient
from tests.notifications.fakes import FakeClock, SmtpSink
from workers.delivery.outbox import Outbox


async def _mail(db: asyncpg.Connection, users: list[uuid.UUID], key: str) -> list[int]:
    """One e-mail job per user; returns the new jobs' ids in the users' order."""
    await notify(
        db,
        event_key=key,
        recipients=users,
        notification_type="new_post",
        title=key,
        send_push=False,
    )
    rows = await db.fetch(
        """SELECT d.id, d.user_id::uuid AS user_id FROM gateway.notification_deliveries d
             JOIN analyst.notifications n ON n.id = d.notification_id
            WHERE n.idempotency_key LIKE $1 || ':%'""",
        key,
    )
    by_user = {r["user_id"]: r["id"] for r in rows}
    return [by_user[u] for u in users]


async def _due(db: asyncpg.Connection, job: int) -> dt.datetime:
    due: dt.datetime = await db.fetchval(
        "SELECT next_attempt_at FROM gateway.notification_deliveries WHERE id = $1", job
    )
    return due


async def test_a_failed_job_is_claimed_again_at_its_due_time_between_older_and_newer_jobs(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpSink,
    make_worker: WorkerFactory,
    clock: FakeClock,
) -> None:
    [first] = await _mail(db, [await recipient(db)], "first")
    smtp.data_replies.append("451 4.3.0 Temporary local problem")
    worker = make_worker(batch_size=1)
    assert await worker.run_once() == 1  # `first` fails and is due again in 7.5-15 s
    retry_due = await _due(db, first)
    assert retry_due > clock()
    # Jobs queued while it waits: some due before its retry, some after.
    earlier = await _mail(db, [await recipient(db) for _ in range(3)], "earlier")
    later = await _mail(db, [await recipient(db) for _ in range(3)], "later")
    for offset, job in enumerate(earlier):
        await db.execute(
            "UPDATE gateway.notification_deliveries SET next_attempt_at = $2 WHERE id = $1",
            job,
            retry_due - dt.timedelta(seconds=3 - offset),
        )
    for offset, job in enumerate(later):
        await db.execute(
            "UPDATE gateway.notification_deliveries SET next_attempt_at = $2 WHERE id = $1",
            job,
            retry_due + dt.timedelta(seconds=1 + offset),
        )
    clock.set(retry_due + dt.timedelta(seconds=10))  # every job is due now
    outbox = Outbox(pool, "probe")
    order = []
    while claimed := await outbox.claim(clock(), 1):
        order += [job.id for job in claimed]
    assert order == [*earlier, first, *later]


async def test_one_claim_lists_due_jobs_by_due_time_then_id_across_channels(
    db: asyncpg.Connection, pool: asyncpg.Pool, clock: FakeClock
) -> None:
    user = await recipient(db, devices=1)
    await notify(db, event_key="a", recipients=[user], notification_type="x", title="a")
    await notify(db, event_key="b", recipients=[user], notification_type="x", title="b")
    jobs = await job_rows(db)  # a/push, a/email, b/push, b/email by id
    assert len(jobs) == 4
    base = clock() - dt.timedelta(minutes=1)
    dues = [base + dt.timedelta(seconds=s) for s in (30, 10, 10, 20)]
    for job, due in zip(jobs, dues, strict=True):
        await db.execute(
            "UPDATE gateway.notification_deliveries SET next_attempt_at = $2 WHERE id = $1",
            job["id"],
            due,
        )
    claimed = await Outbox(pool, "w").claim(clock(), 10)
    expected = sorted(zip(dues, [j["id"] for j in jobs], strict=True))
    assert [job.id for job in claimed] == [job_id for _, job_id in expected]
    assert [job.due_at for job in claimed] == [due for due, _ in expected]


async def test_a_busy_worker_sends_a_due_retry_before_jobs_due_after_it(
    db: asyncpg.Connection,
    smtp: SmtpSink,
    make_worker: WorkerFactory,
    clock: FakeClock,
    dsn: str,
) -> None:
    """The running loop (one SMTP connection, so one send at a time, in the order it claims):
    a backlog due before the retry goes first, then the retry, then what was queued after it
    fell due - nothing claimed earlier and held in memory gets ahead of it."""
    backlog_users = [await recipient(db) for _ in range(8)]
    retry_user = await recipient(db)
    later_users = [await recipient(db) for _ in range(8)]
    # Created in an order unlike their due order (ids must not decide).
    later = await _mail(db, later_users, "later")
    backlog = await _mail(db, backlog_users, "backlog")
    [retried] = await _mail(db, [retry_user], "retried")
    now = clock()
    # The retried job failed once and falls due after the backlog, before the later jobs.
    await db.execute(
        """UPDATE gateway.notification_deliveries
              SET attempts = 1, last_error = 'SMTP 451 earlier', next_attempt_at = $2
            WHERE id = $1""",
        retried,
        now - dt.timedelta(seconds=20),
    )
    for job in backlog:
        await db.execute(
            "UPDATE gateway.notification_deliveries SET next_attempt_at = $2 WHERE id = $1",
            job,
            now - dt.timedelta(seconds=30),
        )
    for job in later:
        await db.execute(
            "UPDATE gateway.notification_deliveries SET next_attempt_at = $2 WHERE id = $1",
            job,
            now - dt.timedelta(seconds=10),
        )
    worker = make_worker(smtp_connections=1)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop, dsn))
    try:
        await smtp.wait_messages(17, timeout=30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    addresses = {r["id"]: r["email"] for r in await db.fetch("SELECT id, email FROM analyst.users")}
    # jobs due at the same time go by id
    in_order = [
        *(user for _, user in sorted(zip(backlog, backlog_users, strict=True))),
        retry_user,
        *(user for _, user in sorted(zip(later, later_users, strict=True))),
    ]
    assert [m["To"] for m in smtp.messages] == [addresses[u] for u in in_order]
    rows = {r["id"]: r for r in await job_rows(db)}
    assert (rows[retried]["status"], rows[retried]["attempts"]) == ("sent", 2)
