"""/v1/aichat/auth and /v1/aichat/me: sign-up with e-mail verification, login (a `sessions`
row per device: user agent, IP, expiry; its access tokens carry its id as `sid`), refresh,
logout of one session, password reset (every session). Verification and reset tokens are
single-use, expire, and are stored as their SHA-256 only; so is a session's refresh token
(sessions.token)."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import uuid
from datetime import datetime
from typing import Annotated

import asyncpg
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import Conflict, Forbidden, NotFound, Unauthorized
from kernel.passwords import hash_password, password_matches
from kernel.revocation import revoke_session, revoke_tokens
from kernel.tokens import sign_access_token
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL, SETTINGS
from realms.aichat.mail import AICHAT_MAILER, Purpose

routes = web.RouteTableDef()
REALM = "aichat"
VERIFY_TTL_S = 24 * 3600
RESET_TTL_S = 3600

Email = Annotated[
    str,
    Meta(
        max_length=255,
        pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\Z",
    ),
]
Password = Annotated[str, Meta(min_length=8, max_length=128)]
Token = Annotated[str, Meta(min_length=16, max_length=200, pattern=r"^[A-Za-z0-9_-]+\Z")]


class SignupBody(Struct, forbid_unknown_fields=True):
    email: Email
    password: Password
    name: Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[^\x00]*\S[^\x00]*$")]


class EmailBody(Struct, forbid_unknown_fields=True):
    email: Email


class TokenBody(Struct, forbid_unknown_fields=True):
    token: Token


class LoginBody(Struct, forbid_unknown_fields=True):
    email: Email
    password: Annotated[str, Meta(max_length=128)]


class RefreshBody(Struct, forbid_unknown_fields=True):
    refresh_token: Token


class ResetBody(Struct, forbid_unknown_fields=True):
    token: Token
    new_password: Password


class UserOut(Struct):
    id: uuid.UUID
    email: str
    name: str
    plan_tier: str
    email_verified: bool
    login_count: int
    last_login_at: datetime | None
    created_at: datetime


class SignedUp(Struct):
    user: UserOut
    verification_sent: bool = True


class SessionOut(Struct):
    access_token: str
    refresh_token: str
    session_id: uuid.UUID
    expires_in: int
    user: UserOut
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret


class AccessOut(Struct):
    access_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105


class Accepted(Struct):
    status: str = "accepted"


_USER = (
    "SELECT id, email, name, plan_tier, email_verified, login_count, last_login_at, created_at"
    " FROM aichat.users WHERE id = $1"
)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(row: asyncpg.Record) -> UserOut:
    return UserOut(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        plan_tier=row["plan_tier"],
        email_verified=row["email_verified"],
        login_count=row["login_count"],
        last_login_at=row["last_login_at"],
        created_at=row["created_at"],
    )


async def _mail(request: web.Request, to: str, purpose: Purpose, token: str) -> None:
    await request.app[AICHAT_MAILER].send(to=to, purpose=purpose, token=token)


async def _new_verification(conn: asyncpg.Connection, user_id: uuid.UUID, email: str) -> str:
    token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO aichat.email_verifications (user_id, email, token, expires_at)"
        " VALUES ($1, $2, $3, LOCALTIMESTAMP + make_interval(secs => $4))",
        user_id,
        email,
        digest(token),
        VERIFY_TTL_S,
    )
    return token


@endpoint(
    routes,
    "POST",
    "/v1/auth/signup",
    summary="Create an account; a verification token is e-mailed",
    tag="aichat auth",
    body=SignupBody,
    response=SignedUp,
    status=201,
    auth=False,
    errors=(400, 409),
)
async def signup(request: web.Request, body: SignupBody) -> SignedUp:
    email = body.email.lower()
    password = await hash_password(body.password, request.app[SETTINGS].bcrypt_rounds)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        user_id = await conn.fetchval(
            "INSERT INTO aichat.users (email, password, name) VALUES ($1, $2, $3)"
            " ON CONFLICT (email) DO NOTHING RETURNING id",
            email,
            password,
            body.name.strip(),
        )
        if user_id is None:
            raise Conflict("an account with this e-mail exists; sign in or reset the password")
        token = await _new_verification(conn, user_id, email)
        row = await conn.fetchrow(_USER, user_id)
    await _mail(request, email, "verify_email", token)
    return SignedUp(user=_user(row))


@endpoint(
    routes,
    "POST",
    "/v1/auth/verify-email",
    summary="Confirm an e-mail address with its token (once, before it expires)",
    tag="aichat auth",
    body=TokenBody,
    response=UserOut,
    auth=False,
    errors=(400, 404),
)
async def verify_email(request: web.Request, body: TokenBody) -> UserOut:
    token = digest(body.token)
    async with request.app[POOL].acquire() as conn:
        async with conn.transaction():
            row = await conn.fetchrow(
                "UPDATE aichat.email_verifications SET is_verified = true,"
                " verified_at = LOCALTIMESTAMP, attempt_count = attempt_count + 1"
                " WHERE token = $1 AND NOT is_verified AND expires_at > LOCALTIMESTAMP"
                " RETURNING user_id, email",
                token,
            )
            if row is not None:
                await conn.execute(
                    "UPDATE aichat.users SET email_verified = true,"
                    " email_verified_at = coalesce(email_verified_at, LOCALTIMESTAMP)"
                    " WHERE id = $1 AND email = $2",
                    row["user_id"],
                    row["email"],
                )
                return _user(await conn.fetchrow(_USER, row["user_id"]))
        await conn.execute(  # a spent or expired token: the attempt is counted
            "UPDATE aichat.email_verifications SET attempt_count = attempt_count + 1"
            " WHERE token = $1",
            token,
        )
    # one answer for unknown, spent and expired tokens: which it was is nobody's business
    raise NotFound("this verification token is unknown, used or expired")


@endpoint(
    routes,
    "POST",
    "/v1/auth/resend-verification",
    summary="E-mail a new verification token (answers the same whether the address exists)",
    tag="aichat auth",
    body=EmailBody,
    response=Accepted,
    status=202,
    auth=False,
)
async def resend_verification(request: web.Request, body: EmailBody) -> Accepted:
    email = body.email.lower()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        user_id = await conn.fetchval(
            "SELECT id FROM aichat.users WHERE email = $1 AND NOT email_verified AND is_active",
            email,
        )
        token = await _new_verification(conn, user_id, email) if user_id else None
    if token is not None:
        await _mail(request, email, "verify_email", token)
    return Accepted()


async def _access(
    request: web.Request, user_id: uuid.UUID, session_id: uuid.UUID
) -> tuple[str, int]:
    """An access token of the user's sign-in session (its `sid` claim: logout ends it)."""
    settings = request.app[SETTINGS]
    ttl = settings.access_token_ttl_s
    token = sign_access_token(settings.secret, str(user_id), REALM, ttl, session_id=str(session_id))
    return token, ttl


