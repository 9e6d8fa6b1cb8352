"""The side-by-side race: Switchboard against python-socketio (on aiohttp) and the Node
socket.io server, in one run on one machine, driven by the same raw asyncio client.

Two workloads, each point run against every server in turn (a fresh server per point):

- fan-out: one room with N subscribers; `senders` sockets send M messages as fast as they
  can; deliveries per second = N*M / time until every subscriber has every message. Server
  memory per socket (RSS growth of the server process per subscriber, read before the
  burst) comes from the same points.
- latency: `rooms` rooms of `members` members; one member per room sends at a steady rate
  (open loop) so that the rooms together offer the load; p50/p99 send-to-receive latency
  over every delivery.

Switchboard persists every message in Postgres (a throwaway database per point) before
fan-out; the peers (loadtests/peers/) persist nothing. Results go to
loadtests/results/race.json, docs/race.md and docs/img/race-*.png.

    python -m loadtests.race                                   # the sizes of `make race`
    python -m loadtests.race --subscribers 100 500 --rates 250 --duration 5
    python -m loadtests.race --render                          # race.json -> docs/race.md
    make race                                                  # installs the peers first
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import msgspec

from kernel.tokens import sign_access_token
from loadtests.bench_gateway import (
    HOST,
    Member,
    Stack,
    _free_port,
    percentile,
    rss_kib,
    seed_rooms,
    seed_users,
)
from loadtests.peers.sioclient import SioMember

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "loadtests" / "results" / "race.json"
DOC = ROOT / "docs" / "race.md"
PEERS = ROOT / "loadtests" / "peers"
NODE_DIR = PEERS / "node"
CONNECT_CONCURRENCY = 200
CONNECT_TIMEOUT_S = 30.0
START_TIMEOUT_S = 60.0
SETTLE_S = 0.5  # before each RSS reading, so buffers of the last handshakes are released
DRAIN_TIMEOUT_S = 30.0  # latency: how long stragglers may take after the last send
# The order of every table and plot; keys as in race.json.
ORDER = ["switchboard", "switchboard-live", "python-socketio", "node-socketio"]
LABELS = {
    "switchboard": "Switchboard",
    "switchboard-live": "Switchboard live",
    "python-socketio": "python-socketio",
    "node-socketio": "Node socket.io",
}
COLORS = {
    "switchboard": "C0",
    "switchboard-live": "C3",
    "python-socketio": "C1",
    "node-socketio": "C2",
}
TARGET_FANOUT_RATIO = 3.0


def say(message: str) -> None:
    print(f"[race] {message}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- clients: the same raw socket for all three -----------------------------------------------


class Client(Protocol):
    received: int
    latencies: list[float]
    record_latency: bool
    expected: int
    all_in: asyncio.Future[None] | None

    def on_count(self, received: int) -> None: ...
    async def join(self, room: str) -> None: ...
    def send(self, room: str, text: str) -> None: ...
    def count_only(self) -> None: ...
    def close(self) -> None: ...


class SbMember(Member):
    """A Switchboard socket (`bench_gateway.Member`) with the race's client operations."""

    marker = b'{"op":"msg"'

    def __init__(self) -> None:
        super().__init__()
        self._ref = 1

    async def join(self, room: str) -> None:
        await self.call({"op": "join", "channel": room, "ref": 0})

    def send(self, room: str, text: str) -> None:
        assert self.sock is not None
        self._ref += 1
        self.sock.send_text(
            msgspec.json.encode({"op": "send", "channel": room, "text": text, "ref": self._ref})
        )

    def count_only(self) -> None:
        assert self.sock is not None
        self.sock.count_only(self.marker, self.on_count)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


# --- servers ----------------------------------------------------------------------------------


class Server(ABC):
    key: str
    pid: int
    postmaster: int | None = None  # the Postgres cluster the server writes to, if any

    @abstractmethod
    async def start(self, sockets: int, rooms: int) -> list[str]:
        """Start a fresh server able to take `sockets` sockets; return `rooms` room names."""

    @abstractmethod
    async def client(self) -> Client:
        """Open one more socket, ready to join rooms."""

    @abstractmethod
    async def stop(self) -> None: ...


class Switchboard(Server):
    """`python -m gateway` on a throwaway database with seeded users and channels, exactly
    as `bench_gateway` starts it (one process, in-process bus)."""

    key = "switchboard"

    def __init__(self, base_dsn: str) -> None:
        self.base_dsn = base_dsn
        self.stack: Stack | None = None
        self.port = 0
        self._users: list[str] = []

    async def start(self, sockets: int, rooms: int) -> list[str]:
        self.stack = Stack(self.base_dsn)
        conn = await self.stack.database()
        try:
            self.postmaster = parent_pid(await conn.fetchval("SELECT pg_backend_pid()"))
            self._users = await seed_users(conn, sockets)
            names = await seed_rooms(conn, self._users, rooms)
        finally:
            await conn.close()
        self.port = await asyncio.wait_for(self.stack.gateway(), START_TIMEOUT_S)
        self.pid = self.stack.gateways[0][0].pid
        return names

    async def client(self) -> Client:
        assert self.stack is not None
        member = SbMember()
        user = self._users.pop()
        token = sign_access_token(self.stack.secret, user, "analyst", 3600)
        await member.connect(self.port, token)
        return member

    async def stop(self) -> None:
        if self.stack is not None:
            await self.stack.close()
            self.stack = None


