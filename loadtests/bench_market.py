"""Benchmark of market live order tracking through the gateway: N orders in transit, each
with its courier sending one position per `--interval` seconds on `market.order:<id>` and
its buyer watching that channel.

    DATABASE_URL=... SWITCHBOARD_SECRET=... python -m loadtests.bench_market \\
        --gateway-url ws://127.0.0.1:8765/ws --orders 5000 --duration 60 \\
        --out loadtests/results/market_tracking.json

The gateway (one or more processes behind the URL) must serve the market realm on
DATABASE_URL, and SWITCHBOARD_SECRET must be its secret: the bench signs its users' access
tokens itself (no REST logins). It seeds its own population with loadtests.seed_market (N
buyers, N couriers, N/10 sellers, N orders in transit, no chats), opens one courier socket
and one buyer socket per order, joins both to the order's channel, then for `--duration`
seconds each courier sends a position every `--interval` seconds (spread evenly over the
interval). It reports:

- positions sent and acknowledged (the ack comes after the group-committed store), refusals;
- deliveries/s: position events received by the buyers per second of the run, out of the
  acknowledged positions (each acknowledged position should reach its one watcher);
- p50/p99 update latency: from the courier's send to the buyer's receipt (one clock: both
  ends are in this process), positions matched by a per-order counter encoded in `lat`;
- Postgres writes/s: rows inserted + updated per second in the database over the run
  (pg_stat_database, whose counters lag up to a second; the bench waits `--settle` seconds
  after the run before the second reading, and divides by the run's length) and commits/s,
  plus order_tracking rows inserted and updated (the thinning rule: one UPDATE per position,
  one INSERT per order per 30 s window).

One Python process drives every socket; at 5,000 orders that is 10,000 sockets and 5,000
sends/s, so run the generator on its own machine (or raise `ulimit -n`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from kernel.tokens import sign_access_token
from loadtests.seed_market import MarketSeedConfig, seed

LAT0, LON0 = 41.0, 69.2
STEP = 1e-5  # lat = LAT0 + tick * STEP identifies a position


@dataclass
class MarketBenchResult:
    orders: int
    interval_s: float
    duration_s: float
    sent: int
    acked: int
    refused: int
    delivered: int
    deliveries_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    pg_writes_per_s: float
    pg_commits_per_s: float
    tracking_inserted: int
    tracking_updated: int


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


_STATS = """
SELECT (SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database
         WHERE datname = current_database()) AS writes,
       (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS commits,
       (SELECT n_tup_ins FROM pg_stat_user_tables
         WHERE schemaname = 'market' AND relname = 'order_tracking') AS t_ins,
       (SELECT n_tup_upd FROM pg_stat_user_tables
         WHERE schemaname = 'market' AND relname = 'order_tracking') AS t_upd
"""


async def _open(
    http: aiohttp.ClientSession, url: str, secret: str, user: int
) -> aiohttp.ClientWebSocketResponse:
    token = sign_access_token(secret, str(user), "market", 3600)
    sep = "&" if "?" in url else "?"
    ws = await http.ws_connect(f"{url}{sep}token={token}", max_msg_size=0)
    while True:  # the welcome, then the user stream's ok
        frame = json.loads((await ws.receive()).data)
        if frame.get("op") == "ok" and frame.get("role") == "self":
            return ws


async def _join(ws: aiohttp.ClientWebSocketResponse, channel: str) -> None:
    await ws.send_str(json.dumps({"op": "join", "channel": channel, "ref": 1}))
    while True:
        frame = json.loads((await ws.receive()).data)
        if frame.get("ref") == 1:
            if frame.get("op") != "ok":
                raise RuntimeError(f"join {channel} refused: {frame}")
            return


async def bench(
    dsn: str,
    gateway_url: str,
    secret: str,
    *,
    orders: int,
    duration: float,
    interval: float = 1.0,
    settle: float = 1.5,
    out: Path | None = None,
    say: Any = lambda _m: None,
) -> MarketBenchResult:
    conn = await asyncpg.connect(dsn)
    try:
        config = MarketSeedConfig(
            buyers=orders, sellers=max(1, orders // 10), couriers=orders, products=1,
            orders=orders, chats=0,
        )  # fmt: skip
        await seed(conn, config, None)
        rows = await conn.fetch(
            "SELECT id, buyer_id, courier_id FROM market.orders WHERE order_number LIKE $1"
            " ORDER BY id",
            f"LT-{config.tag}-%",
        )
        say(f"seeded {len(rows)} orders in transit (tag {config.tag})")
        sent_at: dict[tuple[int, int], float] = {}
        latencies: list[float] = []
        counts = {"sent": 0, "acked": 0, "refused": 0, "delivered": 0}
        timeout = aiohttp.ClientTimeout(total=None)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:

            async def watch(order_id: int, ws: aiohttp.ClientWebSocketResponse) -> None:
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT or '"position"' not in message.data:
                        continue
                    frame = json.loads(message.data)
                    data = frame.get("data") or {}
                    if frame.get("kind") != "position" or data.get("order_id") != order_id:
                        continue
                    tick = round((float(data["lat"]) - LAT0) / STEP)
                    started = sent_at.pop((order_id, tick), None)
                    if started is not None:
                        counts["delivered"] += 1
                        latencies.append((time.perf_counter() - started) * 1000)
                        progress()

            async def acks(ws: aiohttp.ClientWebSocketResponse) -> None:
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT or '"ref"' not in message.data:
                        continue
                    frame = json.loads(message.data)
                    if frame.get("op") == "ok":
                        counts["acked"] += 1
                    elif frame.get("op") == "error":
                        counts["refused"] += 1
                    progress()

            ticks = max(1, int(duration / interval))
            settled = asyncio.Event()  # every position answered, every accepted one delivered

            def progress() -> None:
                answered = counts["acked"] + counts["refused"]
                if answered >= ticks * len(couriers) and counts["delivered"] >= counts["acked"]:
                    settled.set()

            couriers, watchers = [], []
            readers: list[asyncio.Task[None]] = []
            for r in rows:
                channel = f"market.order:{r['id']}"
                courier = await _open(http, gateway_url, secret, r["courier_id"])
                watcher = await _open(http, gateway_url, secret, r["buyer_id"])
                await _join(courier, channel)
                await _join(watcher, channel)
                couriers.append((r["id"], channel, courier))
                watchers.append((r["id"], watcher))
                # Read each socket from the moment it has joined: the gateway's keepalive
                # pings every socket, and aiohttp answers a ping only while the socket is read.
                readers.append(asyncio.create_task(watch(r["id"], watcher)))
                readers.append(asyncio.create_task(acks(courier)))
            say(f"{len(rows)} couriers and {len(rows)} watchers joined")

            begin = time.perf_counter() + 0.5

            async def drive(n: int, order_id: int, channel: str, ws: Any) -> None:
                offset = interval * n / max(1, len(couriers))
                for tick in range(ticks):
                    delay = begin + offset + tick * interval - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    frame = {
                        "op": "send", "channel": channel, "type": "location", "text": "position",
                        "ref": tick + 10,
                        "metadata": {"lat": LAT0 + tick * STEP, "lon": LON0 + n * STEP},
                    }  # fmt: skip
                    sent_at[(order_id, tick)] = time.perf_counter()
                    counts["sent"] += 1
                    await ws.send_str(json.dumps(frame))

            before = await conn.fetchrow(_STATS)
            started = time.perf_counter()
            await asyncio.gather(*(drive(n, *c) for n, c in enumerate(couriers)))
            with contextlib.suppress(TimeoutError):  # what is missing then is reported
                await asyncio.wait_for(settled.wait(), 10)
            elapsed = time.perf_counter() - started
            await asyncio.sleep(settle)
            after = await conn.fetchrow(_STATS)
            for task in readers:
                task.cancel()
            for _, _, ws in couriers:
                await ws.close()
            for _, ws in watchers:
                await ws.close()
    finally:
        await conn.close()
    ordered = sorted(latencies)
    result = MarketBenchResult(
        orders=len(rows),
        interval_s=interval,
        duration_s=round(elapsed, 3),
        sent=counts["sent"],
        acked=counts["acked"],
        refused=counts["refused"],
        delivered=counts["delivered"],
        deliveries_per_s=round(counts["delivered"] / elapsed, 1),
        p50_ms=round(_quantile(ordered, 0.50), 2),
        p99_ms=round(_quantile(ordered, 0.99), 2),
        max_ms=round(ordered[-1], 2) if ordered else 0.0,
        pg_writes_per_s=round((after["writes"] - before["writes"]) / elapsed, 1),
        pg_commits_per_s=round((after["commits"] - before["commits"]) / elapsed, 1),
        tracking_inserted=int(after["t_ins"] or 0) - int(before["t_ins"] or 0),
        tracking_updated=int(after["t_upd"] or 0) - int(before["t_upd"] or 0),
    )
    if out is not None:
        _write(out, result)
    return result


def _write(out: Path, result: MarketBenchResult) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"bench": "market_tracking", "result": asdict(result)}, indent=2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench_market",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--gateway-url", default="ws://127.0.0.1:8765/ws")
    parser.add_argument("--orders", type=int, default=5000, help="orders in transit")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sending")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between positions")
    parser.add_argument("--out", type=Path, default=None, help="results JSON")
    args = parser.parse_args(argv)
    dsn, secret = os.environ.get("DATABASE_URL"), os.environ.get("SWITCHBOARD_SECRET")
    if not dsn or not secret:
        raise SystemExit("DATABASE_URL and SWITCHBOARD_SECRET must be set (the gateway's)")

    def say(message: str) -> None:
        print(f"[bench_market] {message}", file=sys.stderr, flush=True)

    result = asyncio.run(
        bench(
            dsn,
            args.gateway_url,
            secret,
            orders=args.orders,
            duration=args.duration,
            interval=args.interval,
            out=args.out,
            say=say,
        )
    )
    print(json.dumps(asdict(result), indent=2))


if __name__ == "__main__":
    main()
