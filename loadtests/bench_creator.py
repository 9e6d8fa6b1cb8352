"""Live-stream benchmark of the creator realm (an asyncio harness, not a test): one
`creator.live:<id>` stream, `--viewers` viewers, chat at `--rate` messages per second, on a
throwaway database and gateway process(es) on loopback, as loadtests/bench_academy.py does.

The population is loadtests.seed_creator's (one creator hosting one free live stream, the
viewers as age-verified fans); the stream's creator watches from an owner socket. Phases:

1. Join waves: the viewers join in `--waves` equal waves, `--join-concurrency` joins in
   flight. Viewer-count update lag of a wave: from the last join's `ok` to the first `viewers`
   event showing the wave's total at the creator's socket (0 when it came first). Also how
   many `viewers` events the room got during the wave and their intervals (the realm pushes
   the count about once a second, never once per join).
2. Chat: `--chatters` of the viewers send `--rate` messages per second in total, round-robin,
   open loop, for `--duration` seconds. Every delivery to every viewer is timed, send to
   receive (the message's text carries its index; sender and receivers share this process's
   clock): deliveries per second, p50/p99/max over all deliveries, delivered vs expected.
   `--timed-share` below 1 times only that share of the viewers (the chatters always) and
   lets the others only count their deliveries, to spare the load generator's CPU.
3. Leave wave: `--leave-share` of the viewers (never a chatter) close their sockets; the lag
   until the count drops is measured as for a join wave.

    python -m loadtests.bench_creator                      # 2,000 viewers, 200 msg/s, 15 s
    python -m loadtests.bench_creator --viewers 50 --rate 20 --duration 2 --waves 2

Results: loadtests/results/creator-live.json (for docs/benchmarks.md) and a markdown table on
stdout. Receivers find deliveries with a regular expression over the raw bytes (frames are
not decoded): about 1.3 us of the load generator's CPU per timed delivery, 0.4 us per
counted one (measured on this machine), so at full size (400,000 deliveries/s) the load
generator needs most of a core beside the gateway's, and its delays count as latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import re
import resource
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import asyncpg
import msgspec

from kernel.tokens import sign_access_token
from loadtests.bench_gateway import HOST, RESULTS, Stack, machine, rss_kib, say
from loadtests.seed_creator import CreatorSeedConfig, seed
from loadtests.wsclient import BenchSocket

DEFAULT_OUT = RESULTS / "creator-live.json"
# A chat message's text starts with "#<index>#": the receiver finds the send time by it.
_INDEX = re.compile(rb'"text":"#(\d+)#')
_CARRY = 24  # longer than any index match: a match split across two reads is found once
_ERROR = b'{"op":"error"'
_BUCKET_S = 1e-5  # latency histogram resolution: 10 microseconds
_PER_S = round(1 / _BUCKET_S)
_BUCKETS = 1_000_000  # 10 s; the last bucket holds everything slower
COUNT_TIMEOUT_S = 60.0
LINE = "this stream is great, greetings from the load generator"


class Deliveries:
    """Send times by message index, the send-to-receive latency of every timed delivery as a
    histogram (10 us buckets), and the count of the untimed ones, filled by the receiving
    sockets."""

    def __init__(self) -> None:
        self.sent_at: list[float] = []
        self.hist = [0] * _BUCKETS
        self.count = 0  # timed deliveries
        self.untimed = 0
        self.max_s = 0.0
        self.last_at = 0.0
        self.target = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def arrived(self, now: float, found: list[bytes]) -> None:
        """Deliveries of the messages whose indices are `found`, received at `now`."""
        sent_at = self.sent_at
        hist = self.hist
        known = len(sent_at)
        top = _BUCKETS - 1
        counted = 0
        worst = self.max_s
        for raw in found:
            index = int(raw)
            if index < known:
                latency = now - sent_at[index]
                bucket = int(latency * _PER_S)
                if bucket >= top:
                    bucket = top
                elif bucket < 0:
                    bucket = 0
                hist[bucket] += 1
                counted += 1
                if latency > worst:
                    worst = latency
        if not counted:
            return
        self.count += counted
        self.max_s = worst
        self.last_at = now
        if self.count + self.untimed >= self.target > 0 and not self.done.done():
            self.done.set_result(None)

    def counted(self, deliveries: int) -> None:
        """Untimed deliveries just received."""
        self.untimed += deliveries
        self.last_at = time.monotonic()
        if self.count + self.untimed >= self.target > 0 and not self.done.done():
            self.done.set_result(None)

    @property
    def delivered(self) -> int:
        return self.count + self.untimed

    def expect(self, deliveries: int) -> None:
        self.target = deliveries
        if self.delivered >= deliveries and not self.done.done():
            self.done.set_result(None)

    def percentile(self, q: float) -> float:
        """The q-th percentile latency in seconds (upper edge of its bucket); nan if none."""
        if not self.count:
            return math.nan
        rank = max(1, math.ceil(q / 100 * self.count))
        seen = 0
        for bucket, n in enumerate(self.hist):
            seen += n
            if seen >= rank:
                return min((bucket + 1) * _BUCKET_S, self.max_s)
        return self.max_s


class CountWatch:
    """The `viewers` events one socket received, and futures for the first event showing a
    given count."""

    def __init__(self) -> None:
        self.events: list[tuple[float, int, int]] = []  # (monotonic, current, peak)
        self._wanted: dict[int, asyncio.Future[float]] = {}

    def seen(self, at: float, current: int, peak: int) -> None:
        self.events.append((at, current, peak))
        wanted = self._wanted.pop(current, None)
        if wanted is not None and not wanted.done():
            wanted.set_result(at)

    def expect(self, current: int) -> asyncio.Future[float]:
        """A future resolved with the arrival time of the next event showing `current`."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._wanted[current] = future
        return future

    def between(self, start: float, end: float) -> list[float]:
        return [at for at, _, _ in self.events if start <= at <= end]


