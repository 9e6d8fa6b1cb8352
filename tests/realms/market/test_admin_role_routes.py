"""Admin roles over REST on real Postgres: role managers grant and revoke them, super_admin
needs a super_admin, the last super_admin grant stays (also when two revoke each other at
once), each change leaves an audit_logs row, and the staff gates follow the grants at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.realms.market.conftest import bearer
from tests.realms.market.world import NO_SUCH_ID, World


async def call(
    api: TestClient, secret: str, user: int, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    resp = await api.request(method, "/v1/market" + path, json=body, headers=bearer(secret, user))
    return resp.status, (await resp.json()) if resp.status != 204 else None


def grant(user: int, role: str, **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "role_type": role, **extra}


async def test_role_managers_grant_and_revoke_roles_and_the_staff_gates_follow(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    manager, accountant = await world.admin("role_manager"), await world.admin("accounting")
    target, buyer = await world.user("admin"), await world.buyer()
    setting = ("PUT", "/settings/site.banner", {"value": "Sale!", "type": "string"})
    assert (await call(market_api, secret, target, *setting))[0] == 403
    body = grant(target, "technical_access", permissions={"settings": "write"})
    for outsider in (buyer, accountant, target):
        assert (await call(market_api, secret, outsider, "POST", "/admin-roles", body))[0] == 403
    status, made = await call(market_api, secret, manager, "POST", "/admin-roles", body)
    assert status == 201, made
    assert (made["user_id"], made["role_type"], made["granted_by"], made["active"]) == (
        target,
        "technical_access",
        manager,
        True,
    )
    assert made["permissions"] == {"settings": "write"}
    assert (await call(market_api, secret, target, *setting))[0] == 200  # the gate follows
    status, again = await call(market_api, secret, manager, "POST", "/admin-roles", body)
    assert status == 409 and again["error"]["details"]["reason"] == "already_granted"
    status, wrong = await call(
        market_api, secret, manager, "POST", "/admin-roles", grant(buyer, "accounting")
    )
    assert status == 409 and wrong["error"]["details"]["reason"] == "not_an_admin"
    unknown = grant(NO_SUCH_ID, "accounting")
    assert (await call(market_api, secret, manager, "POST", "/admin-roles", unknown))[0] == 404
    for refused in (grant(target, "super_admin"), grant(manager, "accounting")):
        assert (await call(market_api, secret, manager, "POST", "/admin-roles", refused))[0] == 403
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for when in (past, "2099-01-01T00:00:00"):  # in the past; without a time zone
        late = grant(target, "accounting", expires_at=when)
        assert (await call(market_api, secret, manager, "POST", "/admin-roles", late))[0] == 400
    # who sees which grants
    _, seen = await call(market_api, secret, manager, "GET", f"/admin-roles?user_id={target}")
    assert [g["id"] for g in seen] == [made["id"]]
    _, own = await call(market_api, secret, target, "GET", "/admin-roles")
    _, none = await call(market_api, secret, buyer, "GET", "/admin-roles")
    assert [g["role_type"] for g in own] == ["technical_access"] and none == []
    _, everyone = await call(market_api, secret, manager, "GET", "/admin-roles")
    assert {g["user_id"] for g in everyone} == {manager, accountant, target}
    # revoking: the gate closes at once
    assert (await call(market_api, secret, target, "DELETE", f"/admin-roles/{made['id']}"))[
        0
    ] == 403
    assert (await call(market_api, secret, manager, "DELETE", f"/admin-roles/{made['id']}"))[
        0
    ] == 204
    assert (await call(market_api, secret, manager, "DELETE", f"/admin-roles/{made['id']}"))[
        0
    ] == 404
    assert (await call(market_api, secret, target, *setting))[0] == 403
    rows = await db.fetch(
        "SELECT * FROM market.audit_logs WHERE entity_type = 'admin_role' ORDER BY id"
    )
    assert [(r["action"], r["entity_id"], r["user_id"]) for r in rows] == [
        ("admin_role.granted", made["id"], manager),
        ("admin_role.revoked", made["id"], manager),
    ]
    assert (
        rows[0]["old_values"] is None and rows[0]["new_values"]["role_type"] == "technical_access"
    )
    assert rows[1]["old_values"]["user_id"] == target and rows[1]["new_values"] is None


async def test_an_expired_grant_is_renewed_in_place(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    manager, target = await world.admin("role_manager"), await world.user("admin")
    then = datetime.now(UTC) - timedelta(days=10)
    old = await world.admin_role(
        user_id=target, role_type="accounting", granted_at=then, expires_at=then + timedelta(days=1)
    )
    assert await db.fetchval("SELECT market.has_admin_role($1, 'accounting')", target) is False
    until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    status, renewed = await call(
        market_api,
        secret,
        manager,
        "POST",
        "/admin-roles",
        grant(target, "accounting", expires_at=until),
    )
    assert status == 201 and renewed["id"] == old and renewed["active"] is True
    assert await db.fetchval("SELECT market.has_admin_role($1, 'accounting')", target) is True
    audited = await db.fetchrow("SELECT * FROM market.audit_logs WHERE entity_id = $1", old)
    assert audited["old_values"]["expires_at"] is not None and audited["new_values"]["granted_by"]


async def test_only_a_super_admin_grants_super_admin_and_the_last_one_stays(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    boss, manager = await world.admin("super_admin"), await world.admin("role_manager")
    other = await world.user("admin")
    status, made = await call(
        market_api, secret, boss, "POST", "/admin-roles", grant(other, "super_admin")
    )
    assert status == 201
    assert (await call(market_api, secret, manager, "DELETE", f"/admin-roles/{made['id']}"))[
        0
    ] == 403
    mine = await db.fetchval(
        "SELECT id FROM market.admin_roles WHERE user_id = $1 AND role_type = 'super_admin'", boss
    )
    # the two super admins revoke each other at once: one of them stays
    results = await asyncio.gather(
        call(market_api, secret, boss, "DELETE", f"/admin-roles/{made['id']}"),
        call(market_api, secret, other, "DELETE", f"/admin-roles/{mine}"),
    )
    statuses = sorted(status for status, _ in results)
    assert statuses[0] == 204 and statuses[1] in (403, 409), results
    left = await db.fetch(
        "SELECT id, user_id FROM market.admin_roles WHERE role_type = 'super_admin'"
    )
    assert len(left) == 1
    last, holder = left[0]["id"], left[0]["user_id"]
    status, refused = await call(market_api, secret, holder, "DELETE", f"/admin-roles/{last}")
    assert status == 409 and refused["error"]["details"]["reason"] == "last_super_admin"
    # a super_admin holds role_manager too: it grants every other role
    status, _ = await call(
        market_api, secret, holder, "POST", "/admin-roles", grant(manager, "accounting")
    )
    assert status == 201
