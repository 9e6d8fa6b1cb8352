"""Helpers for the academy schema tests: valid rows for every table, and a connection that
acts as a user the way the API does (SET LOCAL ROLE academy_user + the academy.user_id claim).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

T0 = datetime(2025, 1, 8, 10, 30, tzinfo=UTC)  # a Wednesday; its week is Mon 6 .. Sun 12 Jan
WEEK_START = date(2025, 1, 6)
API_ROLE = "academy_user"

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_gates = itertools.count(1)


def next_gate() -> int:
    """A gate id no other row of this process used: (level_id, gate_id) stay unique."""
    return next(_gates)


def _check_idents(*names: str) -> None:
    for name in names:
        if not _IDENT.match(name):
            raise ValueError(f"not a plain identifier: {name!r}")


async def insert(db: asyncpg.Connection, table: str, **fields: Any) -> UUID:
    """INSERT one row into academy.<table> with the given columns; returns its id."""
    _check_idents(table, *fields)
    cols = ", ".join(fields)
    params = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
    row_id: UUID = await db.fetchval(
        f"INSERT INTO academy.{table} ({cols}) VALUES ({params}) RETURNING id", *fields.values()
    )
    return row_id


async def rejects(
    db: asyncpg.Connection,
    exc: type[asyncpg.PostgresError],
    constraint: str | None,
    table: str,
    **fields: Any,
) -> None:
    """The insert fails with `exc`, naming `constraint` when one is given."""
    with pytest.raises(exc) as info:
        await insert(db, table, **fields)
    if constraint is not None:
        assert info.value.constraint_name == constraint


async def count(db: asyncpg.Connection, table: str, where: str = "true", *args: Any) -> int:
    _check_idents(table)
    n: int = await db.fetchval(f"SELECT count(*) FROM academy.{table} WHERE {where}", *args)
    return n


class Rows:
    """Valid rows for every academy table, created as the owner (RLS does not apply)."""

    def __init__(self, db: asyncpg.Connection) -> None:
        self.db = db

    async def user(self, *, admin: bool = False, **fields: Any) -> UUID:
        fields.setdefault("email", f"u{uuid4().hex[:12]}@academy.test")
        if admin:
            fields["is_super_admin"] = True
        return await insert(self.db, "users", **fields)

    async def fields(self, table: str) -> dict[str, Any]:
        """The documented required columns of `table`, with fresh parent rows."""
        match table:
            case "users":
                return {"email": f"u{uuid4().hex[:12]}@academy.test"}
            case "user_profiles":
                return {"id": await self.user()}
            case "lessons":
                return {
                    "level_id": 1,
                    "gate_id": next_gate(),
                    "title": "Candlesticks",
                    "content_data": {"blocks": []},
                }
            case "user_progress":
                return {"user_id": await self.user(), "level_id": 1, "gate_id": next_gate()}
            case "achievements":
                return {"code": f"first-{uuid4().hex[:12]}", "title": "First", "description": "d"}
            case "user_achievements":
                return {
                    "user_id": await self.user(),
                    "achievement_id": await self.create("achievements"),
                }
            case "leaderboard":
                return {
                    "user_id": await self.user(),
                    "period": "weekly",
                    "period_start_date": WEEK_START,
                    "period_end_date": WEEK_START + timedelta(days=6),
                }
            case "user_streaks":
                return {"user_id": await self.user()}
            case "user_activity_log":
                return {"user_id": await self.user(), "activity_type": "login"}
            case "community_posts":
                return {"author_id": await self.user(), "title": "Is RSI enough?"}
            case "community_comments":
                return {
                    "post_id": await self.create("community_posts"),
                    "author_id": await self.user(),
                    "content": "No.",
                }
            case "community_votes":
                return {
                    "user_id": await self.user(),
                    "target_type": "post",
                    "target_id": uuid4(),
                    "vote_type": "upvote",
                }
            case "live_sessions":
                return {
                    "title": "Weekly Q&A",
                    "host_id": await self.user(),
                    "scheduled_at": T0,
                    "duration": timedelta(hours=1),
                }
            case "session_participants":
                return {
                    "session_id": await self.create("live_sessions"),
                    "user_id": await self.user(),
                }
            case "subscription_plans":
                return {"name": "Pro", "price": Decimal("19.99"), "features": {"levels": 9}}
            case "user_subscriptions":
                return {
                    "user_id": await self.user(),
                    "plan_id": await self.create("subscription_plans"),
                }
        raise ValueError(f"unknown academy table {table!r}")

    async def create(self, table: str, **overrides: Any) -> UUID:
        fields = await self.fields(table)
        fields.update(overrides)
        return await insert(self.db, table, **fields)

    async def progress(self, user_id: UUID, **fields: Any) -> UUID:
        fields.setdefault("level_id", 1)
        fields.setdefault("gate_id", next_gate())
        return await insert(self.db, "user_progress", user_id=user_id, **fields)

    async def completion(
        self, user_id: UUID, xp: int | None, at: datetime = T0, **fields: Any
    ) -> UUID:
        """A completed lesson worth `xp`, completed at `at`."""
        return await self.progress(user_id, completed=True, xp_earned=xp, completed_at=at, **fields)


@asynccontextmanager
async def as_user(
    db: asyncpg.Connection, user_id: UUID | None
) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on `db` as the API runs a request: SET LOCAL ROLE academy_user and, unless
    `user_id` is None (anonymous), SET LOCAL academy.user_id. Commits when the block ends;
    an exception rolls back. Role and claim end with the transaction."""
    async with db.transaction():
        await db.execute(f"SET LOCAL ROLE {API_ROLE}")
        if user_id is not None:
            await db.execute("SELECT set_config('academy.user_id', $1, true)", str(user_id))
        yield db


def rls_violation() -> Any:
    """pytest.raises for a write that a row-level security policy refuses."""
    return pytest.raises(
        asyncpg.InsufficientPrivilegeError, match="violates row-level security policy"
    )


def permission_denied() -> Any:
    """pytest.raises for a statement academy_user has no (table or column) privilege for."""
    return pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied")
