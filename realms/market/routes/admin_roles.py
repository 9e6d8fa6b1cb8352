"""/v1/market/admin-roles: the admin roles of seed 004 (super_admin, role_manager, accounting,
technical_access) that every staff gate checks (routes/access.py, market.has_admin_role).
Role managers grant and revoke them, as the schema's row-level security says; super_admin
grants and revocations need a super_admin; nobody grants themselves a role, and the last
super_admin grant stays. Each grant and revocation leaves an audit_logs row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import asyncpg
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from realms.market import audit
from realms.market.routes.access import has_role, me, path_id, require_role

routes = web.RouteTableDef()

TAG = "market admin roles"
MANAGER = "role_manager"  # has_admin_role counts super_admin as holding it too
RoleType = Literal["super_admin", "role_manager", "accounting", "technical_access"]
Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]


class GrantBody(Struct, forbid_unknown_fields=True, kw_only=True):
    user_id: Id
    role_type: RoleType
    permissions: Annotated[dict[str, Any], Meta(max_length=100)] = {}
    expires_at: Annotated[datetime, Meta(tz=True)] | None = None  # must be in the future


class GrantOut(Struct):
    id: int
    user_id: int
    role_type: str
    permissions: dict[str, Any]
    granted_by: int | None
    granted_at: datetime
    expires_at: datetime | None
    active: bool  # not expired


class GrantsQuery(Struct, kw_only=True):
    user_id: Id | None = None
    role_type: RoleType | None = None


_GRANT = (
    "SELECT id, user_id, role_type::text AS role_type, permissions, granted_by, granted_at,"
    " expires_at, (expires_at IS NULL OR expires_at > now()) AS active FROM market.admin_roles"
)
_AUDITED = ("user_id", "role_type", "permissions", "granted_by", "granted_at", "expires_at")


def _audited(row: asyncpg.Record) -> dict[str, Any]:
    values = {k: row[k] for k in _AUDITED}
    for k in ("granted_at", "expires_at"):
        values[k] = values[k].isoformat() if values[k] is not None else None
    return values


async def _may_manage(request: web.Request, actor: int, role_type: str) -> None:
    if role_type == "super_admin" and not await has_role(request, actor, "super_admin"):
        raise Forbidden("only a super_admin grants or revokes super_admin")


@endpoint(
    routes,
    "GET",
    "/v1/admin-roles",
    summary="Admin role grants: all of them for role managers, one's own for anyone else",
    tag=TAG,
    query=GrantsQuery,
    response=list[GrantOut],
    errors=(400, 401),
)
async def list_grants(request: web.Request, query: GrantsQuery) -> list[GrantOut]:
    who = await me(request)
    every = await has_role(request, who.id, MANAGER)
    rows = await request.app[POOL].fetch(
        _GRANT + " WHERE ($1 OR user_id = $2) AND ($3::bigint IS NULL OR user_id = $3)"
        " AND ($4::market.admin_role_enum IS NULL OR role_type = $4)"
        " ORDER BY user_id, role_type LIMIT 1000",
        every,
        who.id,
        query.user_id,
        query.role_type,
    )
    return [GrantOut(**dict(r)) for r in rows]


@endpoint(
    routes,
    "POST",
    "/v1/admin-roles",
    summary="Grant an admin an admin role (role_manager; super_admin needs a super_admin);"
    " 409 when the admin holds it already",
    tag=TAG,
    body=GrantBody,
    response=GrantOut,
    status=201,
    errors=(400, 401, 403, 404, 409),
)
async def grant(request: web.Request, body: GrantBody) -> GrantOut:
    who = await require_role(request, MANAGER)
    await _may_manage(request, who.id, body.role_type)
    if body.user_id == who.id:
        raise Forbidden("nobody grants themselves a role")
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise BadRequest("`expires_at` must be in the future")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        user = await conn.fetchrow(
            "SELECT role::text AS role FROM market.users WHERE id = $1 AND deleted_at IS NULL"
            " FOR KEY SHARE",
            body.user_id,
        )
        if user is None:
            raise NotFound(f"user {body.user_id} does not exist")
        if user["role"] != "admin":
            raise Conflict(
                f"user {body.user_id} is a {user['role']}: admin roles are for admins",
                details={"reason": "not_an_admin"},
            )
        # An expired grant of the same role is renewed in place (one row per user and role).
        old = await conn.fetchrow(
            _GRANT + " WHERE user_id = $1 AND role_type = $2 FOR UPDATE",
            body.user_id,
            body.role_type,
        )
        if old is not None and old["active"]:
            raise Conflict(
                f"user {body.user_id} holds {body.role_type} already",
                details={"reason": "already_granted"},
            )
        if old is None:
            try:
                made = await conn.fetchval(
                    "INSERT INTO market.admin_roles (user_id, role_type, permissions,"
                    " granted_by, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    body.user_id,
                    body.role_type,
                    body.permissions,
                    who.id,
                    body.expires_at,
                )
            except asyncpg.UniqueViolationError:  # a concurrent grant of the same role
                raise Conflict(
                    f"user {body.user_id} holds {body.role_type} already",
                    details={"reason": "already_granted"},
                ) from None
        else:
            made = await conn.fetchval(
                "UPDATE market.admin_roles SET permissions = $2, granted_by = $3,"
                " granted_at = now(), expires_at = $4 WHERE id = $1 RETURNING id",
                old["id"],
                body.permissions,
                who.id,
                body.expires_at,
            )
        new = await conn.fetchrow(_GRANT + " WHERE id = $1", made)
        await audit.record(
            conn,
            request,
            actor=who.id,
            action="admin_role.granted",
            entity_type="admin_role",
            entity_id=made,
            old=_audited(old) if old is not None else None,
            new=_audited(new),
        )
    return GrantOut(**dict(new))


@endpoint(
    routes,
    "DELETE",
    "/v1/admin-roles/{grant_id}",
    summary="Revoke an admin role grant (role_manager; super_admin needs a super_admin);"
    " 409 for the last active super_admin grant",
    tag=TAG,
    errors=(400, 401, 403, 404, 409),
    status=204,
)
async def revoke(request: web.Request) -> None:
    who = await require_role(request, MANAGER)
    grant_id = path_id(request, "grant_id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        old = await conn.fetchrow(_GRANT + " WHERE id = $1", grant_id)
        if old is None:
            raise NotFound(f"admin role grant {grant_id} does not exist")
        await _may_manage(request, who.id, old["role_type"])
        if old["role_type"] == "super_admin":
            # Every super_admin grant is locked in id order, so two revocations of the last
            # two grants queue and the second sees it would leave none.
            rows = await conn.fetch(
                "SELECT r.id, (r.expires_at IS NULL OR r.expires_at > now())"
                "   AND u.status = 'active' AND u.deleted_at IS NULL AS counts"
                "  FROM market.admin_roles r JOIN market.users u ON u.id = r.user_id"
                " WHERE r.role_type = 'super_admin' ORDER BY r.id FOR UPDATE OF r"
            )
            others = [r for r in rows if r["id"] != grant_id and r["counts"]]
            if not others:
                raise Conflict(
                    "the last active super_admin grant cannot be revoked",
                    details={"reason": "last_super_admin"},
                )
        gone = await conn.fetchrow(
            "DELETE FROM market.admin_roles WHERE id = $1 RETURNING id, user_id,"
            " role_type::text AS role_type, permissions, granted_by, granted_at, expires_at",
            grant_id,
        )
        if gone is None:  # revoked by a concurrent request
            raise NotFound(f"admin role grant {grant_id} does not exist")
        await audit.record(
            conn,
            request,
            actor=who.id,
            action="admin_role.revoked",
            entity_type="admin_role",
            entity_id=grant_id,
            old=_audited(gone),
            new=None,
        )
