"""Fixtures of the market schema tests.

- `world`: row factories (tests/realms/market/world.py) on `db`, the test's own fresh
  database (tests/conftest.py). Used by every test of a trigger, a function, a transaction
  boundary or concurrency.
- `txn` / `txworld`: a connection inside a transaction on a database shared by the test
  module, rolled back after each test. Only for the large table-driven constraint tests
  (one case per CHECK, NOT NULL, UNIQUE, foreign key ...), where a fresh database per case
  would cost a second each; nothing such a test does outlives it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from kernel.db import connect
from tests.realms.market.world import World


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


async def _admin(base_dsn: str, sql: str) -> None:
    admin = await asyncpg.connect(with_database(base_dsn, "postgres"))
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def module_dsn(base_dsn: str, template_db: str) -> Iterator[str]:
    """A database with every migration applied, shared by one test module."""
    name = f"sb_mk_{uuid.uuid4().hex[:16]}"
    asyncio.run(_admin(base_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    yield with_database(base_dsn, name)
    asyncio.run(_admin(base_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def txn(module_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a transaction that is rolled back after the test."""
    conn = await connect(module_dsn)
    tr = conn.transaction()
    await tr.start()
    try:
        yield conn
    finally:
        await tr.rollback()
        await conn.close()


@pytest.fixture
def world(db: asyncpg.Connection) -> World:
    return World(db)


@pytest.fixture
def txworld(txn: asyncpg.Connection) -> World:
    return World(txn)
