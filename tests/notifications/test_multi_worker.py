"""Several consumers share one outbox: each job is claimed and delivered exactly once, by real
worker processes against the stand-ins and by concurrent Outbox consumers on connections of
their own."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter

import asyncpg

from kernel.config import ConfigError, Settings, load_settings
from kernel.db import create_pool
from kernel.notify import notify
from tests.conftest import ROOT
from tests.notifications.conftest import job_rows, recipient, token_of
from tests.notifications.fakes import FakeClock, FakeFcm, SmtpSink
from workers.delivery.outbox import Outbox, Sent


class WorkerProcess:
    """`python -m tests.notifications.worker_process`, its stderr read as it comes (so a
    chatty log never blocks it); `started` is set when delivery has started."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.started = asyncio.Event()
        self.lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.notifications.worker_process",
            cwd=ROOT,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self.lines.append(text)
            if "event=delivery_started" in text:
                self.started.set()

    async def stop(self) -> int:
        """SIGTERM: the worker finishes the jobs in hand, writes their outcomes and exits."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            code = await self.proc.wait()
        if self._reader is not None:
            await self._reader
        return code


async def test_three_worker_processes_deliver_every_job_exactly_once(
    db: asyncpg.Connection, fcm: FakeFcm, smtp: SmtpSink, settings: Settings
) -> None:
    users = [await recipient(db, devices=1) for _ in range(120)]
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "SWITCHBOARD_SECRET": settings.secret,
        "SMTP_URL": settings.smtp_url or "",
        "MAIL_FROM": settings.mail_from,
        "PUBLIC_BASE_URL": settings.public_base_url,
        "FCM_BASE_URL": settings.fcm_base_url,
        "FCM_CREDENTIALS_FILE": settings.fcm_credentials_file or "",
        "FCM_CONCURRENCY": "4",
        "SMTP_CONNECTIONS": "2",
        "LOG_LEVEL": "INFO",
    }
    workers = [WorkerProcess(env) for _ in range(3)]
    try:
        await asyncio.gather(*(w.start() for w in workers))
        await asyncio.wait_for(asyncio.gather(*(w.started.wait() for w in workers)), 60)
        # No push is answered until 9 are waiting at once: more than two workers of 4 sends
        # each can have, so all three must be sending side by side.
        fcm.hold(9)
        await notify(db, event_key="post", recipients=users, notification_type="x", title="t")
        await fcm.wait_sent(120, timeout=120)
        await smtp.wait_messages(120, timeout=120)
    finally:
        codes = await asyncio.gather(*(w.stop() for w in workers))
    assert codes == [0, 0, 0], "\n".join(line for w in workers for line in w.lines[-20:])
    assert fcm.in_flight_max >= 9
    # exactly once at the providers ...
    assert sorted(Counter(r["token"] for r in fcm.requests).values()) == [1] * 120
    assert {r["token"] for r in fcm.requests} == {token_of(u) for u in users}
    assert sorted(Counter(m["Message-ID"] for m in smtp.messages).values()) == [1] * 120
    # ... and in the outbox: one claim each, all written back
    jobs = await job_rows(db)
    assert len(jobs) == 240
    assert {(j["status"], j["attempts"]) for j in jobs} == {("sent", 1)}
    pids = {w.proc.pid for w in workers if w.proc is not None}
    claimers = Counter(int(j["claimed_by"].split(":")[1]) for j in jobs if j["channel"] == "push")
    assert set(claimers) == pids


async def test_concurrent_consumers_on_their_own_connections_claim_each_job_once(
    db: asyncpg.Connection, dsn: str, clock: FakeClock
) -> None:
    users = [await recipient(db, devices=1) for _ in range(100)]
    await notify(db, event_key="post", recipients=users, notification_type="x", title="t")
    pools = [await create_pool(dsn, min_size=1, max_size=1) for _ in range(4)]
    claimed: dict[str, list[int]] = {}

    async def consume(name: str, pool: asyncpg.Pool) -> None:
        outbox = Outbox(pool, name)
        mine = claimed.setdefault(name, [])
        while jobs := await outbox.claim(clock(), 12, {"push": 7, "email": 5}):
            mine += [job.id for job in jobs]
            for job in jobs:
                assert await outbox.finish(job, Sent(f"{name}-{job.id}"), clock()) == "sent"

    try:
        await asyncio.gather(*(consume(f"c{i}", p) for i, p in enumerate(pools)))
    finally:
        await asyncio.gather(*(p.close() for p in pools))
    every = [job for jobs in claimed.values() for job in jobs]
    assert len(every) == len(set(every)) == 200
    rows = await job_rows(db)
    assert {(r["status"], r["attempts"]) for r in rows} == {("sent", 1)}
    for row in rows:  # written by the consumer that claimed it
        assert row["provider_message_id"] == f"{row['claimed_by']}-{row['id']}"
        assert row["id"] in claimed[row["claimed_by"]]


def test_delivery_concurrency_comes_from_the_environment() -> None:
    base = {"DATABASE_URL": "postgresql://x/y", "SWITCHBOARD_SECRET": "s" * 40}
    defaults = load_settings(base)
    assert (defaults.fcm_concurrency, defaults.smtp_connections) == (32, 16)
    tuned = load_settings({**base, "FCM_CONCURRENCY": "64", "SMTP_CONNECTIONS": "4"})
    assert (tuned.fcm_concurrency, tuned.smtp_connections) == (64, 4)
    for bad in ({"FCM_CONCURRENCY": "0"}, {"SMTP_CONNECTIONS": "5000"}, {"FCM_CONCURRENCY": "x"}):
        try:
            load_settings({**base, **bad})
        except ConfigError as exc:
            assert next(iter(bad)) in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")
