"""/v1/auth and /v1/me: OTPs, signup, login (password or OTP), refresh, logout, password
reset, e-mail/phone verification, and the caller's own account."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Conflict, Unauthorized
from kernel.tokens import sign_access_token
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint, exactly_one_of
from kernel.web.keys import POOL, SETTINGS
from realms.analyst import attempts, otp
from realms.analyst.credentials import (
    RefreshReplayed,
    hash_password,
    issue_refresh_token,
    password_matches,
    revoke_all,
    revoke_family,
    revoke_token,
    rotate_refresh_token,
)
from realms.analyst.otp import OTP_SENDERS

routes = web.RouteTableDef()

# The rule of the users and otp_verifications tables (email_format checks): anything looser
# passes here and then fails in the database.
Email = Annotated[
    str,
    Meta(
        max_length=255,
        pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\Z",
    ),
]
Phone = Annotated[str, Meta(pattern=r"^\+[1-9][0-9]{6,14}\Z", description="E.164")]
Password = Annotated[str, Meta(min_length=8, max_length=128)]
Code = Annotated[str, Meta(pattern=r"^[0-9]{6}\Z")]
# Every request naming an account names it by e-mail or by phone, never both (_one_target).
_EMAIL_OR_PHONE = exactly_one_of("email", "phone")


class OtpRequest(Struct, forbid_unknown_fields=True):
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (_EMAIL_OR_PHONE,)
    purpose: Literal["signup", "login", "reset_password"]
    email: Email | None = None
    phone: Phone | None = None


class SignupBody(Struct, forbid_unknown_fields=True):
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (_EMAIL_OR_PHONE,)
    password: Password
    otp: Code
    email: Email | None = None
    phone: Phone | None = None
    user_type: Literal["trader", "analyst"] = "trader"


class LoginBody(Struct, forbid_unknown_fields=True):
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        _EMAIL_OR_PHONE,
        exactly_one_of("password", "otp"),
    )
    email: Email | None = None
    phone: Phone | None = None
    password: Annotated[str, Meta(max_length=128)] | None = None
    otp: Code | None = None


class RefreshBody(Struct, forbid_unknown_fields=True):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=200)]


class ResetBody(Struct, forbid_unknown_fields=True):
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (_EMAIL_OR_PHONE,)
    otp: Code
    new_password: Password
    email: Email | None = None
    phone: Phone | None = None


class VerifyRequest(Struct, forbid_unknown_fields=True):
    purpose: Literal["verify_email", "verify_phone"]


class VerifyBody(Struct, forbid_unknown_fields=True):
    purpose: Literal["verify_email", "verify_phone"]
    otp: Code


class Accepted(Struct):
    status: str


class UserOut(Struct):
    id: uuid.UUID
    user_type: str
    email: str | None
    phone: str | None
    email_verified: bool
    phone_verified: bool
    login_count: int
    last_active: datetime | None
    created_at: datetime


class SessionOut(Struct):
    access_token: str
    refresh_token: str
    expires_in: int
    user: UserOut
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret


_USER_COLUMNS = (
    "id, user_type, email, phone, email_verified, phone_verified, login_count,"
    " last_active, created_at"
)


def _one_target(email: str | None, phone: str | None) -> tuple[str | None, str | None, str]:
    if (email is None) == (phone is None):
        raise BadRequest("give exactly one of `email` or `phone`")
    return (email.lower() if email else None), phone, (email or phone or "").lower()


def _address(request: web.Request) -> str:
    return request.remote or "unknown"


async def _session(
    request: web.Request,
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    refresh_token: str | None = None,
) -> SessionOut:
    settings = request.app[SETTINGS]
    row = await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM analyst.users WHERE id = $1", user_id)
    token = refresh_token or await issue_refresh_token(
        conn, user_id, settings.refresh_token_ttl_s, user_agent=request.headers.get("User-Agent")
    )
    return SessionOut(
        access_token=sign_access_token(
            settings.secret, str(user_id), "analyst", settings.access_token_ttl_s
        ),
        refresh_token=token,
        expires_in=settings.access_token_ttl_s,
        user=msgspec.convert(dict(row), UserOut),
    )


@endpoint(
    routes,
    "POST",
    "/v1/auth/otp",
    summary="Send a one-time code",
    tag="auth",
    body=OtpRequest,
    response=Accepted,
    status=202,
    auth=False,
    errors=(400, 429),
)
async def request_otp(request: web.Request, body: OtpRequest) -> Accepted:
    """Always 202, whether or not an account exists (no account enumeration)."""
    email, phone, account = _one_target(body.email, body.phone)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await attempts.reserve(conn, "otp_request", account, _address(request))
        user_id = await conn.fetchval(
            "SELECT id FROM analyst.users WHERE (lower(email) = $1 OR phone = $2)"
            " AND deleted_at IS NULL",
            email,
            phone,
        )
        if (body.purpose == "signup") == (user_id is not None):
            return Accepted("sent")  # nothing to send, and nothing to tell
        code = await otp.issue(
            conn, purpose=body.purpose, email=email, phone=phone, user_id=user_id
        )
    await request.app[OTP_SENDERS].send(email=email, phone=phone, code=code, purpose=body.purpose)
    return Accepted("sent")


@endpoint(
    routes,
    "POST",
    "/v1/auth/signup",
    summary="Create an account with a signup code",
    tag="auth",
    body=SignupBody,
    response=SessionOut,
    status=201,
    auth=False,
    errors=(400, 401, 409, 429),
)
async def signup(request: web.Request, body: SignupBody) -> SessionOut:
    email, phone, account = _one_target(body.email, body.phone)
    password_hash = await hash_password(body.password, request.app[SETTINGS].bcrypt_rounds)
    async with request.app[POOL].acquire() as conn:
        reserved = await attempts.reserve(conn, "otp_verify", account, _address(request))
        async with conn.transaction():
            ok = await otp.verify(conn, purpose="signup", email=email, phone=phone, code=body.otp)
        if not ok:
            raise Unauthorized("the code is wrong or has expired")
        await attempts.succeeded(conn, reserved)
        async with conn.transaction():
            try:
                user_id = await conn.fetchval(
                    "INSERT INTO analyst.users (email, phone, password_hash, user_type,"
                    " email_verified, phone_verified, login_count, last_active)"
                    " VALUES ($1, $2, $3, $4, $5, $6, 1, now()) RETURNING id",
                    email,
                    phone,
                    password_hash,
                    body.user_type,
                    email is not None,
                    phone is not None,
                )
            except asyncpg.UniqueViolationError:
                raise Conflict("an account with this e-mail or phone already exists") from None
            if body.user_type == "analyst":
                await conn.execute(
                    "INSERT INTO analyst.analyst_profiles (user_id, display_name) VALUES ($1, $2)",
                    user_id,
                    account.split("@")[0][:255],
                )
            return await _session(request, conn, user_id)


@endpoint(
    routes,
    "POST",
    "/v1/auth/login",
    summary="Log in with a password or a login code",
    tag="auth",
    body=LoginBody,
    response=SessionOut,
    auth=False,
    errors=(400, 401, 429),
)
async def login(request: web.Request, body: LoginBody) -> SessionOut:
    email, phone, account = _one_target(body.email, body.phone)
    if (body.password is None) == (body.otp is None):
        raise BadRequest("give exactly one of `password` or `otp`")
    address = _address(request)
    async with request.app[POOL].acquire() as conn:
        # Admitted (and counted as a failure) before anything is checked: see attempts.py.
        reserved = await attempts.reserve(conn, "login", account, address)
        row = await conn.fetchrow(
            "SELECT id, password_hash, is_active FROM analyst.users"
            " WHERE (lower(email) = $1 OR phone = $2) AND deleted_at IS NULL",
            email,
            phone,
        )
        if body.password is not None:
            ok = row is not None and await password_matches(body.password, row["password_hash"])
        else:
            async with conn.transaction():
                ok = row is not None and await otp.verify(
                    conn, purpose="login", email=email, phone=phone, code=body.otp or ""
                )
        if not ok or row is None or not row["is_active"]:
            raise Unauthorized("wrong credentials, or the account is not active")
        async with conn.transaction():
            await attempts.succeeded(conn, reserved)
            await conn.execute(
                "UPDATE analyst.users SET login_count = login_count + 1,"
                " last_active = now() WHERE id = $1",
                row["id"],
            )
            return await _session(request, conn, row["id"])


@endpoint(
    routes,
    "POST",
    "/v1/auth/refresh",
    summary="Trade a refresh token for a new pair",
    tag="auth",
    body=RefreshBody,
    response=SessionOut,
    auth=False,
    errors=(400, 401),
)
async def refresh(request: web.Request, body: RefreshBody) -> SessionOut:
    async with request.app[POOL].acquire() as conn:
        try:
            async with conn.transaction():
                return await _rotate(request, conn, body.refresh_token)
        except RefreshReplayed as replayed:
            await revoke_family(conn, replayed.family_id)
            raise


async def _rotate(request: web.Request, conn: asyncpg.Connection, token: str) -> SessionOut:
    user_id, successor = await rotate_refresh_token(
        conn, token, request.app[SETTINGS].refresh_token_ttl_s
    )
    active = await conn.fetchval(
        "SELECT is_active AND deleted_at IS NULL FROM analyst.users WHERE id = $1", user_id
    )
    if not active:
        raise Unauthorized("user does not exist or is not active")
    await conn.execute("UPDATE analyst.users SET last_active = now() WHERE id = $1", user_id)
    return await _session(request, conn, user_id, successor)


@endpoint(
    routes,
    "POST",
    "/v1/auth/logout",
    summary="Revoke a login (its refresh tokens)",
    tag="auth",
    body=RefreshBody,
    status=204,
    auth=False,
    errors=(400,),
)
async def logout(request: web.Request, body: RefreshBody) -> None:
    async with request.app[POOL].acquire() as conn:
        await revoke_token(conn, body.refresh_token)


@endpoint(
    routes,
    "POST",
    "/v1/auth/password-reset",
    summary="Set a new password with a code",
    tag="auth",
    body=ResetBody,
    status=204,
    auth=False,
    errors=(400, 401, 429),
)
async def reset_password(request: web.Request, body: ResetBody) -> None:
    email, phone, account = _one_target(body.email, body.phone)
    password_hash = await hash_password(body.new_password, request.app[SETTINGS].bcrypt_rounds)
    async with request.app[POOL].acquire() as conn:
        reserved = await attempts.reserve(conn, "otp_verify", account, _address(request))
        async with conn.transaction():
            ok = await otp.verify(
                conn, purpose="reset_password", email=email, phone=phone, code=body.otp
            )
        if not ok:
            raise Unauthorized("the code is wrong or has expired")
        async with conn.transaction():
            await attempts.succeeded(conn, reserved)
            user_id = await conn.fetchval(
                "UPDATE analyst.users SET password_hash = $3 WHERE (lower(email) = $1"
                " OR phone = $2) AND deleted_at IS NULL RETURNING id",
                email,
                phone,
                password_hash,
            )
            if user_id is not None:
                await revoke_all(conn, user_id)  # every other session ends with the old password


@endpoint(
    routes,
    "GET",
    "/v1/me",
    summary="The caller's account",
    tag="account",
    response=UserOut,
    errors=(401,),
)
async def me(request: web.Request) -> UserOut:
    who = await caller(request)
    row = await request.app[POOL].fetchrow(
        f"SELECT {_USER_COLUMNS} FROM analyst.users WHERE id = $1", who.user_id
    )
    return msgspec.convert(dict(row), UserOut)


@endpoint(
    routes,
    "POST",
    "/v1/me/otp",
    summary="Send a code to verify the e-mail or phone",
    tag="account",
    body=VerifyRequest,
    response=Accepted,
    status=202,
    errors=(400, 401, 409, 429),
)
async def request_verification(request: web.Request, body: VerifyRequest) -> Accepted:
    who = await caller(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT email, phone FROM analyst.users WHERE id = $1", who.user_id
        )
        email = row["email"] if body.purpose == "verify_email" else None
        phone = row["phone"] if body.purpose == "verify_phone" else None
        if email is None and phone is None:
            # a well-formed request the account's state cannot serve
            raise Conflict("the account has no " + body.purpose.removeprefix("verify_"))
        await attempts.reserve(conn, "otp_request", str(who.user_id), _address(request))
        code = await otp.issue(
            conn, purpose=body.purpose, email=email, phone=phone, user_id=who.user_id
        )
    await request.app[OTP_SENDERS].send(email=email, phone=phone, code=code, purpose=body.purpose)
    return Accepted("sent")


@endpoint(
    routes,
    "POST",
    "/v1/me/verify",
    summary="Confirm the e-mail or phone with a code",
    tag="account",
    body=VerifyBody,
    response=UserOut,
    errors=(400, 401, 429),
)
async def verify(request: web.Request, body: VerifyBody) -> UserOut:
    who = await caller(request)
    column = "email_verified" if body.purpose == "verify_email" else "phone_verified"
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(
            "SELECT email, phone FROM analyst.users WHERE id = $1", who.user_id
        )
        reserved = await attempts.reserve(conn, "otp_verify", str(who.user_id), _address(request))
        async with conn.transaction():
            ok = await otp.verify(
                conn,
                purpose=body.purpose,
                code=body.otp,
                email=row["email"] if body.purpose == "verify_email" else None,
                phone=row["phone"] if body.purpose == "verify_phone" else None,
            )
        if not ok:
            raise Unauthorized("the code is wrong or has expired")
        await attempts.succeeded(conn, reserved)
        updated = await conn.fetchrow(
            f"UPDATE analyst.users SET {column} = true WHERE id = $1 RETURNING {_USER_COLUMNS}",
            who.user_id,
        )
    return msgspec.convert(dict(updated), UserOut)
