"""Who a creator-realm caller is and what their account lets them do: account types (fan,
creator, admin, moderator), age verification (needed to message, pay, tip or watch) and
account status (only `active` accounts sign in or act; the user lookup refuses the others'
tokens)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import msgspec
from aiohttp import web

from kernel.errors import Forbidden, NotFound
from kernel.web.auth import caller
from kernel.web.keys import POOL

STAFF = frozenset({"admin", "moderator"})


class Account(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    username: str
    account_type: str
    age_verified: bool
    account_status: str

    @property
    def is_staff(self) -> bool:
        return self.account_type in STAFF

    @property
    def is_creator(self) -> bool:
        return self.account_type == "creator"


_ACCOUNT = (
    "SELECT id, username, account_type, age_verified, account_status FROM creator.users"
    " WHERE id = $1 AND deleted_at IS NULL"
)


async def current_account(request: web.Request) -> Account:
    """The calling account (its token already checked active by the user lookup)."""
    who = await caller(request)
    row = await request.app[POOL].fetchrow(_ACCOUNT, who.user_id)
    if row is None:
        raise NotFound("your account does not exist")
    return Account(**dict(row))


async def verified_account(request: web.Request, doing: str) -> Account:
    """The calling account, which must have a verified age to do `doing`."""
    account = await current_account(request)
    if not account.age_verified:
        raise Forbidden(f"{doing} needs a verified age (account age verification)")
    return account


async def staff_account(request: web.Request) -> Account:
    account = await current_account(request)
    if not account.is_staff:
        raise Forbidden("moderators and admins only")
    return account


def refusal_for_status(status: str, suspended_until: datetime | None) -> str | None:
    """Why an account of this status may not sign in (None: it may)."""
    if status == "active":
        return None
    if status == "suspended":
        until = suspended_until.isoformat() if suspended_until else "further notice"
        return f"account is suspended until {until}"
    return f"account is {status}"


async def user_exists(conn: asyncpg.Connection | asyncpg.Pool, user_id: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM creator.users WHERE id = $1 AND deleted_at IS NULL)",
            user_id,
        )
    )
