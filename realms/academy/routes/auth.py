"""/v1/academy/auth: sign-up and login with e-mail and password, answered with the core's
access token for realm academy; /v1/academy/me: the caller's account and profile."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import asyncpg
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import Conflict, Unauthorized
from kernel.passwords import hash_password, password_matches
from kernel.tokens import sign_access_token
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL, SETTINGS
from realms.academy.rls import as_user
from realms.academy.routes.profiles import ProfileOut, read_profile

routes = web.RouteTableDef()

Email = Annotated[
    str,
    Meta(
        max_length=255,
        pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\Z",
    ),
]
Password = Annotated[str, Meta(min_length=8, max_length=128)]
# A bcrypt hash of nothing anyone types: login compares against it when the e-mail is unknown,
# so an unknown address costs the same time as a wrong password.
_NO_ACCOUNT_HASH = "$2b$12$sNDAZdNJHZZauNo0Z0z3G.ooph0UoF4hiEOcqX3waBaci8NvHRtZq"


class SignupBody(Struct, forbid_unknown_fields=True):
    email: Email
    password: Password
    full_name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class LoginBody(Struct, forbid_unknown_fields=True):
    email: Email
    password: Annotated[str, Meta(max_length=128)]


class AccountOut(Struct):
    id: uuid.UUID
    email: str
    is_admin: bool
    created_at: datetime
    last_sign_in_at: datetime | None


class AcademySession(Struct):
    access_token: str
    expires_in: int
    user: AccountOut
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret


class MeOut(Struct):
    account: AccountOut
    profile: ProfileOut | None


async def _account(conn: asyncpg.Connection, user_id: uuid.UUID) -> AccountOut:
    row = await conn.fetchrow(
        "SELECT id, email::text AS email, is_super_admin IS TRUE AS is_admin, created_at,"
        " last_sign_in_at FROM academy.users WHERE id = $1",
        user_id,
    )
    if row is None:
        raise Unauthorized("user does not exist or is not active")
    return AccountOut(**dict(row))


def _session(request: web.Request, account: AccountOut) -> AcademySession:
    settings = request.app[SETTINGS]
    token = sign_access_token(
        settings.secret, str(account.id), "academy", settings.access_token_ttl_s
    )
    return AcademySession(access_token=token, expires_in=settings.access_token_ttl_s, user=account)


@endpoint(
    routes,
    "POST",
    "/v1/auth/signup",
    summary="Create an academy account (e-mail and password)",
    tag="academy",
    body=SignupBody,
    response=AcademySession,
    status=201,
    auth=False,
    errors=(400, 409),
)
async def signup(request: web.Request, body: SignupBody) -> AcademySession:
    """The account (academy.users, written as the owner, as Supabase Auth does), its profile
    (written as the new user, under RLS) and an empty streak."""
    password_hash = await hash_password(body.password, request.app[SETTINGS].bcrypt_rounds)
    pool = request.app[POOL]
    async with pool.acquire() as conn, conn.transaction():
        try:
            user_id = await conn.fetchval(
                "INSERT INTO academy.users (email, encrypted_password, raw_user_meta_data,"
                " last_sign_in_at) VALUES ($1, $2, $3, now()) RETURNING id",
                body.email,
                password_hash,
                {"full_name": body.full_name} if body.full_name else {},
            )
        except asyncpg.UniqueViolationError:
            raise Conflict("an account with this e-mail exists; log in instead") from None
        await conn.execute("INSERT INTO academy.user_streaks (user_id) VALUES ($1)", user_id)
    async with as_user(pool, user_id) as conn:
        await conn.execute(
            "INSERT INTO academy.user_profiles (id, full_name) VALUES (academy.uid(), $1)",
            body.full_name,
        )
        await conn.execute(
            "INSERT INTO academy.user_activity_log (user_id, activity_type, ip_address,"
            " user_agent) VALUES (academy.uid(), 'login', $1::inet, $2)",
            _ip(request),
            request.headers.get("User-Agent"),
        )
        account = await _account(conn, user_id)
    return _session(request, account)


def _ip(request: web.Request) -> str | None:
    remote = request.remote
    if not remote:
        return None
    try:
        import ipaddress

        return str(ipaddress.ip_address(remote))
    except ValueError:
        return None


@endpoint(
    routes,
    "POST",
    "/v1/auth/login",
    summary="Log in with e-mail and password",
    tag="academy",
    body=LoginBody,
    response=AcademySession,
    auth=False,
    errors=(400, 401),
)
async def login(request: web.Request, body: LoginBody) -> AcademySession:
    pool = request.app[POOL]
    row = await pool.fetchrow(
        "SELECT id, encrypted_password, deleted_at IS NULL"
        "   AND (banned_until IS NULL OR banned_until <= now()) AS active"
        "  FROM academy.users WHERE email = $1",
        body.email,
    )
    matches = await password_matches(
        body.password, (row["encrypted_password"] if row else None) or _NO_ACCOUNT_HASH
    )
    if row is None or not matches:
        raise Unauthorized("e-mail or password is wrong")
    if not row["active"]:
        raise Unauthorized("this account is disabled")
    await pool.execute("UPDATE academy.users SET last_sign_in_at = now() WHERE id = $1", row["id"])
    async with as_user(pool, row["id"]) as conn:
        await conn.execute(
            "INSERT INTO academy.user_activity_log (user_id, activity_type, ip_address,"
            " user_agent) VALUES (academy.uid(), 'login', $1::inet, $2)",
            _ip(request),
            request.headers.get("User-Agent"),
        )
        account = await _account(conn, row["id"])
    return _session(request, account)


@endpoint(
    routes,
    "GET",
    "/v1/me",
    summary="The caller's account and profile",
    tag="academy",
    response=MeOut,
    errors=(401,),
)
async def me(request: web.Request) -> MeOut:
    who = await caller(request)
    async with as_user(request.app[POOL], who.user_id) as conn:
        return MeOut(
            account=await _account(conn, who.user_id),
            profile=await read_profile(conn, who.user_id),
        )
