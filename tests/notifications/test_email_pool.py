"""E-mail over a pool of kept SMTP connections to a real aiosmtpd server: several messages at
once, connections reused (and replaced when the server dropped them), and a temporary
refusal slowing only its recipient's domain or its own connection."""

from __future__ import annotations

import uuid
from collections import deque

import asyncpg

from kernel.notify import notify
from tests.notifications.conftest import WorkerFactory, drain, job_rows, recipient
from tests.notifications.fakes import FakeClock, SmtpSink


async def _mail(db: asyncpg.Connection, users: list[uuid.UUID], key: str = "m") -> None:
    await notify(
        db,
        event_key=key,
        recipients=users,
        notification_type="new_post",
        title=key,
        send_push=False,
    )


async def _at(db: asyncpg.Connection, domain: str) -> uuid.UUID:
    return await recipient(db, email=f"{uuid.uuid4().hex[:10]}@{domain}")


async def _job_of(db: asyncpg.Connection, user: uuid.UUID) -> asyncpg.Record:
    row = await db.fetchrow(
        "SELECT * FROM gateway.notification_deliveries WHERE user_id = $1::uuid::text", user
    )
    assert row is not None
    return row


async def test_messages_go_out_on_several_kept_connections_at_once(
    db: asyncpg.Connection, smtp: SmtpSink, make_worker: WorkerFactory
) -> None:
    users = [await recipient(db) for _ in range(40)]
    await _mail(db, users)
    smtp.hold(4)  # no DATA is answered until 4 messages are in DATA at once
    worker = make_worker(smtp_connections=4)
    assert await drain(worker) == 40
    assert len(smtp.messages) == 40
    assert len({m["Message-ID"] for m in smtp.messages}) == 40
    assert smtp.in_data_max == 4  # SMTP_CONNECTIONS at once, never more
    assert smtp.sessions == 4  # 40 messages over 4 connections, each kept and reused
    assert {(j["status"], j["attempts"]) for j in await job_rows(db)} == {("sent", 1)}


async def test_a_connection_the_server_dropped_is_replaced_without_failing_a_message(
    db: asyncpg.Connection, smtp: SmtpSink, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    first, second = await recipient(db), await recipient(db)
    await _mail(db, [first], "first")
    worker = make_worker(smtp_connections=1)
    assert await drain(worker) == 1
    assert smtp.open_now == 1  # kept for the next message
    smtp.drop_connections()  # e.g. the server's idle timeout
    await _mail(db, [second], "second")
    clock.catch_up()
    assert await drain(worker) == 1
    assert len(smtp.messages) == 2 and smtp.sessions == 2
    assert {(j["status"], j["attempts"]) for j in await job_rows(db)} == {("sent", 1)}


async def test_a_domain_that_defers_is_held_while_other_domains_go_out(
    db: asyncpg.Connection, smtp: SmtpSink, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    deferred = await _at(db, "slow.example")
    same_domain = await _at(db, "slow.example")
    elsewhere = await _at(db, "fast.example")
    smtp.rcpt_replies_for["slow.example"] = deque(["451 4.7.1 Greylisted, try again later"])
    await _mail(db, [deferred], "first")  # the lowest job id: sent first
    await _mail(db, [same_domain, elsewhere], "next")
    worker = make_worker(smtp_connections=1)  # one message at a time, in claim order
    assert await worker.run_once() == 3
    refused = await _job_of(db, deferred)
    assert (refused["status"], refused["attempts"]) == ("pending", 1)
    assert refused["last_error"].startswith("SMTP 451 4.7.1")
    held = await _job_of(db, same_domain)
    assert (held["status"], held["attempts"]) == ("pending", 0)  # held: no RCPT, no attempt
    assert held["next_attempt_at"] <= refused["next_attempt_at"]
    assert (await _job_of(db, elsewhere))["status"] == "sent"
    assert [m["To"] for m in smtp.messages] == [
        await db.fetchval("SELECT email FROM analyst.users WHERE id = $1", elsewhere)
    ]
    clock.advance(3600)
    await drain(worker)
    assert {j["status"] for j in await job_rows(db)} == {"sent"}
    assert len(smtp.messages) == 3


async def test_a_busy_mailbox_retries_that_message_alone(
    db: asyncpg.Connection, smtp: SmtpSink, make_worker: WorkerFactory
) -> None:
    busy = await _at(db, "same.example")
    neighbour = await _at(db, "same.example")
    smtp.rcpt_replies_for["same.example"] = deque(["450 4.2.1 Mailbox busy, try later"])
    await _mail(db, [busy], "first")
    await _mail(db, [neighbour], "next")
    worker = make_worker(smtp_connections=1)
    assert await worker.run_once() == 2
    assert (await _job_of(db, busy))["status"] == "pending"
    assert (await _job_of(db, neighbour))["status"] == "sent"  # the domain is not deferred


async def test_a_421_closes_that_connection_and_the_next_message_opens_another(
    db: asyncpg.Connection, smtp: SmtpSink, make_worker: WorkerFactory
) -> None:
    first, second = await recipient(db), await recipient(db)
    smtp.data_replies.append("421 4.7.0 Too busy, closing connection")
    await _mail(db, [first], "first")
    await _mail(db, [second], "second")
    worker = make_worker(smtp_connections=1)
    assert await worker.run_once() == 2
    assert (await _job_of(db, first))["status"] == "pending"
    assert (await _job_of(db, second))["status"] == "sent"
    assert smtp.sessions == 2  # the refused connection was not used again
