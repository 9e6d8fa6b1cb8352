"""Fixtures of the academy schema tests (the `db` fixture comes from tests/conftest.py)."""

from __future__ import annotations

import asyncpg
import pytest

from tests.realms.academy.helpers import Rows


@pytest.fixture
def rows(db: asyncpg.Connection) -> Rows:
    return Rows(db)
