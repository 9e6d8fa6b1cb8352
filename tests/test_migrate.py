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


def _folder(root: Path, name: str, *files: str) -> Path:
    folder = root / name
    folder.mkdir()
    for file in files:
        (folder / file).write_text(f"CREATE TABLE probe_{file[:4]} (id int);")
    return folder


async def test_a_realm_enabled_later_runs_when_its_files_follow_the_core(
    empty_dsn: str, tmp_path: Path
) -> None:
    core = _folder(tmp_path, "core", "0001_core.sql", "0100_core.sql")
    realm = _folder(tmp_path, "realm", "1001_realm.sql")
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn, [core])
        assert await migrate(conn, [core, realm]) == ["1001_realm.sql"]
    finally:
        await conn.close()


async def test_a_realm_older_than_the_applied_core_is_refused_before_anything_runs(
    empty_dsn: str, tmp_path: Path
) -> None:
    # The analyst realm's files (0002-0026) precede the core's 0100+: enabled on a database
    # made without it, they would run after the core's and fail half-way.
    core = _folder(tmp_path, "core", "0001_core.sql", "0100_core.sql")
    realm = _folder(tmp_path, "realm", "0002_realm.sql", "0003_realm.sql")
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn, [core])
        with pytest.raises(MigrationError, match=r"0002_realm\.sql sorts before the core's 0100"):
            await migrate(conn, [core, realm])
        assert await conn.fetchval("SELECT to_regclass('probe_0002')") is None
    finally:
        await conn.close()


async def test_a_realm_migrated_from_the_start_takes_a_new_file_numbered_below_the_core(
    empty_dsn: str, tmp_path: Path
) -> None:
    core = _folder(tmp_path, "core", "0001_core.sql", "0100_core.sql")
    realm = _folder(tmp_path, "realm", "0002_realm.sql")
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn, [core, realm])
        (realm / "0003_realm.sql").write_text("CREATE TABLE probe_0003 (id int);")
        assert await migrate(conn, [core, realm]) == ["0003_realm.sql"]
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
