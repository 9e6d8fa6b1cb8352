"""Accounts of the aichat realm over REST: sign-up with an e-mailed, hashed, single-use,
expiring verification token; login creating a session row (device, IP); refresh; logout
ending the session; password reset with single-use expiring tokens."""

from __future__ import annotations

import hashlib

import asyncpg
from aiohttp.test_utils import TestClient

from tests.api.conftest import SmtpSink
from tests.realms.aichat.world import token_in_mail

PASSWORD = "correct horse battery"


async def _signup(api: TestClient, email: str) -> None:
    r = await api.post(
        "/v1/aichat/auth/signup", json={"email": email, "password": PASSWORD, "name": "Ada"}
    )
    assert r.status == 201, await r.text()


async def test_signup_verify_login_refresh_logout(
    aichat_api: TestClient, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    email = "Ada.Verify@Example.com"
    await _signup(aichat_api, email)
    token = token_in_mail(smtp_sink, email.lower())
    stored = await db.fetchval("SELECT token FROM aichat.email_verifications")
    assert stored == hashlib.sha256(token.encode()).hexdigest()  # only the hash is kept

    login = {"email": email, "password": PASSWORD}
    r = await aichat_api.post("/v1/aichat/auth/login", json=login)
    assert r.status == 403  # not verified yet

    r = await aichat_api.post("/v1/aichat/auth/verify-email", json={"token": token})
    assert r.status == 200 and (await r.json())["email_verified"] is True
    r = await aichat_api.post("/v1/aichat/auth/verify-email", json={"token": token})
    assert r.status == 404  # single use
    assert await db.fetchval("SELECT attempt_count FROM aichat.email_verifications") == 2

    r = await aichat_api.post(
        "/v1/aichat/auth/login", json=login, headers={"User-Agent": "pytest-device/1"}
    )
    assert r.status == 200, await r.text()
    session = await r.json()
    row = await db.fetchrow(
        "SELECT * FROM aichat.sessions WHERE id = $1::uuid", session["session_id"]
    )
    assert row["user_agent"] == "pytest-device/1"
    assert str(row["ip_address"]) == "127.0.0.1"
    assert row["is_active"] and row["token"] != session["refresh_token"]
    me = await aichat_api.get(
        "/v1/aichat/me", headers={"Authorization": f"Bearer {session['access_token']}"}
    )
    assert (await me.json())["login_count"] == 1

    body = {"refresh_token": session["refresh_token"]}
    r = await aichat_api.post("/v1/aichat/auth/refresh", json=body)
    assert r.status == 200
    r = await aichat_api.post("/v1/aichat/auth/logout", json=body)
    assert r.status == 204
    r = await aichat_api.post("/v1/aichat/auth/refresh", json=body)
    assert r.status == 401
    assert not await db.fetchval("SELECT is_active FROM aichat.sessions")
    me = await aichat_api.get(
        "/v1/aichat/me", headers={"Authorization": f"Bearer {session['access_token']}"}
    )
    assert me.status == 401  # the logged-out session's access token is refused


async def test_expired_verification_token_is_refused(
    aichat_api: TestClient, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    email = "late@example.com"
    await _signup(aichat_api, email)
    await db.execute("UPDATE aichat.email_verifications SET expires_at = LOCALTIMESTAMP")
    r = await aichat_api.post(
        "/v1/aichat/auth/verify-email", json={"token": token_in_mail(smtp_sink, email)}
    )
    assert r.status == 404
    assert not await db.fetchval("SELECT email_verified FROM aichat.users")


async def test_password_reset_is_single_use_and_ends_sessions(
    aichat_api: TestClient, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    email = "reset@example.com"
    await _signup(aichat_api, email)
    await aichat_api.post(
        "/v1/aichat/auth/verify-email", json={"token": token_in_mail(smtp_sink, email)}
    )
    r = await aichat_api.post("/v1/aichat/auth/login", json={"email": email, "password": PASSWORD})
    refresh = (await r.json())["refresh_token"]

    r = await aichat_api.post("/v1/aichat/auth/password-reset", json={"email": email})
    assert r.status == 202
    token = token_in_mail(smtp_sink, email)
    body = {"token": token, "new_password": "a brand new secret"}
    r = await aichat_api.post("/v1/aichat/auth/password-reset/confirm", json=body)
    assert r.status == 204
    r = await aichat_api.post("/v1/aichat/auth/password-reset/confirm", json=body)
    assert r.status == 404  # used
    r = await aichat_api.post("/v1/aichat/auth/refresh", json={"refresh_token": refresh})
    assert r.status == 401  # every session ended
    r = await aichat_api.post(
        "/v1/aichat/auth/login", json={"email": email, "password": "a brand new secret"}
    )
    assert r.status == 200

    await aichat_api.post("/v1/aichat/auth/password-reset", json={"email": email})
    await db.execute("UPDATE aichat.password_resets SET expires_at = LOCALTIMESTAMP")
    body = {"token": token_in_mail(smtp_sink, email), "new_password": "another secret!"}
    r = await aichat_api.post("/v1/aichat/auth/password-reset/confirm", json=body)
    assert r.status == 404  # expired
