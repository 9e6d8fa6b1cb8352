"""Small async helpers that insert valid rows into the analyst schema for tests.

Each returns the new row's id. Keyword arguments not named in a signature are written to the
column of the same name, so any documented column can be set.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import asyncpg

# A syntactically bcrypt-shaped placeholder; nothing in the schema checks the hash itself.
PASSWORD_HASH = "$2b$12$" + "x" * 53
_COLUMN = re.compile(r"^[a-z_][a-z0-9_]*$")


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def insert_row(db: asyncpg.Connection, table: str, values: dict[str, Any]) -> uuid.UUID:
    """INSERT `values` (column -> value) into analyst.<table>; return the new id."""
    for name in (table, *values):
        if not _COLUMN.match(name):
            raise ValueError(f"not a plain identifier: {name!r}")
    columns = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    row_id = await db.fetchval(
        f"INSERT INTO analyst.{table} ({columns}) VALUES ({params}) RETURNING id",
        *values.values(),
    )
    assert isinstance(row_id, uuid.UUID)
    return row_id


async def make_user(
    db: asyncpg.Connection,
    *,
    user_type: str = "trader",
    email: str | None = None,
    phone: str | None = None,
    **fields: Any,
) -> uuid.UUID:
    """A user; gets a unique e-mail unless an e-mail or a phone is given."""
    if email is None and phone is None:
        email = f"{_unique('user')}@example.com"
    values = {
        "email": email,
        "phone": phone,
        "password_hash": PASSWORD_HASH,
        "user_type": user_type,
        **fields,
    }
    return await insert_row(db, "users", values)


async def make_analyst(db: asyncpg.Connection, **profile_fields: Any) -> uuid.UUID:
    """A user of type analyst with an analyst_profiles row; returns the USER id."""
    user_id = await make_user(db, user_type="analyst")
    profile = {"user_id": user_id, "display_name": _unique("Analyst"), **profile_fields}
    await insert_row(db, "analyst_profiles", profile)
    return user_id


async def make_tier(
    db: asyncpg.Connection,
    analyst_id: uuid.UUID,
    *,
    tier_name: str | None = None,
    price_monthly: int = 99900,
    tier_order: int = 0,
    chat_access: bool = True,
    is_free_tier: bool = False,
    **fields: Any,
) -> uuid.UUID:
    """A subscription tier of `analyst_id` (a user id); the name is unique unless given."""
    values = {
        "analyst_id": analyst_id,
        "tier_name": tier_name or _unique("Tier"),
        "price_monthly": price_monthly,
        "tier_order": tier_order,
        "chat_access": chat_access,
        "is_free_tier": is_free_tier,
        **fields,
    }
    return await insert_row(db, "subscription_tiers", values)


async def make_subscription(
    db: asyncpg.Connection,
    user_id: uuid.UUID,
    tier_id: uuid.UUID,
    *,
    status: str = "active",
    **fields: Any,
) -> uuid.UUID:
    """A subscription of `user_id` to `tier_id`: analyst_id from the tier, monthly billing,
    start_date now() and expires_at now() + 30 days unless given."""
    row = await db.fetchrow(
        "SELECT t.analyst_id, now() AS now FROM analyst.subscription_tiers t WHERE t.id = $1",
        tier_id,
    )
    if row is None:
        raise LookupError(f"no subscription tier {tier_id}")
    values: dict[str, Any] = {
        "user_id": user_id,
        "analyst_id": row["analyst_id"],
        "tier_id": tier_id,
        "status": status,
        "billing_cycle": "monthly",
        "start_date": row["now"],
        "expires_at": row["now"] + timedelta(days=30),
        **fields,
    }
    return await insert_row(db, "subscriptions", values)
