"""What a 429 or 503 slows down: a device's quota pauses that token alone; the project's quota
(or a 503 with Retry-After) pauses every push of every worker until Retry-After has passed,
while e-mail goes on. Also: one OAuth token for every sending thread, sends in parallel."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import asyncpg

from kernel.notify import notify
from tests.notifications.conftest import WorkerFactory, drain, job_rows, recipient, token_of
from tests.notifications.fakes import (
    FakeClock,
    FakeFcm,
    FcmReply,
    SmtpSink,
    device_rate_limited,
    fcm_error,
    project_rate_limited,
    rate_limited,
    unavailable,
)
from workers.delivery.push import quota_scope


async def _push(db: asyncpg.Connection, users: list[uuid.UUID], key: str, **kw: object) -> None:
    await notify(
        db,
        event_key=key,
        recipients=users,
        notification_type="new_post",
        title=key,
        send_email=False,
        **kw,  # type: ignore[arg-type]
    )


def _to(fcm: FakeFcm, token: str) -> int:
    return sum(1 for r in fcm.requests if r["token"] == token)


async def _job(db: asyncpg.Connection, user: uuid.UUID, key: str, channel: str = "push") -> dict:
    row = await db.fetchrow(
        """SELECT d.* FROM gateway.notification_deliveries d
             JOIN analyst.notifications n ON n.id = d.notification_id
            WHERE d.user_id = $1::uuid::text AND n.idempotency_key = $2 AND d.channel = $3""",
        user,
        f"{key}:{user}",
        channel,
    )
    assert row is not None
    return dict(row)


async def _pauses(db: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await db.fetch("SELECT * FROM gateway.delivery_pauses")
    return rows


def test_a_429_is_scoped_by_what_fcm_names() -> None:
    def body(reply: FcmReply) -> str:
        return json.dumps(reply.body)

    assert quota_scope(body(device_rate_limited(60))) == "device"
    assert quota_scope(body(project_rate_limited(60))) == "project"
    assert quota_scope(body(rate_limited(60))) == "project"  # nothing names a device
    assert quota_scope("<html>Too Many Requests</html>") == "project"


async def test_one_tokens_429_does_not_delay_another_tokens_push(
    db: asyncpg.Connection, fcm: FakeFcm, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    slow, other = await recipient(db, devices=1), await recipient(db, devices=1)
    fcm.reply(token_of(slow), device_rate_limited(120))
    await _push(db, [slow, other], "one")
    worker = make_worker()
    assert await worker.run_once() == 2
    first = await _job(db, slow, "one")
    assert first["status"] == "pending" and "device quota" in first["last_error"]
    assert first["next_attempt_at"] >= clock() + dt.timedelta(seconds=120)
    assert (await _job(db, other, "one"))["status"] == "sent"
    assert await _pauses(db) == []  # the project is not paused
    # A new post a little later: the other token gets it at once; the paused one is held
    # without a request and without counting an attempt.
    clock.advance(10)
    await _push(db, [slow, other], "two")
    assert await worker.run_once() == 2
    assert (await _job(db, other, "two"))["status"] == "sent"
    held = await _job(db, slow, "two")
    assert (held["status"], held["attempts"]) == ("pending", 0)
    assert held["next_attempt_at"] == first["next_attempt_at"]  # the token's pause
    assert _to(fcm, token_of(slow)) == 1 and _to(fcm, token_of(other)) == 2
    clock.advance(120)
    await drain(worker)
    assert _to(fcm, token_of(slow)) == 3
    assert {j["status"] for j in await job_rows(db)} == {"sent"}


async def test_a_paused_device_of_a_user_waits_while_the_users_other_device_gets_it(
    db: asyncpg.Connection, fcm: FakeFcm, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    user = await recipient(db, devices=2)
    fcm.reply(token_of(user, 0), device_rate_limited(60))
    await _push(db, [user], "one")
    worker = make_worker()
    await worker.run_once()  # device 0: 429; device 1: sent
    clock.advance(5)
    await _push(db, [user], "two")
    await worker.run_once()  # device 0 paused: held; device 1: sent
    job = await _job(db, user, "two")
    assert (job["status"], job["attempts"], len(job["sent_device_ids"])) == ("pending", 0, 1)
    assert _to(fcm, token_of(user, 0)) == 1 and _to(fcm, token_of(user, 1)) == 2
    clock.advance(60)
    await drain(worker)
    assert _to(fcm, token_of(user, 0)) == 3  # both posts, once each, after the pause
    assert _to(fcm, token_of(user, 1)) == 2  # not sent twice
    assert {j["status"] for j in await job_rows(db)} == {"sent"}


async def test_a_project_429_pauses_pushes_of_every_worker_until_retry_after_and_mail_flows(
    db: asyncpg.Connection,
    fcm: FakeFcm,
    smtp: SmtpSink,
    make_worker: WorkerFactory,
    clock: FakeClock,
) -> None:
    first = await recipient(db, devices=1)
    fcm.reply(token_of(first), project_rate_limited(90))
    await _push(db, [first], "one")
    assert await make_worker("w1").run_once() == 1
    [pause] = await _pauses(db)
    assert pause["scope"] == "push"
    assert pause["paused_until"] == clock() + dt.timedelta(seconds=90)
    # Another worker process (it never saw the 429) claims no push until then; e-mail goes.
    others = [await recipient(db, devices=1) for _ in range(2)]
    await notify(db, event_key="two", recipients=others, notification_type="x", title="two")
    other_worker = make_worker("w2")
    clock.advance(30)
    assert await other_worker.run_once() == 2  # the two e-mails only
    assert len(smtp.messages) == 2
    pushes = [await _job(db, u, "two") for u in others]
    assert [(j["status"], j["attempts"]) for j in pushes] == [("pending", 0)] * 2
    assert len(fcm.requests) == 1
    clock.advance(61)
    await drain(other_worker)
    assert sorted(m["token"] for m in fcm.sent) == sorted(token_of(u) for u in [first, *others])
    assert {j["status"] for j in await job_rows(db)} == {"sent"}


async def test_a_503_with_retry_after_pauses_pushes_until_then_and_one_without_does_not(
    db: asyncpg.Connection, fcm: FakeFcm, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    a, b = await recipient(db, devices=1), await recipient(db, devices=1)
    fcm.reply(token_of(a), unavailable(), unavailable(retry_after=30))
    await _push(db, [a], "a")
    await _push(db, [b], "b")
    worker = make_worker(batch_size=1)
    assert await worker.run_once() == 1  # a: 503 without Retry-After: a's own backoff
    assert await _pauses(db) == []
    assert await worker.run_once() == 1  # b goes out
    clock.set((await _job(db, a, "a"))["next_attempt_at"])
    assert await worker.run_once() == 1  # a again: 503 with Retry-After 30: the project
    [pause] = await _pauses(db)
    assert pause["paused_until"] == clock() + dt.timedelta(seconds=30)
    c = await recipient(db, devices=1)
    await _push(db, [c], "c")
    clock.advance(29)
    assert await worker.run_once() == 0  # c waits
    assert _to(fcm, token_of(c)) == 0
    clock.advance(1)
    await drain(worker)
    assert {j["status"] for j in await job_rows(db)} == {"sent"}
    assert _to(fcm, token_of(c)) == 1


async def test_pushes_in_hand_when_the_project_pauses_are_held_without_a_request(
    db: asyncpg.Connection, fcm: FakeFcm, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    first = await recipient(db, devices=1)
    fcm.reply(token_of(first), project_rate_limited(60))
    await _push(db, [first], "first")  # the lowest job id: the first send
    rest = [await recipient(db, devices=1) for _ in range(4)]
    await _push(db, rest, "rest")
    worker = make_worker(fcm_concurrency=1)  # one send at a time, in claim order
    assert await worker.run_once() == 5
    assert len(fcm.requests) == 1
    until = clock() + dt.timedelta(seconds=60)
    held = [await _job(db, u, "rest") for u in rest]
    assert {(j["status"], j["attempts"], j["next_attempt_at"]) for j in held} == {
        ("pending", 0, until)
    }
    retried = await _job(db, first, "first")
    assert (retried["status"], retried["attempts"]) == ("pending", 1)
    clock.advance(60)
    await drain(worker)
    assert len(fcm.sent) == 5 and len(fcm.requests) == 6


async def test_a_401_renews_the_one_oauth_token_every_thread_shares(
    db: asyncpg.Connection, fcm: FakeFcm, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    user = await recipient(db, devices=1)
    expired = fcm_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
    fcm.reply(token_of(user), FcmReply(401, expired))
    await _push(db, [user], "p")
    worker = make_worker()
    await worker.run_once()
    [job] = await job_rows(db)
    assert job["status"] == "pending" and "401" in job["last_error"]
    clock.advance(3600)
    await worker.run_once()
    [job] = await job_rows(db)
    assert job["status"] == "sent"
    assert fcm.auth_headers == ["Bearer ya29.fake-1", "Bearer ya29.fake-2"]
    assert fcm.tokens_issued == 2


async def test_sends_run_in_parallel_on_one_oauth_token(
    db: asyncpg.Connection, fcm: FakeFcm, make_worker: WorkerFactory
) -> None:
    users = [await recipient(db, devices=1) for _ in range(12)]
    await _push(db, users, "p")
    fcm.hold(4)  # no send is answered until 4 are waiting at once
    worker = make_worker(fcm_concurrency=4)
    assert await drain(worker) == 12
    assert fcm.in_flight_max == 4  # as many as FCM_CONCURRENCY, never more
    assert len(fcm.sent) == 12
    assert fcm.tokens_issued == 1 and set(fcm.auth_headers) == {"Bearer ya29.fake-1"}