@endpoint(
    routes,
    "POST",
    "/v1/auth/login",
    summary="Sign in with e-mail and password: a session (device, IP) and its tokens",
    tag="aichat auth",
    body=LoginBody,
    response=SessionOut,
    auth=False,
    errors=(401, 403),
)
async def login(request: web.Request, body: LoginBody) -> SessionOut:
    pool = request.app[POOL]
    found = await pool.fetchrow(
        "SELECT id, password, is_active, email_verified FROM aichat.users WHERE email = $1",
        body.email.lower(),
    )
    if found is None or not await password_matches(body.password, found["password"]):
        raise Unauthorized("e-mail or password is wrong")
    if not found["is_active"]:
        raise Unauthorized("this account is disabled")
    if not found["email_verified"]:
        raise Forbidden("confirm your e-mail address first (see the e-mail we sent)")
    settings = request.app[SETTINGS]
    refresh = secrets.token_urlsafe(32)
    async with pool.acquire() as conn, conn.transaction():
        session_id = await conn.fetchval(
            "INSERT INTO aichat.sessions (user_id, token, user_agent, ip_address, expires_at)"
            " VALUES ($1, $2, $3, $4::inet, LOCALTIMESTAMP + make_interval(secs => $5))"
            " RETURNING id",
            found["id"],
            digest(refresh),
            (request.headers.get("User-Agent") or "")[:500] or None,
            _ip(request),
            settings.refresh_token_ttl_s,
        )
        await conn.execute(
            "UPDATE aichat.users SET last_login_at = LOCALTIMESTAMP, login_count = login_count + 1"
            " WHERE id = $1",
            found["id"],
        )
        row = await conn.fetchrow(_USER, found["id"])
    access, ttl = await _access(request, found["id"], session_id)
    return SessionOut(
        access_token=access,
        refresh_token=refresh,
        session_id=session_id,
        expires_in=ttl,
        user=_user(row),
    )


