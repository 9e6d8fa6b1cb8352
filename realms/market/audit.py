"""The market's audit trail (seed 004: "All critical operations logged in audit_logs"): one
append-only market.audit_logs row per change, written in the changing transaction, with who
acted, from where, and the values before and after."""

from __future__ import annotations

import ipaddress
from typing import Any

import asyncpg
from aiohttp import web


def _ip(request: web.Request) -> str | None:
    try:
        return str(ipaddress.ip_address(request.remote or ""))
    except ValueError:  # a unix socket, or no peer
        return None


async def record(
    conn: asyncpg.Connection,
    request: web.Request,
    *,
    actor: int,
    action: str,
    entity_type: str,
    entity_id: int | None,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
) -> None:
    """Write the audit row of one change made by `actor` through `request` (its peer address
    and User-Agent are kept). Call it inside the change's transaction, so the row exists
    exactly when the change does."""
    await conn.execute(
        "INSERT INTO market.audit_logs (user_id, action, entity_type, entity_id, old_values,"
        " new_values, ip_address, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        actor,
        action,
        entity_type,
        entity_id,
        old,
        new,
        _ip(request),
        (request.headers.get("User-Agent") or "")[:1000] or None,
    )
