"""Who is calling: the bearer access token of a request, verified, and its user loaded
(existing, active, not deleted). Every route but the auth ones and health requires it."""

from __future__ import annotations

import uuid

import msgspec
from aiohttp import web

from api.keys import POOL, SETTINGS
from kernel.errors import Forbidden, Unauthorized
from kernel.tokens import verify_access_token


class Caller(msgspec.Struct, frozen=True):
    user_id: uuid.UUID
    user_type: str

    @property
    def is_admin(self) -> bool:
        return self.user_type == "admin"


CALLER = web.RequestKey("caller", Caller)


async def caller(request: web.Request) -> Caller:
    """The authenticated user of `request` (looked up once per request); raises
    Unauthorized (401) otherwise."""
    if CALLER in request:
        return request[CALLER]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send `Authorization: Bearer <access token>`")
    claims = verify_access_token(request.app[SETTINGS].secret, token.strip())
    if claims.realm != "analyst":
        raise Unauthorized(f"realm {claims.realm!r} is not served by this API")
    try:
        user_id = uuid.UUID(claims.sub)
    except ValueError:
        raise Unauthorized("token subject is not a user id") from None
    row = await request.app[POOL].fetchrow(
        "SELECT user_type, is_active, deleted_at FROM analyst.users WHERE id = $1", user_id
    )
    if row is None or row["deleted_at"] is not None or not row["is_active"]:
        raise Unauthorized("user does not exist or is not active")
    request[CALLER] = who = Caller(user_id=user_id, user_type=row["user_type"])
    return who


async def admin(request: web.Request) -> Caller:
    who = await caller(request)
    if not who.is_admin:
        raise Forbidden("admins only")
    return who