class SwitchboardLive(Switchboard):
    """The same gateway and rooms, spoken to as `community.live:` channels: the same join
    gates, rate rules and fan-out, but nothing is stored (docs/adr/0004-live-channels.md),
    which is what the peers do."""

    key = "switchboard-live"

    async def start(self, sockets: int, rooms: int) -> list[str]:
        names = await super().start(sockets, rooms)
        return [name.replace("community:", "community.live:", 1) for name in names]


class Peer(Server):
    """A socket.io server in a subprocess of its own, listening on a free loopback port."""

    def __init__(self, key: str, argv: list[str], cwd: Path) -> None:
        self.key = key
        self.argv = argv
        self.cwd = cwd
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None
        self.output: deque[bytes] = deque(maxlen=20)
        self._drain: asyncio.Task[None] | None = None

    async def start(self, sockets: int, rooms: int) -> list[str]:
        self.port = _free_port()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            str(self.port),
            cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self.pid = self.proc.pid
        await asyncio.wait_for(self._until_listening(), START_TIMEOUT_S)
        self._drain = asyncio.get_running_loop().create_task(self._keep_output())
        return [f"room-{i}" for i in range(rooms)]

    async def _until_listening(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                tail = b"".join(self.output).decode(errors="replace")
                raise RuntimeError(f"{self.key} exited before listening:\n{tail}")
            self.output.append(line)
            if line.startswith(b"listening"):
                return

    async def _keep_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.output.append(line)

    async def client(self) -> Client:
        member = SioMember()
        await member.connect(HOST, self.port)
        return member

    async def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        if self._drain is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._drain, 5)
        self.proc = None


def python_socketio() -> Peer:
    if importlib.util.find_spec("socketio") is None:
        raise SystemExit("python-socketio is not installed (`make race` installs it into .venv)")
    return Peer("python-socketio", [sys.executable, "-m", "loadtests.peers.pysio_server"], ROOT)


def node_socketio() -> Peer:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not installed")
    if not (NODE_DIR / "node_modules" / "socket.io").is_dir():
        raise SystemExit(f"socket.io is not installed: `npm ci` in {NODE_DIR} (`make race` does)")
    return Peer("node-socketio", [node, "server.js"], NODE_DIR)


# --- workloads --------------------------------------------------------------------------------


async def connect_many(server: Server, count: int) -> list[Client]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one() -> Client:
        async with gate:
            return await asyncio.wait_for(server.client(), CONNECT_TIMEOUT_S)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def join_many(clients: Sequence[Client], rooms: Sequence[str]) -> None:
    """Join clients[i] to rooms[i] (acknowledged), at most CONNECT_CONCURRENCY at a time."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(client: Client, room: str) -> None:
        async with gate:
            await asyncio.wait_for(client.join(room), CONNECT_TIMEOUT_S)

    await asyncio.gather(*(one(c, r) for c, r in zip(clients, rooms, strict=True)))


async def warm_up(
    senders: Sequence[tuple[Client, str]], members: Sequence[Sequence[Client]]
) -> None:
    """Each sender sends one message to its room (members[i] are the clients of room i);
    wait until every member has them, then forget them: first-touch costs (caches, database
    statements, the JIT) stay out of every server's figures."""
    loop = asyncio.get_running_loop()
    for (sender, room), room_members in zip(senders, members, strict=True):
        sender.send(room, f"{time.monotonic()} warm-up")
        for m in room_members:
            m.expected += 1
    everyone = {id(m): m for room_members in members for m in room_members}.values()
    for m in everyone:
        m.all_in = loop.create_future()
        m.on_count(m.received)
    waiting = [m.all_in for m in everyone if m.all_in is not None]
    _, late = await asyncio.wait(waiting, timeout=DRAIN_TIMEOUT_S)
    if late:
        raise RuntimeError(f"{len(late)} sockets did not get the warm-up messages")
    for m in everyone:
        m.received, m.expected, m.all_in = 0, 0, None
        m.latencies.clear()


def harness_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used so far (every core, /proc/stat)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def cluster_cpu_seconds(postmaster: int | None) -> float:
    """CPU time of a Postgres cluster: its postmaster and every process it started."""
    if postmaster is None:
        return 0.0
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(stat.parent.name)
            if pid == postmaster or parent_pid(pid) == postmaster:
                total += cpu_seconds(pid)
    return total


class CpuMeter:
    """CPU time used while it runs: by the server process, by its Postgres cluster (for
    Switchboard), by this load generator, and by everything else on the machine."""

    def __init__(self, pid: int, postmaster: int | None) -> None:
        self.pid = pid
        self.postmaster = postmaster
        self._started = time.monotonic()
        self._server = cpu_seconds(pid)
        self._database = cluster_cpu_seconds(postmaster)
        self._harness = harness_cpu_seconds()
        self._machine = machine_busy_seconds()

    def read(self) -> dict[str, float]:
        window = time.monotonic() - self._started
        server = cpu_seconds(self.pid) - self._server
        database = max(0.0, cluster_cpu_seconds(self.postmaster) - self._database)
        harness = harness_cpu_seconds() - self._harness
        other = max(0.0, machine_busy_seconds() - self._machine - server - database - harness)
        return {
            "server_cpu_s": round(server, 2),
            "postgres_cpu_s": round(database, 2),
            "harness_cpu_s": round(harness, 2),
            "other_cpu_s": round(other, 2),
            "other_cores": round(other / window, 2),
        }


