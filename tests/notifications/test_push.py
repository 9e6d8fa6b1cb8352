"""Push over the FCM HTTP v1 stand-in: the service-account OAuth flow, what is sent, dead
tokens, every retry path and permanent failures."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from kernel.notify import notify
from tests.notifications.conftest import WorkerFactory, drain, job_rows, recipient, token_of
from tests.notifications.fakes import (
    INVALID_PAYLOAD,
    INVALID_TOKEN,
    UNREGISTERED,
    FakeClock,
    FakeFcm,
    FcmReply,
    rate_limited,
    unavailable,
)


async def _push(
    db: asyncpg.Connection, users: list[uuid.UUID], key: str = "p", **kw: object
) -> None:
    await notify(
        db,
        event_key=key,
        recipients=users,
        notification_type="new_post",
        title="Breakout",
        message="NIFTY above 22,000",
        action_url="https://app.example/p/1",
        send_email=False,
        **kw,  # type: ignore[arg-type]
    )


async def _devices(db: asyncpg.Connection, user: uuid.UUID) -> list[str]:
    rows = await db.fetch(
        "SELECT token FROM gateway.push_devices WHERE user_id = $1::uuid::text", user
    )
    return sorted(r["token"] for r in rows)


async def test_push_reaches_fcm_and_is_written_back(
    db: asyncpg.Connection, fcm: FakeFcm, make_worker: WorkerFactory
) -> None:
    user = await recipient(db, devices=1)
    await _push(db, [user], priority="urgent")
    assert await drain(make_worker()) == 1
    assert fcm.tokens_issued == 1  # google-auth's service-account flow, against our token_uri
    assert fcm.auth_headers == ["Bearer ya29.fake-1"]
    [message] = fcm.sent
    nid = await db.fetchval("SELECT id FROM analyst.notifications")
    assert message["token"] == token_of(user)
    assert message["notification"] == {"title": "Breakout", "body": "NIFTY above 22,000"}
    assert message["data"] == {
        "notification_id": str(nid),
        "notification_type": "new_post",
        "priority": "urgent",
        "action_url": "https://app.example/p/1",
    }
    assert message["android"] == {"priority": "high", "collapse_key": str(nid)}
    assert message["apns"]["headers"]["apns-collapse-id"] == str(nid)
    [job] = await job_rows(db)
    assert job["status"] == "sent" and job["attempts"] == 1
    assert job["provider_message_id"] == f"projects/{FakeFcm.PROJECT}/messages/1"
    row = await db.fetchrow("SELECT * FROM analyst.notifications")
    assert row["push_sent"] is True and row["push_sent_at"] == job["sent_at"]


async def test_every_device_of_the_user_gets_the_push(
    db: asyncpg.Connection, fcm: FakeFcm, make_worker: WorkerFactory
) -> None:
    user = await recipient(db, devices=3)
    await _push(db, [user])
    await drain(make_worker())
    assert sorted(m["token"] for m in fcm.sent) == await _devices(db, user)
    [job] = await job_rows(db)
    assert job["status"] == "sent" and len(job["sent_device_ids"]) == 3


async def test_unregistered_token_is_deleted(
    db: asyncpg.Connection, fcm: FakeFcm, make_worker: WorkerFactory
) -> None:
    user = await recipient(db, devices=2)
    fcm.reply(token_of(user, 0), UNREGISTERED)
    await _push(db, [user])
    await drain(make_worker())
    assert await _devices(db, user) == [token_of(user, 1)]
    [job] = await job_rows(db)
    assert job["status"] == "sent"  # the other device got it


async def test_invalid_token_is_deleted_and_a_user_with_only_dead_tokens_is_skipped(
    db: asyncpg.Connection, fcm: FakeFcm, make_worker: WorkerFactory
) -> None:
    user = await recipient(db, devices=1)
    fcm.reply(token_of(user), INVALID_TOKEN)
    await _push(db, [user], send_in_app=False)
    await drain(make_worker())
    assert await _devices(db, user) == []
    [job] = await job_rows(db)
    assert job["status"] == "skipped" and "dead" in job["last_error"]
    row = await db.fetchrow("SELECT status, push_sent FROM analyst.notifications")
    assert (row["status"], row["push_sent"]) == ("failed", False)  # reached nobody


async def test_invalid_payload_fails_the_job_and_keeps_the_token(
    db: asyncpg.Connection, fcm: FakeFcm, make_worker: WorkerFactory
) -> None:
    user = await recipient(db, devices=1)
    fcm.reply(token_of(user), INVALID_PAYLOAD)
    await _push(db, [user])
    await drain(make_worker())
    assert await _devices(db, user) == [token_of(user)]
    [job] = await job_rows(db)
    assert job["status"] == "failed" and "Invalid JSON payload" in job["last_error"]
    assert job["attempts"] == 1  # permanent: not retried


async def test_a_429_naming_no_device_is_retried_after_retry_after_and_pauses_the_project(
    db: asyncpg.Connection, fcm: FakeFcm, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    first = await recipient(db, devices=1)
    fcm.reply(token_of(first), rate_limited(120))  # QUOTA_EXCEEDED, no device named
    await _push(db, [first], key="one")
    worker = make_worker(batch_size=1)
    assert await worker.run_once() == 1
    [job] = await job_rows(db)
    assert job["status"] == "pending" and "429" in job["last_error"]
    assert job["next_attempt_at"] >= clock() + dt.timedelta(seconds=120)
    assert len(fcm.requests) == 1  # pyfcm did not sleep and POST again
    # while FCM asked the project to wait, no push is claimed: no request, no attempt
    second = await recipient(db, devices=1)
    await _push(db, [second], key="two")
    clock.advance(30)
    assert await worker.run_once() == 0
    held = (await job_rows(db))[1]
    assert held["status"] == "pending" and held["attempts"] == 0
    assert len(fcm.requests) == 1
    clock.advance(200)
    await drain(worker)
    assert sorted(m["token"] for m in fcm.sent) == sorted([token_of(first), token_of(second)])
    assert [j["attempts"] for j in await job_rows(db)] == [2, 1]


async def test_503_is_retried_with_backoff_until_it_succeeds(
    db: asyncpg.Connection, fcm: FakeFcm, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    user = await recipient(db, devices=1)
    fcm.reply(token_of(user), unavailable(), unavailable(retry_after=40))
    await _push(db, [user])
    worker = make_worker()
    await worker.run_once()
    [job] = await job_rows(db)
    wait = (job["next_attempt_at"] - clock()).total_seconds()
    assert 7.5 <= wait <= 15  # base 15 s with jitter
    assert len(fcm.requests) == 1  # no retry inside the adapter
    assert await worker.run_once() == 0  # not due yet
    clock.advance(wait)
    await worker.run_once()
    [job] = await job_rows(db)
    assert (job["next_attempt_at"] - clock()).total_seconds() >= 40  # Retry-After floor
    clock.advance(41)
    await worker.run_once()
    [job] = await job_rows(db)
    assert job["status"] == "sent" and job["attempts"] == 3 and len(fcm.sent) == 1


async def test_a_retry_resends_only_to_devices_that_did_not_get_it(
    db: asyncpg.Connection, fcm: FakeFcm, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    user = await recipient(db, devices=2)
    fcm.reply(token_of(user, 1), unavailable())
    await _push(db, [user])
    worker = make_worker()
    await worker.run_once()
    clock.advance(3600)
    await worker.run_once()
    assert sorted(m["token"] for m in fcm.sent) == [token_of(user, 0), token_of(user, 1)]
    assert [r["token"] for r in fcm.requests].count(token_of(user, 0)) == 1


async def test_push_gives_up_after_the_last_attempt_with_the_reason(
    db: asyncpg.Connection, fcm: FakeFcm, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    user = await recipient(db, devices=1)
    fcm.reply(token_of(user), *[unavailable()] * 8)
    await _push(db, [user], send_in_app=False)
    worker = make_worker()
    for _ in range(8):
        await worker.run_once()
        clock.advance(3600)
    [job] = await job_rows(db)
    assert job["status"] == "failed" and job["attempts"] == 8
    assert job["last_error"].startswith("gave up after 8 attempts: ")
    assert await db.fetchval("SELECT status FROM analyst.notifications") == "failed"


async def test_a_reply_slower_than_the_deadline_is_retried(
    db: asyncpg.Connection, fcm: FakeFcm, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    user = await recipient(db, devices=1)
    fcm.reply(token_of(user), FcmReply(hang=True))
    await _push(db, [user])
    worker = make_worker(push_deadline_s=0.3)
    await worker.run_once()
    [job] = await job_rows(db)
    assert job["status"] == "pending" and "Timeout" in job["last_error"]
    clock.advance(3600)
    await worker.run_once()
    assert [j["status"] for j in await job_rows(db)] == ["sent"]


async def test_a_push_already_read_in_app_is_not_sent(
    db: asyncpg.Connection, fcm: FakeFcm, make_worker: WorkerFactory
) -> None:
    user = await recipient(db, devices=1)
    await _push(db, [user])
    await db.execute("UPDATE analyst.notifications SET read_at = now(), status = 'read'")
    await drain(make_worker())
    assert fcm.requests == []
    [job] = await job_rows(db)
    assert job["status"] == "skipped" and "read" in job["last_error"]
