"""The asyncpg pool: one per process, with JSON codecs and an application name per connection."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

_encode = msgspec.json.encode
_decode = msgspec.json.decode


async def setup_connection(conn: asyncpg.Connection) -> None:
    """Per-connection set-up: json/jsonb as Python values (msgspec-encoded)."""
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename,
            encoder=lambda v: _encode(v).decode(),
            decoder=_decode,
            schema="pg_catalog",
        )


async def keep_session(conn: asyncpg.Connection) -> None:
    """A released connection goes back to the pool without asyncpg's reset query (advisory
    unlock, CLOSE ALL, UNLISTEN, RESET ALL), which costs a round trip on every release:
    nothing here leaves session state on a pooled connection (LISTEN runs on connections of
    its own; settings, roles and advisory locks are transaction-scoped). asyncpg still rolls
    back a transaction left open and drops listeners first. ADR 0008."""


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 10, application_name: str = "switchboard"
) -> asyncpg.Pool:
    """Open a pool; the caller owns it and must `await pool.close()`."""
    pool: Any = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=setup_connection,
        reset=keep_session,
        server_settings={"application_name": application_name},
    )
    return pool


async def connect(dsn: str, *, application_name: str = "switchboard") -> asyncpg.Connection:
    """One connection with the same set-up as the pool's; the caller closes it."""
    conn = await asyncpg.connect(dsn, server_settings={"application_name": application_name})
    await setup_connection(conn)
    return conn