def cpu_note(cpu: dict[str, float]) -> str:
    return (
        f"CPU s: server {cpu['server_cpu_s']:.2f}, Postgres {cpu['postgres_cpu_s']:.2f},"
        f" load generator {cpu['harness_cpu_s']:.2f}, other {cpu['other_cpu_s']:.2f}"
    )


class Quiet:
    """Before each point, wait (bounded) until other processes leave the CPUs alone."""

    def __init__(self, max_busy_cores: float, budget_s: float) -> None:
        self.max_busy_cores = max_busy_cores
        self.budget_s = budget_s

    async def background_cores(self, seconds: float = 1.0) -> float:
        before, started = machine_busy_seconds(), time.monotonic()
        await asyncio.sleep(seconds)
        return (machine_busy_seconds() - before) / (time.monotonic() - started)

    async def wait(self) -> float:
        """Return the cores other processes used in the last second before the point."""
        busy = await self.background_cores()
        per_point_until = time.monotonic() + min(30.0, self.budget_s)
        while busy > self.max_busy_cores and time.monotonic() < per_point_until:
            say(f"  the machine is busy ({busy:.2f} cores used by other processes): waiting")
            started = time.monotonic()
            await asyncio.sleep(4)
            busy = await self.background_cores()
            self.budget_s -= time.monotonic() - started
        if busy > self.max_busy_cores:
            say(f"  running anyway ({busy:.2f} cores busy); the point is flagged in the results")
        return round(busy, 2)


def close_all(clients: Sequence[Client]) -> None:
    for client in clients:
        client.close()


async def fanout_point(
    server: Server, subscribers: int, messages: int, senders: int, timeout: float
) -> dict[str, Any]:
    (room,) = await server.start(subscribers + senders, 1)
    clients: list[Client] = []
    try:
        sending = await connect_many(server, senders)
        clients += sending
        await join_many(sending, [room] * senders)
        await asyncio.sleep(SETTLE_S)
        rss_before = rss_kib(server.pid)
        started = time.monotonic()
        subs = await connect_many(server, subscribers)
        clients += subs
        await join_many(subs, [room] * subscribers)
        setup_s = time.monotonic() - started
        await asyncio.sleep(SETTLE_S)
        rss_after = rss_kib(server.pid)
        await warm_up([(s, room) for s in sending], [subs] * senders)
        loop = asyncio.get_running_loop()
        for m in subs:
            m.expected, m.all_in = messages, loop.create_future()
            m.count_only()
        payload = "x" * 100
        meter = CpuMeter(server.pid, server.postmaster)
        started = time.monotonic()
        for i in range(messages):
            sending[i % senders].send(room, f"{i} {payload}")
        waiting = [m.all_in for m in subs if m.all_in is not None]
        await asyncio.wait(waiting, timeout=timeout)
        elapsed = time.monotonic() - started
        cpu = meter.read()
        delivered = sum(m.received for m in subs)
    finally:
        close_all(clients)
        await server.stop()
    expected = subscribers * messages
    rate = delivered / elapsed
    per_socket = (rss_after - rss_before) / subscribers
    note = "" if delivered == expected else f" INCOMPLETE after {timeout:g} s"
    say(
        f"  {LABELS[server.key]}: {delivered:,}/{expected:,} in {elapsed:.2f} s ="
        f" {rate:,.0f}/s{note}; {per_socket:.1f} KiB/socket; {cpu_note(cpu)}"
    )
    return {
        "server": server.key,
        "subscribers": subscribers,
        "messages": messages,
        "senders": senders,
        "seconds": round(elapsed, 3),
        "delivered": delivered,
        "expected": expected,
        "complete": delivered == expected,
        "deliveries_per_s": round(rate),
        **cpu,
        "connect_join_s": round(setup_s, 2),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "kib_per_socket": round(per_socket, 2),
    }


async def send_steadily(
    sender: Client, room: str, offset: float, interval: float, duration: float
) -> int:
    """Send to `room` every `interval` seconds for `duration` (open loop); return the count."""
    sent = 0
    next_at = time.monotonic() + offset
    end = time.monotonic() + duration
    while next_at < end:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        sender.send(room, f"{time.monotonic()} hello")
        sent += 1
        next_at += interval
    return sent