class LiveSocket(BenchSocket):
    """A benchmark socket. Until `receive_chat` it parses frames: replies go to `replies`,
    `viewers` events to `watch`. After it, it only times chat deliveries from the raw bytes
    (and counts error replies), or, when not `timed`, only counts them (bytes.count)."""

    def __init__(self, path: str, host: str) -> None:
        super().__init__(path, host, self._on_frame)
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()
        self.watch: CountWatch | None = None
        self.clock: Deliveries | None = None
        self.timed = True
        self.counts_errors = False  # set on the sockets that send
        self.errors = 0
        self._counted = 0
        self._carry = b""
        self._error_tail = b""

    def _on_frame(self, payload: bytes) -> None:
        if payload.startswith((b'{"op":"ok"', _ERROR)):
            self.replies.put_nowait(payload)
        elif (
            self.watch is not None
            and payload.startswith(b'{"op":"event"')
            and b'"kind":"viewers"' in payload
        ):
            data = msgspec.json.decode(payload).get("data") or {}
            self.watch.seen(time.monotonic(), int(data["current"]), int(data["peak"]))

    def data_received(self, data: bytes) -> None:
        clock = self.clock
        if clock is None:
            super().data_received(data)
            return
        if self.counts_errors:
            errors = self._error_tail + data
            self.errors += errors.count(_ERROR)
            self._error_tail = errors[-(len(_ERROR) - 1) :]
        if self._carry:
            data = self._carry + data
            self._carry = b""
        found = _INDEX.findall(data)
        if data[-1:] != b"}":  # not a frame's closing brace: keep a tail for the next read
            tail = len(data) - _CARRY
            end = 0
            for match in _INDEX.finditer(data, max(0, tail - _CARRY)):
                end = match.end()
            self._carry = data[max(tail, end, 0) :]
        if found:
            clock.arrived(time.monotonic(), found)

    def receive_chat(self, clock: Deliveries) -> None:
        """From now on only take chat deliveries into `clock` (frames are not parsed)."""
        if self.timed:
            self.clock = clock
            return

        def on_count(received: int) -> None:
            clock.counted(received - self._counted)
            self._counted = received

        self.count_only(b'{"op":"msg"', on_count)

    async def call(self, frame: dict[str, object]) -> dict[str, object]:
        self.send_text(msgspec.json.encode(frame))
        reply: dict[str, object] = msgspec.json.decode(await self.replies.get())
        if reply.get("op") != "ok":
            raise RuntimeError(f"{frame['op']} refused: {reply}")
        return reply


