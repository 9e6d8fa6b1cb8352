"""Scale-out benchmark (an asyncio harness, not a test): fan-out deliveries per second with
1, 2 and 4 gateway processes, over one Redis (PUBLISH) and over a 3-master Redis Cluster
(sharded pub/sub, REDIS_CLUSTER=1). Each point builds its own database and gateway
processes on loopback (one port each); subscribers are spread over the processes and over
`--rooms` rooms (their topics spread over the masters by slot), and `--senders` sockets
send `--messages` persisted messages as fast as they are taken. Writes
loadtests/results/scaling.json and docs/img/scaling.png (with matplotlib).

    python -m loadtests.bench_scaling                        # 1, 2, 4 processes x both
    python -m loadtests.bench_scaling --processes 1 2 --backends cluster --messages 200

Run it on a quiet machine: the figures are for docs/scaling.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import msgspec

from loadtests.bench_gateway import (
    RESULTS,
    ROOT,
    Stack,
    connect_members,
    machine,
    say,
    seed_rooms,
    seed_users,
)
from tests.cluster.services import RedisClusterServers

PLOT = ROOT / "docs" / "img" / "scaling.png"
Point = dict[str, Any]


async def measure(
    base_dsn: str,
    backend: str,
    processes: int,
    cluster: RedisClusterServers | None,
    subscribers: int,
    rooms: int,
    messages: int,
    senders: int,
) -> Point:
    """One point: a fresh database and `processes` gateways on `backend`."""
    stack = Stack(base_dsn)
    try:
        conn = await stack.database()
        users = await seed_users(conn, subscribers + senders)
        names = await seed_rooms(conn, users, rooms)
        await conn.close()
        env: dict[str, str] = {}
        if backend == "cluster":
            assert cluster is not None
            stack.redis_url = cluster.url
            env["REDIS_CLUSTER"] = "1"
        else:
            await stack.redis()
        ports = [await stack.gateway(**env) for _ in range(processes)]
        members = await connect_members(stack, users[senders:], ports)
        talkers = await connect_members(stack, users[:senders], ports)
        sent_to = [0] * rooms
        for i in range(messages):
            sent_to[(i % senders) % rooms] += 1
        loop = asyncio.get_running_loop()
        for i, m in enumerate(members):
            await m.call({"op": "join", "channel": names[i % rooms], "ref": 1})
            m.expected, m.all_in = sent_to[i % rooms], loop.create_future()
            if m.expected == 0:
                m.all_in.set_result(None)
        for j, t in enumerate(talkers):
            await t.call({"op": "join", "channel": names[j % rooms], "ref": 1})
        for m in members:
            assert m.sock is not None
            m.sock.count_only(b'{"op":"msg"', m.on_count)
        deliveries = sum(m.expected for m in members)
        say(f"{backend}, {processes} process(es): {subscribers} subscribers in {rooms} rooms")
        payload = "x" * 100
        started = time.monotonic()
        for i in range(messages):
            j = i % senders
            sock = talkers[j].sock
            assert sock is not None
            frame = {"op": "send", "channel": names[j % rooms], "text": f"{i} {payload}", "ref": i}
            sock.send_text(msgspec.json.encode(frame))
        await asyncio.wait_for(asyncio.gather(*(m.all_in for m in members if m.all_in)), 600)
        elapsed = time.monotonic() - started
        rate = deliveries / elapsed
        say(f"  {deliveries} deliveries in {elapsed:.2f} s = {rate:,.0f}/s")
        for m in [*members, *talkers]:
            if m.sock is not None:
                m.sock.close()
        return {
            "backend": backend,
            "processes": processes,
            "subscribers": subscribers,
            "rooms": rooms,
            "messages": messages,
            "senders": senders,
            "seconds": round(elapsed, 3),
            "deliveries_per_s": round(rate),
        }
    finally:
        await stack.close()


async def run(base_dsn: str, args: argparse.Namespace) -> list[Point]:
    points: list[Point] = []
    for backend in args.backends:
        cluster = RedisClusterServers() if backend == "cluster" else None
        try:
            if cluster is not None:
                await asyncio.to_thread(cluster.start)
            for processes in args.processes:
                points.append(
                    await measure(
                        base_dsn,
                        backend,
                        processes,
                        cluster,
                        args.subscribers,
                        args.rooms,
                        args.messages,
                        args.senders,
                    )
                )
        finally:
            if cluster is not None:
                cluster.stop()
    return points


def plot(points: list[Point], path: Path) -> bool:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import EngFormatter
    except ImportError:
        say("matplotlib is not installed: no plot")
        return False
    fig = Figure(figsize=(7.5, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    labels = {"redis": "one Redis (PUBLISH)", "cluster": "Redis Cluster, 3 masters (SPUBLISH)"}
    for i, backend in enumerate(sorted({p["backend"] for p in points}, reverse=True)):
        mine = [p for p in points if p["backend"] == backend]
        xs = [p["processes"] for p in mine]
        ys = [p["deliveries_per_s"] for p in mine]
        ax.plot(xs, ys, marker="o", color=f"C{i}", label=labels.get(backend, backend))
    first = points[0]
    ax.set_title(
        f"Fan-out by gateway processes ({first['subscribers']:,} subscribers,"
        f" {first['rooms']} rooms, all persisted)"
    )
    ax.set_xlabel("gateway processes")
    ax.set_ylabel("deliveries per second")
    ax.yaxis.set_major_formatter(EngFormatter())
    ax.set_ylim(bottom=0)
    ax.set_xticks(sorted({p["processes"] for p in points}))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return True


def table(points: list[Point]) -> str:
    lines = [
        "| Backend | Processes | Subscribers | Rooms | Messages | Seconds | Deliveries/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in points:
        lines.append(
            f"| {p['backend']} | {p['processes']} | {p['subscribers']:,} | {p['rooms']} |"
            f" {p['messages']:,} | {p['seconds']} | {p['deliveries_per_s']:,} |"
        )
    return "\n".join(lines)


def main() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--backends", nargs="+", choices=["redis", "cluster"], default=["redis", "cluster"]
    )
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--rooms", type=int, default=6)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=24)
    parser.add_argument("--out", type=Path, default=RESULTS / "scaling.json")
    parser.add_argument("--plot", type=Path, default=PLOT)
    args = parser.parse_args()
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        raise SystemExit("DATABASE_URL is not set (use `make bench`)")
    runner: Callable[[Coroutine[Any, Any, list[Point]]], list[Point]] = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    points = runner(run(dsn, args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = "python -m loadtests.bench_scaling " + " ".join(
        [
            "--processes",
            *map(str, args.processes),
            "--backends",
            *args.backends,
            f"--subscribers {args.subscribers} --rooms {args.rooms}",
            f"--messages {args.messages} --senders {args.senders}",
        ]
    )
    args.out.write_text(
        json.dumps(
            {"benchmark": "scaling", "command": command, "machine": machine(), "points": points},
            indent=2,
        )
    )
    say(f"wrote {args.out}")
    if plot(points, args.plot):
        say(f"wrote {args.plot}")
    print(table(points))


if __name__ == "__main__":
    main()
