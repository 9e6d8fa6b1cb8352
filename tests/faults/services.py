"""Services a fault test owns, so it may kill, pause and restart them: a redis-server and a
private Postgres cluster (never the shared ones other tests use)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from kernel.migrate import migrate
from tests.conftest import free_port


class RedisServer:
    """A redis-server on a fixed loopback port: start, kill -9, pause, resume, start again."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make test installs it)")
        self.binary = binary
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="sb-faults-redis-")
        self.proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        self.proc = await asyncio.create_subprocess_exec(
            self.binary,
            *args,
            "no",
            "--dir",
            self.workdir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(20):
            while b"Ready to accept connections" not in (line := await self.proc.stdout.readline()):
                if not line:
                    raise RuntimeError("redis-server exited before it was ready")
        self._drain = asyncio.create_task(self._keep_reading())

    async def _keep_reading(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while await self.proc.stdout.readline():
            pass

    async def kill(self) -> None:
        """SIGKILL: no goodbye to any client."""
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()
        if self._drain is not None:
            await self._drain

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGCONT)
            await self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _pg_bindir() -> Path:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.parent.name)],
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("Postgres is not installed (make test installs it)")
    return Path(initdb).parent


class PrivatePostgres:
    """A cluster of its own in a temporary folder (owned by the `postgres` user when we run
    as root, as scripts/lib.sh's start_private_postgres does), on a free port; its
    `switchboard` database is migrated. `restart` stops and starts it like an operator."""

    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sb-faults-pg-"))
        self.data = self.dir / "data"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self.started = False

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/switchboard"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}")

    def _options(self) -> str:
        return (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c max_connections=100"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )

    def create(self) -> None:
        """initdb, start, and migrate the `switchboard` database (a few seconds)."""
        self._run(
            "initdb", "-N", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        self.start()

        async def build() -> None:
            admin = await asyncpg.connect(self.dsn.rsplit("/", 1)[0] + "/postgres")
            try:
                await admin.execute("CREATE DATABASE switchboard")
            finally:
                await admin.close()
            conn = await asyncpg.connect(self.dsn)
            try:
                await migrate(conn)
            finally:
                await conn.close()

        asyncio.run(build())

    def start(self) -> None:
        log = str(self.dir / "postgres.log")
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            log,
            "-w",
            "-t",
            "60",
            "start",
            "-o",
            self._options(),
        )
        self.started = True

    def stop(self, mode: str = "fast") -> None:
        """`fast`: every session is told and closed; `immediate`: like a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.started = False

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if self.started:
                self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
