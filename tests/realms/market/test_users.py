"""Users and roles (4002): user columns that name a role (a product's seller is a seller, an
order's courier a courier, ...), market.has_admin_role(), and what users get by default."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.realms.market.world import World, rejected

# (table, column, role the user must have): market.require_user_role() installations.
ROLE_COLUMNS = [
    ("admin_roles", "user_id", "admin"),
    ("admin_roles", "granted_by", "admin"),
    ("products", "seller_id", "seller"),
    ("orders", "seller_id", "seller"),
    ("orders", "courier_id", "courier"),
    ("payouts", "seller_id", "seller"),
    ("seller_statistics", "seller_id", "seller"),
]
WRONG_ROLE = {"admin": "seller", "seller": "buyer", "courier": "seller"}


@pytest.mark.parametrize(
    ("table", "column", "role"), ROLE_COLUMNS, ids=[f"{t}.{c}" for t, c, _ in ROLE_COLUMNS]
)
async def test_user_column_refuses_a_user_of_another_role(
    txworld: World, table: str, column: str, role: str
) -> None:
    wrong = await txworld.user(WRONG_ROLE[role])
    error = await rejected(
        txworld.db,
        txworld.make(table, **{column: wrong}),
        asyncpg.CheckViolationError,
        f"{table}_{column}_role",
    )
    assert f"must be a user with role {role}" in str(error)


@pytest.mark.parametrize(
    ("table", "column", "role"), ROLE_COLUMNS, ids=[f"{t}.{c}" for t, c, _ in ROLE_COLUMNS]
)
async def test_user_column_accepts_the_role_and_refuses_a_change_to_another(
    txworld: World, table: str, column: str, role: str
) -> None:
    row = await txworld.make(table, **{column: await txworld.user(role)})
    await rejected(
        txworld.db,
        txworld.db.execute(
            f"UPDATE market.{table} SET {column} = $2 WHERE id = $1",
            row,
            await txworld.user(WRONG_ROLE[role]),
        ),
        asyncpg.CheckViolationError,
        f"{table}_{column}_role",
    )


async def test_a_new_user_gets_a_uuid_and_is_active(txworld: World) -> None:
    first, second = await txworld.buyer(), await txworld.buyer()
    a, b = await txworld.get("users", first), await txworld.get("users", second)
    assert a["uuid"] is not None and a["uuid"] != b["uuid"]
    assert (a["status"], a["email_verified"], a["phone_verified"]) == ("active", False, False)


async def test_email_lookup_is_case_insensitive_through_the_unique_index(txworld: World) -> None:
    user = await txworld.buyer(email="Nodira@Example.UZ")
    await txworld.db.execute("SET LOCAL enable_seqscan = off")
    found = await txworld.db.fetchval(
        "SELECT id FROM market.users WHERE lower(email) = lower($1)", "nodira@example.uz"
    )
    assert found == user
    plan = await txworld.db.fetch(
        "EXPLAIN SELECT id FROM market.users WHERE lower(email) = lower('x@example.uz')"
    )
    assert "idx_users_email" in "\n".join(r[0] for r in plan)


# -- has_admin_role ---------------------------------------------------------------------------


async def _grant(w: World, user: int, role_type: str, **f: Any) -> None:
    await w.admin_role(user_id=user, role_type=role_type, **f)


async def has(w: World, user: int, role: str) -> bool:
    held: bool = await w.db.fetchval("SELECT market.has_admin_role($1, $2)", user, role)
    return held


async def test_admin_holds_the_roles_granted_to_them(txworld: World) -> None:
    admin = await txworld.admin("accounting")
    assert await has(txworld, admin, "accounting") is True
    assert await has(txworld, admin, "technical_access") is False


async def test_super_admin_holds_every_admin_role(txworld: World) -> None:
    admin = await txworld.admin("super_admin")
    for role in ("super_admin", "role_manager", "accounting", "technical_access"):
        assert await has(txworld, admin, role) is True


async def test_an_expired_grant_is_not_held(txworld: World) -> None:
    admin = await txworld.user("admin")
    now = datetime.now(UTC)
    await _grant(
        txworld,
        admin,
        "accounting",
        granted_at=now - timedelta(days=2),
        expires_at=now - timedelta(seconds=1),
    )
    assert await has(txworld, admin, "accounting") is False
    other = await txworld.user("admin")
    await _grant(txworld, other, "accounting", expires_at=now + timedelta(days=1))
    assert await has(txworld, other, "accounting") is True


@pytest.mark.parametrize("change", ["status = 'suspended'", "deleted_at = now()"])
async def test_a_suspended_or_deleted_admin_holds_no_role(txworld: World, change: str) -> None:
    admin = await txworld.admin("super_admin")
    await txworld.db.execute(f"UPDATE market.users SET {change} WHERE id = $1", admin)
    assert await has(txworld, admin, "accounting") is False


async def test_a_non_admin_holds_no_admin_role(txworld: World) -> None:
    assert await has(txworld, await txworld.buyer(), "accounting") is False