def _ip(request: web.Request) -> str | None:
    """The peer's address as inet accepts it (None for a Unix socket or a test transport)."""
    try:
        return str(ipaddress.ip_address(request.remote or ""))
    except ValueError:
        return None


@endpoint(
    routes,
    "POST",
    "/v1/auth/refresh",
    summary="A new access token for an active, unexpired session",
    tag="aichat auth",
    body=RefreshBody,
    response=AccessOut,
    auth=False,
    errors=(401,),
)
async def refresh(request: web.Request, body: RefreshBody) -> AccessOut:
    row = await request.app[POOL].fetchrow(
        "UPDATE aichat.sessions s SET last_activity_at = LOCALTIMESTAMP"
        "  FROM aichat.users u"
        " WHERE s.token = $1 AND s.is_active AND s.expires_at > LOCALTIMESTAMP"
        "   AND u.id = s.user_id AND u.is_active"
        " RETURNING s.user_id, s.id",
        digest(body.refresh_token),
    )
    if row is None:
        raise Unauthorized("this session has ended; sign in again")
    access, ttl = await _access(request, row["user_id"], row["id"])
    return AccessOut(access_token=access, expires_in=ttl)


@endpoint(
    routes,
    "POST",
    "/v1/auth/logout",
    summary="End this session: its refresh token and its access tokens stop working, the"
    " sockets opened with them close (4004); the account's other sessions keep working",
    tag="aichat auth",
    body=RefreshBody,
    status=204,
    auth=False,
)
async def logout(request: web.Request, body: RefreshBody) -> None:
    async with request.app[POOL].acquire() as conn, conn.transaction():
        ended = await conn.fetchrow(
            "UPDATE aichat.sessions SET is_active = false, last_activity_at = LOCALTIMESTAMP"
            " WHERE token = $1 AND is_active RETURNING user_id, id",
            digest(body.refresh_token),
        )
        if ended is not None:
            await revoke_session(conn, REALM, str(ended["user_id"]), str(ended["id"]))


@endpoint(
    routes,
    "POST",
    "/v1/auth/password-reset",
    summary="E-mail a password reset token (answers the same whether the address exists)",
    tag="aichat auth",
    body=EmailBody,
    response=Accepted,
    status=202,
    auth=False,
)
async def request_reset(request: web.Request, body: EmailBody) -> Accepted:
    email = body.email.lower()
    token = secrets.token_urlsafe(32)
    inserted = await request.app[POOL].fetchval(
        "INSERT INTO aichat.password_resets (user_id, token, email, expires_at)"
        " SELECT id, $2, email, LOCALTIMESTAMP + make_interval(secs => $3)"
        "   FROM aichat.users WHERE email = $1 AND is_active RETURNING id",
        email,
        digest(token),
        RESET_TTL_S,
    )
    if inserted is not None:
        await _mail(request, email, "reset_password", token)
    return Accepted()


@endpoint(
    routes,
    "POST",
    "/v1/auth/password-reset/confirm",
    summary="Set a new password with a reset token (once, before it expires); every session"
    " of the account ends",
    tag="aichat auth",
    body=ResetBody,
    status=204,
    auth=False,
    errors=(400, 404),
)
async def confirm_reset(request: web.Request, body: ResetBody) -> None:
    password = await hash_password(body.new_password, request.app[SETTINGS].bcrypt_rounds)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        user_id = await conn.fetchval(
            "UPDATE aichat.password_resets SET is_used = true, used_at = LOCALTIMESTAMP"
            " WHERE token = $1 AND NOT is_used AND expires_at > LOCALTIMESTAMP"
            " RETURNING user_id",
            digest(body.token),
        )
        if user_id is None:
            raise NotFound("this reset token is unknown, used or expired")
        await conn.execute("UPDATE aichat.users SET password = $2 WHERE id = $1", user_id, password)
        await conn.execute(
            "UPDATE aichat.sessions SET is_active = false WHERE user_id = $1 AND is_active",
            user_id,
        )
        await revoke_tokens(conn, REALM, str(user_id))


@endpoint(
    routes, "GET", "/v1/me", summary="The caller's account", tag="aichat auth", response=UserOut
)
async def me(request: web.Request) -> UserOut:
    who = await caller(request)
    row = await request.app[POOL].fetchrow(_USER, who.user_id)
    if row is None:
        raise Unauthorized("user does not exist")
    return _user(row)
