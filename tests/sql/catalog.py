"""Catalog checks shared by the schema tests: documented indexes, indexed foreign keys, and
the updated_at trigger with now() defaults."""

from __future__ import annotations

import asyncpg

FK_COLUMNS_WITHOUT_INDEX = """
SELECT c.conrelid::regclass::text AS tbl, a.attname AS col
  FROM pg_constraint c
  CROSS JOIN LATERAL unnest(c.conkey) AS k(attnum)
  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
 WHERE c.contype = 'f'
   AND c.connamespace = 'analyst'::regnamespace
   AND c.conrelid::regclass::text = ANY ($1::text[])
   AND NOT EXISTS (SELECT 1 FROM pg_index i
                    WHERE i.indrelid = c.conrelid AND i.indkey[0] = k.attnum)
"""


async def fk_columns(db: asyncpg.Connection, tables: list[str]) -> set[tuple[str, str]]:
    """(table, column) of every foreign-key column of `tables`."""
    rows = await db.fetch(
        "SELECT c.conrelid::regclass::text AS tbl, a.attname AS col"
        " FROM pg_constraint c CROSS JOIN LATERAL unnest(c.conkey) AS k(attnum)"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum"
        " WHERE c.contype = 'f' AND c.conrelid::regclass::text = ANY ($1::text[])",
        tables,
    )
    return {(r["tbl"], r["col"]) for r in rows}


async def assert_index(db: asyncpg.Connection, name: str, definition: str) -> None:
    indexdef = await db.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'analyst' AND indexname = $1", name
    )
    assert indexdef is not None, f"{name} is missing"
    assert definition in indexdef


async def assert_updated_at_installed(db: asyncpg.Connection, table: str) -> None:
    trigger = await db.fetchrow(
        "SELECT t.tgname, p.proname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid"
        " WHERE t.tgrelid = $1::regclass AND t.tgname = $2",
        f"analyst.{table}",
        f"trg_{table}_updated_at",
    )
    assert trigger is not None and trigger["proname"] == "update_updated_at_column"
    defaults = await db.fetch(
        "SELECT column_name, column_default FROM information_schema.columns"
        " WHERE table_schema = 'analyst' AND table_name = $1"
        " AND column_name IN ('created_at', 'updated_at')",
        table,
    )
    assert {r["column_name"]: r["column_default"] for r in defaults} == {
        "created_at": "now()",
        "updated_at": "now()",
    }
