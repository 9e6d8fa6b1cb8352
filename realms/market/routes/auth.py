"""/v1/market/auth and /v1/market/me: sign-up and sign-in with e-mail or phone and a password,
refresh and logout. Each sign-in is a market.user_sessions row (the seed's "active sessions"):
it stores SHA-256 digests of the access token and of the refresh token, never the tokens.
Blocked (inactive, suspended, banned) and deleted users cannot sign in or refresh."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import asyncpg
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Conflict, Forbidden, Unauthorized
from kernel.passwords import hash_password, password_matches
from kernel.tokens import sign_access_token
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint, exactly_one_of
from kernel.web.keys import POOL, SETTINGS

routes = web.RouteTableDef()

# The rules of market.users (users_email_format, users_phone_format): looser input would
# only fail in the database.
Email = Annotated[
    str,
    Meta(
        max_length=255,
        pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\Z",
    ),
]
Phone = Annotated[str, Meta(pattern=r"^\+[1-9][0-9]{6,14}\Z", description="E.164")]
Password = Annotated[str, Meta(min_length=8, max_length=128)]
Name = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"\S")]


class SignupBody(Struct, forbid_unknown_fields=True, kw_only=True):
    email: Email
    password: Password
    first_name: Name
    last_name: Name
    phone: Phone | None = None
    # Admins are made by admins (role managers), never by signing up.
    role: Literal["buyer", "seller", "courier"] = "buyer"


class LoginBody(Struct, forbid_unknown_fields=True, kw_only=True):
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (exactly_one_of("email", "phone"),)
    password: Annotated[str, Meta(max_length=128)]
    email: Email | None = None
    phone: Phone | None = None


class RefreshBody(Struct, forbid_unknown_fields=True):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=200)]


class UserOut(Struct):
    id: int
    email: str
    phone: str | None
    first_name: str
    last_name: str
    role: str
    status: str
    email_verified: bool
    phone_verified: bool
    last_login_at: datetime | None
    created_at: datetime


class SessionOut(Struct):
    access_token: str
    refresh_token: str
    expires_in: int
    user: UserOut
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret


_USER = (
    "SELECT id, email, phone, first_name, last_name, role::text AS role, status::text AS status,"
    " email_verified, phone_verified, last_login_at, created_at FROM market.users WHERE id = $1"
)


def digest(token: str) -> str:
    """What user_sessions keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def _ip(request: web.Request) -> str | None:
    try:
        return str(ipaddress.ip_address(request.remote or ""))
    except ValueError:
        return None


def _refuse_blocked(status: str, deleted: bool) -> None:
    if deleted:
        raise Unauthorized("wrong credentials, or the account is not active")
    if status != "active":
        raise Forbidden(f"the account is {status}")


async def _open_session(
    request: web.Request, conn: asyncpg.Connection, user_id: int, session_id: int | None = None
) -> SessionOut:
    """Sign the tokens and record (or, refreshing, rotate) the session row."""
    settings = request.app[SETTINGS]
    access = sign_access_token(settings.secret, str(user_id), "market", settings.access_token_ttl_s)
    refresh = secrets.token_urlsafe(32)
    if session_id is None:
        await conn.execute(
            "INSERT INTO market.user_sessions"
            " (user_id, token, refresh_token, ip_address, user_agent, expires_at)"
            " VALUES ($1, $2, $3, $4::inet, $5, now() + make_interval(secs => $6))",
            user_id,
            digest(access),
            digest(refresh),
            _ip(request),
            request.headers.get("User-Agent"),
            settings.refresh_token_ttl_s,
        )
    else:
        await conn.execute(
            "UPDATE market.user_sessions SET token = $2, refresh_token = $3,"
            " last_activity_at = now(), expires_at = now() + make_interval(secs => $4)"
            " WHERE id = $1",
            session_id,
            digest(access),
            digest(refresh),
            settings.refresh_token_ttl_s,
        )
    row = await conn.fetchrow(_USER, user_id)
    return SessionOut(
        access_token=access,
        refresh_token=refresh,
        expires_in=settings.access_token_ttl_s,
        user=UserOut(**dict(row)),
    )


@endpoint(
    routes,
    "POST",
    "/v1/auth/signup",
    summary="Create a buyer, seller or courier account and sign in",
    tag="market",
    body=SignupBody,
    response=SessionOut,
    status=201,
    auth=False,
    errors=(400, 409),
)
async def signup(request: web.Request, body: SignupBody) -> SessionOut:
    password_hash = await hash_password(body.password, request.app[SETTINGS].bcrypt_rounds)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        try:
            user_id = await conn.fetchval(
                "INSERT INTO market.users"
                " (email, phone, password_hash, first_name, last_name, role, last_login_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, now()) RETURNING id",
                body.email,
                body.phone,
                password_hash,
                body.first_name.strip(),
                body.last_name.strip(),
                body.role,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict("an account with this e-mail or phone already exists") from None
        return await _open_session(request, conn, user_id)


@endpoint(
    routes,
    "POST",
    "/v1/auth/login",
    summary="Sign in with e-mail or phone and password",
    tag="market",
    body=LoginBody,
    response=SessionOut,
    auth=False,
    errors=(400, 401, 403),
)
async def login(request: web.Request, body: LoginBody) -> SessionOut:
    if (body.email is None) == (body.phone is None):
        raise BadRequest("give exactly one of `email` or `phone`")
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(
            "SELECT id, password_hash, status::text AS status, deleted_at IS NOT NULL AS deleted"
            " FROM market.users WHERE lower(email) = lower($1) OR phone = $2",
            body.email,
            body.phone,
        )
        if row is None or not await password_matches(body.password, row["password_hash"]):
            raise Unauthorized("wrong credentials, or the account is not active")
        _refuse_blocked(row["status"], row["deleted"])
        async with conn.transaction():
            await conn.execute(
                "UPDATE market.users SET last_login_at = now() WHERE id = $1", row["id"]
            )
            return await _open_session(request, conn, row["id"])


@endpoint(
    routes,
    "POST",
    "/v1/auth/refresh",
    summary="Trade a refresh token for a new pair (the old refresh token stops working)",
    tag="market",
    body=RefreshBody,
    response=SessionOut,
    auth=False,
    errors=(400, 401, 403),
)
async def refresh(request: web.Request, body: RefreshBody) -> SessionOut:
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT s.id, s.user_id, u.status::text AS status, u.deleted_at IS NOT NULL AS deleted"
            "  FROM market.user_sessions s JOIN market.users u ON u.id = s.user_id"
            " WHERE s.refresh_token = $1 AND s.expires_at > now() FOR UPDATE OF s",
            digest(body.refresh_token),
        )
        if row is None:
            raise Unauthorized("the refresh token is unknown or has expired")
        _refuse_blocked(row["status"], row["deleted"])
        return await _open_session(request, conn, row["user_id"], row["id"])


@endpoint(
    routes,
    "POST",
    "/v1/auth/logout",
    summary="End the session of a refresh token",
    tag="market",
    body=RefreshBody,
    status=204,
    auth=False,
    errors=(400,),
)
async def logout(request: web.Request, body: RefreshBody) -> None:
    await request.app[POOL].execute(
        "DELETE FROM market.user_sessions WHERE refresh_token = $1", digest(body.refresh_token)
    )


@endpoint(
    routes,
    "GET",
    "/v1/me",
    summary="The caller's account",
    tag="market",
    response=UserOut,
    errors=(401, 403),
)
async def me(request: web.Request) -> UserOut:
    who = await caller(request)
    row = await request.app[POOL].fetchrow(_USER, int(who.subject))
    return UserOut(**dict(row))
