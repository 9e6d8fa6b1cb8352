"""/v1/market/settings and /v1/market/audit-logs: the seed's system settings (public ones are
readable by anyone signed in; all of them are read and written by technical_access staff,
super_admin included, as the schema's row-level security says), each value checked against
its type and, for the settings the realm documents, its meaning; every change leaves an
audit_logs row, which the same staff read."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

import asyncpg
from aiohttp import web
from msgspec import UNSET, Meta, Struct, UnsetType

from kernel.errors import BadRequest, NotFound
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from realms.market import audit, money
from realms.market.routes.access import has_role, me, require_role

routes = web.RouteTableDef()

TAG = "market settings"
STAFF = "technical_access"
SettingType = Literal["string", "number", "boolean", "json"]
_KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\Z")  # settings_key_format


def _percent(raw: Any) -> bool:
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        return False
    numeric = isinstance(raw, int | float | str) and not isinstance(raw, bool)
    return numeric and value.is_finite() and 0 <= value <= 100


def _category_rates(value: str) -> bool:
    try:
        rates = json.loads(value)
    except ValueError:
        return False
    return isinstance(rates, dict) and all(
        k.isascii()
        and k.isdigit()
        and 0 < int(k) < 2**63
        and isinstance(v, int | float)
        and _percent(v)
        for k, v in rates.items()
    )


# The settings the realm reads, by key: their type, what a value must mean, and how to say it.
DOCUMENTED: dict[str, tuple[SettingType, Callable[[str], bool], str]] = {
    money.DEFAULT_RATE_KEY: ("number", _percent, "a percent from 0 to 100"),
    money.CATEGORY_RATES_KEY: (
        "json",
        _category_rates,
        'an object of category id to percent from 0 to 100, e.g. {"12": 7.5}',
    ),
}


class SettingBody(Struct, forbid_unknown_fields=True, kw_only=True):
    """`type` is required for a new setting; on an existing one it defaults to the stored
    type. Fields not given keep their stored (or, when new, their default) values."""

    value: Annotated[str, Meta(max_length=100_000)]
    type: SettingType | UnsetType = UNSET
    description: Annotated[str, Meta(max_length=2000)] | UnsetType | None = UNSET
    is_public: bool | UnsetType = UNSET


class SettingOut(Struct):
    id: int
    key: str
    value: str
    type: str
    description: str | None
    is_public: bool
    updated_at: datetime


class AuditQuery(PageQuery, kw_only=True):
    entity_type: Annotated[str, Meta(max_length=100)] | None = None
    entity_id: Annotated[int, Meta(ge=1, le=2**63 - 1)] | None = None
    action: Annotated[str, Meta(max_length=100)] | None = None


class AuditOut(Struct):
    id: int
    user_id: int | None
    action: str
    entity_type: str
    entity_id: int | None
    old_values: Any
    new_values: Any
    ip_address: str | None
    user_agent: str | None
    created_at: datetime


_SETTING = (
    "SELECT id, key, value, type::text AS type, description, is_public, updated_at"
    " FROM market.settings"
)
_AUDITED = ("key", "value", "type", "description", "is_public")


def _key(request: web.Request) -> str:
    key = request.match_info["key"]
    if len(key) > 100 or not _KEY.match(key):
        raise BadRequest(
            f"setting key {key[:40]!r} is not a lower-case dotted name"
            " (e.g. commission.default_rate)"
        )
    return key


async def _check_value(conn: asyncpg.Connection, key: str, kind: str, value: str) -> None:
    """BadRequest unless `value` parses as `kind` (the schema's market.setting_value_valid)
    and, for a documented key, has its documented type and meaning."""
    documented = DOCUMENTED.get(key)
    if documented is not None and documented[0] != kind:
        raise BadRequest(f"{key} is a {documented[0]} setting, not {kind}")
    if not await conn.fetchval("SELECT market.setting_value_valid($1, $2)", kind, value):
        raise BadRequest(f"the value of {key} is not a valid {kind}")
    if documented is not None and not documented[1](value):
        raise BadRequest(f"the value of {key} must be {documented[2]}")


@endpoint(
    routes,
    "GET",
    "/v1/settings",
    summary="Settings by key: the public ones, or all of them for technical_access staff",
    tag=TAG,
    response=list[SettingOut],
    errors=(401,),
)
async def list_settings(request: web.Request) -> list[SettingOut]:
    who = await me(request)
    every = await has_role(request, who.id, STAFF)
    rows = await request.app[POOL].fetch(
        _SETTING + " WHERE is_public OR $1 ORDER BY key LIMIT 1000", every
    )
    return [SettingOut(**dict(r)) for r in rows]


@endpoint(
    routes,
    "GET",
    "/v1/settings/{key}",
    summary="One setting (a private one is 404 but for technical_access staff)",
    tag=TAG,
    response=SettingOut,
    errors=(400, 401, 404),
)
async def get_setting(request: web.Request) -> SettingOut:
    who = await me(request)
    key = _key(request)
    every = await has_role(request, who.id, STAFF)
    row = await request.app[POOL].fetchrow(
        _SETTING + " WHERE key = $1 AND (is_public OR $2)", key, every
    )
    if row is None:
        raise NotFound(f"no setting {key}")
    return SettingOut(**dict(row))


@endpoint(
    routes,
    "PUT",
    "/v1/settings/{key}",
    summary="Create or change a setting (technical_access); the value must parse as its type",
    tag=TAG,
    body=SettingBody,
    response=SettingOut,
    errors=(400, 401, 403),
)
async def put_setting(request: web.Request, body: SettingBody) -> SettingOut:
    who = await require_role(request, STAFF)
    key = _key(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        old = await conn.fetchrow(_SETTING + " WHERE key = $1 FOR UPDATE", key)
        if old is None:
            if isinstance(body.type, UnsetType):
                raise BadRequest(f"{key} is a new setting: give its `type`")
            await _check_value(conn, key, body.type, body.value)
            made = await conn.fetchval(
                "INSERT INTO market.settings (key, value, type, description, is_public)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING RETURNING id",
                key,
                body.value,
                body.type,
                None if body.description is UNSET else body.description,
                False if body.is_public is UNSET else body.is_public,
            )
            if made is not None:
                new = await conn.fetchrow(_SETTING + " WHERE id = $1", made)
                await audit.record(
                    conn,
                    request,
                    actor=who.id,
                    action="setting.created",
                    entity_type="setting",
                    entity_id=made,
                    old=None,
                    new={k: new[k] for k in _AUDITED},
                )
                return SettingOut(**dict(new))
            # created by a concurrent request since the read: change it as below
            old = await conn.fetchrow(_SETTING + " WHERE key = $1 FOR UPDATE", key)
            assert old is not None
        kind: str = old["type"] if isinstance(body.type, UnsetType) else body.type
        await _check_value(conn, key, kind, body.value)
        new = await conn.fetchrow(
            "UPDATE market.settings SET value = $2, type = $3, description = $4, is_public = $5"
            " WHERE id = $1 RETURNING id, key, value, type::text AS type, description,"
            " is_public, updated_at",
            old["id"],
            body.value,
            kind,
            old["description"] if body.description is UNSET else body.description,
            old["is_public"] if body.is_public is UNSET else body.is_public,
        )
        before, after = {k: old[k] for k in _AUDITED}, {k: new[k] for k in _AUDITED}
        if before != after:
            await audit.record(
                conn,
                request,
                actor=who.id,
                action="setting.updated",
                entity_type="setting",
                entity_id=old["id"],
                old=before,
                new=after,
            )
        return SettingOut(**dict(new))


@endpoint(
    routes,
    "DELETE",
    "/v1/settings/{key}",
    summary="Delete a setting (technical_access); the realm falls back to its defaults",
    tag=TAG,
    errors=(400, 401, 403, 404),
    status=204,
)
async def delete_setting(request: web.Request) -> None:
    who = await require_role(request, STAFF)
    key = _key(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        old = await conn.fetchrow(
            "DELETE FROM market.settings WHERE key = $1"
            " RETURNING id, key, value, type::text AS type, description, is_public",
            key,
        )
        if old is None:
            raise NotFound(f"no setting {key}")
        await audit.record(
            conn,
            request,
            actor=who.id,
            action="setting.deleted",
            entity_type="setting",
            entity_id=old["id"],
            old={k: old[k] for k in _AUDITED},
            new=None,
        )


@endpoint(
    routes,
    "GET",
    "/v1/audit-logs",
    summary="The audit trail, newest first (technical_access)",
    tag=TAG,
    query=AuditQuery,
    response=Page[AuditOut],
    errors=(400, 401, 403),
)
async def audit_logs(request: web.Request, query: AuditQuery) -> Page[AuditOut]:
    await require_role(request, STAFF)
    after = decode_cursor(query.cursor, int)
    rows = await request.app[POOL].fetch(
        "SELECT id, user_id, action, entity_type, entity_id, old_values, new_values,"
        " host(ip_address) AS ip_address, user_agent, created_at FROM market.audit_logs"
        " WHERE ($1::text IS NULL OR entity_type = $1) AND ($2::bigint IS NULL OR entity_id = $2)"
        " AND ($3::text IS NULL OR action = $3) AND ($4::bigint IS NULL OR id < $4)"
        " ORDER BY id DESC LIMIT $5",
        query.entity_type,
        query.entity_id,
        query.action,
        after[0] if after else None,
        query.limit + 1,
    )
    return page_of([AuditOut(**dict(r)) for r in rows], query.limit, lambda a: (a.id,))