async def open_live_socket(port: int, token: str) -> LiveSocket:
    """A connected socket past its automatic user-stream join."""
    loop = asyncio.get_running_loop()
    _, sock = await loop.create_connection(
        lambda: LiveSocket(f"/ws?token={token}", f"{HOST}:{port}"), HOST, port
    )
    await sock.opened
    await sock.replies.get()
    return sock


@dataclass
class Wave:
    """One join or leave wave."""

    kind: str  # join or leave
    viewers: int  # sockets that joined or left in it
    total: int  # the count the room should show after it
    seconds: float  # first join sent -> last join ok (leave: closing the sockets)
    lag_s: float | None  # last join ok (leave: last close) -> `viewers` event showing total
    events: int  # `viewers` events from the wave's start to the one showing total


@dataclass
class Chat:
    rate: int
    duration_s: float
    chatters: int
    sent: int
    refused: int
    delivered: int
    expected: int
    timed: int  # deliveries whose latency was measured (all of them by default)
    deliveries_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class LiveResult:
    viewers: int
    processes: int
    waves: list[Wave]
    chat: Chat
    leave: Wave | None
    final_current: int  # creator.live_streams.current_viewers at the end
    final_peak: int
    event_interval_median_s: float | None  # between consecutive `viewers` events in a wave
    event_interval_min_s: float | None
    gateway_rss_mib: list[float] = field(default_factory=list)
    lost_sockets: int = 0

    @property
    def join_lags(self) -> list[float]:
        return [w.lag_s for w in self.waves if w.lag_s is not None]


def _token(secret: str) -> Callable[[uuid.UUID | str], str]:
    def token(user_id: uuid.UUID | str) -> str:
        return sign_access_token(secret, str(user_id), "creator", 3600)

    return token


async def _connect(ports: list[int], tokens: list[str], concurrency: int) -> list[LiveSocket]:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> LiveSocket:
        async with gate:
            return await open_live_socket(ports[i % len(ports)], tokens[i])

    return list(await asyncio.gather(*(one(i) for i in range(len(tokens)))))


async def _lag(watch: CountWatch, shown: asyncio.Future[float], last: float) -> float | None:
    with contextlib.suppress(TimeoutError):
        at = await asyncio.wait_for(shown, COUNT_TIMEOUT_S)
        return max(0.0, at - last)
    return None


async def join_wave(
    socks: list[LiveSocket],
    channel: str,
    total: int,
    watch: CountWatch,
    clock: Deliveries,
    concurrency: int,
) -> Wave:
    """Join `socks` to the room (each then only times chat), and wait for the count."""
    shown = watch.expect(total)
    gate = asyncio.Semaphore(concurrency)
    started = time.monotonic()
    last = started

    async def one(sock: LiveSocket) -> None:
        nonlocal last
        async with gate:
            await sock.call({"op": "join", "channel": channel, "ref": 1})
        last = max(last, time.monotonic())
        sock.receive_chat(clock)

    await asyncio.gather(*(one(s) for s in socks))
    lag = await _lag(watch, shown, last)
    end = last + (lag if lag is not None else COUNT_TIMEOUT_S)
    return Wave(
        "join", len(socks), total, round(last - started, 3), lag, len(watch.between(started, end))
    )


async def leave_wave(socks: list[LiveSocket], total: int, watch: CountWatch) -> Wave:
    """Close `socks` (the gateway counts them out), and wait for the count."""
    shown = watch.expect(total)
    started = time.monotonic()
    for sock in socks:
        sock.close()
    last = time.monotonic()
    lag = await _lag(watch, shown, last)
    end = last + (lag if lag is not None else COUNT_TIMEOUT_S)
    return Wave(
        "leave", len(socks), total, round(last - started, 3), lag, len(watch.between(started, end))
    )


