"""The outbox: the retry policy, claiming without overlap, leases (a worker that dies leaves
its jobs to the next after the lease), the LISTEN wake-up, and the production entry point."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import signal
import sys
import uuid

import asyncpg

from kernel.config import Settings
from kernel.notify import notify
from tests.conftest import ROOT
from tests.notifications.conftest import WorkerFactory, drain, job_rows, recipient
from tests.notifications.fakes import FakeClock, FakeFcm, SmtpSink
from workers.delivery import run_delivery
from workers.delivery.outbox import Outbox, RetryPolicy, Sent, system_clock
from workers.delivery.worker import DeliveryWorker


async def _email_only(db: asyncpg.Connection, users: list[uuid.UUID], key: str = "o") -> None:
    await notify(
        db,
        event_key=key,
        recipients=users,
        notification_type="new_post",
        title="t",
        send_push=False,
    )


def test_backoff_grows_with_jitter_up_to_the_cap_and_never_undercuts_retry_after() -> None:
    policy = RetryPolicy(rng=random.Random(1))
    for attempt, full in [(1, 15), (2, 30), (3, 60), (4, 120), (7, 900), (20, 900)]:
        delays = [policy.delay_s(attempt) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays), (attempt, min(delays), max(delays))
        assert max(delays) - min(delays) > full / 4  # jitter spreads a thundering herd
    assert policy.delay_s(1, retry_after_s=120) == 120
    assert policy.delay_s(8, retry_after_s=1) >= 450
    total = sum(RetryPolicy(jitter=0).delay_s(n) for n in range(1, 8))
    assert 25 * 60 <= total <= 35 * 60  # 8 attempts span about half an hour


async def test_concurrent_claims_never_overlap(
    db: asyncpg.Connection, pool: asyncpg.Pool, clock: FakeClock
) -> None:
    users = [await recipient(db) for _ in range(60)]
    await _email_only(db, users)
    outboxes = [Outbox(pool, f"w{i}") for i in range(4)]
    now = clock()
    claimed: list[int] = []
    while True:
        batches = await asyncio.gather(*(o.claim(now, 7) for o in outboxes))
        if not any(batches):
            break
        claimed += [job.id for batch in batches for job in batch]
    assert len(claimed) == len(set(claimed)) == 60


async def test_two_workers_racing_deliver_each_job_once(
    db: asyncpg.Connection, smtp: SmtpSink, make_worker: WorkerFactory
) -> None:
    users = [await recipient(db) for _ in range(80)]
    await _email_only(db, users)
    first, second = make_worker("w1", batch_size=10), make_worker("w2", batch_size=10)
    done = await asyncio.gather(drain(first), drain(second))
    assert sum(done) == 80 and all(done)  # both took part
    ids = [m["Message-ID"] for m in smtp.messages]
    assert len(ids) == len(set(ids)) == 80
    jobs = await job_rows(db)
    assert {(j["status"], j["attempts"]) for j in jobs} == {("sent", 1)}
    assert {j["claimed_by"] for j in jobs} == {"w1", "w2"}


async def test_a_claim_whose_lease_expires_is_delivered_by_another_worker(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpSink,
    make_worker: WorkerFactory,
    clock: FakeClock,
) -> None:
    user = await recipient(db)
    await _email_only(db, [user])
    dead = Outbox(pool, "dead", lease_s=60)
    [job] = await dead.claim(clock(), 10)  # ... and never finishes it
    survivor = make_worker("survivor")
    clock.advance(59)
    assert await survivor.run_once() == 0  # the lease still holds
    clock.advance(1)
    assert await survivor.run_once() == 1
    [row] = await job_rows(db)
    assert (row["status"], row["attempts"], row["claimed_by"]) == ("sent", 2, "survivor")
    # the dead worker's late word is ignored
    assert await dead.finish(job, Sent("late"), clock()) == ""
    assert (await job_rows(db))[0]["provider_message_id"] != "late"
    assert len(smtp.messages) == 1


async def test_a_worker_killed_mid_send_leaves_the_job_to_be_retried(
    db: asyncpg.Connection,
    smtp: SmtpSink,
    make_worker: WorkerFactory,
    clock: FakeClock,
    settings: Settings,
) -> None:
    user = await recipient(db)
    await _email_only(db, [user])
    smtp.data_replies.append("hang")  # the server takes the message and does not answer
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "SWITCHBOARD_SECRET": settings.secret,
        "SMTP_URL": settings.smtp_url or "",
        "PUBLIC_BASE_URL": settings.public_base_url,
        "LOG_LEVEL": "INFO",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.notifications.worker_process",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.wait_for(smtp.data_started.wait(), 30)
        [row] = await job_rows(db)
        assert row["status"] == "sending" and f":{proc.pid}:" in row["claimed_by"]
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = await proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert smtp.messages == []
    survivor = make_worker("survivor")
    clock.set(row["next_attempt_at"] - dt.timedelta(seconds=1))
    assert await survivor.run_once() == 0  # not before the dead worker's lease ends
    clock.set(row["next_attempt_at"])
    assert await survivor.run_once() == 1
    [row] = await job_rows(db)
    assert (row["status"], row["attempts"], row["claimed_by"]) == ("sent", 2, "survivor")
    assert len(smtp.messages) == 1


async def test_the_loop_wakes_on_notify_not_on_its_poll(
    db: asyncpg.Connection, smtp: SmtpSink, make_worker: WorkerFactory, dsn: str
) -> None:
    worker = make_worker(clock=system_clock, poll_interval_s=600)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop, dsn))
    try:
        user = await recipient(db)
        await _email_only(db, [user], key="first")
        await smtp.wait_messages(1, timeout=10)
        await _email_only(db, [user], key="second")
        await smtp.wait_messages(2, timeout=10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)  # stops promptly, finishing what it holds


async def test_a_channel_without_configuration_is_skipped_with_the_reason(
    db: asyncpg.Connection, pool: asyncpg.Pool, clock: FakeClock
) -> None:
    user = await recipient(db, devices=1)
    await notify(db, event_key="n", recipients=[user], notification_type="x", send_email=False)
    worker = DeliveryWorker(Outbox(pool, "bare"), {}, clock=clock)
    await drain(worker)
    [job] = await job_rows(db)
    assert (job["status"], job["last_error"]) == ("skipped", "push delivery is not configured")


async def test_run_delivery_delivers_every_channel_from_settings(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
    fcm: FakeFcm,
    smtp: SmtpSink,
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_delivery(pool, settings, stop))
    try:
        user = await recipient(db, devices=1)
        await notify(db, event_key="all", recipients=[user], notification_type="x", title="t")
        await smtp.wait_messages(1)
        await fcm.wait_requests(1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    row = await db.fetchrow("SELECT push_sent, email_sent FROM analyst.notifications")
    assert (row["push_sent"], row["email_sent"]) == (True, True)
