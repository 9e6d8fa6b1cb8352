"""Notifications in realms other than analyst: notify() for a BIGINT realm (the test realm
`echo`) and a UUID realm (`mirror`, a test-local realm whose users are analyst.users rows but
whose inbox is the core's gateway.notifications), idempotency, preferences, devices, the
isolation of equal ids of two realms, and delivery by the real workers: a push through the
FCM stand-in, an e-mail and a digest through aiosmtpd, with the job's request id logged."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from kernel import inbox, tracking
from kernel.config import Settings
from kernel.db import create_pool
from kernel.errors import BadRequest, NotFound
from kernel.migrate import SQL_DIR, migrate
from kernel.notify import (
    notify,
    register_device,
    set_preference,
    set_settings,
    subscribers_of,
)
from kernel.realms import Realm, Realms
from kernel.request_context import bound_request_id
from realms.analyst import REALM as ANALYST
from tests.echo_realm import REALM as ECHO
from tests.echo_realm.fixtures import ECHO as ECHO_REALMS
from tests.echo_realm.fixtures import echo_dsn  # noqa: F401  (fixture)
from tests.factories import make_user
from tests.notifications.conftest import PUBLIC_BASE, drain
from tests.notifications.fakes import FakeClock, FakeFcm, SmtpSink
from workers.delivery import build_senders, close_senders
from workers.delivery.outbox import Outbox
from workers.delivery.worker import DeliveryWorker

ALICE, BOB, CAROL, DAVE = "1", "2", "3", "4"

# A UUID realm with the core's inbox; its users happen to be analyst.users rows.
MIRROR = Realm(
    name="mirror",
    schema="analyst",
    summary="test-only UUID realm",
    user_id_type="uuid",
    contact_sql=(
        "SELECT id, email, email_verified, is_active AND deleted_at IS NULL AS active"
        " FROM analyst.users WHERE id = ANY ($1::uuid[])"
    ),
)
# A second BIGINT realm over echo.users: the same id texts as echo, other people.
TWIN = Realm(
    name="twin",
    schema="echo",
    summary="test-only BIGINT realm",
    user_id_type="bigint",
    contact_sql="SELECT id, email, email_verified, is_active AS active FROM echo.users"
    " WHERE id = ANY ($1::bigint[])",
)
REALMS = Realms([ANALYST, ECHO, MIRROR, TWIN])


@pytest.fixture
async def db(echo_dsn: str) -> AsyncIterator[asyncpg.Connection]:  # noqa: F811
    """Echo users: Alice (verified e-mail), Bob (unverified), Carol (inactive), Dave (none)."""
    conn = await asyncpg.connect(echo_dsn)
    await conn.execute(
        """UPDATE echo.users SET email = name || '@echo.example',
                  email_verified = name IN ('alice', 'carol'), is_active = name <> 'carol'
            WHERE name <> 'dave'"""
    )
    yield conn
    await conn.close()


@pytest.fixture
async def pool(echo_dsn: str) -> AsyncIterator[asyncpg.Pool]:  # noqa: F811
    p = await create_pool(echo_dsn, min_size=1, max_size=8)
    yield p
    await p.close()


@pytest.fixture
def settings(echo_dsn: str, secret: str, fcm: FakeFcm, smtp: SmtpSink) -> Settings:  # noqa: F811
    return Settings(
        database_url=echo_dsn,
        secret=secret,
        smtp_url=smtp.url,
        mail_from="Switchboard <notify@switchboard.example>",
        public_base_url=PUBLIC_BASE,
        fcm_base_url=fcm.fcm_base_url,
        fcm_credentials_file=fcm.credentials_file,
        fcm_project_id="ignored-the-file-wins",
    )


@pytest.fixture
async def worker(
    pool: asyncpg.Pool, settings: Settings, clock: FakeClock
) -> AsyncIterator[DeliveryWorker]:
    senders = build_senders(pool, settings)
    yield DeliveryWorker(Outbox(pool, "w1", lease_s=60, realms=REALMS), senders, clock=clock)
    await close_senders(senders)


async def _rows(db: asyncpg.Connection, realm: str) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            "SELECT * FROM gateway.notifications WHERE realm = $1 ORDER BY user_id", realm
        )
    )


async def _jobs(db: asyncpg.Connection, realm: str) -> set[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT user_id, channel FROM gateway.notification_deliveries WHERE realm = $1", realm
    )
    return {(r["user_id"], r["channel"]) for r in rows}


# --- notify() --------------------------------------------------------------------------------


async def test_a_bigint_realm_notifies_its_active_users_by_any_spelling_of_their_ids(
    db: asyncpg.Connection,
) -> None:
    await register_device(db, 1, "echo-alice-phone", "android", realm=ECHO)
    created = await notify(
        db,
        realm=ECHO,
        event_key="room:1:opened",
        recipients=[1, "2", CAROL, "00004", 99],  # 3 is inactive, 99 unknown; 4 == "00004"
        notification_type="room_opened",
        title="Lobby is open",
    )
    assert created == 3
    rows = await _rows(db, "echo")
    assert [r["user_id"] for r in rows] == [ALICE, BOB, DAVE]
    assert [r["idempotency_key"] for r in rows] == [f"room:1:opened:{u}" for u in "124"]
    assert all(r["send_in_app"] and r["status"] == "sent" for r in rows)
    # push only where a device is, e-mail only to a verified address
    assert await _jobs(db, "echo") == {(ALICE, "push"), (ALICE, "email")}
    assert await db.fetchval("SELECT count(*) FROM analyst.notifications") == 0


async def test_replaying_an_event_creates_nothing_and_bad_ids_are_refused(
    db: asyncpg.Connection,
) -> None:
    kwargs = {"event_key": "e1", "notification_type": "x"}
    assert await notify(db, realm=ECHO, recipients=[1, 2], **kwargs) == 2  # type: ignore[arg-type]
    assert await notify(db, realm=ECHO, recipients=[2, 1, 1], **kwargs) == 0  # type: ignore[arg-type]
    assert len(await _rows(db, "echo")) == 2
    with pytest.raises(ValueError, match="not a user id of realm 'echo'"):
        await notify(db, realm=ECHO, recipients=[uuid.uuid4()], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a user id of realm 'echo'"):
        await notify(db, realm=ECHO, recipients=["1; DROP TABLE x"], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="audiences are analyst queries"):
        await notify(db, realm=ECHO, recipients=subscribers_of(uuid.uuid4()), **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no realm 'nowhere'"):
        await notify(db, realm="nowhere", recipients=[1], **kwargs)  # type: ignore[arg-type]


async def test_equal_ids_of_two_realms_are_two_people(db: asyncpg.Connection) -> None:
    for realm in (ECHO, TWIN):
        assert await notify(
            db, realm=realm, event_key="same", recipients=[1], notification_type="x"
        )
    echo_row, twin_row = (await _rows(db, "echo"))[0], (await _rows(db, "twin"))[0]
    assert echo_row["idempotency_key"] == twin_row["idempotency_key"] == "same:1"
    assert await inbox.unread_count(db, 1, ECHO) == 1
    # Realm twin's user 1 can neither read nor mark realm echo's notification, same id or not.
    with pytest.raises(NotFound):
        await inbox.mark_read(db, 1, [echo_row["id"]], TWIN)
    assert await inbox.unread_count(db, "1", ECHO) == 1
    assert await inbox.mark_read(db, "1", None, TWIN) == 1
    assert (await inbox.unread_counts(db, [1, 2], ECHO)) == {ALICE: 1, BOB: 0}
    assert (await inbox.unread_counts(db, [1], TWIN)) == {ALICE: 0}
    _, missed = await inbox.missed(db, 1, 10, ECHO)
    assert [r["id"] for r in missed] == [echo_row["id"]]


async def test_preferences_and_settings_belong_to_one_realm(db: asyncpg.Connection) -> None:
    await register_device(db, 1, "shared-device-token", "ios", realm=ECHO)
    await set_preference(db, 1, "promo", "push", False, realm=ECHO)
    await set_preference(db, 1, "*", "email", False, realm=TWIN)
    await set_settings(db, 1, realm=TWIN, time_zone="Asia/Kolkata")
    for realm in (ECHO, TWIN):
        await notify(db, realm=realm, event_key="p", recipients=[1], notification_type="promo")
    # echo: no push (blocked), e-mail allowed; twin: no device, e-mail blocked -> in-app only
    assert await _jobs(db, "echo") == {(ALICE, "email")}
    assert await _jobs(db, "twin") == set()
    # A token registered by a user of another realm moves to them.
    await register_device(db, 2, "shared-device-token", "ios", realm=TWIN)
    devices = await db.fetch("SELECT realm, user_id FROM gateway.push_devices")
    assert [tuple(d) for d in devices] == [("twin", BOB)]
    keys = await db.fetch("SELECT realm, user_id FROM gateway.notification_settings ORDER BY realm")
    assert [tuple(k) for k in keys] == [("twin", ALICE)]


async def test_a_uuid_realm_writes_the_core_inbox_with_uuid_text_ids(
    db: asyncpg.Connection,
) -> None:
    ok = await make_user(db, email_verified=True)
    gone = await make_user(db, is_active=False)
    assert (
        await notify(
            db, realm=MIRROR, event_key="m", recipients=[ok, str(gone)], notification_type="x"
        )
        == 1
    )
    [row] = await _rows(db, "mirror")
    assert row["user_id"] == str(ok)
    assert await _jobs(db, "mirror") == {(str(ok), "email")}
    # the analyst realm's own inbox is untouched, and its users there get their own rows
    assert await db.fetchval("SELECT count(*) FROM analyst.notifications") == 0
    assert await notify(db, event_key="m", recipients=[ok], notification_type="x") == 1
    assert await db.fetchval("SELECT user_id FROM analyst.notifications") == ok
    assert await inbox.unread_count(db, ok, MIRROR) == 1
    assert await inbox.unread_count(db, ok) == 1  # the analyst realm's, as before realms


# --- delivery --------------------------------------------------------------------------------


async def test_the_workers_push_and_mail_a_bigint_realms_notification(
    db: asyncpg.Connection,
    worker: DeliveryWorker,
    fcm: FakeFcm,
    smtp: SmtpSink,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHBOARD_REALMS", ECHO_REALMS)  # the api's realms, for the links
    await register_device(db, ALICE, "echo-alice-phone", "android", realm=ECHO)
    with bound_request_id("req-echo-1"):
        await notify(
            db,
            realm=ECHO,
            event_key="order:7",
            recipients=[ALICE],
            notification_type="order_shipped",
            title="Shipped",
            message="Your order is on its way",
            action_url="https://shop.example/orders/7",
        )
    with caplog.at_level(logging.INFO, logger="workers.delivery"):
        assert await drain(worker) == 2
    [push] = fcm.requests
    assert push["token"] == "echo-alice-phone"
    [mail] = smtp.messages
    assert mail["To"] == "alice@echo.example"
    row = (await _rows(db, "echo"))[0]
    assert row["push_sent"] and row["email_sent"] and row["status"] == "sent"
    statuses = await db.fetch("SELECT status FROM gateway.notification_deliveries")
    assert {s["status"] for s in statuses} == {"sent"}
    logged = [r for r in caplog.records if r.getMessage() == "delivery"]
    assert {r.fields["realm"] for r in logged} == {"echo"}  # type: ignore[attr-defined]
    assert {r.fields["request_id"] for r in logged} == {"req-echo-1"}  # type: ignore[attr-defined]
    # The e-mail's links are the echo realm's, and work there only.
    unsubscribe = mail["List-Unsubscribe"].strip("<>")
    assert urlsplit(unsubscribe).path == "/v1/echo/notifications/email/unsubscribe"
    token = parse_qs(urlsplit(unsubscribe).query)["t"][0]
    with pytest.raises(BadRequest, match="belongs to realm 'echo'"):
        await tracking.unsubscribe(db, settings.secret, token, realm="twin")
    assert await tracking.unsubscribe(db, settings.secret, token, realm="echo") == (
        1,
        "order_shipped",
    )
    prefs = await db.fetch(
        "SELECT realm, user_id, channel, enabled FROM gateway.notification_preferences"
    )
    assert [tuple(p) for p in prefs] == [("echo", ALICE, "email", False)]


async def test_an_inactive_users_job_is_skipped_and_the_notification_failed(
    db: asyncpg.Connection, worker: DeliveryWorker, smtp: SmtpSink
) -> None:
    await notify(
        db, realm=ECHO, event_key="k", recipients=[ALICE], notification_type="x", send_in_app=False
    )
    await db.execute("UPDATE echo.users SET is_active = false WHERE id = 1")
    assert await drain(worker) == 1
    assert smtp.messages == []
    job = await db.fetchrow("SELECT status, last_error FROM gateway.notification_deliveries")
    assert tuple(job) == ("skipped", "user is inactive or deleted")
    assert (await _rows(db, "echo"))[0]["status"] == "failed"


async def test_a_daily_digest_of_a_bigint_realm_lists_its_items(
    db: asyncpg.Connection, worker: DeliveryWorker, smtp: SmtpSink, clock: FakeClock
) -> None:
    for n in range(3):
        await notify(
            db,
            realm=ECHO,
            event_key=f"d{n}",
            recipients=[ALICE],
            notification_type="new_item",
            title=f"Item {n}",
            notification_group="daily_digest",
        )
    # the same ids in another realm are not this digest's items
    await notify(
        db,
        realm=TWIN,
        event_key="d9",
        recipients=[ALICE],
        notification_type="x",
        notification_group="daily_digest",
    )
    due = await db.fetchval(
        "SELECT next_attempt_at FROM gateway.notification_deliveries WHERE realm = 'echo'"
    )
    clock.set(due)
    worker.outbox.realms = Realms([ECHO])  # a worker serving echo only leaves twin's job
    assert await drain(worker) == 1
    [mail] = smtp.messages
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert all(f"Item {n}" in text for n in range(3))
    assert (
        await db.fetchval(
            "SELECT count(*) FROM gateway.notifications WHERE realm = 'echo' AND email_sent"
        )
        == 3
    )
    twin_job = await db.fetchval(
        "SELECT status FROM gateway.notification_deliveries WHERE realm = 'twin'"
    )
    assert twin_job == "pending"


# --- without the analyst realm ------------------------------------------------------------------


async def test_without_the_analyst_realm_the_core_creates_the_tables_and_delivers(
    empty_dsn: str, smtp: SmtpSink, clock: FakeClock
) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert ECHO.sql_dir is not None
        await migrate(conn, [SQL_DIR, ECHO.sql_dir])
        assert await conn.fetchval("SELECT to_regclass('analyst.notifications')") is None
        await conn.execute(
            "INSERT INTO echo.users (name, email, email_verified)"
            " VALUES ('eve', 'eve@echo.example', true)"
        )
        await register_device(conn, 1, "eve-phone", "web", realm=ECHO)
        with bound_request_id("req-core"):
            assert await notify(
                conn, realm=ECHO, event_key="k", recipients=[1], notification_type="x"
            )
        jobs = await conn.fetch(
            "SELECT realm, user_id, channel, request_id FROM gateway.notification_deliveries"
            " ORDER BY channel"
        )
        assert [tuple(j) for j in jobs] == [
            ("echo", "1", "email", "req-core"),
            ("echo", "1", "push", "req-core"),
        ]
    finally:
        await conn.close()
    pool = await create_pool(empty_dsn, min_size=1, max_size=4)
    try:
        settings = Settings(database_url=empty_dsn, secret="s" * 40, smtp_url=smtp.url)
        senders = build_senders(pool, settings)  # e-mail only: push is skipped as unconfigured
        worker = DeliveryWorker(Outbox(pool, "w", realms=Realms([ECHO])), senders, clock=clock)
        assert await drain(worker) == 2
        await close_senders(senders)
        [mail] = smtp.messages
        assert mail["To"] == "eve@echo.example"
        statuses = await pool.fetch(
            "SELECT channel, status FROM gateway.notification_deliveries ORDER BY channel"
        )
        assert [tuple(s) for s in statuses] == [("email", "sent"), ("push", "skipped")]
    finally:
        await pool.close()


async def test_deleting_an_analyst_user_or_notification_still_deletes_what_hung_off_it(
    db: asyncpg.Connection,
) -> None:
    user = await make_user(db, email_verified=True)
    await register_device(db, user, "analyst-phone", "ios")
    await set_preference(db, user, "*", "push", True)
    await set_settings(db, user, time_zone="Europe/Paris")
    await register_device(db, 1, "echo-phone", "ios", realm=ECHO)
    await notify(db, event_key="gone", recipients=[user], notification_type="x")
    await notify(db, realm=ECHO, event_key="kept", recipients=[1], notification_type="x")
    assert await db.fetchval("SELECT count(*) FROM gateway.notification_deliveries") == 4
    await db.execute("DELETE FROM analyst.notifications")
    jobs = await db.fetch(
        "SELECT realm, channel FROM gateway.notification_deliveries ORDER BY channel"
    )
    assert [tuple(j) for j in jobs] == [("echo", "email"), ("echo", "push")]
    await db.execute("DELETE FROM gateway.notifications")
    assert await db.fetchval("SELECT count(*) FROM gateway.notification_deliveries") == 0
    await db.execute("DELETE FROM analyst.users WHERE id = $1", user)
    for table in ("push_devices", "notification_preferences", "notification_settings"):
        left = await db.fetch(f"SELECT realm, user_id FROM gateway.{table}")
        assert [tuple(r) for r in left] == ([("echo", ALICE)] if table == "push_devices" else [])
