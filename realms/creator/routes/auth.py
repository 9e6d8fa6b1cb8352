"""/v1/creator/auth and /v1/creator/me: sign-up (fans and creators, adults only), login by
username or e-mail and password (active accounts only), refresh tokens kept hashed in
creator.user_sessions, and the caller's own account."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

import asyncpg
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Conflict, Forbidden, Unauthorized
from kernel.passwords import hash_password, password_matches
from kernel.tokens import sign_access_token
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL, SETTINGS
from realms.creator.accounts import refusal_for_status

routes = web.RouteTableDef()

ADULT_YEARS = 18
Username = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.]{3,30}$")]
Email = Annotated[
    str,
    Meta(
        max_length=255,
        pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\Z",
    ),
]
Password = Annotated[str, Meta(min_length=8, max_length=128)]
DisplayName = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[^\x00]*\S[^\x00]*$")]
Price = Annotated[int, Meta(gt=0, le=10**9, description="minor units (cents)")]


class SignupBody(Struct, forbid_unknown_fields=True, kw_only=True):
    # only creators set a subscription price (fans, the default type, leave it out or null)
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "anyOf": [
                {"properties": {"subscription_price": {"type": "null"}}},
                {
                    "required": ["account_type"],
                    "properties": {"account_type": {"const": "creator"}},
                },
            ]
        },
    )
    username: Username
    email: Email
    password: Password
    date_of_birth: date
    account_type: Literal["fan", "creator"] = "fan"
    display_name: DisplayName | None = None
    subscription_price: Price | None = None


class LoginBody(Struct, forbid_unknown_fields=True, kw_only=True):
    login: Annotated[str, Meta(min_length=1, max_length=255, description="username or e-mail")]
    password: Annotated[str, Meta(max_length=128)]


class RefreshBody(Struct, forbid_unknown_fields=True):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=200)]


class UserOut(Struct, kw_only=True):
    id: uuid.UUID
    username: str
    email: str
    display_name: str | None
    account_type: str
    age_verified: bool
    account_status: str
    subscription_price: int | None
    currency: str
    created_at: datetime


class SessionOut(Struct, kw_only=True):
    access_token: str
    refresh_token: str
    expires_in: int
    user: UserOut
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret


USER_COLUMNS = (
    "id, username, email, display_name, account_type, age_verified, account_status,"
    " subscription_price, currency, created_at"
)


def _adult(born: date, today: date) -> bool:
    try:
        birthday = born.replace(year=born.year + ADULT_YEARS)
    except ValueError:  # born on 29 February
        birthday = date(born.year + ADULT_YEARS, 3, 1)
    return birthday <= today


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _session(
    request: web.Request, conn: asyncpg.Connection, user_id: uuid.UUID
) -> SessionOut:
    settings = request.app[SETTINGS]
    refresh = "crt_" + secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO creator.user_sessions (user_id, token_hash, ip_address, user_agent,"
        " last_active_at, expires_at) VALUES ($1, $2, $3::inet, $4, now(), now() + $5::interval)",
        user_id,
        _hash(refresh),
        request.remote if request.remote and request.remote[0].isdigit() else None,
        request.headers.get("User-Agent"),
        timedelta(seconds=settings.refresh_token_ttl_s),
    )
    row = await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM creator.users WHERE id = $1", user_id)
    ttl = settings.access_token_ttl_s
    return SessionOut(
        access_token=sign_access_token(settings.secret, str(user_id), "creator", ttl),
        refresh_token=refresh,
        expires_in=ttl,
        user=UserOut(**dict(row)),
    )


@endpoint(
    routes,
    "POST",
    "/v1/auth/signup",
    summary="Create a fan or creator account (adults only) and sign in",
    tag="creator auth",
    body=SignupBody,
    response=SessionOut,
    status=201,
    auth=False,
    errors=(400, 409),
)
async def signup(request: web.Request, body: SignupBody) -> SessionOut:
    if not _adult(body.date_of_birth, datetime.now(UTC).date()):
        raise BadRequest(f"accounts are for people aged {ADULT_YEARS} or older")
    if body.subscription_price is not None and body.account_type != "creator":
        raise BadRequest("only creators set a subscription_price")
    password_hash = await hash_password(body.password, request.app[SETTINGS].bcrypt_rounds)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        try:
            user_id = await conn.fetchval(
                "INSERT INTO creator.users (username, email, password_hash, display_name,"
                " account_type, subscription_price, date_of_birth)"
                " VALUES ($1, lower($2), $3, $4, $5, $6, $7) RETURNING id",
                body.username,
                body.email,
                password_hash,
                body.display_name,
                body.account_type,
                body.subscription_price,
                body.date_of_birth,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict("that username or e-mail is taken") from None
        await conn.execute("INSERT INTO creator.user_profiles (user_id) VALUES ($1)", user_id)
        return await _session(request, conn, user_id)


@endpoint(
    routes,
    "POST",
    "/v1/auth/login",
    summary="Sign in with username or e-mail and password (active accounts only)",
    tag="creator auth",
    body=LoginBody,
    response=SessionOut,
    auth=False,
    errors=(400, 401, 403),
)
async def login(request: web.Request, body: LoginBody) -> SessionOut:
    pool = request.app[POOL]
    row = await pool.fetchrow(
        "SELECT id, password_hash, account_status, suspended_until FROM creator.users"
        " WHERE (lower(username) = lower($1) OR lower(email) = lower($1)) AND deleted_at IS NULL",
        body.login,
    )
    if row is None or not await password_matches(body.password, row["password_hash"]):
        raise Unauthorized("wrong login or password")
    refusal = refusal_for_status(row["account_status"], row["suspended_until"])
    if refusal is not None:
        raise Forbidden(refusal)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE creator.users SET last_login_at = now() WHERE id = $1", row["id"]
        )
        await conn.execute(
            "INSERT INTO creator.user_analytics (user_id, event_type) VALUES ($1, 'login')",
            row["id"],
        )
        return await _session(request, conn, row["id"])


@endpoint(
    routes,
    "POST",
    "/v1/auth/refresh",
    summary="Trade a refresh token for a new session (the old token stops working)",
    tag="creator auth",
    body=RefreshBody,
    response=SessionOut,
    auth=False,
    errors=(400, 401, 403),
)
async def refresh(request: web.Request, body: RefreshBody) -> SessionOut:
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE creator.user_sessions s SET revoked_at = now()"
            "  FROM creator.users u"
            " WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()"
            "   AND u.id = s.user_id AND u.deleted_at IS NULL"
            " RETURNING u.id, u.account_status, u.suspended_until",
            _hash(body.refresh_token),
        )
        if row is None:
            raise Unauthorized("refresh token is unknown, used or expired: sign in again")
        refusal = refusal_for_status(row["account_status"], row["suspended_until"])
        if refusal is not None:
            raise Forbidden(refusal)
        return await _session(request, conn, row["id"])


@endpoint(
    routes, "GET", "/v1/me", summary="The caller's account", tag="creator auth", response=UserOut
)
async def me(request: web.Request) -> UserOut:
    who = await caller(request)
    row = await request.app[POOL].fetchrow(
        f"SELECT {USER_COLUMNS} FROM creator.users WHERE id = $1", who.user_id
    )
    return UserOut(**dict(row))
