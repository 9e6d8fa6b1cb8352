"""Migration runner: applies the core's sql/*.sql and every enabled realm's realms/<name>/sql/*.sql
in file-name order (one order across all folders), once each, under an advisory lock.

Each file runs in its own transaction and is recorded with its SHA-256 in
gateway.schema_migrations. A file changed after it was applied stops the run (write a new
file instead). Safe when many processes start at once: they queue on the advisory lock.
Run by hand with `python -m kernel.migrate` (uses DATABASE_URL).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg

from kernel.realms import enabled_realms

ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = ROOT / "sql"
# An arbitrary constant shared by every runner: "switchboard migrate" folded into 63 bits.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"switchboard migrate").digest()[:8], "big") >> 1

_BOOKKEEPING = """
CREATE SCHEMA IF NOT EXISTS gateway;
CREATE TABLE IF NOT EXISTS gateway.schema_migrations (
    filename    text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL
);
"""


class MigrationError(Exception):
    """A migration cannot be applied, or an applied file was changed; the message says which."""


def default_sql_dirs() -> list[Path]:
    """The core's folder and the sql/ folder of every enabled realm (SWITCHBOARD_REALMS)."""
    return [SQL_DIR, *enabled_realms().sql_dirs()]


def _folders(sql_dirs: Path | list[Path] | None) -> list[Path]:
    if sql_dirs is None:
        return default_sql_dirs()
    return [sql_dirs] if isinstance(sql_dirs, Path) else sql_dirs


def migration_files(sql_dirs: Path | list[Path] | None = None) -> list[Path]:
    """The migration files of `sql_dirs` in the order they are applied: by file name across
    every folder, so a realm's files may depend on core files with lower numbers. A name is
    the file's identity in gateway.schema_migrations and must be unique across folders."""
    files: dict[str, Path] = {}
    for folder in _folders(sql_dirs):
        for path in folder.glob("*.sql"):
            if not path.is_file():
                continue
            if path.name in files:
                raise MigrationError(
                    f"migration name {path.name} is in both {files[path.name].parent}"
                    f" and {path.parent}; names must be unique"
                )
            files[path.name] = path
    return [files[name] for name in sorted(files)]


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shown(folder: Path) -> str:
    return str(folder.relative_to(ROOT)) if folder.is_relative_to(ROOT) else str(folder)


def _refuse_a_realm_older_than_the_core(
    files: list[Path], core: Path, applied: dict[str, str]
) -> None:
    """A realm folder with no file applied yet whose first file sorts before a core file that
    is applied was enabled after the database was made without it; its files were written to
    run before those core files (the analyst realm's 0002-0026 precede the core's 0100+), and
    running them now would fail half-way. Refused before anything is applied."""
    newest_core = max((p.name for p in files if p.parent == core and p.name in applied), default="")
    realms: dict[Path, list[Path]] = {}
    for path in files:
        if path.parent != core:
            realms.setdefault(path.parent, []).append(path)
    for folder, paths in realms.items():
        if paths[0].name < newest_core and not any(p.name in applied for p in paths):
            raise MigrationError(
                f"the realm of {_shown(folder)} was never migrated on this database, and"
                f" its first file {paths[0].name} sorts before the core's {newest_core},"
                " applied already: its files were written to run before the core's, so it can"
                " only be enabled on a database migrated with it from the start. Nothing was"
                " applied; migrate a new database with the realm in SWITCHBOARD_REALMS."
            )


async def migrate(
    conn: asyncpg.Connection,
    sql_dir: Path | list[Path] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[str]:
    """Apply every pending file; return the names applied. Raises MigrationError."""
    say = progress or (lambda _msg: None)
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(_BOOKKEEPING)
        applied = {
            r["filename"]: r["checksum"]
            for r in await conn.fetch("SELECT filename, checksum FROM gateway.schema_migrations")
        }
        folders = _folders(sql_dir)
        files = migration_files(folders)
        _refuse_a_realm_older_than_the_core(files, folders[0], applied)
        done: list[str] = []
        for path in files:
            digest = checksum(path)
            if path.name in applied:
                if applied[path.name] != digest:
                    raise MigrationError(
                        f"{path.name} was changed after it was applied "
                        f"(recorded {applied[path.name][:12]}, now {digest[:12]}); "
                        "add a new migration file instead of editing an applied one"
                    )
                continue
            started = time.perf_counter()
            try:
                async with conn.transaction():
                    await conn.execute(path.read_text(encoding="utf-8"))
                    duration_ms = int((time.perf_counter() - started) * 1000)
                    await conn.execute(
                        "INSERT INTO gateway.schema_migrations (filename, checksum, duration_ms)"
                        " VALUES ($1, $2, $3)",
                        path.name,
                        digest,
                        duration_ms,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"{path.name} failed: {exc}") from exc
            say(f"applied {path.name} ({duration_ms} ms)")
            done.append(path.name)
        if not done:
            say(f"schema up to date ({len(applied)} migrations)")
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def _main() -> int:
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        print("migrate: DATABASE_URL is not set", file=sys.stderr)
        return 2
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, progress=lambda m: print(f"[migrate] {m}", file=sys.stderr))
    except MigrationError as exc:
        print(f"[migrate] error: {exc}", file=sys.stderr)
        return 1
    finally:
        await conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(_main()))