async def latency_point(
    server: Server, rate: int, rooms: int, members_per_room: int, duration: float
) -> dict[str, Any]:
    names = await server.start(rooms * members_per_room, rooms)
    clients: list[Client] = []
    try:
        clients = await connect_many(server, rooms * members_per_room)
        await join_many(clients, [names[i // members_per_room] for i in range(len(clients))])
        for m in clients:
            m.record_latency = True
        senders = clients[::members_per_room]
        per_room = [
            clients[i : i + members_per_room] for i in range(0, len(clients), members_per_room)
        ]
        await warm_up(list(zip(senders, names, strict=True)), per_room)
        interval = rooms / rate
        meter = CpuMeter(server.pid, server.postmaster)
        counts = await asyncio.gather(
            *(
                send_steadily(s, names[i], i * interval / len(senders), interval, duration)
                for i, s in enumerate(senders)
            )
        )
        loop = asyncio.get_running_loop()
        for i, m in enumerate(clients):
            m.expected, m.all_in = counts[i // members_per_room], loop.create_future()
            m.on_count(m.received)
        waiting = [m.all_in for m in clients if m.all_in is not None]
        await asyncio.wait(waiting, timeout=DRAIN_TIMEOUT_S)  # a shortfall is reported
        latencies = [x for m in clients for x in m.latencies]
        cpu = meter.read()
    finally:
        close_all(clients)
        await server.stop()
    sent = sum(counts)
    expected = sent * members_per_room
    delivered = len(latencies)
    if not latencies:
        latencies = [float("nan")]
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    lost = expected - delivered
    say(
        f"  {LABELS[server.key]}: {sent / duration:.0f} sent/s, {delivered:,}/{expected:,}"
        f" delivered: p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        + (f" ({lost:,} LOST)" if lost else "")
        + f"; {cpu_note(cpu)}"
    )
    return {
        "server": server.key,
        "offered_per_s": rate,
        "sent_per_s": round(sent / duration, 1),
        "delivered": delivered,
        "expected": expected,
        "p50_ms": round(p50, 2),
        "p90_ms": round(percentile(latencies, 90) * 1000, 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(max(latencies) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        **cpu,
    }


# --- machine and versions ---------------------------------------------------------------------


def _run(argv: list[str], cwd: Path = ROOT) -> str:
    try:
        return subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem / 1024 / 1024, 1),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def _dist(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _node_package(name: str) -> str:
    path = NODE_DIR / "node_modules" / name / "package.json"
    return str(json.loads(path.read_text())["version"]) if path.exists() else "not installed"


async def versions(base_dsn: str | None) -> dict[str, str]:
    postgres = "not used"
    if base_dsn:
        conn = await asyncpg.connect(base_dsn)
        try:
            postgres = str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()
    return {
        "switchboard": _run(["git", "describe", "--always", "--dirty"]),
        "python": platform.python_version(),
        "uvloop": _dist("uvloop"),
        "websockets": _dist("websockets"),
        "postgres": postgres,
        "python-socketio": _dist("python-socketio"),
        "python-engineio": _dist("python-engineio"),
        "aiohttp": _dist("aiohttp"),
        "node": _run(["node", "--version"]),
        "socket.io": _node_package("socket.io"),
        "engine.io": _node_package("engine.io"),
        "ws": _node_package("ws"),
    }


# --- the run ----------------------------------------------------------------------------------


async def undisturbed(
    quiet: Quiet, retries: int, run: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """Run a point on a quiet machine; if other processes used more than the allowed cores
    before or during it, run it again (at most `retries` times) and keep the least
    disturbed attempt."""
    best: dict[str, Any] | None = None
    for attempt in range(1 + retries):
        background = await quiet.wait()
        point = {**await run(), "background_cores": background}
        point["attempts"] = attempt + 1
        disturbance = max(background, point["other_cores"])
        if best is None or disturbance < max(best["background_cores"], best["other_cores"]):
            best = point
        if disturbance <= quiet.max_busy_cores:
            break
        if attempt < retries:
            say(
                f"  disturbed: other processes used {point['other_cores']:.2f} cores during"
                " the point; running it again"
            )
    assert best is not None
    return best


async def race(args: argparse.Namespace, base_dsn: str | None) -> dict[str, Any]:
    makers = {
        "switchboard": lambda: Switchboard(base_dsn or ""),
        "switchboard-live": lambda: SwitchboardLive(base_dsn or ""),
        "python-socketio": python_socketio,
        "node-socketio": node_socketio,
    }
    servers = [makers[key]() for key in ORDER if key in args.servers]
    quiet = Quiet(args.max_background, args.quiet_budget)
    started = time.monotonic()
    fanout: list[dict[str, Any]] = []
    for count in args.subscribers:
        say(f"fan-out: {count} subscribers, {args.senders} senders, {args.messages} messages")
        for server in servers:
            fanout.append(
                await undisturbed(
                    quiet,
                    args.retries,
                    functools.partial(
                        fanout_point,
                        server,
                        count,
                        args.messages,
                        args.senders,
                        args.fanout_timeout,
                    ),
                )
            )
    latency: list[dict[str, Any]] = []
    for rate in args.rates:
        say(
            f"latency: {rate} msg/s over {args.rooms} rooms x {args.members} members"
            f" for {args.duration:g} s"
        )
        for server in servers:
            latency.append(
                await undisturbed(
                    quiet,
                    args.retries,
                    functools.partial(
                        latency_point, server, rate, args.rooms, args.members, args.duration
                    ),
                )
            )
    say(f"race done in {time.monotonic() - started:.0f} s")
    return {
        "benchmark": "race",
        "command": shlex.join(["python", "-m", "loadtests.race", *sys.argv[1:]]),
        "machine": machine(),
        "versions": await versions(base_dsn),
        "runtime_s": round(time.monotonic() - started, 1),
        "servers": [s.key for s in servers],
        "max_background_cores": args.max_background,
        "fanout": {
            "messages": args.messages,
            "senders": args.senders,
            "timeout_s": args.fanout_timeout,
            "points": fanout,
        },
        "latency": {
            "rooms": args.rooms,
            "members_per_room": args.members,
            "duration_s": args.duration,
            "points": latency,
        },
    }


# --- docs/race.md and the plots ---------------------------------------------------------------


def _by(points: list[dict[str, Any]], key: str) -> dict[int, dict[str, dict[str, Any]]]:
    """points grouped as {x: {server: point}}, x in first-seen order."""
    grouped: dict[int, dict[str, dict[str, Any]]] = {}
    for p in points:
        grouped.setdefault(p[key], {})[p["server"]] = p
    return grouped


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] + ["---:"] * (len(header) - 1), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def _ratio(ours: float, theirs: float) -> str:
    if not theirs or theirs != theirs or ours != ours:  # zero or NaN
        return "—"
    return f"{ours / theirs:.2f}x" if ours / theirs < 10 else f"{ours / theirs:.1f}x"


def _ours(servers: list[str]) -> list[str]:
    return [s for s in servers if s.startswith("switchboard")]


def _peers(servers: list[str]) -> list[str]:
    return [s for s in servers if not s.startswith("switchboard")]


def _pairs(servers: list[str]) -> list[tuple[str, str]]:
    """(ours, peer) for every ratio column: each Switchboard variant against each peer."""
    return [(o, p) for o in _ours(servers) for p in _peers(servers)]


def _fanout_cell(p: dict[str, Any] | None) -> str:
    if p is None:
        return "—"
    return f"{p['deliveries_per_s']:,}" + ("" if p["complete"] else " (incomplete)")


def _latency_cell(p: dict[str, Any] | None, q: str) -> str:
    if p is None:
        return "—"
    lost = "" if p["delivered"] == p["expected"] else "*"
    return f"{p[f'{q}_ms']:.1f}{lost}"


CPU_HEADER = ["CPU s: server", "Postgres", "load generator", "other", "Background cores"]
CPU_NOTE = (
    "CPU seconds of the server process; of its Postgres cluster (Switchboard only: the"
    " postmaster and every backend); of this load generator (one process: near one CPU second"
    " per second it is saturated, and the figure is then a floor for the server, not its"
    " ceiling); and of every other process of the machine. Background cores: what other"
    " processes used in the second before the point. The race waits for a quiet machine"
    " (within a budget) and runs a point again when other processes used more than"
    " {limit:g} cores before or during it, keeping the least disturbed attempt."
)


def _cpu_cells(p: dict[str, Any]) -> list[str]:
    keys = ["server_cpu_s", "postgres_cpu_s", "harness_cpu_s", "other_cpu_s", "background_cores"]
    return [f"{p[k]:.2f}" if k in p else "—" for k in keys]


def _noisy(data: dict[str, Any]) -> list[dict[str, Any]]:
    limit = data.get("max_background_cores", 0.3)
    points = data["fanout"]["points"] + data["latency"]["points"]
    return [p for p in points if max(p.get("background_cores", 0), p.get("other_cores", 0)) > limit]


def targets_section(data: dict[str, Any]) -> str:
    servers = data["servers"]
    if not _ours(servers):
        return "Switchboard was not in this run: no targets to check."
    rows = []
    fan = _by(data["fanout"]["points"], "subscribers")
    lat = _by(data["latency"]["points"], "offered_per_s")
    for ours in _ours(servers):
        if "python-socketio" in servers and fan:
            ratios = {
                n: pts[ours]["deliveries_per_s"]
                / max(1, pts["python-socketio"]["deliveries_per_s"])
                for n, pts in fan.items()
            }
            measured = ", ".join(f"{n:,}: {r:.1f}x" for n, r in ratios.items())
            met = all(r >= TARGET_FANOUT_RATIO for r in ratios.values())
            rows.append(
                [
                    LABELS[ours],
                    f"Fan-out deliveries/s ≥ {TARGET_FANOUT_RATIO:g}x python-socketio at every"
                    " subscriber count",
                    measured,
                    "yes" if met else "no",
                ]
            )
        for peer in _peers(servers) if lat else []:
            cells, met = [], True
            for rate, pts in lat.items():
                mine, theirs = pts[ours], pts[peer]
                lower = mine["p99_ms"] < theirs["p99_ms"] and mine["delivered"] == mine["expected"]
                met = met and lower
                cells.append(f"{rate:,}/s: {mine['p99_ms']:.1f} vs {theirs['p99_ms']:.1f} ms")
            rows.append(
                [
                    LABELS[ours],
                    f"p99 latency lower than {LABELS[peer]} at every offered rate",
                    "; ".join(cells),
                    "yes" if met else "no",
                ]
            )
    lines = [["Server", "Target", "Measured (ours vs peer)", "Met"], ["---"] * 4, *rows]
    return "\n".join("| " + " | ".join(r) + " |" for r in lines)


def fanout_section(data: dict[str, Any], plots: bool) -> str:
    servers, fan = data["servers"], data["fanout"]
    grouped = _by(fan["points"], "subscribers")
    pairs = _pairs(servers)
    header = ["Subscribers"] + [f"{LABELS[s]} deliveries/s" for s in servers]
    header += [f"{LABELS[o]} ÷ {LABELS[p]}" for o, p in pairs]
    rows = []
    for n, pts in grouped.items():
        row = [f"{n:,}"] + [_fanout_cell(pts.get(s)) for s in servers]
        for o, p in pairs:
            row.append(_ratio(pts[o]["deliveries_per_s"], pts[p]["deliveries_per_s"]))
        rows.append(row)
    detail_header = ["Subscribers", "Server", "Connect + join s", "Delivered", "Seconds"]
    detail_header += CPU_HEADER
    detail = [
        [
            f"{n:,}",
            LABELS[s],
            f"{pts[s]['connect_join_s']:.2f}",
            f"{pts[s]['delivered']:,} of {pts[s]['expected']:,}",
            f"{pts[s]['seconds']:.3f}",
            *_cpu_cells(pts[s]),
        ]
        for n, pts in grouped.items()
        for s in servers
        if s in pts
    ]
    out = [
        f"One room; {fan['senders']} sender sockets (members of the room) send"
        f" {fan['messages']:,} messages of about 100 characters as fast as they can."
        " Deliveries per second = subscribers x messages, divided by the time from the first"
        " send until every subscriber has every message (each server is given"
        f" {fan['timeout_s']:g} s; a point that ran out is marked incomplete and its rate is"
        " what arrived in that time). Higher is better; the ratio columns are ours divided by"
        " the peer's.",
        "",
        _table(header, rows),
        "",
    ]
    if plots:
        out += ["![Fan-out deliveries per second, by server](img/race-fanout.png)", ""]
    out += [
        "Per server and point: how long connecting and joining the subscribers took, what"
        " arrived and how long it took, and the CPU time used during the burst. "
        + CPU_NOTE.format(limit=data.get("max_background_cores", 0.3)),
        "",
        _table(detail_header, detail),
    ]
    return "\n".join(out)


def latency_section(data: dict[str, Any], plots: bool) -> str:
    servers, lat = data["servers"], data["latency"]
    grouped = _by(lat["points"], "offered_per_s")
    pairs = _pairs(servers)
    header = ["Offered msg/s"]
    for s in servers:
        header += [f"{LABELS[s]} p50 ms", f"{LABELS[s]} p99 ms"]
    header += [f"p99 {LABELS[o]} ÷ {LABELS[p]}" for o, p in pairs]
    rows, any_lost = [], False
    for rate, pts in grouped.items():
        row = [f"{rate:,}"]
        for s in servers:
            row += [_latency_cell(pts.get(s), "p50"), _latency_cell(pts.get(s), "p99")]
            any_lost = any_lost or (s in pts and pts[s]["delivered"] != pts[s]["expected"])
        for o, p in pairs:
            row.append(_ratio(pts[o]["p99_ms"], pts[p]["p99_ms"]))
        rows.append(row)
    detail_header = ["Offered msg/s", "Server", "Sent msg/s", "Delivered", "p90 ms", "max ms"]
    detail_header += ["mean ms", *CPU_HEADER]
    detail = [
        [
            f"{rate:,}",
            LABELS[s],
            f"{pts[s]['sent_per_s']:,}",
            f"{pts[s]['delivered']:,} of {pts[s]['expected']:,}",
            f"{pts[s]['p90_ms']:.1f}",
            f"{pts[s]['max_ms']:.1f}",
            f"{pts[s]['mean_ms']:.1f}",
            *_cpu_cells(pts[s]),
        ]
        for rate, pts in grouped.items()
        for s in servers
        if s in pts
    ]
    out = [
        f"{lat['rooms']} rooms of {lat['members_per_room']} members; one member per room sends"
        " at a steady rate (open loop) so that the rooms together offer the load, for"
        f" {lat['duration_s']:g} s per point and server. Latency runs from the moment the"
        " harness writes the send frame until a member reads the message, over every delivery"
        " (the sender's own copy included). Lower is better; the ratio columns are"
        " our p99 divided by the peer's (below 1: ours is lower).",
        "",
        _table(header, rows),
    ]
    if any_lost:
        out += ["", "\\* not every message arrived within 30 s of the last send (see below)."]
    if plots:
        out += ["", "![p50 and p99 latency against offered load](img/race-latency.png)"]
    out += [
        "",
        "Per server and point: what was sent and arrived, more percentiles, and the CPU time"
        " used while sending and draining. "
        + CPU_NOTE.format(limit=data.get("max_background_cores", 0.3)),
        "",
        _table(detail_header, detail),
    ]
    return "\n".join(out)


def memory_section(data: dict[str, Any]) -> str:
    servers = data["servers"]
    grouped = _by(data["fanout"]["points"], "subscribers")
    pairs = _pairs(servers)
    header = ["Subscribers"] + [f"{LABELS[s]} KiB/socket" for s in servers]
    header += [f"{LABELS[o]} ÷ {LABELS[p]}" for o, p in pairs]
    rows = []
    for n, pts in grouped.items():
        row = [f"{n:,}"] + [f"{pts[s]['kib_per_socket']:.1f}" if s in pts else "—" for s in servers]
        row += [_ratio(pts[o]["kib_per_socket"], pts[p]["kib_per_socket"]) for o, p in pairs]
        rows.append(row)
    return (
        "RSS (VmRSS) growth of the server process per subscriber socket, from the fan-out"
        " points: read once the senders are connected and joined, and again once every"
        " subscriber is connected and joined to the room, before the burst. Lower is better."
        " A Switchboard socket is authenticated (a signed token checked against the database)"
        " and has a per-socket rate limiter and session state; a socket.io socket has its"
        " Engine.IO and Socket.IO session. Small counts are noisy: allocators and the V8 heap"
        " grow in steps.\n\n" + _table(header, rows)
    )


def noisy_warning(data: dict[str, Any]) -> str:
    points = _noisy(data)
    worst = max(max(p.get("background_cores", 0), p.get("other_cores", 0)) for p in points)
    return (
        f"**Caution: the machine was not quiet.** At {len(points)} point(s), even after"
        " waiting and running again, other processes used more than"
        f" {data.get('max_background_cores', 0.3):g} cores before or during the point (up to"
        f" {worst:.2f} of {data['machine']['cpus']}); see the background cores and other CPU"
        " columns below. Those figures are disturbed; run again on a quiet machine."
    )


def _figure(width: float = 7.5) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, 4.6), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def _label_points(ax: Any, xs: list[int], series: dict[str, list[float]], fmt: Any) -> None:
    """Write each point's value next to it: above the highest series at that x, below the
    lowest, to the right of any in between, so that close points do not overprint."""
    for i, x in enumerate(xs):
        ranked = sorted(series, key=lambda s: series[s][i])
        for rank, s in enumerate(ranked):
            y = series[s][i]
            if y != y:  # NaN: nothing to label
                continue
            if rank == len(ranked) - 1:
                offset, ha, va = (0, 7), "center", "bottom"
            elif rank == 0:
                offset, ha, va = (0, -8), "center", "top"
            else:
                offset, ha, va = (8, 0), "left", "center"
            ax.annotate(
                fmt(y),
                (x, y),
                textcoords="offset points",
                xytext=offset,
                ha=ha,
                va=va,
                fontsize=8,
                color=COLORS[s],
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
            )


def _legend_below(fig: Any, ax: Any, note: str) -> None:
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.045),
        ncol=len(labels),
        frameon=False,
    )
    fig.text(0.5, 0.015, note, ha="center", va="bottom", fontsize=8, color="0.35")
    fig.tight_layout(rect=(0, 0.11, 1, 1))


PERSISTENCE_NOTE = (
    "Switchboard persists every message in Postgres before fan-out; Switchboard live and the"
    " peers store nothing."
)


def plot_fanout(data: dict[str, Any], path: Path) -> None:
    from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter

    fig = _figure()
    ax = fig.add_subplot()
    grouped = _by(data["fanout"]["points"], "subscribers")
    xs = list(grouped)
    series = {s: [grouped[x][s]["deliveries_per_s"] for x in xs] for s in data["servers"]}
    for s, ys in series.items():
        ax.plot(xs, ys, marker="o", color=COLORS[s], label=LABELS[s])
    _label_points(ax, xs, series, EngFormatter(places=0))
    fan = data["fanout"]
    ax.set_title(
        f"Fan-out in one room: {fan['messages']:,} messages from {fan['senders']} senders",
        fontsize=11,
    )
    ax.set_xlabel("subscribers in the room")
    ax.set_ylabel("deliveries per second (log scale)")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(EngFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(xs)
    ax.set_xlim(min(xs) - 0.08 * (max(xs) - min(xs) or 1), max(xs) * 1.08)
    ax.margins(y=0.2)
    ax.grid(alpha=0.3, which="both")
    _legend_below(fig, ax, PERSISTENCE_NOTE)
    fig.savefig(path)


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:,.0f}"


def plot_latency(data: dict[str, Any], path: Path) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig = _figure(width=10)
    grouped = _by(data["latency"]["points"], "offered_per_s")
    xs = list(grouped)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, q in zip(axes, ("p50", "p99"), strict=True):
        series = {s: [grouped[x][s][f"{q}_ms"] for x in xs] for s in data["servers"]}
        for s, ys in series.items():
            ax.plot(xs, ys, marker="o", color=COLORS[s], label=LABELS[s])
        _label_points(ax, xs, series, _ms)
        ax.set_title(f"{q} send-to-receive latency", fontsize=11)
        ax.set_xlabel("offered load (messages per second, all rooms)")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(xs)
        ax.set_xlim(min(xs) - 0.1 * (max(xs) - min(xs) or 1), max(xs) * 1.1)
        ax.margins(y=0.2)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("milliseconds (log scale)")
    lat = data["latency"]
    fig.suptitle(
        f"{lat['rooms']} rooms x {lat['members_per_room']} members, one sender per room",
        fontsize=10,
    )
    _legend_below(fig, axes[0], PERSISTENCE_NOTE)
    fig.savefig(path)


def render(data: dict[str, Any], out: Path) -> str:
    plots = importlib.util.find_spec("matplotlib") is not None
    img = out.parent / "img"
    if plots:
        img.mkdir(parents=True, exist_ok=True)
        if data["fanout"]["points"]:
            plot_fanout(data, img / "race-fanout.png")
        if data["latency"]["points"]:
            plot_latency(data, img / "race-latency.png")
    m, v = data["machine"], data["versions"]
    version_rows = [[k, f"`{val}`"] for k, val in v.items()]
    parts = [
        "# The race: Switchboard against python-socketio and Node socket.io",
        "",
        "<!-- Generated by `python -m loadtests.race` from loadtests/results/race.json. -->",
        "",
        "The same room-broadcast workloads against three servers, one after the other in one"
        " run on one machine: **Switchboard** (`python -m gateway`, one process),"
        " **python-socketio** (`AsyncServer` on aiohttp, uvloop) and the **Node socket.io**"
        " server. Switchboard runs twice: in its stored rooms (`community:`, the default"
        " and the headline) and as **Switchboard live**, the same gateway and rooms spoken to"
        " as `community.live:` channels, which broadcast without storing (ADR 0004) as the"
        " peers do. The peers are minimal room-broadcast servers kept in `loadtests/peers/`:"
        " a client joins a room, and every message a client sends is broadcast to everyone"
        " in the room, the sender included.",
        "",
        "**Switchboard persists every message in Postgres before fan-out; Switchboard live"
        " and the peers persist nothing.** Both Switchboard variants also authenticate every"
        " socket with a signed token checked against the database, check room membership"
        " and rate limits on every send,"
        " and acknowledge every send (stored rooms: after its commit, with its `seq`). The"
        " peers check that the sender joined the room and acknowledge nothing but `join`."
        " Before measuring, each point sends one warm-up message per sender and waits until"
        " it has arrived everywhere, so first-touch costs (caches, prepared statements, the"
        " V8 JIT) are left out for every server alike."
        " Every server starts fresh for every point (Switchboard on a throwaway database of"
        " the local Postgres cluster, synchronous commit).",
        "",
        "All three are driven by the same asyncio harness (`loadtests/race.py`) over the same"
        " raw WebSocket client (`loadtests/wsclient.py`; socket.io spoken as Engine.IO v4"
        " over WebSocket by `loadtests/peers/sioclient.py`), which counts fan-out deliveries"
        " at C speed (`bytes.count` of the message marker), so the load generator costs the"
        f" same for each. Loopback only; the {m['cpus']} cores are shared by the server, the"
        " load generator and (for Switchboard) Postgres.",
        "",
        "## Command",
        "",
        "`make race` (scripts/race.sh) installs python-socketio into .venv and socket.io"
        " with npm into loadtests/peers/node/, starts the private Postgres cluster and runs:",
        "",
        f"    {data['command']}",
        "",
        "with `DATABASE_URL` set to that cluster. `python -m loadtests.race --render` redraws"
        f" this page from loadtests/results/race.json. The run took {data['runtime_s']:g} s.",
        "",
        "## Machine and versions",
        "",
        f"{m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, {m['platform']};"
        f" run {m['date']}.",
        "",
        "| Component | Version |",
        "| --- | --- |",
        *("| " + " | ".join(r) + " |" for r in version_rows),
        "",
        "## Targets",
        "",
        *((noisy_warning(data), "") if _noisy(data) else ()),
        targets_section(data),
        "",
        "## Fan-out",
        "",
        fanout_section(data, plots) if data["fanout"]["points"] else "Not run.",
        "",
        "## Send-to-receive latency",
        "",
        latency_section(data, plots) if data["latency"]["points"] else "Not run.",
        "",
        "## Memory per socket",
        "",
        memory_section(data) if data["fanout"]["points"] else "Not run.",
        "",
        "## What differs between the servers",
        "",
        "- **Writes per delivery.** Switchboard builds a message's frame once and, for the"
        " frames a room receives in one event-loop iteration (a whole group-commit batch in a"
        " burst), writes them to each socket with one call. Node socket.io encodes a"
        " broadcast once and writes it to each socket once per message. python-socketio"
        " encodes once too, but hands every recipient's copy to an asyncio task of its own"
        " and then to that socket's send queue and writer task. So the fan-out burst is where"
        " Switchboard's batching counts most; at a few messages per room per second (the"
        " latency workload) a message is mostly alone in its iteration and costs one write per"
        " recipient on every server.",
        "- **What a message waits for.** A Switchboard message reaches its room only after its"
        " group commit in Postgres (one call of a stored function per batch, committed"
        " synchronously); a peer, and Switchboard live, broadcast a message as soon as it is"
        " decoded and checked. Switchboard's latency therefore includes a database write the"
        " others do not do: on this schema (eleven indexes, four foreign keys and two"
        " triggers on analyst.chat_messages) about 0.8 ms per lone message.",
        "- **Joining.** A Switchboard join checks the subscription gates in the database,"
        " records live membership and announces `joined` to the room's members; a socket.io"
        " join adds the socket to an in-memory set. The connect + join column shows the cost.",
        "- **Load generator.** One Python process (uvloop) for every server. It parses every"
        " frame in the latency workload and only counts markers in the fan-out burst; its"
        " CPU column shows how close it came to being the bottleneck.",
        "",
    ]
    if not plots:
        parts += ["Plots need `pip install matplotlib`; this page has the tables only.", ""]
    return "\n".join(parts)


def write_docs(data: dict[str, Any]) -> None:
    """docs/race.md, and docs/benchmarks.md again (its race section reads race.json)."""
    from loadtests import report

    DOC.write_text(render(data, DOC))
    benchmarks = ROOT / "docs" / "benchmarks.md"
    benchmarks.write_text(report.render(RESULTS.parent, benchmarks))
    say(f"wrote {DOC.relative_to(ROOT)}, docs/benchmarks.md and their plots in docs/img/")


def main() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", nargs="+", choices=ORDER, default=ORDER)
    parser.add_argument("--subscribers", type=int, nargs="*", default=[100, 500, 1000])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument(
        "--fanout-timeout", type=float, default=60, help="seconds each fan-out point may take"
    )
    parser.add_argument("--rates", type=int, nargs="*", default=[250, 500, 1000])
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument(
        "--max-background",
        type=float,
        default=0.3,
        help="before each point, wait until other processes use at most this many cores",
    )
    parser.add_argument(
        "--quiet-budget",
        type=float,
        default=120,
        help="seconds the whole run may spend waiting for a quiet machine (30 s per point)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=1,
        help="times a point disturbed by other processes is run again (the least disturbed"
        " attempt is kept)",
    )
    parser.add_argument(
        "--render", action="store_true", help="only redraw docs/race.md from race.json"
    )
    args = parser.parse_args()
    if args.render:
        write_docs(json.loads(RESULTS.read_text()))
        return
    dsn = os.environ.get("DATABASE_URL")
    if any(_ours([s]) for s in args.servers) and not dsn:
        raise SystemExit("DATABASE_URL is not set (use `make race`)")
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    data = runner(race(args, dsn))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2))
    say(f"wrote {RESULTS.relative_to(ROOT)}")
    write_docs(data)


if __name__ == "__main__":
    main()
