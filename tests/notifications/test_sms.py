"""SMS notifications end to end on real Postgres and a Twilio-shaped stand-in over HTTP:
notify(send_sms=True) queues one 'sms' job per recipient with a phone number (the realm's
contact_sql), under the preferences and idempotency of push and e-mail; the worker texts each
once; a refused number fails for good; a 429 pauses every worker's SMS until Retry-After; a 500
is retried; numbers are masked and bodies never logged outside dev mode."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import msgspec
import pytest

from kernel.config import Settings
from kernel.notify import notify, set_preference, set_settings
from kernel.realms import Realm, Realms
from realms.analyst import REALM as ANALYST
from tests.factories import make_user
from tests.notifications.conftest import drain
from tests.notifications.fakes import FakeClock
from tests.notifications.sms_standin import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM,
    INVALID_NUMBER,
    SmsStandIn,
    rate_limited,
    server_error,
    unsubscribed,
)
from workers.delivery import build_senders, close_senders
from workers.delivery.outbox import Outbox, RetryPolicy
from workers.delivery.sms import SmsSender, mask_phone, sms_body
from workers.delivery.worker import DeliveryWorker

# A UUID realm whose users are analyst.users rows and whose contact_sql names their phone.
TEXTING = Realm(
    name="texting",
    schema="analyst",
    summary="test-only realm whose users have phone numbers",
    contact_sql=(
        "SELECT id, email, email_verified, is_active AND deleted_at IS NULL AS active, phone"
        " FROM analyst.users WHERE id = ANY ($1::uuid[])"
    ),
)
REALMS = Realms([ANALYST, TEXTING])
_numbers = itertools.count(1)


def new_number() -> str:
    return f"+1555{next(_numbers):07d}"


async def texted(db: asyncpg.Connection, phone: str | None = None) -> uuid.UUID:
    """A user with a phone number (a fresh one unless given)."""
    return await make_user(db, phone=phone or new_number())


async def phone_of(db: asyncpg.Connection, user: uuid.UUID) -> str:
    phone = await db.fetchval("SELECT phone FROM analyst.users WHERE id = $1", user)
    assert isinstance(phone, str)
    return phone


async def tell(db: asyncpg.Connection, users: list[uuid.UUID], key: str, **kw: Any) -> int:
    kw.setdefault("send_sms", True)
    kw.setdefault("send_push", False)
    kw.setdefault("send_email", False)
    kw.setdefault("send_in_app", False)
    return await notify(
        db,
        realm=TEXTING,
        event_key=key,
        recipients=users,
        notification_type=kw.pop("notification_type", "order"),
        title=kw.pop("title", f"Title {key}"),
        message=kw.pop("message", f"Message {key}"),
        **kw,
    )


async def sms_jobs(db: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT * FROM gateway.notification_deliveries WHERE channel = 'sms' ORDER BY id"
    )
    return [dict(r) for r in rows]


@pytest.fixture
async def standin() -> AsyncIterator[SmsStandIn]:
    server = SmsStandIn()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


WorkerFactory = Callable[..., DeliveryWorker]


@pytest.fixture
async def make_worker(
    pool: asyncpg.Pool, dsn: str, secret: str, standin: SmsStandIn, clock: FakeClock
) -> AsyncIterator[WorkerFactory]:
    """Workers with the real SMS sender pointed at the stand-in (production mode unless told)."""
    built: list[DeliveryWorker] = []

    def make(name: str = "w1", **changes: Any) -> DeliveryWorker:
        settings = Settings(
            database_url=dsn,
            secret=secret,
            sms_base_url=standin.base_url,
            sms_account_sid=ACCOUNT_SID,
            sms_auth_token=AUTH_TOKEN,
            sms_from=FROM,
            env="prod",
        )
        settings = msgspec.structs.replace(settings, **changes)
        policy = RetryPolicy(rng=random.Random(7))
        outbox = Outbox(pool, name, lease_s=60.0, policy=policy, realms=REALMS)
        worker = DeliveryWorker(outbox, build_senders(pool, settings), clock=clock)
        built.append(worker)
        return worker

    yield make
    for worker in built:
        await close_senders(worker.senders)


async def test_sms_is_queued_per_recipient_with_a_phone_as_preferences_allow(
    db: asyncpg.Connection,
) -> None:
    plain, no_sms, no_orders, mailed = (
        await texted(db),
        await texted(db),
        await texted(db),
        await make_user(db, email_verified=True),  # no phone
    )
    await set_preference(db, no_sms, "*", "sms", False, realm=TEXTING)
    await set_preference(db, no_orders, "order", "sms", False, realm=TEXTING)
    await set_preference(db, no_orders, "*", "*", True, realm=TEXTING)
    users = [plain, no_sms, no_orders, mailed]
    # no_sms and no_orders: no channel reaches them (phone only); mailed: e-mail only
    assert await tell(db, users, "o:1", send_email=True) == 2
    assert [j["user_id"] for j in await sms_jobs(db)] == [str(plain)]
    # another category: the order-only opt-out does not apply
    await tell(db, users, "p:1", notification_type="promotion")
    assert sorted(j["user_id"] for j in await sms_jobs(db)) == sorted(
        [str(plain), str(plain), str(no_orders)]
    )
    # without send_sms, nobody is texted even with a phone
    await tell(db, [plain], "o:2", send_sms=False, send_in_app=True)
    assert len(await sms_jobs(db)) == 3
    # a digest item sends no SMS of its own, as it sends no push
    await tell(db, [plain], "o:3", send_in_app=True, notification_group="daily_digest")
    assert len(await sms_jobs(db)) == 3


async def test_an_sms_is_delivered_exactly_once_even_when_the_event_is_replayed(
    db: asyncpg.Connection, standin: SmsStandIn, make_worker: WorkerFactory
) -> None:
    user = await texted(db)
    number = await phone_of(db, user)
    assert await tell(db, [user], "order:7:shipped", title="Shipped", message="On its way") == 1
    assert await tell(db, [user], "order:7:shipped", title="Shipped", message="On its way") == 0
    assert len(await sms_jobs(db)) == 1
    first, second = make_worker("w1"), make_worker("w2")
    assert await drain(first) == 1
    assert await drain(second) == 0
    [message] = standin.sent
    assert (message["To"], message["From"], message["Body"]) == (
        number,
        FROM,
        "Shipped\nOn its way",
    )
    [job] = await sms_jobs(db)
    assert (job["status"], job["attempts"], job["provider_message_id"]) == (
        "sent",
        1,
        message["sid"],
    )
    note = await db.fetchrow(
        "SELECT status, email_sent, push_sent FROM gateway.notifications WHERE id = $1",
        job["notification_id"],
    )
    assert note is not None and tuple(note) == ("sent", False, False)


@pytest.mark.parametrize(
    ("script", "code"), [(None, 21211), (unsubscribed(), 21610)], ids=["invalid", "stop"]
)
async def test_a_refused_number_fails_for_good_without_a_retry(
    db: asyncpg.Connection,
    standin: SmsStandIn,
    make_worker: WorkerFactory,
    clock: FakeClock,
    script: Any,
    code: int,
) -> None:
    user = await texted(db, INVALID_NUMBER if script is None else None)
    if script is not None:
        standin.reply(await phone_of(db, user), script)
    await tell(db, [user], "bad")
    worker = make_worker()
    assert await drain(worker) == 1
    [job] = await sms_jobs(db)
    assert (job["status"], job["attempts"]) == ("failed", 1)
    assert f"code {code}" in job["last_error"]
    status = await db.fetchval(
        "SELECT status FROM gateway.notifications WHERE id = $1", job["notification_id"]
    )
    assert status == "failed"  # no channel delivered it
    clock.advance(3600)
    assert await drain(worker) == 0
    assert len(standin.requests) == 1 and standin.sent == []


async def test_a_429_pauses_every_workers_sms_until_retry_after_then_all_go_out(
    db: asyncpg.Connection, standin: SmsStandIn, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    first = await texted(db)
    standin.reply(await phone_of(db, first), rate_limited(90))
    await tell(db, [first], "one")
    assert await make_worker("w1").run_once() == 1
    [pause] = await db.fetch("SELECT * FROM gateway.delivery_pauses")
    assert (pause["scope"], pause["paused_until"]) == ("sms", clock() + dt.timedelta(seconds=90))
    [job] = await sms_jobs(db)
    assert (job["status"], job["attempts"]) == ("pending", 1) and "429" in job["last_error"]
    # Another worker, which never saw the 429, claims no SMS before the pause ends.
    others = [await texted(db) for _ in range(2)]
    await tell(db, others, "two")
    other_worker = make_worker("w2")
    clock.advance(30)
    assert await other_worker.run_once() == 0
    assert len(standin.requests) == 1
    assert [(j["status"], j["attempts"]) for j in await sms_jobs(db)][1:] == [("pending", 0)] * 2
    clock.advance(61)
    assert await drain(other_worker) == 3
    assert sorted(m["To"] for m in standin.sent) == sorted(
        [await phone_of(db, u) for u in [first, *others]]
    )
    assert {j["status"] for j in await sms_jobs(db)} == {"sent"}


async def test_sms_in_hand_when_the_provider_pauses_are_held_without_a_request(
    db: asyncpg.Connection, standin: SmsStandIn, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    first = await texted(db)
    standin.reply(await phone_of(db, first), rate_limited(None))  # no Retry-After: 60 s
    await tell(db, [first], "first")
    rest = [await texted(db) for _ in range(3)]
    await tell(db, rest, "rest")
    worker = make_worker(sms_concurrency=1)  # one request at a time, in claim order
    assert await worker.run_once() == 4
    assert len(standin.requests) == 1
    until = clock() + dt.timedelta(seconds=60)
    held = (await sms_jobs(db))[1:]
    assert {(j["status"], j["attempts"], j["next_attempt_at"]) for j in held} == {
        ("pending", 0, until)
    }
    clock.advance(60)
    await drain(worker)
    assert len(standin.sent) == 4 and len(standin.requests) == 5


async def test_a_500_is_retried_with_backoff_and_sent_once(
    db: asyncpg.Connection, standin: SmsStandIn, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    user = await texted(db)
    number = await phone_of(db, user)
    standin.reply(number, server_error())
    await tell(db, [user], "flaky")
    worker = make_worker()
    assert await worker.run_once() == 1
    [job] = await sms_jobs(db)
    assert (job["status"], job["attempts"], job["last_error"]) == (
        "pending",
        1,
        "SMS provider 500",
    )
    assert job["next_attempt_at"] > clock()
    assert await db.fetchval("SELECT count(*) FROM gateway.delivery_pauses") == 0
    clock.set(job["next_attempt_at"])
    assert await drain(worker) == 1
    [job] = await sms_jobs(db)
    assert (job["status"], job["attempts"]) == ("sent", 2)
    assert len(standin.to(number)) == 1 and len(standin.requests) == 2


async def test_quiet_hours_hold_sms_as_they_hold_push(
    db: asyncpg.Connection, standin: SmsStandIn, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    user = await texted(db)
    now = clock()
    start = (now - dt.timedelta(hours=1)).strftime("%H:%M")
    end = (now + dt.timedelta(hours=2)).strftime("%H:%M")
    await set_settings(db, user, realm=TEXTING, quiet_hours=(start, end))
    await tell(db, [user], "late")
    clock.catch_up()
    assert await make_worker().run_once() == 1
    [job] = await sms_jobs(db)
    assert (job["status"], job["attempts"]) == ("pending", 0)
    assert job["next_attempt_at"] > clock() + dt.timedelta(hours=1)
    assert standin.requests == []


async def test_without_credentials_sms_jobs_are_skipped_with_the_reason(
    db: asyncpg.Connection, standin: SmsStandIn, make_worker: WorkerFactory
) -> None:
    user = await texted(db)
    await tell(db, [user], "x")
    worker = make_worker(sms_auth_token=None)
    assert "sms" not in worker.senders
    await drain(worker)
    [job] = await sms_jobs(db)
    assert job["status"] == "skipped"
    assert job["last_error"] == (
        "sms delivery is not configured (set SMS_ACCOUNT_SID, SMS_AUTH_TOKEN and SMS_FROM)"
    )
    assert standin.requests == []


async def test_numbers_are_masked_and_bodies_never_logged_outside_dev_mode(
    db: asyncpg.Connection,
    standin: SmsStandIn,
    make_worker: WorkerFactory,
    caplog: pytest.LogCaptureFixture,
    clock: FakeClock,
) -> None:
    refused, accepted = await texted(db, INVALID_NUMBER), await texted(db)
    secret_text = "your code is 493021"
    await tell(db, [refused, accepted], "secret", message=secret_text)
    caplog.set_level(logging.DEBUG, logger="workers.delivery")
    assert await drain(make_worker()) == 2
    logged = [f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records]
    assert any("sms_refused" in line and mask_phone(INVALID_NUMBER) in line for line in logged)
    everything = "\n".join(logged) + repr([j["last_error"] for j in await sms_jobs(db)])
    for number in (INVALID_NUMBER, await phone_of(db, accepted)):
        assert number not in everything
    assert secret_text not in everything
    # dev mode may show the number (a developer's own test phone), still never the body
    caplog.clear()
    await tell(db, [refused], "again", message=secret_text)
    clock.catch_up()
    assert await drain(make_worker("dev", env="dev")) == 1
    dev = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert INVALID_NUMBER in dev and secret_text not in dev


def test_a_number_is_masked_to_its_first_and_last_two_characters() -> None:
    assert mask_phone("+998901234567") == "+9*********67"
    assert mask_phone("+123") == "****"


async def test_the_body_is_title_message_and_link_within_twilios_limit(
    pool: asyncpg.Pool,
) -> None:
    sender = SmsSender(pool, base_url="http://x", account_sid="AC1", auth_token="t", sender=FROM)
    assert sender.url == "http://x/2010-04-01/Accounts/AC1/Messages.json"
    job = _job_with(title="Hi", message="x" * 2000, action_url="https://a.example/o/1")
    body = sms_body(job)
    assert len(body) == 1600 and body.startswith("Hi\nxxx") and body.endswith("…")
    await sender.aclose()


def _job_with(**fields: Any) -> Any:
    from workers.delivery.outbox import Job

    base: dict[str, Any] = {
        "id": 1,
        "channel": "sms",
        "user_id": "1",
        "notification_id": uuid.uuid4(),
        "digest_date": None,
        "priority": "medium",
        "attempts": 1,
        "sent_device_ids": (),
        "notification_type": "order",
        "title": None,
        "message": None,
        "action_url": None,
        "notification_read": False,
        "email": None,
        "email_ok": False,
        "user_active": True,
        "time_zone": "UTC",
        "quiet_hours": None,
        "digest_at": dt.time(8),
    }
    return Job(**{**base, **fields})
