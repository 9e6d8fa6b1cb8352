"""Streaming benchmark of the aichat realm (an asyncio harness, not a test): `--conversations`
assistant conversations stream their replies at once through gateway process(es) on a
throwaway database, from an OpenAI-compatible stand-in provider run by this harness, as
loadtests/bench_gateway.py does for chat rooms.

Each conversation's user has one socket in it and sends `--rounds` prompts, one after the
other (the next once the previous reply is committed); all conversations run at once. The
stand-in answers every prompt with `--chunks` SSE chunks `--chunk-ms` apart (then the usage),
and notes when it wrote each reply's first chunk. Measured:

- first-token latency added by the gateway: from the stand-in writing a reply's first chunk
  to the user's socket receiving its first `delta` (p50, p99, max), i.e. the adapter, the
  publish and the socket write, without the provider's own think time;
- send-to-first-token (the user's `send` to the first `delta`) and send-to-committed (to the
  assistant's committed `msg`), p50/p99;
- deltas per second over the streaming phase, and how many replies were committed whole.

    python -m loadtests.bench_aichat --conversations 500 --rounds 3 --chunks 20 --chunk-ms 20
    python -m loadtests.bench_aichat --conversations 5 --rounds 1 --chunks 3   # smoke size

The stand-in and the clients share this process's event loop; at the large sizes run it on
a machine with a core to spare for it. Results: loadtests/results/aichat-streaming.json (for
docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from kernel.tokens import sign_access_token
from loadtests.bench_gateway import HOST, RESULTS, Stack, machine, percentile, say
from loadtests.seed_aichat import AichatSeedConfig, seed
from loadtests.wsclient import BenchSocket, open_socket

MODEL = "bench-standin-1"
_TAG = re.compile(r"\[b:(\d+):(\d+)\]")
_decode = msgspec.json.decode


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class StreamingProvider:
    """An OpenAI Chat Completions streaming stand-in: every request gets `chunks` content
    chunks `interval` seconds apart, a finish chunk, the usage and [DONE]. `first_sent`
    maps a prompt's tag (conversation, round) to the monotonic time of its first chunk."""

    def __init__(self, chunks: int, interval: float) -> None:
        self.chunks = chunks
        self.interval = interval
        self.port = _free_port()
        self.first_sent: dict[tuple[int, int], float] = {}
        self.requests = 0
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, self.port, backlog=4096).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests += 1
        prompt = str(body["messages"][-1]["content"])
        found = _TAG.search(prompt)
        tag = (int(found.group(1)), int(found.group(2))) if found else (-1, self.requests)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        def chunk(content: str) -> bytes:
            delta = {"choices": [{"index": 0, "delta": {"content": content}}], "model": MODEL}
            return b"data: " + json.dumps(delta).encode() + b"\n\n"

        for i in range(self.chunks):
            if i == 0:
                self.first_sent[tag] = time.monotonic()
            elif self.interval:
                await asyncio.sleep(self.interval)
            await response.write(chunk(f" word{i}"))
        finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "model": MODEL}
        usage = {
            "prompt_tokens": 20,
            "completion_tokens": self.chunks,
            "total_tokens": 20 + self.chunks,
        }
        last = {"choices": [], "usage": usage, "model": MODEL}
        await response.write(
            b"data: " + json.dumps(finish).encode() + b"\n\n"
            b"data: " + json.dumps(last).encode() + b"\n\ndata: [DONE]\n\n"
        )
        return response


@dataclass
class Round:
    sent_at: float = 0.0
    first_delta_at: float | None = None
    committed_at: float | None = None
    deltas: int = 0
    partial: bool = False


