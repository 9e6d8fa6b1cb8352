"""Running a request's queries under row-level security: a transaction as `academy_user`
with the verified caller's id as the `academy.user_id` claim (what `academy.uid()` reads),
and the few trusted steps (XP, counters, waitlist, attendance) run as the owner inside it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

API_ROLE = "academy_user"


@asynccontextmanager
async def as_user(
    pool: asyncpg.Pool, user_id: uuid.UUID | None
) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a transaction that acts as `user_id` (None: anonymous) under RLS.
    Role and claim are SET LOCAL: they end with the transaction, so a pooled connection never
    carries one request's identity into the next. Commits when the block ends."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {API_ROLE}")
        if user_id is not None:
            await conn.execute("SELECT set_config('academy.user_id', $1, true)", str(user_id))
        yield conn


@asynccontextmanager
async def trusted(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """Inside `as_user`: run a server-side step as the owner (RLS does not apply), then act as
    the user again. Only for what the server keeps (counters, XP, streaks, waitlist): never
    for a statement built from what the user chose to read or write."""
    await conn.execute("RESET ROLE")
    yield conn  # an exception here fails the transaction: nothing more runs on it
    await conn.execute(f"SET LOCAL ROLE {API_ROLE}")
