"""Issue 18 item 7: the login attempt limit holds under concurrency. 30 wrong passwords sent
at once on one account: at most the documented limit (attempts.LIMITS, 10 per account and
15 minutes) are evaluated (bcrypt runs), every other one is refused 429 before any check."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

import realms.analyst.routes.auth as auth_routes
from api.app import create_app
from kernel.config import load_settings
from realms.analyst import attempts
from realms.analyst.credentials import hash_password
from realms.analyst.otp import OTP_SENDERS, OtpSenders, SmtpOtpSender
from tests.api.conftest import SmsCapture, SmtpSink
from tests.factories import make_user

PASSWORD = "correct horse battery"
LIMIT = attempts.LIMITS[("account", "login")]


@pytest.fixture
async def wide_api(
    dsn: str, aiohttp_client: Any, secret: str, smtp_sink: SmtpSink, sms: SmsCapture
) -> AsyncIterator[TestClient]:
    """The API with a pool wider than the limit (40 connections), so the pool itself cannot
    serialise the 30 attempts and hide a race."""
    settings = load_settings(
        {
            "DATABASE_URL": dsn,
            "SWITCHBOARD_SECRET": secret,
            "BCRYPT_ROUNDS": "4",
            "SMTP_URL": smtp_sink.url,
            "DB_POOL_MAX": "40",
        }
    )
    senders = OtpSenders(email=SmtpOtpSender(settings.smtp_url, settings.mail_from), sms=sms)
    client: TestClient = await aiohttp_client(
        create_app(settings, resources={OTP_SENDERS: senders})
    )
    yield client
    await client.close()


class CountingChecker:
    """Wraps the password check the login route calls and counts each evaluation."""

    def __init__(self) -> None:
        self.calls = 0
        self.original = auth_routes.password_matches

    async def __call__(self, password: str, password_hash: str) -> bool:
        self.calls += 1
        return await self.original(password, password_hash)


async def test_thirty_concurrent_wrong_passwords_evaluate_at_most_the_limit(
    wide_api: TestClient, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = f"race-{uuid.uuid4().hex[:10]}@example.com"
    await make_user(db, email=address, password_hash=await hash_password(PASSWORD, 4))
    checker = CountingChecker()
    monkeypatch.setattr(auth_routes, "password_matches", checker)
    wrong = {"email": address, "password": "not the password"}

    responses = await asyncio.gather(
        *(wide_api.post("/v1/auth/login", json=wrong) for _ in range(30))
    )
    statuses = sorted(r.status for r in responses)

    assert checker.calls <= LIMIT
    assert statuses.count(401) == checker.calls == LIMIT
    assert statuses.count(429) == 30 - LIMIT
    failures = await db.fetchval(
        "SELECT count(*) FROM gateway.auth_attempts"
        " WHERE scope = 'account' AND subject = $1 AND action = 'login' AND NOT succeeded",
        address,
    )
    assert failures == LIMIT
    # The account stays locked for the window, even for the right password.
    right = await wide_api.post("/v1/auth/login", json={"email": address, "password": PASSWORD})
    assert right.status == 429


async def test_a_successful_login_is_recorded_as_a_success_and_does_not_use_up_the_limit(
    wide_api: TestClient, db: asyncpg.Connection
) -> None:
    address = f"ok-{uuid.uuid4().hex[:10]}@example.com"
    await make_user(db, email=address, password_hash=await hash_password(PASSWORD, 4))
    right = {"email": address, "password": PASSWORD}
    responses = await asyncio.gather(
        *(wide_api.post("/v1/auth/login", json=right) for _ in range(3))
    )
    # Admitted attempts count as failures until they succeed, so three at once all fit.
    assert [r.status for r in responses] == [200, 200, 200]
    rows = await db.fetch(
        "SELECT succeeded FROM gateway.auth_attempts"
        " WHERE scope = 'account' AND subject = $1 AND action = 'login'",
        address,
    )
    assert [r["succeeded"] for r in rows] == [True, True, True]
    for _ in range(LIMIT - 1):
        bad = await wide_api.post("/v1/auth/login", json={**right, "password": "wrong one"})
        assert bad.status == 401
    assert (await wide_api.post("/v1/auth/login", json=right)).status == 200


async def test_concurrent_code_requests_send_at_most_the_limit(
    wide_api: TestClient, smtp_sink: SmtpSink
) -> None:
    """OTP requests count every request (5 per account): the same reservation holds them."""
    address = f"otp-{uuid.uuid4().hex[:10]}@example.com"
    body = {"purpose": "signup", "email": address}
    responses = await asyncio.gather(*(wide_api.post("/v1/auth/otp", json=body) for _ in range(15)))
    statuses = [r.status for r in responses]
    limit = attempts.LIMITS[("account", "otp_request")]
    assert statuses.count(202) == limit and statuses.count(429) == 15 - limit
    assert smtp_sink.sent_to(address) == limit
