"""What every seeding run (`loadtests.seed`, `seed_<realm>`) shares in the database: the
migrated database named by DATABASE_URL, the logins of every seeded population (one password
behind ONE bcrypt hash, the run's e-mail tag and domain), and a run's frame: its timed steps,
its one transaction, its session temp tables, ANALYZE, and the credentials CSV."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import ClassVar

import asyncpg
import bcrypt

Say = Callable[[str], None]


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


@dataclass(frozen=True)
class LoginConfig:
    """The logins of a seeded population, the base of every seed config: everyone's
    password, the cost of its one bcrypt hash, and the tag and domain of this run's e-mails
    (a new random tag per run, so seeding again adds a population)."""

    max_tag: ClassVar[int | None] = None  # longest tag a realm's names have room for

    password: str = "loadtest-password"
    bcrypt_rounds: int = 4
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    domain: str = "loadtest.example.com"

    def check(self) -> None:
        """ValueError naming the command-line option that is out of range."""
        if not 4 <= self.bcrypt_rounds <= 16:
            raise ValueError("--bcrypt-rounds must be between 4 and 16")
        if len(self.password) < 8 or len(self.password.encode()) > 72:
            raise ValueError("--password must be 8 characters to 72 bytes (bcrypt's limit)")
        too_long = self.max_tag is not None and len(self.tag) > self.max_tag
        if not self.tag.isalnum() or self.tag != self.tag.lower() or too_long:
            length = "" if self.max_tag is None else f"1 to {self.max_tag} "
            raise ValueError(f"--tag must be {length}lower-case letters and digits")


@dataclass
class RunReport:
    """The base of every seed report: the run's tag and each step's seconds."""

    tag: str
    timings: dict[str, float] = field(default_factory=dict, kw_only=True)

    @property
    def seconds(self) -> float:
        return sum(self.timings.values())


class SeedRun:
    """One seeding run through `conn`: the one password hash every seeded user shares, the
    steps (each one's seconds since the previous go to `report.timings`, and a line
    `name seconds detail` to `say`, the name padded to `width`) and, as an async context
    manager, the run's session temp tables, dropped at its end whatever happens."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        config: LoginConfig,
        report: RunReport,
        say: Say,
        temp_tables: Sequence[str],
        width: int = 14,
    ) -> None:
        self.conn = conn
        self.timings = report.timings
        self.say = say
        self.temp_tables = temp_tables
        self.width = width
        self.clock = time.perf_counter()
        salt = bcrypt.gensalt(config.bcrypt_rounds)
        self.password_hash = bcrypt.hashpw(config.password.encode(), salt).decode()
        self.step("bcrypt", f"one hash at cost {config.bcrypt_rounds}, shared by every user")

    async def __aenter__(self) -> SeedRun:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await drop_temp_tables(self.conn, self.temp_tables)

    def step(self, name: str, detail: str = "") -> None:
        now = time.perf_counter()
        self.timings[name] = now - self.clock
        self.clock = now
        self.say(f"{name:<{self.width}} {self.timings[name]:6.2f} s  {detail}".rstrip())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """The run's one transaction. Its commit does not wait for the WAL flush: a seed
        lost to a crash is seeded again."""
        async with self.conn.transaction():
            await self.conn.execute("SET LOCAL synchronous_commit = off")
            yield

    async def analyze(self, tables: str) -> None:
        """Fresh statistics of `tables`, so the API's and gateway's first queries plan well."""
        await self.conn.execute(f"ANALYZE {tables}")
        self.step("analyze")

    async def write_credentials(self, query: str, out: Path | None, *args: object) -> int:
        """The credentials file `out` (None: none), as `write_credentials` writes it."""
        written = 0 if out is None else await write_credentials(self.conn, query, out, *args)
        self.step("credentials", f"{written:,} rows -> {out}" if out else "not written")
        return written
