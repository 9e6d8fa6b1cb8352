"""Shared fixtures: real Postgres (a throwaway database per test), real Redis, settings, tokens.

`make test` starts a private Postgres cluster and sets DATABASE_URL to it. A template
database with every migration applied is built once per session; each test that asks for
`dsn` or `db` gets its own database copied from it and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from kernel.db import connect
from kernel.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


# Listening ports for servers the tests start come from below the kernel's ephemeral range,
# one slice per xdist worker: a port found free there cannot then be taken as the local port
# of some outgoing connection (which is what a port from `bind(0)` can be, before the server
# binds it), and two workers of one session never pick the same one.
_PORT_FLOOR = 10_000
_PORT_SLICE = 2_000


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _port_candidates() -> Iterator[int]:
    slices = (_ephemeral_floor() - _PORT_FLOOR) // _PORT_SLICE
    if slices < 1:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    start = _PORT_FLOOR + (int(worker) if worker.isdigit() else 0) % slices * _PORT_SLICE
    # A random start inside the slice keeps concurrent sessions on one machine apart.
    offset = random.randrange(_PORT_SLICE)
    while True:
        for i in range(_PORT_SLICE):
            yield start + (offset + i) % _PORT_SLICE


_ports = _port_candidates()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A loopback TCP port nothing is bound to now, for a server a test is about to start."""
    for _ in range(_PORT_SLICE):
        with _ports_lock:
            port = next(_ports, None)
        if port is None:
            break
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # no room below the ephemeral range: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def base_dsn() -> str:
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        pytest.exit("DATABASE_URL is not set: run the suite with `make test`", returncode=2)
    return dsn


@pytest.fixture(scope="session")
def template_db(base_dsn: str) -> Iterator[str]:
    """Name of a database with all migrations applied, used as the template for each test."""
    name = f"sb_tpl_{os.getpid()}"

    async def build() -> None:
        admin = await asyncpg.connect(_with_database(base_dsn, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(_with_database(base_dsn, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    async def drop() -> None:
        admin = await asyncpg.connect(_with_database(base_dsn, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(build())
    yield name
    asyncio.run(drop())


async def _throwaway_database(
    base_dsn: str, prefix: str, template: str | None
) -> AsyncIterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    admin = await asyncpg.connect(_with_database(base_dsn, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await admin.close()
    yield _with_database(base_dsn, name)
    admin = await asyncpg.connect(_with_database(base_dsn, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def dsn(base_dsn: str, template_db: str) -> AsyncIterator[str]:
    """DSN of a fresh database (all migrations applied) that lives for this test only."""
    async for url in _throwaway_database(base_dsn, "sb_t", template_db):
        yield url


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """An asyncpg connection (JSON codecs set) to this test's own database."""
    conn = await connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def empty_dsn(base_dsn: str) -> AsyncIterator[str]:
    """DSN of a new, empty database (no migrations), dropped after the test."""
    async for url in _throwaway_database(base_dsn, "sb_e", None):
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free loopback port for the whole session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (make test installs it)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="sb-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # wait for the readiness line, not for a fixed time
        if b"Ready to accept connections" in line:
            break
    else:
        pytest.fail("redis-server exited before it was ready")
    threading.Thread(target=lambda: [None for _ in proc.stdout or ()], daemon=True).start()
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def secret() -> str:
    return os.environ.get("SWITCHBOARD_SECRET") or "test-secret-" + "x" * 40
