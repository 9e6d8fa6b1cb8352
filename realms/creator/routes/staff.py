"""/v1/creator/staff: account work of staff: set a user's age verification (the "staff or
provider" step; moderators and admins), reinstate a suspended or banned account (admins), and
read the audit trail (admins), filtered by actor, subject, entity and action."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Cursor, Page, decode_cursor, page_of
from kernel.web.paths import path_uuid
from realms.creator.accounts import Account, staff_account
from realms.creator.moderation import audit_context

routes = web.RouteTableDef()

TAG = "creator staff"
ADULT_YEARS = 18
NO_NUL = r"^[^\x00]*$"


class AgeBody(Struct, forbid_unknown_fields=True, kw_only=True):
    age_verified: bool
    date_of_birth: date | None = None


class AccountState(Struct, kw_only=True):
    id: uuid.UUID
    username: str
    account_type: str
    date_of_birth: date | None
    age_verified: bool
    age_verified_at: datetime | None
    account_status: str
    status_reason: str | None
    suspended_until: datetime | None


_STATE = (
    "id, username, account_type, date_of_birth, age_verified, age_verified_at, account_status,"
    " status_reason, suspended_until"
)


class ReinstateBody(Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Annotated[str, Meta(min_length=1, max_length=1000, pattern=NO_NUL)]
    overturn_violations: bool = True


class AuditQuery(Struct, kw_only=True):
    actor_id: Annotated[uuid.UUID | None, Meta(description="the staff member who acted")] = None
    user_id: Annotated[uuid.UUID | None, Meta(description="the user the change is about")] = None
    entity_type: Annotated[str, Meta(max_length=50, pattern=r"^[a-z_]+$")] | None = None
    entity_id: uuid.UUID | None = None
    action: Annotated[str, Meta(max_length=100, pattern=r"^[a-z_.]+$")] | None = None
    category: Literal["user_account", "content", "payment", "admin", "security"] | None = None
    severity: Literal["low", "medium", "high", "critical"] | None = None
    limit: Annotated[int, Meta(ge=1, le=100)] = 50
    cursor: Cursor | None = None


class AuditEntry(Struct, kw_only=True):
    id: uuid.UUID
    category: str
    action: str
    entity_type: str | None
    entity_id: uuid.UUID | None
    user_id: uuid.UUID | None
    admin_id: uuid.UUID | None
    old_values: dict[str, Any] | None
    new_values: dict[str, Any] | None
    ip_address: str | None
    user_agent: str | None
    severity: str
    description: str | None
    created_at: datetime


def _adult(born: date, today: date) -> bool:
    if born.year + ADULT_YEARS > today.year:
        return False
    try:
        birthday = born.replace(year=born.year + ADULT_YEARS)
    except ValueError:  # born on 29 February
        birthday = date(born.year + ADULT_YEARS, 3, 1)
    return birthday <= today


async def _admin(request: web.Request) -> Account:
    account = await staff_account(request)
    if account.account_type != "admin":
        raise Forbidden("admins only")
    return account


@endpoint(
    routes,
    "PUT",
    "/v1/staff/users/{id}/age-verification",
    summary="Set a user's age verification (staff): verifying needs a date of birth at least"
    " 18 years ago (given here or on the account)",
    tag=TAG,
    body=AgeBody,
    response=AccountState,
    errors=(400, 403, 404),
)
async def set_age_verification(request: web.Request, body: AgeBody) -> AccountState:
    me = await staff_account(request)
    user_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await audit_context(conn, me.id, request)
        born = await conn.fetchrow(
            "SELECT date_of_birth FROM creator.users WHERE id = $1 AND deleted_at IS NULL"
            " FOR UPDATE",
            user_id,
        )
        if born is None:
            raise NotFound(f"no user {user_id}")
        dob = body.date_of_birth or born["date_of_birth"]
        if body.age_verified and (dob is None or not _adult(dob, datetime.now(UTC).date())):
            raise BadRequest("only an adult (18+ by date of birth) can be age-verified")
        row = await conn.fetchrow(
            "UPDATE creator.users SET age_verified = $2, date_of_birth = $3,"
            " age_verified_at = CASE WHEN NOT $2 THEN NULL"
            " WHEN age_verified THEN age_verified_at ELSE now() END"
            f" WHERE id = $1 RETURNING {_STATE}",
            user_id,
            body.age_verified,
            dob,
        )
    return msgspec.convert(dict(row), AccountState)


@endpoint(
    routes,
    "POST",
    "/v1/staff/users/{id}/reinstate",
    summary="Reinstate a suspended or banned account (admins); its active suspensions and bans"
    " are overturned unless overturn_violations is false",
    tag=TAG,
    body=ReinstateBody,
    response=AccountState,
    errors=(400, 403, 404, 409),
)
async def reinstate(request: web.Request, body: ReinstateBody) -> AccountState:
    me = await _admin(request)
    user_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await audit_context(conn, me.id, request)
        status = await conn.fetchval(
            "SELECT account_status FROM creator.users WHERE id = $1 AND deleted_at IS NULL"
            " FOR UPDATE",
            user_id,
        )
        if status is None:
            raise NotFound(f"no user {user_id}")
        if status not in ("suspended", "banned"):
            raise Conflict(f"the account is {status}, not suspended or banned")
        if body.overturn_violations:
            await conn.execute(
                "UPDATE creator.user_violations SET status = 'overturned'"
                " WHERE user_id = $1 AND status = 'active'"
                " AND enforcement_action IN ('temporary_suspension', 'permanent_ban')",
                user_id,
            )
        row = await conn.fetchrow(
            "UPDATE creator.users SET account_status = 'active', suspended_until = NULL,"
            f" status_reason = $2 WHERE id = $1 RETURNING {_STATE}",
            user_id,
            body.reason,
        )
    return msgspec.convert(dict(row), AccountState)


_AUDIT = """
SELECT id, category, action, entity_type, entity_id, user_id, admin_id, old_values, new_values,
       host(ip_address) AS ip_address, user_agent, severity, description, created_at
  FROM creator.audit_logs
 WHERE ($1::uuid IS NULL OR admin_id = $1)
   AND ($2::uuid IS NULL OR user_id = $2)
   AND ($3::text IS NULL OR entity_type = $3)
   AND ($4::uuid IS NULL OR entity_id = $4)
   AND ($5::text IS NULL OR action = $5)
   AND ($6::text IS NULL OR category = $6)
   AND ($7::text IS NULL OR severity = $7)
   AND ($8::timestamptz IS NULL OR (created_at, id) < ($8, $9))
 ORDER BY created_at DESC, id DESC
 LIMIT $10
"""


@endpoint(
    routes,
    "GET",
    "/v1/staff/audit-logs",
    summary="The audit trail, newest first (admins): filter by actor (staff), user, entity,"
    " action (e.g. users.update), category, severity",
    tag=TAG,
    query=AuditQuery,
    response=Page[AuditEntry],
    errors=(400, 403),
)
async def audit_logs(request: web.Request, query: AuditQuery) -> Page[AuditEntry]:
    await _admin(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        _AUDIT,
        query.actor_id,
        query.user_id,
        query.entity_type,
        query.entity_id,
        query.action,
        query.category,
        query.severity,
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
    )
    items = [msgspec.convert(dict(r), AuditEntry) for r in rows]
    return page_of(items, query.limit, lambda e: (e.created_at.isoformat(), str(e.id)))
