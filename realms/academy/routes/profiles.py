"""/v1/academy/profile(s): a user's learning profile. Anyone signed in reads profiles
(community authors); a user edits their own; XP and level are kept by the server."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, NotFound
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from realms.academy.rls import as_user

routes = web.RouteTableDef()

Text = Annotated[str, Meta(max_length=2000)]


class ProfileOut(Struct):
    id: uuid.UUID
    full_name: str | None
    avatar_url: str | None
    bio: str | None
    timezone: str | None
    preferred_language: str | None
    trading_experience: str | None
    trading_goals: list[str] | None
    current_level: int | None
    total_xp: int | None
    created_at: datetime
    updated_at: datetime


class ProfilePatch(Struct, forbid_unknown_fields=True, omit_defaults=True):
    full_name: Annotated[str, Meta(max_length=200)] | None = None
    avatar_url: Annotated[str, Meta(max_length=2000)] | None = None
    bio: Text | None = None
    timezone: Annotated[str, Meta(max_length=64)] | None = None
    preferred_language: Annotated[str, Meta(max_length=16)] | None = None
    trading_experience: Literal["beginner", "intermediate", "advanced"] | None = None
    trading_goals: (
        Annotated[list[Annotated[str, Meta(max_length=200)]], Meta(max_length=20)] | None
    ) = None


_COLUMNS = (
    "id, full_name, avatar_url, bio, timezone, preferred_language, trading_experience,"
    " trading_goals, current_level, total_xp, created_at, updated_at"
)
# The columns a user may set on their own profile (the grant of 1003 says the same).
_EDITABLE = tuple(ProfilePatch.__struct_fields__)


async def read_profile(conn: asyncpg.Connection, user_id: uuid.UUID) -> ProfileOut | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM academy.user_profiles WHERE id = $1", user_id
    )
    return None if row is None else ProfileOut(**dict(row))


@endpoint(
    routes,
    "GET",
    "/v1/profiles/{user_id}",
    summary="A user's profile",
    tag="academy",
    response=ProfileOut,
    errors=(400, 401, 404),
)
async def get_profile(request: web.Request) -> ProfileOut:
    who = await caller(request)
    try:
        user_id = uuid.UUID(request.match_info["user_id"])
    except ValueError:
        raise BadRequest("user_id is not a UUID") from None
    async with as_user(request.app[POOL], who.user_id) as conn:
        profile = await read_profile(conn, user_id)
    if profile is None:
        raise NotFound("no such profile")
    return profile


@endpoint(
    routes,
    "PATCH",
    "/v1/profile",
    summary="Edit the caller's profile",
    tag="academy",
    body=ProfilePatch,
    response=ProfileOut,
    errors=(400, 401),
)
async def edit_profile(request: web.Request, body: ProfilePatch) -> ProfileOut:
    who = await caller(request)
    changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
    async with as_user(request.app[POOL], who.user_id) as conn:
        if changes:
            sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(changes, start=2))
            assert set(changes) <= set(_EDITABLE)
            await conn.execute(
                "INSERT INTO academy.user_profiles (id) VALUES ($1) ON CONFLICT (id) DO NOTHING",
                who.user_id,
            )
            await conn.execute(
                f"UPDATE academy.user_profiles SET {sets} WHERE id = $1",
                who.user_id,
                *changes.values(),
            )
        profile = await read_profile(conn, who.user_id)
    assert profile is not None
    return profile
