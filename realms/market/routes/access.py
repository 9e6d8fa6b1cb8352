"""What the market's newer routes share: the caller as a BIGINT user id with their role, BIGINT
path ids, and the admin-role gate (market.has_admin_role: an unexpired grant of the role or
of super_admin, held by an active admin)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from aiohttp import web

from kernel.errors import BadRequest, Forbidden
from kernel.web.auth import caller
from kernel.web.keys import POOL


@dataclass(frozen=True)
class Me:
    id: int
    role: str  # users.role: admin, buyer, seller or courier


async def me(request: web.Request) -> Me:
    who = await caller(request)
    return Me(int(who.subject), who.user_type)


def path_id(request: web.Request, name: str) -> int:
    """The positive BIGINT in the path segment `{name}`; one clear 400 otherwise."""
    raw = request.match_info[name]
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise BadRequest(f"`{name}` in the path is not a positive integer: {raw[:40]!r}")
    return int(raw)


async def has_role(request: web.Request, user_id: int, role: str) -> bool:
    return bool(
        await request.app[POOL].fetchval("SELECT market.has_admin_role($1, $2)", user_id, role)
    )


async def require_role(request: web.Request, role: str) -> Me:
    """The caller, who must hold admin role `role` (or super_admin); Forbidden otherwise."""
    who = await me(request)
    if not await has_role(request, who.id, role):
        raise Forbidden(f"this needs the {role} admin role")
    return who


MAX_AMOUNT = Decimal("9999999999.99")  # numeric(12, 2)


def amount(value: Decimal, name: str, *, zero: bool = False) -> Decimal:
    """A money amount of the body (msgspec has no range rules for Decimal): finite, at most
    two decimals, above 0 (or at least 0 when `zero`), within numeric(12, 2)."""
    low_ok = value >= 0 if zero else value > 0
    if not value.is_finite() or not low_ok or value > MAX_AMOUNT or value != round(value, 2):
        least = "0" if zero else "above 0"
        raise BadRequest(f"`{name}` must be {least} to {MAX_AMOUNT}, with at most two decimals")
    return value