async def chat(
    chatters: list[LiveSocket],
    channel: str,
    rate: int,
    duration: float,
    receivers: int,
    clock: Deliveries,
) -> Chat:
    """Open loop: one message every 1/rate seconds for `duration`, round-robin over the
    chatters; then wait until every viewer has every message (or give up, reported)."""
    total = max(1, round(rate * duration))
    for sock in chatters:
        sock.counts_errors = True
    started = time.monotonic()
    for sent in range(total):
        delay = started + sent / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sock = chatters[sent % len(chatters)]
        clock.sent_at.append(time.monotonic())
        sock.send_text(
            msgspec.json.encode(
                {"op": "send", "channel": channel, "text": f"#{sent}# {LINE}", "ref": sent + 2}
            )
        )
    clock.expect(total * receivers)
    with contextlib.suppress(TimeoutError):  # a shortfall is reported, not hidden
        await asyncio.wait_for(asyncio.shield(clock.done), 10 + duration)
    refused = sum(s.errors for s in chatters)
    expected = (total - refused) * receivers
    seconds = clock.last_at - clock.sent_at[0] if clock.delivered else math.nan
    return Chat(
        rate=rate,
        duration_s=duration,
        chatters=len(chatters),
        sent=total,
        refused=refused,
        delivered=clock.delivered,
        expected=expected,
        timed=clock.count,
        deliveries_per_s=round(clock.delivered / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=round(clock.percentile(50) * 1000, 2),
        p99_ms=round(clock.percentile(99) * 1000, 2),
        max_ms=round(clock.max_s * 1000, 2),
    )


def _intervals(watch: CountWatch, waves: list[tuple[float, float]]) -> list[float]:
    """Gaps between consecutive `viewers` events inside each wave's window."""
    gaps: list[float] = []
    for start, end in waves:
        times = watch.between(start, end)
        gaps += [b - a for a, b in itertools.pairwise(times)]
    return gaps


async def measure(
    stack: Stack,
    conn: asyncpg.Connection,
    ports: list[int],
    viewers: int,
    waves: int,
    chatters: int,
    rate: int,
    duration: float,
    leave_share: float,
    join_concurrency: int,
    timed_share: float,
) -> LiveResult:
    report = await seed(
        conn,
        CreatorSeedConfig(
            fans=viewers,
            creators=1,
            follows=0,
            subscribed=0,
            messages=0,
            premium_every=0,
            streams=1,
            hot_share=1.0,
        ),
        None,
    )
    (stream,) = report.streams
    fans = [
        r["id"]
        for r in await conn.fetch(
            "SELECT id FROM creator.users WHERE account_type = 'fan' AND username LIKE $1"
            " ORDER BY id",
            f"lt\\_{report.tag}\\_f%",
        )
    ]
    token = _token(stack.secret)
    (owner,) = await _connect(ports[:1], [token(stream.creator_id)], 1)
    watch = CountWatch()
    owner.watch = watch
    await owner.call({"op": "join", "channel": stream.channel, "ref": 1})
    started = time.monotonic()
    socks = await _connect(ports, [token(f) for f in fans], 200)
    say(f"{len(socks)} viewers connected in {time.monotonic() - started:.1f} s")

    talking = socks[: max(1, min(chatters, len(socks)))]
    for sock in socks[max(len(talking), math.ceil(timed_share * len(socks))) :]:
        sock.timed = False  # counts its deliveries only
    clock = Deliveries()
    done: list[Wave] = []
    windows: list[tuple[float, float]] = []
    size = math.ceil(len(socks) / waves)
    for first in range(0, len(socks), size):
        began = time.monotonic()
        wave = await join_wave(
            socks[first : first + size],
            stream.channel,
            min(first + size, len(socks)),
            watch,
            clock,
            join_concurrency,
        )
        windows.append((began, time.monotonic()))
        done.append(wave)
        say(
            f"wave {len(done)}: {wave.viewers} joined in {wave.seconds:.2f} s; count"
            f" {wave.total} shown after {_ms(wave.lag_s)}; {wave.events} viewers events"
        )
    rss = [round(rss_kib(proc.pid) / 1024, 1) for proc, _ in stack.gateways]

    result_chat = await chat(talking, stream.channel, rate, duration, len(socks), clock)
    say(
        f"chat {rate}/s for {duration:g} s: {result_chat.delivered:,}/{result_chat.expected:,}"
        f" delivered, {result_chat.deliveries_per_s:,.0f}/s, p50 {result_chat.p50_ms} ms,"
        f" p99 {result_chat.p99_ms} ms"
    )

    quiet = socks[len(talking) :]
    leaving = quiet[len(quiet) - min(len(quiet), int(len(socks) * leave_share)) :]
    leave: Wave | None = None
    if leaving:
        began = time.monotonic()
        leave = await leave_wave(leaving, len(socks) - len(leaving), watch)
        windows.append((began, time.monotonic()))
        say(f"leave: {leave.viewers} left; count {leave.total} shown after {_ms(leave.lag_s)}")
    left = {id(s) for s in leaving}
    lost = sum(1 for s in socks if id(s) not in left and s.closed.done())
    gaps = _intervals(watch, windows)
    row = await conn.fetchrow(
        "SELECT current_viewers, peak_viewers FROM creator.live_streams WHERE id = $1", stream.id
    )
    for sock in [owner, *socks]:
        sock.close()
    return LiveResult(
        viewers=len(socks),
        processes=len(ports),
        waves=done,
        chat=result_chat,
        leave=leave,
        final_current=int(row["current_viewers"]),
        final_peak=int(row["peak_viewers"]),
        event_interval_median_s=round(statistics.median(gaps), 3) if gaps else None,
        event_interval_min_s=round(min(gaps), 3) if gaps else None,
        gateway_rss_mib=rss,
        lost_sockets=lost,
    )


def _ms(seconds: float | None) -> str:
    return "never (timed out)" if seconds is None else f"{seconds * 1000:,.0f} ms"


def table(result: LiveResult) -> str:
    """The result as markdown, for docs/benchmarks.md."""
    c = result.chat
    lags = result.join_lags
    timed = "every delivery" if c.timed == c.delivered else f"{c.timed:,} timed deliveries"
    lines = [
        "| metric | value |",
        "|---|---:|",
        f"| viewers in one stream | {result.viewers:,} ({len(result.waves)} join waves,"
        f" {result.processes} gateway process{'es' if result.processes > 1 else ''}) |",
        f"| chat offered | {c.rate} msg/s for {c.duration_s:g} s from {c.chatters} viewers"
        f" ({c.sent:,} sent, {c.refused} refused) |",
        f"| deliveries | {c.delivered:,} of {c.expected:,} |",
        f"| deliveries/s | {c.deliveries_per_s:,.0f} |",
        f"| send→receive p50 / p99 / max ({timed}) | {c.p50_ms} / {c.p99_ms} / {c.max_ms} ms |",
        "| viewer-count lag after a join wave, median / max | "
        + (
            f"{statistics.median(lags) * 1000:,.0f} / {max(lags) * 1000:,.0f} ms |"
            if lags
            else "never (timed out) |"
        ),
    ]
    if result.leave is not None:
        lines.append(f"| viewer-count lag after the leave wave | {_ms(result.leave.lag_s)} |")
    if result.event_interval_median_s is not None:
        lines.append(
            f"| `viewers` events while the count moves: median / min interval |"
            f" {result.event_interval_median_s * 1000:,.0f} /"
            f" {(result.event_interval_min_s or 0) * 1000:,.0f} ms |"
        )
    lines += [
        f"| final count / peak (live_streams) | {result.final_current:,} / {result.final_peak:,} |",
        "| gateway RSS after the joins | "
        + ", ".join(f"{m} MiB" for m in result.gateway_rss_mib)
        + " |",
        f"| sockets lost | {result.lost_sockets} |",
        "",
        "| wave | viewers | count shown | join/close s | `viewers` events | lag |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for i, w in enumerate([*result.waves, *([result.leave] if result.leave else [])], 1):
        lines.append(
            f"| {i} {w.kind} | {w.viewers:,} | {w.total:,} | {w.seconds:.2f} | {w.events} |"
            f" {_ms(w.lag_s)} |"
        )
    return "\n".join(lines)


def write_results(out: Path, result: LiveResult) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": "creator-live", "machine": machine(), **asdict(result)}
    out.write_text(json.dumps(data, indent=2))
    say(f"wrote {out}")


async def bench(
    base_dsn: str,
    *,
    viewers: int = 2000,
    waves: int = 4,
    chatters: int = 100,
    rate: int = 200,
    duration: float = 15,
    leave_share: float = 0.25,
    processes: int = 1,
    join_concurrency: int = 100,
    timed_share: float = 1.0,
    out: Path | None = DEFAULT_OUT,
) -> LiveResult:
    """Build the stack (database, Redis when processes > 1, gateways serving the creator
    realm), measure, tear it down; write `out` (None: no file)."""
    stack = Stack(base_dsn)
    try:
        conn = await stack.database()
        try:
            if processes > 1:
                await stack.redis()
            ports = [
                await stack.gateway(SWITCHBOARD_REALMS="creator", GATEWAY_PING_INTERVAL="3600")
                for _ in range(processes)
            ]
            result = await measure(
                stack,
                conn,
                ports,
                viewers,
                waves,
                chatters,
                rate,
                duration,
                leave_share,
                join_concurrency,
                timed_share,
            )
        finally:
            await conn.close()
    finally:
        await stack.close()
    if out is not None:
        write_results(out, result)
    return result


def main(argv: list[str] | None = None) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench_creator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--viewers", type=int, default=2000, help="default 2000")
    parser.add_argument("--waves", type=int, default=4, help="join waves (default 4)")
    parser.add_argument("--chatters", type=int, default=100, help="viewers who chat (default 100)")
    parser.add_argument("--rate", type=int, default=200, help="chat msg/s in all (default 200)")
    parser.add_argument("--duration", type=float, default=15, help="chat seconds (default 15)")
    parser.add_argument(
        "--leave-share", type=float, default=0.25, help="viewers who leave at the end (0.25)"
    )
    parser.add_argument("--processes", type=int, default=1, help="gateway processes (default 1)")
    parser.add_argument(
        "--join-concurrency", type=int, default=100, help="joins in flight (default 100)"
    )
    parser.add_argument(
        "--timed-share",
        type=float,
        default=1.0,
        help="share of the viewers timing every delivery; the others only count (default 1)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON")
    args = parser.parse_args(argv)
    if min(args.viewers, args.waves, args.chatters, args.rate, args.processes) < 1:
        parser.error("--viewers, --waves, --chatters, --rate and --processes must be positive")
    if args.duration <= 0 or not 0 <= args.leave_share < 1 or args.join_concurrency < 1:
        parser.error("--duration > 0, 0 <= --leave-share < 1, --join-concurrency >= 1")
    if not 0 <= args.timed_share <= 1:
        parser.error("--timed-share must be between 0 and 1")
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        raise SystemExit("DATABASE_URL is not set (use `make bench`'s database)")
    try:
        from uvloop import run
    except ImportError:
        from asyncio import run  # type: ignore[assignment]
    result = run(
        bench(
            dsn,
            viewers=args.viewers,
            waves=args.waves,
            chatters=args.chatters,
            rate=args.rate,
            duration=args.duration,
            leave_share=args.leave_share,
            processes=args.processes,
            join_concurrency=args.join_concurrency,
            timed_share=args.timed_share,
            out=args.out,
        )
    )
    print(table(result))


if __name__ == "__main__":
    main()
