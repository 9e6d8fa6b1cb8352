"""Accounts over HTTP: OTPs, signup, login, refresh rotation, logout, password reset,
verification, attempt limits, and the one error shape."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from kernel.tokens import sign_access_token, verify_access_token
from realms.analyst.credentials import hash_password
from tests.api.conftest import SmsCapture, SmtpSink
from tests.factories import make_user

PASSWORD = "correct horse battery"


async def _json(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json() if status != 204 else None


async def _signup(
    api: TestClient, smtp_sink: SmtpSink, address: str, user_type: str = "trader"
) -> dict[str, Any]:
    await _json(await api.post("/v1/auth/otp", json={"purpose": "signup", "email": address}), 202)
    code = smtp_sink.code_for(address)
    return await _json(
        await api.post(
            "/v1/auth/signup",
            json={"email": address, "password": PASSWORD, "otp": code, "user_type": user_type},
        ),
        201,
    )


def _address() -> str:
    return f"u-{uuid.uuid4().hex[:10]}@example.com"


async def test_signup_by_email_code_creates_a_verified_account_and_a_session(
    api: TestClient, smtp_sink: SmtpSink, db: asyncpg.Connection, secret: str
) -> None:
    address = _address()
    session = await _signup(api, smtp_sink, address)
    claims = verify_access_token(secret, session["access_token"])
    assert claims.sub == session["user"]["id"] and claims.realm == "analyst"
    row = await db.fetchrow(
        "SELECT email_verified, password_hash, login_count FROM analyst.users WHERE email = $1",
        address,
    )
    assert row["email_verified"] and row["password_hash"].startswith("$2b$")
    assert PASSWORD not in row["password_hash"]
    me = await _json(
        await api.get("/v1/me", headers={"Authorization": f"Bearer {session['access_token']}"}), 200
    )
    assert me["email"] == address and me["user_type"] == "trader"


async def test_analyst_signup_gets_a_profile(
    api: TestClient, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    session = await _signup(api, smtp_sink, _address(), user_type="analyst")
    assert (
        await db.fetchval(
            "SELECT count(*) FROM analyst.analyst_profiles WHERE user_id = $1::uuid",
            session["user"]["id"],
        )
        == 1
    )


async def test_signup_code_is_refused_when_wrong_and_dead_after_three_attempts(
    api: TestClient, smtp_sink: SmtpSink
) -> None:
    address = _address()
    await api.post("/v1/auth/otp", json={"purpose": "signup", "email": address})
    code = smtp_sink.code_for(address)
    wrong = "000000" if code != "000000" else "111111"
    body = {"email": address, "password": PASSWORD, "otp": wrong}
    for _ in range(3):
        error = await _json(await api.post("/v1/auth/signup", json=body), 401)
        assert error["error"]["code"] == "unauthorized"
    dead = await api.post("/v1/auth/signup", json={**body, "otp": code})
    assert dead.status == 429


async def test_expired_code_is_refused(
    api: TestClient, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    address = _address()
    await api.post("/v1/auth/otp", json={"purpose": "signup", "email": address})
    await db.execute(
        "UPDATE analyst.otp_verifications SET expires_at = now() - interval '1 s' WHERE email = $1",
        address,
    )
    response = await api.post(
        "/v1/auth/signup",
        json={"email": address, "password": PASSWORD, "otp": smtp_sink.code_for(address)},
    )
    assert response.status == 401


async def test_codes_expire_after_ten_minutes(
    api: TestClient, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    address = _address()
    await api.post("/v1/auth/otp", json={"purpose": "signup", "email": address})
    lifetime = await db.fetchval(
        "SELECT expires_at - created_at FROM analyst.otp_verifications WHERE email = $1", address
    )
    assert lifetime.total_seconds() == pytest.approx(600, abs=2)


async def test_signup_code_for_an_existing_account_is_not_sent_and_nothing_is_revealed(
    api: TestClient, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    address = _address()
    await make_user(db, email=address)
    response = await api.post("/v1/auth/otp", json={"purpose": "signup", "email": address})
    assert response.status == 202 and (await response.json()) == {"status": "sent"}
    assert smtp_sink.sent_to(address) == 0


async def test_login_with_password_counts_logins_and_refuses_bad_credentials_alike(
    api: TestClient, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    address = _address()
    await _signup(api, smtp_sink, address)
    session = await _json(
        await api.post("/v1/auth/login", json={"email": address.upper(), "password": PASSWORD}), 200
    )
    row = await db.fetchrow(
        "SELECT login_count, last_active FROM analyst.users WHERE email = $1", address
    )
    assert row["login_count"] == 2 and row["last_active"] is not None
    assert session["user"]["login_count"] == 2
    wrong = await _json(
        await api.post("/v1/auth/login", json={"email": address, "password": "not the password"}),
        401,
    )
    unknown = await _json(
        await api.post("/v1/auth/login", json={"email": _address(), "password": PASSWORD}), 401
    )
    assert wrong["error"]["message"] == unknown["error"]["message"]


async def test_login_by_phone_code(
    api: TestClient, sms: SmsCapture, db: asyncpg.Connection
) -> None:
    phone = "+9198765" + str(uuid.uuid4().int)[:5]
    await make_user(db, phone=phone, password_hash=await hash_password(PASSWORD, 4))
    await _json(await api.post("/v1/auth/otp", json={"purpose": "login", "phone": phone}), 202)
    session = await _json(
        await api.post("/v1/auth/login", json={"phone": phone, "otp": sms.codes[phone][-1]}), 200
    )
    assert session["user"]["phone"] == phone
    again = await api.post("/v1/auth/login", json={"phone": phone, "otp": sms.codes[phone][-1]})
    assert again.status == 401  # a code is spent once


async def test_repeated_failed_logins_are_rate_limited_per_account(
    api: TestClient, smtp_sink: SmtpSink
) -> None:
    address = _address()
    await _signup(api, smtp_sink, address)
    for _ in range(10):
        await _json(
            await api.post("/v1/auth/login", json={"email": address, "password": "wrong-password"}),
            401,
        )
    limited = await api.post("/v1/auth/login", json={"email": address, "password": PASSWORD})
    body = await _json(limited, 429)
    assert body["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    assert body["error"]["details"]["retry_after_ms"] > 0


async def test_otp_requests_are_limited_per_account(api: TestClient, smtp_sink: SmtpSink) -> None:
    address = _address()
    for _ in range(5):
        await _json(
            await api.post("/v1/auth/otp", json={"purpose": "signup", "email": address}), 202
        )
    await _json(await api.post("/v1/auth/otp", json={"purpose": "signup", "email": address}), 429)


async def test_refresh_rotates_and_a_replayed_token_revokes_the_whole_login(
    api: TestClient, smtp_sink: SmtpSink
) -> None:
    first = await _signup(api, smtp_sink, _address())
    second = await _json(
        await api.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}), 200
    )
    assert second["refresh_token"] != first["refresh_token"]
    replay = await _json(
        await api.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}), 401
    )
    assert "already used" in replay["error"]["message"]
    await _json(
        await api.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}), 401
    )


async def test_logout_revokes_the_refresh_token(api: TestClient, smtp_sink: SmtpSink) -> None:
    session = await _signup(api, smtp_sink, _address())
    await _json(
        await api.post("/v1/auth/logout", json={"refresh_token": session["refresh_token"]}), 204
    )
    await _json(
        await api.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}), 401
    )


async def test_password_reset_with_a_code_replaces_the_password_and_ends_sessions(
    api: TestClient, smtp_sink: SmtpSink
) -> None:
    address = _address()
    session = await _signup(api, smtp_sink, address)
    await _json(
        await api.post("/v1/auth/otp", json={"purpose": "reset_password", "email": address}), 202
    )
    await _json(
        await api.post(
            "/v1/auth/password-reset",
            json={
                "email": address,
                "otp": smtp_sink.code_for(address),
                "new_password": "a whole new secret",
            },
        ),
        204,
    )
    await _json(
        await api.post("/v1/auth/login", json={"email": address, "password": PASSWORD}), 401
    )
    await _json(
        await api.post("/v1/auth/login", json={"email": address, "password": "a whole new secret"}),
        200,
    )
    await _json(
        await api.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}), 401
    )


async def test_verifying_an_email_with_a_code(
    api: TestClient, smtp_sink: SmtpSink, db: asyncpg.Connection, secret: str
) -> None:
    address = _address()
    user = await make_user(db, email=address)
    headers = {"Authorization": f"Bearer {sign_access_token(secret, str(user), 'analyst', 60)}"}
    await _json(
        await api.post("/v1/me/otp", json={"purpose": "verify_email"}, headers=headers), 202
    )
    me = await _json(
        await api.post(
            "/v1/me/verify",
            json={"purpose": "verify_email", "otp": smtp_sink.code_for(address)},
            headers=headers,
        ),
        200,
    )
    assert me["email_verified"] is True


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Bearer"),
        ({"Authorization": "Bearer nope"}, "malformed"),
        ({"Authorization": "Basic abc"}, "Bearer"),
    ],
)
async def test_requests_without_a_valid_token_get_401_in_the_error_shape(
    api: TestClient, headers: dict[str, str], message: str
) -> None:
    body = await _json(await api.get("/v1/me", headers=headers), 401)
    assert set(body["error"]) == {"code", "message", "details"}
    assert message in body["error"]["message"]


async def test_expired_access_token_is_refused(
    api: TestClient, secret: str, db: asyncpg.Connection
) -> None:
    user = await make_user(db)
    token = sign_access_token(secret, str(user), "analyst", 60, now=1_000_000)
    body = await _json(await api.get("/v1/me", headers={"Authorization": f"Bearer {token}"}), 401)
    assert "expired" in body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "invalid body"),
        (b'{"email": "x@example.com"}', "password"),
        (b'{"email": "x@example.com", "password": "p", "otp": "123456"}', "password"),
        (b'{"email": "x@example.com", "password": "longenough", "otp": "12"}', "otp"),
        (b'{"email": "not-an-email", "password": "longenough", "otp": "123456"}', "email"),
        (
            b'{"email": "a@b.co", "phone": "+911234567", "password": "longenough",'
            b' "otp": "123456"}',
            "exactly one",
        ),
        (
            b'{"email": "a@b.co\'; DROP TABLE analyst.users; --", "password": "longenough",'
            b' "otp": "123456"}',
            "email",
        ),
    ],
)
async def test_malformed_bodies_get_400_naming_the_problem(
    api: TestClient, body: bytes, fragment: str, db: asyncpg.Connection
) -> None:
    response = await api.post(
        "/v1/auth/signup", data=body, headers={"Content-Type": "application/json"}
    )
    error = await _json(response, 400)
    assert error["error"]["code"] == "bad_request" and fragment in error["error"]["message"]
    assert await db.fetchval("SELECT to_regclass('analyst.users')") is not None


async def test_unknown_route_and_wrong_method_use_the_error_shape(api: TestClient) -> None:
    missing = await _json(await api.get("/v1/nothing-here"), 404)
    assert missing["error"]["code"] == "not_found"
    wrong = await _json(await api.get("/v1/auth/login"), 405)
    assert wrong["error"]["code"] == "bad_request"


async def test_openapi_document_covers_every_route(api: TestClient) -> None:
    document = await _json(await api.get("/openapi.json"), 200)
    assert document["openapi"].startswith("3.1")
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in api.app.router.routes()
        if route.method not in ("HEAD", "*") and route.resource is not None
    }
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert served == documented


async def test_anonymous_calls_are_refused_before_their_body_is_read(api: TestClient) -> None:
    response = await api.post(
        "/v1/me/verify", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (await _json(response, 401))["error"]["code"] == "unauthorized"
