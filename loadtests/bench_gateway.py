"""Raw gateway benchmarks (an asyncio harness, not a test): idle sockets and memory per
socket, fan-out deliveries per second, and send-to-receive latency at a steady persisted
message rate. Each run builds its own database, Redis and gateway processes on loopback,
prints progress, and writes JSON results to loadtests/results/ for `loadtests.report`.

    python -m loadtests.bench_gateway idle --sockets 15000
    python -m loadtests.bench_gateway fanout --subscribers 100 500 1000 --messages 200
    python -m loadtests.bench_gateway latency --rates 250 500 1000 --duration 15
    make bench        # all three at the documented sizes, then the report
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import secrets
import shutil
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

from kernel.migrate import migrate
from kernel.tokens import sign_access_token
from loadtests.wsclient import BenchSocket, open_socket

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "loadtests" / "results"
HOST = "127.0.0.1"


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


# --- the stack under test ---------------------------------------------------------------------


@dataclass
class Stack:
    """A throwaway database, optionally Redis, and gateway processes."""

    base_dsn: str
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    dsn: str = ""
    redis_url: str | None = None
    gateways: list[tuple[asyncio.subprocess.Process, int]] = field(default_factory=list)
    _redis: asyncio.subprocess.Process | None = None
    _db_name: str = field(default_factory=lambda: f"sb_bench_{uuid.uuid4().hex[:8]}")

    def _with_db(self, name: str) -> str:
        return urlunsplit(urlsplit(self.base_dsn)._replace(path="/" + name))

    async def database(self) -> asyncpg.Connection:
        admin = await asyncpg.connect(self._with_db("postgres"))
        await admin.execute(f'CREATE DATABASE "{self._db_name}"')
        await admin.close()
        self.dsn = self._with_db(self._db_name)
        conn = await asyncpg.connect(self.dsn)
        await migrate(conn)
        return conn

    async def redis(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (make bench installs it)")
        port = _free_port()
        self._redis = await asyncio.create_subprocess_exec(
            binary,
            "--port",
            str(port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert self._redis.stdout is not None
        while b"Ready to accept connections" not in await self._redis.stdout.readline():
            pass
        self.redis_url = f"redis://{HOST}:{port}/0"
        return self.redis_url

    async def gateway(self, **env: str) -> int:
        port = _free_port()
        full = {
            **os.environ,
            "DATABASE_URL": self.dsn,
            "SWITCHBOARD_SECRET": self.secret,
            "GATEWAY_PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "GATEWAY_FRAMES_PER_SECOND": "100000",
            "GATEWAY_FRAME_BURST": "100000",
            "DB_POOL_MAX": "8",
            **env,
        }
        if self.redis_url:
            full["REDIS_URL"] = self.redis_url
        else:
            full.pop("REDIS_URL", None)
        full["LOG_LEVEL"] = "INFO"  # the harness waits for the `listening` line
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            cwd=ROOT,
            env=full,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        while True:
            line = await proc.stderr.readline()
            if not line:
                raise RuntimeError("gateway exited before listening")
            if b"event=listening" in line:
                break
        asyncio.get_running_loop().create_task(_discard(proc.stderr))
        self.gateways.append((proc, port))
        return port

    async def close(self) -> None:
        for proc, _ in self.gateways:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 30)
        if self._redis is not None:
            self._redis.terminate()
            await self._redis.wait()
        if self.dsn:
            admin = await asyncpg.connect(self._with_db("postgres"))
            await admin.execute(f'DROP DATABASE IF EXISTS "{self._db_name}" WITH (FORCE)')
            await admin.close()


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def seed_users(conn: asyncpg.Connection, count: int) -> list[str]:
    rows = await conn.fetch(
        "INSERT INTO analyst.users (email, password_hash, user_type)"
        " SELECT 'bench-' || g || '-' || $2 || '@example.com', 'x', 'trader'"
        " FROM generate_series(1, $1) g RETURNING id",
        count,
        uuid.uuid4().hex[:6],
    )
    return [str(r["id"]) for r in rows]


async def seed_rooms(conn: asyncpg.Connection, members: list[str], rooms: int) -> list[str]:
    """An analyst with a chat tier, `rooms` channels, and every member subscribed."""
    analyst = await conn.fetchval(
        "INSERT INTO analyst.users (email, password_hash, user_type)"
        " VALUES ('analyst-' || $1 || '@example.com', 'x', 'analyst') RETURNING id",
        uuid.uuid4().hex[:8],
    )
    await conn.execute(
        "INSERT INTO analyst.analyst_profiles (user_id, display_name) VALUES ($1, 'Bench Analyst')",
        analyst,
    )
    tier = await conn.fetchval(
        "INSERT INTO analyst.subscription_tiers (analyst_id, tier_name, price_monthly,"
        " chat_access) VALUES ($1, 'Pro', 99900, true) RETURNING id",
        analyst,
    )
    await conn.execute(
        "INSERT INTO analyst.subscriptions (user_id, analyst_id, tier_id, status, billing_cycle,"
        " start_date, expires_at) SELECT u::uuid, $1, $2, 'active', 'monthly', now(),"
        " now() + interval '30 days' FROM unnest($3::text[]) u",
        analyst,
        tier,
        members,
    )
    # A limit no benchmark reaches: the limiter still runs on every send.
    rows = await conn.fetch(
        "INSERT INTO analyst.chat_channels (analyst_id, channel_name, channel_type,"
        " message_rate_limit) SELECT $1, 'bench ' || g, 'community', 1000000"
        " FROM generate_series(1, $2) g RETURNING id",
        analyst,
        rooms,
    )
    return [f"community:{r['id']}" for r in rows]


class Member:
    """A benchmark socket that counts messages and records send-to-receive latencies."""

    def __init__(self) -> None:
        self.sock: BenchSocket | None = None
        self.received = 0
        self.latencies: list[float] = []
        self.record_latency = False
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()
        self.all_in: asyncio.Future[None] | None = None
        self.expected = 0

    def on_message(self, payload: bytes) -> None:
        if payload.startswith(b'{"op":"msg"'):
            self.received += 1
            if self.record_latency:
                text = msgspec.json.decode(payload)["text"]
                self.latencies.append(time.monotonic() - float(text.split(" ", 1)[0]))
            if self.all_in is not None and self.received >= self.expected:
                if not self.all_in.done():
                    self.all_in.set_result(None)
        elif payload.startswith(b'{"op":"ok"') or payload.startswith(b'{"op":"error"'):
            self.replies.put_nowait(payload)

    def on_count(self, received: int) -> None:
        self.received = received
        if self.all_in is not None and received >= self.expected and not self.all_in.done():
            self.all_in.set_result(None)

    async def connect(self, port: int, token: str) -> None:
        self.sock = await open_socket(HOST, port, f"/ws?token={token}", self.on_message)
        await self.replies.get()  # the automatic user-stream join (welcome is not a reply)

    async def call(self, frame: dict[str, object]) -> dict[str, object]:
        assert self.sock is not None
        self.sock.send_text(msgspec.json.encode(frame))
        reply: dict[str, object] = msgspec.json.decode(await self.replies.get())
        if reply.get("op") != "ok":
            raise RuntimeError(f"{frame['op']} refused: {reply}")
        return reply


async def connect_members(
    stack: Stack, users: list[str], ports: list[int], concurrency: int = 200
) -> list[Member]:
    members = [Member() for _ in users]
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            token = sign_access_token(stack.secret, users[i], "analyst", 3600)
            await members[i].connect(ports[i % len(ports)], token)

    started = time.monotonic()
    for chunk in range(0, len(users), 2000):
        await asyncio.gather(*(one(i) for i in range(chunk, min(chunk + 2000, len(users)))))
        say(
            f"connected {min(chunk + 2000, len(users))}/{len(users)} sockets "
            f"({time.monotonic() - started:.1f} s)"
        )
    return members


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d"),
    }


def write_result(name: str, data: dict[str, object]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "machine": machine(), **data}
    (RESULTS / f"gateway-{name}.json").write_text(json.dumps(data, indent=2))
    say(f"wrote loadtests/results/gateway-{name}.json")


# --- the three benchmarks ---------------------------------------------------------------------


async def bench_idle(base_dsn: str, sockets: int) -> None:
    stack = Stack(base_dsn)
    try:
        conn = await stack.database()
        users = await seed_users(conn, sockets + 100)
        await conn.close()
        port = await stack.gateway()
        pid = stack.gateways[0][0].pid
        warm = await connect_members(stack, users[:100], [port])
        before = rss_kib(pid)
        started = time.monotonic()
        members = await connect_members(stack, users[100:], [port])
        elapsed = time.monotonic() - started
        after = rss_kib(pid)
        alive = sum(1 for m in members + warm if m.sock and not m.sock.closed.done())
        assert alive == len(members) + len(warm), f"only {alive} sockets still open"
        per_socket = (after - before) / len(members)
        say(
            f"{len(members) + len(warm)} sockets held; {per_socket:.1f} KiB per socket; "
            f"{len(members) / elapsed:.0f} connections/s"
        )
        write_result(
            "idle",
            {
                "sockets": len(members) + len(warm),
                "rss_before_kib": before,
                "rss_after_kib": after,
                "kib_per_socket": round(per_socket, 2),
                "connect_per_s": round(len(members) / elapsed, 1),
            },
        )
        for m in members + warm:
            assert m.sock is not None
            m.sock.close()
    finally:
        await stack.close()


async def bench_fanout(
    base_dsn: str, subscriber_counts: list[int], messages: int, processes: int, publishers: int
) -> None:
    points = []
    for count in subscriber_counts:
        stack = Stack(base_dsn)
        try:
            conn = await stack.database()
            users = await seed_users(conn, count + publishers)
            (room,) = await seed_rooms(conn, users, 1)
            await conn.close()
            if processes > 1:
                await stack.redis()
            ports = [await stack.gateway() for _ in range(processes)]
            members = await connect_members(stack, users[publishers:], ports)
            senders = await connect_members(stack, users[:publishers], ports)
            loop = asyncio.get_running_loop()
            for m in [*members, *senders]:
                await m.call({"op": "join", "channel": room, "ref": 1})
                m.expected, m.all_in = messages, loop.create_future()
            for m in members:
                assert m.sock is not None
                m.sock.count_only(b'{"op":"msg"', m.on_count)
            say(
                f"{count} subscribers joined on {processes} process(es); {publishers} senders"
                f" send {messages} messages"
            )
            payload = "x" * 100
            started = time.monotonic()
            for i in range(messages):
                sender = senders[i % publishers].sock
                assert sender is not None
                sender.send_text(
                    msgspec.json.encode(
                        {"op": "send", "channel": room, "text": f"{i} {payload}", "ref": i}
                    )
                )
            await asyncio.wait_for(asyncio.gather(*(m.all_in for m in members)), 300)
            elapsed = time.monotonic() - started
            deliveries = count * messages
            rate = deliveries / elapsed
            say(f"{count} subscribers: {deliveries} deliveries in {elapsed:.2f} s = {rate:,.0f}/s")
            points.append(
                {
                    "subscribers": count,
                    "messages": messages,
                    "senders": publishers,
                    "seconds": round(elapsed, 3),
                    "deliveries_per_s": round(rate),
                }
            )
            for m in [*members, *senders]:
                assert m.sock is not None
                m.sock.close()
        finally:
            await stack.close()
    write_result(f"fanout-{processes}p", {"processes": processes, "points": points})


async def bench_latency(
    base_dsn: str, rates: list[int], rooms: int, members_per_room: int, duration: float
) -> None:
    points = []
    for rate in rates:
        stack = Stack(base_dsn)
        try:
            conn = await stack.database()
            users = await seed_users(conn, rooms * members_per_room)
            channels = await seed_rooms(conn, users, rooms)
            await conn.close()
            port = await stack.gateway()
            members = await connect_members(stack, users, [port])
            for i, m in enumerate(members):
                await m.call({"op": "join", "channel": channels[i // members_per_room], "ref": 1})
                m.record_latency = True
            senders = members[::members_per_room]
            interval = rooms / rate
            say(
                f"offering {rate} msg/s over {rooms} rooms x {members_per_room} members "
                f"for {duration:.0f} s"
            )

            counts = await asyncio.gather(
                *(
                    _send_steadily(s, channels[i], i * interval / len(senders), interval, duration)
                    for i, s in enumerate(senders)
                )
            )
            sent = sum(counts)
            expected = sent * members_per_room
            loop = asyncio.get_running_loop()
            for i, m in enumerate(members):
                m.expected, m.all_in = counts[i // members_per_room], loop.create_future()
                m.on_count(m.received)
            with contextlib.suppress(TimeoutError):  # a shortfall is reported, not hidden
                await asyncio.wait_for(asyncio.gather(*(m.all_in for m in members)), 30)
            latencies = [x for m in members for x in m.latencies]
            received = len(latencies)
            p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
            achieved = sent / duration
            say(
                f"{rate} msg/s offered, {achieved:.0f} sent/s, {received}/{expected} delivered:"
                f" p50 {p50:.1f} ms, p99 {p99:.1f} ms"
            )
            points.append(
                {
                    "offered_per_s": rate,
                    "sent_per_s": round(achieved, 1),
                    "delivered": received,
                    "expected": expected,
                    "p50_ms": round(p50, 2),
                    "p90_ms": round(percentile(latencies, 90) * 1000, 2),
                    "p99_ms": round(p99, 2),
                    "max_ms": round(max(latencies) * 1000, 2),
                    "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
                }
            )
            for m in members:
                assert m.sock is not None
                m.sock.close()
        finally:
            await stack.close()
    write_result(
        "latency",
        {
            "rooms": rooms,
            "members_per_room": members_per_room,
            "duration_s": duration,
            "points": points,
        },
    )


async def _send_steadily(
    sender: Member, channel: str, offset: float, interval: float, duration: float
) -> int:
    """Send to `channel` every `interval` seconds for `duration` (open loop); return count."""
    assert sender.sock is not None
    sent = 0
    next_at = time.monotonic() + offset
    end = time.monotonic() + duration
    while next_at < end:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        sender.sock.send_text(
            msgspec.json.encode(
                {"op": "send", "channel": channel, "text": f"{time.monotonic()} hello", "ref": sent}
            )
        )
        sent += 1
        next_at += interval
    return sent


def main() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="which", required=True)
    idle = sub.add_parser("idle", help="idle authenticated sockets and memory per socket")
    idle.add_argument("--sockets", type=int, default=15000)
    fan = sub.add_parser("fanout", help="deliveries per second in one channel")
    fan.add_argument("--subscribers", type=int, nargs="+", default=[100, 500, 1000, 2000])
    fan.add_argument("--messages", type=int, default=200)
    fan.add_argument("--processes", type=int, default=2)
    fan.add_argument(
        "--senders",
        type=int,
        default=20,
        help="sockets sending concurrently (their sends share commits)",
    )
    lat = sub.add_parser("latency", help="send-to-receive latency at steady persisted rates")
    lat.add_argument("--rates", type=int, nargs="+", default=[250, 500, 1000, 1500])
    lat.add_argument("--rooms", type=int, default=100)
    lat.add_argument("--members", type=int, default=10)
    lat.add_argument("--duration", type=float, default=15)
    args = parser.parse_args()
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        raise SystemExit("DATABASE_URL is not set (use `make bench`)")
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    if args.which == "idle":
        runner(bench_idle(dsn, args.sockets))
    elif args.which == "fanout":
        runner(bench_fanout(dsn, args.subscribers, args.messages, args.processes, args.senders))
    else:
        runner(bench_latency(dsn, args.rates, args.rooms, args.members, args.duration))


if __name__ == "__main__":
    main()
