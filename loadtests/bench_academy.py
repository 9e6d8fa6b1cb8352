"""Live-session fan-out benchmark of the academy realm (an asyncio harness, not a test): one
host sends in an `academy.session:<id>` room with `--participants` registered learners
joined, on a throwaway database and gateway process(es) on loopback, as
loadtests/bench_gateway.py does for the analyst realm.

Two phases per room: a burst (the host sends `--messages` at once: deliveries per second
over the whole fan-out) and a steady phase (`--rate` messages per second for `--duration`
seconds: send-to-receive latency, p50/p99, measured on `--timed` of the participants while
the others only count). `--compare-analyst` runs the same two phases in an analyst community
room of the same size in the same run, so the two are compared per delivery on one machine.

    python -m loadtests.bench_academy --participants 1000 --messages 200 --compare-analyst
    python -m loadtests.bench_academy --participants 50 --messages 20 --rate 20 --duration 2

Results: loadtests/results/academy-fanout.json (for docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import msgspec

from kernel.tokens import sign_access_token
from loadtests.bench_gateway import (
    RESULTS,
    Member,
    Stack,
    machine,
    percentile,
    say,
    seed_rooms,
    seed_users,
)
from loadtests.seed_academy import AcademySeedConfig, seed

MSG = b'{"op":"msg"'


@dataclass
class Room:
    """A room to measure: its channel, the sender's token and the receivers' tokens."""

    realm: str
    channel: str
    sender: str
    receivers: list[str]


@dataclass
class Phases:
    """What one room measured."""

    realm: str
    participants: int
    burst_messages: int
    burst_seconds: float
    deliveries_per_s: float
    steady_rate: int
    steady_sent: int
    delivered: int
    expected: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    join_seconds: float

    @property
    def us_per_delivery(self) -> float:
        return 1e6 / self.deliveries_per_s if self.deliveries_per_s else float("inf")


async def academy_room(conn: asyncpg.Connection, secret: str, participants: int) -> Room:
    """One live session with `participants` registered learners (loadtests.seed_academy)."""
    report = await seed(
        conn,
        AcademySeedConfig(learners=participants, sessions=1, hot_share=1.0, lessons=0),
        None,
    )
    (session,) = report.sessions
    learners = await conn.fetch(
        "SELECT user_id FROM academy.session_participants WHERE session_id = $1 ORDER BY id",
        session.id,
    )
    token = _tokens(secret, "academy")
    return Room(
        "academy",
        session.channel,
        token(session.host_id),
        [token(r["user_id"]) for r in learners],
    )


async def analyst_room(conn: asyncpg.Connection, secret: str, participants: int) -> Room:
    """An analyst community room of the same size (loadtests.bench_gateway's seed): one
    subscriber sends, as the host does in the academy room."""
    users = await seed_users(conn, participants + 1)
    (channel,) = await seed_rooms(conn, users, 1)
    token = _tokens(secret, "analyst")
    return Room("analyst", channel, token(users[0]), [token(u) for u in users[1:]])


def _tokens(secret: str, realm: str) -> Callable[[uuid.UUID | str], str]:
    def token(user_id: uuid.UUID | str) -> str:
        return sign_access_token(secret, str(user_id), realm, 3600)

    return token


async def _connect(ports: list[int], tokens: list[str], concurrency: int = 200) -> list[Member]:
    members = [Member() for _ in tokens]
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await members[i].connect(ports[i % len(ports)], tokens[i])

    await asyncio.gather(*(one(i) for i in range(len(tokens))))
    return members


async def measure(
    room: Room, ports: list[int], messages: int, rate: int, duration: float, timed: int
) -> Phases:
    """Join everyone, then the burst and the steady phase; the sockets are closed after."""
    loop = asyncio.get_running_loop()
    receivers = await _connect(ports, room.receivers)
    (sender,) = await _connect(ports[:1], [room.sender])
    started = time.monotonic()
    for m in receivers:  # one by one: every join moves the room's live count
        await m.call({"op": "join", "channel": room.channel, "ref": 1})
    await sender.call({"op": "join", "channel": room.channel, "ref": 1})
    join_seconds = time.monotonic() - started
    say(f"{room.realm}: {len(receivers)} participants joined in {join_seconds:.1f} s")
    watched, counted = receivers[:timed], receivers[timed:]
    for m in counted:
        assert m.sock is not None
        m.sock.count_only(MSG, m.on_count)
    for m in receivers:
        m.received = 0
    try:
        # Burst: every message at once; done when every receiver has them all.
        for m in receivers:
            m.expected, m.all_in = messages, loop.create_future()
            m.on_count(m.received)
        assert sender.sock is not None
        payload = "x" * 100
        started = time.monotonic()
        for i in range(messages):
            sender.sock.send_text(
                msgspec.json.encode(
                    {"op": "send", "channel": room.channel, "text": f"0 {payload}", "ref": i}
                )
            )
        await asyncio.wait_for(asyncio.gather(*all_in(receivers)), 300)
        burst = time.monotonic() - started
        deliveries = len(receivers) * messages
        say(f"{room.realm}: burst {deliveries} deliveries in {burst:.2f} s")

        # Steady: `rate` messages per second, timed by the watched receivers.
        for m in watched:
            m.record_latency = True
        sent = await _send_steadily(sender, room.channel, rate, duration)
        for m in receivers:
            m.expected, m.all_in = messages + sent, loop.create_future()
            m.on_count(m.received)
        with contextlib.suppress(TimeoutError):  # a shortfall is reported, not hidden
            await asyncio.wait_for(asyncio.gather(*all_in(receivers)), 60)
        latencies = [x for m in watched for x in m.latencies] or [float("nan")]
        delivered = sum(min(m.received, messages + sent) - messages for m in receivers)
        phases = Phases(
            realm=room.realm,
            participants=len(receivers),
            burst_messages=messages,
            burst_seconds=round(burst, 3),
            deliveries_per_s=round(deliveries / burst, 1),
            steady_rate=rate,
            steady_sent=sent,
            delivered=delivered,
            expected=sent * len(receivers),
            p50_ms=round(percentile(latencies, 50) * 1000, 2),
            p99_ms=round(percentile(latencies, 99) * 1000, 2),
            max_ms=round(max(latencies) * 1000, 2),
            mean_ms=round(statistics.fmean(latencies) * 1000, 2),
            join_seconds=round(join_seconds, 2),
        )
        say(
            f"{room.realm}: {phases.deliveries_per_s:,.0f} deliveries/s"
            f" ({phases.us_per_delivery:.2f} us each); steady {rate}/s:"
            f" {delivered}/{phases.expected} delivered, p50 {phases.p50_ms} ms,"
            f" p99 {phases.p99_ms} ms"
        )
        return phases
    finally:
        for m in [*receivers, sender]:
            if m.sock is not None:
                m.sock.close()


async def _send_steadily(sender: Member, channel: str, rate: int, duration: float) -> int:
    """Open loop: one message every 1/rate seconds for `duration`; the number sent."""
    assert sender.sock is not None
    interval = 1.0 / rate
    sent = 0
    next_at = time.monotonic()
    end = next_at + duration
    while next_at < end:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        sender.sock.send_text(
            msgspec.json.encode(
                {
                    "op": "send",
                    "channel": channel,
                    "text": f"{time.monotonic()} steady",
                    "ref": 100_000 + sent,
                }
            )
        )
        sent += 1
        next_at += interval
    return sent


def write_results(out: Path, processes: int, results: list[Phases]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "benchmark": "academy-fanout",
        "machine": machine(),
        "processes": processes,
        "points": [{**vars(p), "us_per_delivery": round(p.us_per_delivery, 3)} for p in results],
    }
    out.write_text(json.dumps(data, indent=2))
    say(f"wrote {out}")


def all_in(members: list[Member]) -> list[asyncio.Future[None]]:
    """The futures that resolve when each member has received what it expects."""
    return [m.all_in for m in members if m.all_in is not None]


async def bench(
    base_dsn: str,
    participants: int,
    messages: int,
    rate: int,
    duration: float,
    timed: int,
    processes: int,
    compare_analyst: bool,
    out: Path | None,
) -> list[Phases]:
    results = []
    builders = [academy_room] + ([analyst_room] if compare_analyst else [])
    for build in builders:
        stack = Stack(base_dsn)
        try:
            conn = await stack.database()
            room = await build(conn, stack.secret, participants)
            await conn.close()
            if processes > 1:
                await stack.redis()
            ports = [await stack.gateway(SWITCHBOARD_REALMS=room.realm) for _ in range(processes)]
            results.append(await measure(room, ports, messages, rate, duration, timed))
        finally:
            await stack.close()
    if out is not None:
        write_results(out, processes, results)
    return results


def main(argv: list[str] | None = None) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench_academy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--participants", type=int, default=1000, help="default 1000")
    parser.add_argument("--messages", type=int, default=200, help="burst size (default 200)")
    parser.add_argument("--rate", type=int, default=20, help="steady msg/s (default 20)")
    parser.add_argument("--duration", type=float, default=15, help="steady seconds (default 15)")
    parser.add_argument(
        "--timed", type=int, default=100, help="participants timing latency (default 100)"
    )
    parser.add_argument("--processes", type=int, default=1, help="gateway processes (default 1)")
    parser.add_argument(
        "--compare-analyst", action="store_true", help="also an analyst room of the same size"
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "academy-fanout.json", help="results JSON"
    )
    args = parser.parse_args(argv)
    if args.participants < 1 or args.messages < 1 or args.rate < 1 or args.duration <= 0:
        parser.error("--participants, --messages, --rate and --duration must be positive")
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        raise SystemExit("DATABASE_URL is not set (use `make bench`'s database)")
    try:
        from uvloop import run
    except ImportError:
        from asyncio import run  # type: ignore[assignment]
    run(
        bench(
            dsn,
            args.participants,
            args.messages,
            args.rate,
            args.duration,
            min(args.timed, args.participants),
            args.processes,
            args.compare_analyst,
            args.out,
        )
    )


if __name__ == "__main__":
    main()
