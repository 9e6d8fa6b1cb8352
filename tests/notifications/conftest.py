"""Fixtures for notification tests: a pool on this test's database, the FCM and SMTP stand-ins,
a settable clock, settings pointing at all of them, and workers built like production's."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from kernel.config import Settings
from kernel.db import create_pool
from kernel.notify import register_device
from tests.factories import make_user
from tests.gateway.conftest import connect_as, gw, start_gateway  # noqa: F401  (fixtures)
from tests.notifications.fakes import FakeClock, FakeFcm, SmtpSink
from workers.delivery import build_senders, close_senders
from workers.delivery.outbox import Clock, Outbox, RetryPolicy
from workers.delivery.push import PushSender
from workers.delivery.worker import DeliveryWorker

PUBLIC_BASE = "https://switchboard.example"


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(dsn, min_size=1, max_size=8)
    yield p
    await p.close()


@pytest.fixture
async def fcm(tmp_path: Path) -> AsyncIterator[FakeFcm]:
    server = FakeFcm(tmp_path)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    await sink.start()
    yield sink
    await sink.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(dsn: str, secret: str, fcm: FakeFcm, smtp: SmtpSink) -> Settings:
    return Settings(
        database_url=dsn,
        secret=secret,
        smtp_url=smtp.url,
        mail_from="Switchboard <notify@switchboard.example>",
        public_base_url=PUBLIC_BASE,
        fcm_base_url=fcm.fcm_base_url,
        fcm_credentials_file=fcm.credentials_file,
        fcm_project_id="ignored-the-file-wins",
    )


WorkerFactory = Callable[..., DeliveryWorker]


@pytest.fixture
async def make_worker(
    pool: asyncpg.Pool, settings: Settings, clock: FakeClock
) -> AsyncIterator[WorkerFactory]:
    """Build a DeliveryWorker with the real senders, the fake clock and a seeded policy."""
    built: list[DeliveryWorker] = []

    def make(
        name: str = "w1",
        *,
        lease_s: float = 60.0,
        push_deadline_s: float | None = None,
        clock: Clock = clock,
        policy: RetryPolicy | None = None,
        fcm_concurrency: int | None = None,
        smtp_connections: int | None = None,
        **kw: Any,
    ) -> DeliveryWorker:
        configured = settings
        if fcm_concurrency is not None:
            configured = msgspec.structs.replace(configured, fcm_concurrency=fcm_concurrency)
        if smtp_connections is not None:
            configured = msgspec.structs.replace(configured, smtp_connections=smtp_connections)
        senders = build_senders(pool, configured)
        push = senders["push"]
        assert isinstance(push, PushSender)
        if push_deadline_s is not None:
            push.deadline_s = push_deadline_s
        policy = policy or RetryPolicy(rng=random.Random(7))
        worker = DeliveryWorker(
            Outbox(pool, name, lease_s=lease_s, policy=policy), senders, clock=clock, **kw
        )
        built.append(worker)
        return worker

    yield make
    for worker in built:
        await close_senders(worker.senders)


async def drain(worker: DeliveryWorker, rounds: int = 20) -> int:
    """Run batches until nothing is due at the worker's clock; returns jobs handled."""
    total = 0
    for _ in range(rounds):
        n = await worker.run_once()
        if n == 0:
            return total
        total += n
    raise AssertionError("the outbox did not drain")


async def recipient(
    db: asyncpg.Connection,
    *,
    verified: bool = True,
    devices: int = 0,
    **fields: Any,
) -> uuid.UUID:
    """A user who can be e-mailed (verified address) and has `devices` push tokens
    ('tok-<user>-<n>')."""
    user = await make_user(db, email_verified=verified, **fields)
    for n in range(devices):
        await register_device(db, user, f"tok-{user}-{n}", "android", "1.0")
    return user


def token_of(user: uuid.UUID, n: int = 0) -> str:
    return f"tok-{user}-{n}"


async def job_rows(db: asyncpg.Connection, channel: str | None = None) -> list[dict[str, Any]]:
    """The outbox's jobs, with user_id as the analyst realm's UUID (the table keeps it as text)."""
    rows = await db.fetch(
        """SELECT * FROM gateway.notification_deliveries
            WHERE $1::text IS NULL OR channel = $1 ORDER BY id""",
        channel,
    )
    return [{**dict(r), "user_id": uuid.UUID(r["user_id"])} for r in rows]