class Conversation:
    """One user's socket in one conversation; records each round's stream."""

    def __init__(self, index: int, channel: str, token: str) -> None:
        self.index = index
        self.channel = channel
        self.token = token
        self.sock: BenchSocket | None = None
        self.rounds: list[Round] = []
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.committed: asyncio.Event = asyncio.Event()
        self.deltas = 0

    def on_message(self, payload: bytes) -> None:
        if payload.startswith(b'{"op":"event"') and b'"kind":"delta"' in payload:
            self.deltas += 1
            current = self.rounds[-1] if self.rounds else None
            if current is not None:
                current.deltas += 1
                if current.first_delta_at is None:
                    current.first_delta_at = time.monotonic()
        elif payload.startswith(b'{"op":"msg"') and b'"role":"assistant"' in payload:
            if self.rounds:
                self.rounds[-1].committed_at = time.monotonic()
                self.rounds[-1].partial = b'"partial":true' in payload
            self.committed.set()
        elif payload.startswith((b'{"op":"ok"', b'{"op":"error"')):
            self.replies.put_nowait(_decode(payload))
        elif b'"kind":"reply_failed"' in payload:
            say(f"conversation {self.index}: reply failed: {payload[:200]!r}")
            self.committed.set()

    async def connect(self, port: int) -> None:
        self.sock = await open_socket(HOST, port, f"/ws?token={self.token}", self.on_message)
        await self.replies.get()  # the automatic user-stream join
        await self.call({"op": "join", "channel": self.channel, "ref": 1})

    async def call(self, frame: dict[str, Any]) -> dict[str, Any]:
        assert self.sock is not None
        self.sock.send_text(msgspec.json.encode(frame))
        reply = await self.replies.get()
        if reply.get("op") != "ok":
            raise RuntimeError(f"{frame['op']} refused: {reply}")
        return reply

    async def talk(self, rounds: int, timeout: float) -> None:
        """`rounds` prompts, each after the previous reply is committed."""
        for r in range(rounds):
            self.committed.clear()
            self.rounds.append(Round(sent_at=time.monotonic()))
            await self.call(
                {
                    "op": "send",
                    "channel": self.channel,
                    "text": f"Benchmark prompt [b:{self.index}:{r}]",
                    "ref": 100 + r,
                }
            )
            await asyncio.wait_for(self.committed.wait(), timeout)


@dataclass
class StreamingResult:
    conversations: int
    rounds: int
    chunks: int
    chunk_ms: float
    processes: int
    replies: int
    replies_whole: int
    deltas: int
    deltas_expected: int
    seconds: float
    deltas_per_s: float
    added_first_token_ms: dict[str, float] = field(default_factory=dict)
    send_to_first_token_ms: dict[str, float] = field(default_factory=dict)
    send_to_committed_ms: dict[str, float] = field(default_factory=dict)
    connect_seconds: float = 0.0


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "mean": 0.0}
    ms = [v * 1000 for v in values]
    return {
        "p50": round(percentile(ms, 50), 2),
        "p99": round(percentile(ms, 99), 2),
        "max": round(max(ms), 2),
        "mean": round(statistics.fmean(ms), 2),
    }


