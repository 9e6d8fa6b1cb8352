"""The migration runner: order, bookkeeping, checksums, concurrency, plain-psql compatibility."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import asyncpg
import pytest

from kernel.migrate import MigrationError, migrate, migration_files


async def test_applies_every_file_once_and_records_checksums(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        first = await migrate(conn)
        second = await migrate(conn)
        rows = await conn.fetch("SELECT filename, checksum FROM gateway.schema_migrations")
    finally:
        await conn.close()
    assert first == [p.name for p in migration_files()]
    assert second == []
    assert {r["filename"] for r in rows} == set(first)
    assert all(len(r["checksum"]) == 64 for r in rows)


async def test_refuses_to_continue_when_an_applied_file_changed(
    empty_dsn: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE gateway_probe_a (id int);")
    (tmp_path / "0002_b.sql").write_text("CREATE TABLE gateway_probe_b (id int);")
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await migrate(conn, tmp_path) == ["0001_a.sql", "0002_b.sql"]
        (tmp_path / "0001_a.sql").write_text("CREATE TABLE gateway_probe_a (id bigint);")
        (tmp_path / "0003_c.sql").write_text("CREATE TABLE gateway_probe_c (id int);")
        with pytest.raises(MigrationError, match=r"0001_a\.sql was changed"):
            await migrate(conn, tmp_path)
        assert await conn.fetchval("SELECT to_regclass('gateway_probe_c')") is None
    finally:
        await conn.close()


async def test_a_failing_file_is_rolled_back_and_not_recorded(
    empty_dsn: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE probe_ok (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE probe_half (id int); SELECT nope;")
    conn = await asyncpg.connect(empty_dsn)
    try:
        with pytest.raises(MigrationError, match=r"0002_bad\.sql failed"):
            await migrate(conn, tmp_path)
        assert await conn.fetchval("SELECT to_regclass('probe_half')") is None
        names = await conn.fetch("SELECT filename FROM gateway.schema_migrations")
        assert [r["filename"] for r in names] == ["0001_ok.sql"]
    finally:
        await conn.close()


async def test_concurrent_runners_apply_each_file_exactly_once(empty_dsn: str) -> None:
    conns = [await asyncpg.connect(empty_dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        count = await conns[0].fetchval("SELECT count(*) FROM gateway.schema_migrations")
    finally:
        for c in conns:
            await c.close()
    applied = [name for result in results for name in result]
    assert sorted(applied) == sorted(p.name for p in migration_files())
    assert count == len(migration_files())


def test_files_apply_with_plain_psql_in_name_order(empty_dsn: str) -> None:
    psql = shutil.which("psql")
    assert psql is not None
    for path in migration_files():
        done = subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", empty_dsn, "-f", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"{path.name}: {done.stderr}"
