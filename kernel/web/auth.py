"""Who is calling: the bearer access token of a request, verified, its realm matched with the
realm that owns the route, and its user loaded from that realm (existing, active, not
deleted). Every route but the auth ones and health requires it."""

from __future__ import annotations

import uuid

import msgspec
from aiohttp import web

from kernel.errors import Forbidden, Unauthorized
from kernel.revocation import check_not_revoked
from kernel.tokens import verify_access_token
from kernel.web.keys import POOL, REALMS, SETTINGS


class Caller(msgspec.Struct, frozen=True):
    subject: str  # the user id, canonically spelt (a UUID, or digits in BIGINT realms)
    realm: str
    user_type: str

    @property
    def user_id(self) -> uuid.UUID:
        """The user id of a UUID realm (every realm but market)."""
        return uuid.UUID(self.subject)

    @property
    def is_admin(self) -> bool:
        return self.user_type == "admin"


CALLER = web.RequestKey("caller", Caller)
# The realm whose route is being served; set by the api when it mounts a realm's routes.
ROUTE_REALM = web.RequestKey("route_realm", str)


async def caller(request: web.Request) -> Caller:
    """The authenticated user of `request` (looked up once per request); raises
    Unauthorized (401) otherwise."""
    if CALLER in request:
        return request[CALLER]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send `Authorization: Bearer <access token>`")
    settings = request.app[SETTINGS]
    claims = verify_access_token(
        settings.secret, token.strip(), max_ttl_s=settings.access_token_max_ttl_s
    )
    realm = request.app[REALMS].for_token(claims.realm)
    route_realm = request.get(ROUTE_REALM)
    if route_realm is not None and route_realm != realm.name:
        raise Forbidden(f"a {realm.name} token cannot be used on {route_realm} routes")
    if realm.user_lookup_sql is None:
        raise Unauthorized(f"realm {realm.name!r} has no users that can sign in yet")
    subject = realm.parse_user_id(claims.sub)
    row = await request.app[POOL].fetchrow(realm.user_lookup_sql, realm.user_id_value(subject))
    if row is None or not row["active"]:
        raise Unauthorized("user does not exist or is not active")
    await check_not_revoked(request.app[POOL], realm.name, subject, claims.iat, claims.sid)
    request[CALLER] = who = Caller(subject=subject, realm=realm.name, user_type=row["user_type"])
    return who


async def admin(request: web.Request) -> Caller:
    who = await caller(request)
    if not who.is_admin:
        raise Forbidden("admins only")
    return who