async def bench(
    base_dsn: str,
    conversations: int,
    rounds: int,
    chunks: int,
    chunk_ms: float,
    processes: int,
    out: Path | None,
    timeout: float = 120.0,
) -> StreamingResult:
    """Run one streaming measurement on its own database, stand-in and gateway(s)."""
    provider = StreamingProvider(chunks, chunk_ms / 1000)
    await provider.start()
    stack = Stack(base_dsn)
    try:
        conn = await stack.database()
        report = await seed(
            conn, AichatSeedConfig(users=conversations, conversations=1, history=0), None
        )
        # The stand-in is no real provider: its ai_providers row's request limits (openai: 500
        # a minute) would refuse most of the measured sends (realms/aichat/providers/limits.py).
        await conn.execute(
            "UPDATE aichat.ai_providers SET requests_per_minute = NULL, requests_per_day = NULL"
        )
        rows = await conn.fetch(
            "SELECT c.id, c.user_id FROM aichat.conversations c JOIN aichat.users u"
            " ON u.id = c.user_id WHERE u.email LIKE 'lt-' || $1 || '-%' ORDER BY c.id",
            report.tag,
        )
        await conn.close()
        if processes > 1:
            await stack.redis()
        ports = [
            await stack.gateway(
                SWITCHBOARD_REALMS="aichat",
                AICHAT_OPENAI_BASE_URL=provider.base_url,
            )
            for _ in range(processes)
        ]
        talkers = [
            Conversation(
                i,
                f"aichat.conv:{r['id']}",
                sign_access_token(stack.secret, str(r["user_id"]), "aichat", 3600),
            )
            for i, r in enumerate(rows)
        ]
        started = time.monotonic()
        gate = asyncio.Semaphore(200)

        async def connect(c: Conversation) -> None:
            async with gate:
                await c.connect(ports[c.index % len(ports)])

        await asyncio.gather(*(connect(c) for c in talkers))
        connect_seconds = time.monotonic() - started
        say(f"{len(talkers)} conversations joined in {connect_seconds:.1f} s")

        started = time.monotonic()
        await asyncio.gather(*(c.talk(rounds, timeout) for c in talkers))
        seconds = time.monotonic() - started
        done = [(c, r, i) for c in talkers for i, r in enumerate(c.rounds)]
        added = [
            r.first_delta_at - provider.first_sent[(c.index, i)]
            for c, r, i in done
            if r.first_delta_at is not None and (c.index, i) in provider.first_sent
        ]
        first = [r.first_delta_at - r.sent_at for _, r, _ in done if r.first_delta_at]
        whole = [r.committed_at - r.sent_at for _, r, _ in done if r.committed_at]
        deltas = sum(c.deltas for c in talkers)
        result = StreamingResult(
            conversations=len(talkers),
            rounds=rounds,
            chunks=chunks,
            chunk_ms=chunk_ms,
            processes=processes,
            replies=len(whole),
            replies_whole=sum(
                1 for _, r, _ in done if r.committed_at and not r.partial and r.deltas == chunks
            ),
            deltas=deltas,
            deltas_expected=len(talkers) * rounds * chunks,
            seconds=round(seconds, 3),
            deltas_per_s=round(deltas / seconds, 1) if seconds else 0.0,
            added_first_token_ms=_summary(added),
            send_to_first_token_ms=_summary(first),
            send_to_committed_ms=_summary(whole),
            connect_seconds=round(connect_seconds, 2),
        )
        say(
            f"{result.replies}/{len(talkers) * rounds} replies ({result.replies_whole} whole),"
            f" {deltas}/{result.deltas_expected} deltas in {seconds:.2f} s:"
            f" {result.deltas_per_s:,.0f} deltas/s; first token added by the gateway"
            f" p50 {result.added_first_token_ms['p50']} ms,"
            f" p99 {result.added_first_token_ms['p99']} ms"
        )
        for c in talkers:
            if c.sock is not None:
                c.sock.close()
    finally:
        await stack.close()
        await provider.stop()
    if out is not None:
        write_results(out, result)
    return result


def write_results(out: Path, result: StreamingResult) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": "aichat-streaming", "machine": machine(), **asdict(result)}
    out.write_text(json.dumps(data, indent=2))
    say(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench_aichat",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--conversations", type=int, default=500, help="default 500")
    parser.add_argument("--rounds", type=int, default=3, help="prompts each (default 3)")
    parser.add_argument("--chunks", type=int, default=20, help="chunks a reply (default 20)")
    parser.add_argument("--chunk-ms", type=float, default=20, help="between chunks (default 20)")
    parser.add_argument("--processes", type=int, default=1, help="gateway processes (default 1)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "aichat-streaming.json", help="results JSON"
    )
    args = parser.parse_args(argv)
    if args.conversations < 1 or args.rounds < 1 or args.chunks < 1 or args.chunk_ms < 0:
        parser.error("--conversations, --rounds and --chunks must be positive")
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
            args.conversations,
            args.rounds,
            args.chunks,
            args.chunk_ms,
            args.processes,
            args.out,
        )
    )


if __name__ == "__main__":
    main()
