"""What every seeding command (`python -m loadtests.seed`, `seed_<realm>`) shares: its
progress lines on stderr, and the migrated database named by DATABASE_URL it writes to."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg


def progress(command: str) -> Callable[[str], None]:
    """A `say(message)` printing `[command] message` to stderr at once."""

    def say(message: str) -> None:
        print(f"[{command}] {message}", file=sys.stderr, flush=True)

    return say


@asynccontextmanager
async def seed_database(probe_table: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to DATABASE_URL whose realm schema is migrated (`probe_table`, such as
    `academy.live_sessions`, exists); SystemExit with what to do otherwise."""
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        raise SystemExit(
            "DATABASE_URL is not set; for `make run`'s private cluster use\n"
            "  DATABASE_URL=postgresql://postgres@127.0.0.1:55432/switchboard"
        )
    conn = await asyncpg.connect(dsn)
    try:
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", probe_table):
            schema = probe_table.split(".", 1)[0]
            raise SystemExit(f"the database has no {schema} schema: run `python -m kernel.migrate`")
        yield conn
    finally:
        await conn.close()


def count(status: str) -> int:
    """Rows affected, from a command status such as 'INSERT 0 100000' or 'COPY 42'."""
    return int(status.split()[-1])


async def write_credentials(conn: asyncpg.Connection, query: str, out: Path, *args: object) -> int:
    """COPY the credentials `query` (its parameters `args`) to the CSV file `out`, with a
    header; returns the rows written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    status = await conn.copy_from_query(query, *args, output=str(out), format="csv", header=True)
    return count(status)


async def drop_temp_tables(conn: asyncpg.Connection, names: Sequence[str]) -> None:
    """Drop a seeding run's session tables (pg_temp), unless the connection is gone."""
    if not conn.is_closed():
        await conn.execute("DROP TABLE IF EXISTS " + ", ".join(f"pg_temp.{t}" for t in names))
