"""Fixtures of the aichat realm's tests.

The schema tests (test_catalog, test_chat_system, ...) start from empty tables: `db` here
removes the reference plans and providers of migration 2003 before each of them. The realm's
behaviour tests (auth, providers, streams, REST) use the fixtures of `tests.realms.aichat.world`
instead, which keep those rows."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from kernel.db import connect


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(dsn)
    try:
        await conn.execute("DELETE FROM aichat.ai_providers; DELETE FROM aichat.plans")
        yield conn
    finally:
        await conn.close()


from tests.api.conftest import smtp_sink  # noqa: E402,F401 - a real SMTP server, shared
from tests.realms.aichat.world import aichat_api, aichat_gateway, standin  # noqa: E402,F401
