"""The stack a chaos run owns and breaks: a private Postgres cluster, a redis-server, gateway
processes, the api and a worker, each a real process on its own loopback port with its state
under one work folder, plus the memory sampler that reads their RSS from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from kernel.migrate import SQL_DIR, migrate
from kernel.realms import enabled_realms

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
# The realm the traffic uses, and only it: the run does not depend on the other realms.
REALMS = "analyst"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _pg_bindir() -> Path:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.parent.name)],
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise SystemExit("Postgres is not installed (make run installs it)")
    return Path(initdb).parent


class Postgres:
    """A cluster of its own under `<workdir>/pg` (recreated on every run, owned by the
    `postgres` user when we are root, like scripts/lib.sh), with a migrated `switchboard`
    database. `stop` and `start` are what an operator's restart does."""

    def __init__(self, workdir: Path) -> None:
        self.bindir = _pg_bindir()
        self.port = free_port()
        self._as_root = os.geteuid() == 0
        self.dir = workdir / "pg"
        if self._as_root and not _postgres_reaches(workdir):
            # The folder is not reachable by the postgres user (e.g. a pytest tmp_path):
            # keep the cluster in a temporary folder it can reach.
            self.dir = Path(tempfile.mkdtemp(prefix="sb-chaos-pg-"))
        self.data = self.dir / "data"
        self.running = False

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/switchboard"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}")

    def create(self) -> None:
        if (self.data / "postmaster.pid").exists():  # left running by a run that was killed
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        if self._as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            "initdb", "-N", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        self.start()

    async def migrate(self) -> None:
        admin = await asyncpg.connect(self.dsn.rsplit("/", 1)[0] + "/postgres")
        try:
            await admin.execute("CREATE DATABASE switchboard")
        finally:
            await admin.close()
        conn = await asyncpg.connect(self.dsn)
        try:
            realms = enabled_realms({"SWITCHBOARD_REALMS": REALMS})
            await migrate(conn, [SQL_DIR, *realms.sql_dirs()])
        finally:
            await conn.close()

    def start(self) -> None:
        options = f"-c listen_addresses={HOST} -p {self.port} -k {self.dir} -c max_connections=200"
        log = str(self.dir / "postgres.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", log, "-w", "-t", "60", "start", "-o", options
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """`fast`: sessions are told and closed, as an operator's restart does."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.running = False

    def pids(self) -> list[int]:
        """The postmaster and every backend it started."""
        pidfile = self.data / "postmaster.pid"
        try:
            main = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        children = Path(f"/proc/{main}/task/{main}/children")
        try:
            return [main, *(int(p) for p in children.read_text().split())]
        except OSError:
            return []

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if self.running:
                self.stop("immediate")
        if self.dir.name.startswith("sb-chaos-pg-"):
            shutil.rmtree(self.dir, ignore_errors=True)


def _postgres_reaches(folder: Path) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    probe = ["runuser", "-u", "postgres", "--", "test", "-x", str(folder)]
    return subprocess.run(probe, capture_output=True).returncode == 0


class Service:
    """A child process started from an argv and environment, restartable on the same port.
    Its output goes to `<workdir>/<name>.log` (appended across restarts)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        log: Path,
        ready: Callable[[], bool] | str,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.log = log
        self.ready = ready
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.alive and self.proc is not None else None

    async def start(self, timeout: float = 60) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{tail}")
            if isinstance(self.ready, str):
                with self.log.open("rb") as f:
                    f.seek(offset)
                    if self.ready.encode() in f.read():
                        return
            elif await asyncio.to_thread(self.ready):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout:g} s (log: {self.log})")

    async def kill(self) -> None:
        """SIGKILL: no goodbye to anyone."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            await self.kill()


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as reply:  # noqa: S310 - loopback http
            return int(reply.status) == 200
    except OSError:
        return False


@dataclass
class Stack:
    """Postgres, Redis, `gateways` gateway processes, the api and a worker (`env` is added
    to every process's environment: the fault timings of the run)."""

    workdir: Path
    secret: str
    gateways: int = 2
    env: dict[str, str] = field(default_factory=dict)
    postgres: Postgres | None = None
    redis: Service | None = None
    gateway: list[Service] = field(default_factory=list)
    api: Service | None = None
    worker: Service | None = None

    @property
    def services(self) -> list[Service]:
        others = [self.redis, self.api, self.worker]
        return [*self.gateway, *(s for s in others if s is not None)]

    def gateway_url(self, index: int) -> str:
        return f"ws://{HOST}:{self.gateway[index].env['GATEWAY_PORT']}/ws"

    @property
    def api_url(self) -> str:
        assert self.api is not None
        return f"http://{HOST}:{self.api.env['API_PORT']}"

    async def start(self, say: Callable[[str], None]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for old in self.workdir.glob("*.log"):
            old.unlink()
        say(f"creating a private Postgres cluster in {self.workdir / 'pg'}")
        self.postgres = Postgres(self.workdir)
        await asyncio.to_thread(self.postgres.create)
        await self.postgres.migrate()
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (make run installs it)")
        redis_port = free_port()
        redis_dir = self.workdir / "redis"
        redis_dir.mkdir(exist_ok=True)
        argv = [binary, "--port", str(redis_port), "--bind", HOST, "--save", ""]
        self.redis = Service(
            "redis",
            [*argv, "--appendonly", "no", "--dir", str(redis_dir)],
            os.environ,
            self.workdir / "redis.log",
            "Ready to accept connections",
        )
        await self.redis.start()
        base = {
            **os.environ,
            "DATABASE_URL": self.postgres.dsn,
            "SWITCHBOARD_SECRET": self.secret,
            "REDIS_URL": f"redis://{HOST}:{redis_port}/0",
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "kv",
            "SWITCHBOARD_REALMS": REALMS,
            **self.env,
        }
        for name in ("SMTP_URL", "FCM_CREDENTIALS_FILE", "SERVER_API_KEY"):
            base.pop(name, None)
        for i in range(self.gateways):
            port = free_port()
            gw = Service(
                f"gateway-{i + 1}",
                [sys.executable, "-m", "gateway"],
                {**base, "GATEWAY_PORT": str(port), "GATEWAY_PROCESSES": "1"},
                self.workdir / f"gateway-{i + 1}.log",
                "event=listening",
            )
            self.gateway.append(gw)
        api_port = free_port()
        self.api = Service(
            "api",
            [sys.executable, "-m", "api"],
            {**base, "API_PORT": str(api_port)},
            self.workdir / "api.log",
            lambda: _http_ok(f"http://{HOST}:{api_port}/healthz"),
        )
        self.worker = Service(
            "worker",
            [sys.executable, "-m", "workers"],
            {**base, "WORKER_METRICS_PORT": str(free_port())},
            self.workdir / "worker.log",
            "event=started",
        )
        say(f"starting {self.gateways} gateways, api and worker")
        await asyncio.gather(*(s.start() for s in [*self.gateway, self.api, self.worker]))

    async def close(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.services), return_exceptions=True)
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.destroy)


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def pss_kib(pid: int) -> int | None:
    """Proportional set size: shared pages divided among their sharers, so the backends of
    one cluster add up to what the cluster really holds."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class MemorySample:
    at: float  # seconds since the run started
    kib: dict[str, int]  # process name -> RSS (postgres: the cluster's summed PSS)


def sample_memory(stack: Stack, at: float) -> MemorySample:
    kib: dict[str, int] = {}
    for service in stack.services:
        pid = service.pid
        if pid is not None and (value := rss_kib(pid)) is not None:
            kib[service.name] = value
    if stack.postgres is not None and stack.postgres.running:
        values = [v for p in stack.postgres.pids() if (v := pss_kib(p)) is not None]
        if values:
            kib["postgres"] = sum(values)
    return MemorySample(at, kib)
