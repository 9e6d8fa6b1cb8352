"""Chaos and soak runs: a stack of its own (Postgres, Redis, two gateways, api, worker, under
var/chaos/ on free ports), chat traffic from asyncio clients that account for every message,
faults on a schedule, and a report in docs/reliability.md with a memory plot in docs/img/.

    python -m loadtests.chaos --minutes 10 --out docs/reliability.md        # chaos
    python -m loadtests.chaos --soak --minutes 30 --out docs/reliability.md # churn, no faults

Faults (`--faults`, in turn every `--fault-every` seconds): gateway-kill (kill -9 one gateway,
start it again 3 s later), redis-pause (SIGSTOP for 8 s), redis-kill (kill -9, back after
5 s), postgres-restart (an operator's fast stop, 5 s down), hostile (a burst of hostile
frames; a rogue client also sends them every 15 s throughout a chaos run). The exit status
is 1 when an acknowledged message was lost or duplicated, or a promise was broken.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shlex
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

from loadtests.chaos_accounting import Room, account, broken_promises
from loadtests.chaos_clients import (
    Identity,
    Receiver,
    RestReader,
    Sender,
    Tally,
    identity,
)
from loadtests.chaos_report import section, svg_plot, write_section
from loadtests.chaos_rogue import Rogue, attacks
from loadtests.chaos_stack import ROOT, MemorySample, Stack, sample_memory

FAULTS = ("gateway-kill", "redis-pause", "postgres-restart", "redis-kill", "hostile")


def say(message: str) -> None:
    print(f"[chaos] {message}", file=sys.stderr, flush=True)


@dataclass
class Plan:
    mode: str  # "chaos" | "soak"
    minutes: float
    rooms: int
    senders: int  # per room
    receivers: int  # per room
    rate: float  # messages per second per sender
    churners: int  # connect-chat-leave clients in all
    churn_messages: int
    faults: list[str]
    fault_every: float
    sample_every: float
    workdir: Path
    out: Path | None
    json_path: Path | None
    command: str

    @property
    def seconds(self) -> float:
        return self.minutes * 60


@dataclass
class Fault:
    kind: str
    target: str
    at: float
    until: float = 0.0


async def seed(dsn: str, plan: Plan) -> tuple[list[str], list[str]]:
    """An analyst, a chat tier, the rooms (a chat limit no sender reaches: the limiter still
    runs) and every user subscribed; returns (channel ids, user ids)."""
    users = plan.rooms * (plan.senders + plan.receivers) + plan.churners * 2 + 1
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            analyst = await conn.fetchval(
                "INSERT INTO analyst.users (email, password_hash, user_type)"
                " VALUES ('chaos-analyst@example.com', 'x', 'analyst') RETURNING id"
            )
            await conn.execute(
                "INSERT INTO analyst.analyst_profiles (user_id, display_name)"
                " VALUES ($1, 'Chaos Analyst')",
                analyst,
            )
            tier = await conn.fetchval(
                "INSERT INTO analyst.subscription_tiers (analyst_id, tier_name, price_monthly,"
                " chat_access) VALUES ($1, 'Pro', 99900, true) RETURNING id",
                analyst,
            )
            rows = await conn.fetch(
                "INSERT INTO analyst.users (email, password_hash, user_type)"
                " SELECT 'chaos-' || g || '@example.com', 'x', 'trader'"
                " FROM generate_series(1, $1) g RETURNING id",
                users,
            )
            members = [str(r["id"]) for r in rows]
            await conn.execute(
                "INSERT INTO analyst.subscriptions (user_id, analyst_id, tier_id, status,"
                " billing_cycle, start_date, expires_at) SELECT u::uuid, $1, $2, 'active',"
                " 'monthly', now(), now() + interval '30 days' FROM unnest($3::text[]) u",
                analyst,
                tier,
                members,
            )
            channels = await conn.fetch(
                "INSERT INTO analyst.chat_channels (analyst_id, channel_name, channel_type,"
                " message_rate_limit) SELECT $1, 'chaos ' || g, 'community', 1000000"
                " FROM generate_series(1, $2) g RETURNING id",
                analyst,
                plan.rooms,
            )
    finally:
        await conn.close()
    return [str(r["id"]) for r in channels], members


class Run:
    """One run: the stack, the clients, the fault schedule, the memory sampler, and the
    accounting at the end."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.secret = secrets.token_urlsafe(48)
        ttl = int(plan.seconds) + 1800
        self.stack = Stack(
            plan.workdir,
            self.secret,
            gateways=2,
            # Tokens that outlive the run: no refresh dance in the soak.
            env={"ACCESS_TOKEN_TTL": "900", "ACCESS_TOKEN_MAX_TTL": str(ttl + 600)},
        )
        self.token_ttl = ttl
        self.rooms: list[Room] = []
        self.churners: list[Sender] = []
        self.rogue: Rogue | None = None
        self.faults: list[Fault] = []
        self.memory: list[MemorySample] = []
        self.tally: Tally | None = None
        self._kills = 0
        self.background: list[asyncio.Task[None]] = []

    def urls_from(self, home: int) -> Callable[[], Sequence[str]]:
        """The gateways in preference order, starting at `home` (running ones first)."""
        count = len(self.stack.gateway)

        def urls() -> list[str]:
            order = [(home + i) % count for i in range(count)]
            order.sort(key=lambda i: not self.stack.gateway[i].alive)
            return [self.stack.gateway_url(i) for i in order]

        return urls

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self.background.append(task)
        return task

    async def stop(self) -> None:
        """Cancel every client, then stop the stack: after a run, or when it is cut short."""
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.stack.close()

    async def execute(self) -> dict[str, Any]:
        plan = self.plan
        stack = self.stack
        started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        await stack.start(say)
        assert stack.postgres is not None
        channel_ids, users = await seed(stack.postgres.dsn, plan)
        tally = self.tally = Tally()
        who = [identity(self.secret, u, self.token_ttl) for u in users]
        pool = iter(who)
        for r, channel_id in enumerate(channel_ids):
            name = f"community:{channel_id}"
            receivers = [
                Receiver(f"r{r}.{i}", name, next(pool), self.urls_from(r + i), tally)
                for i in range(plan.receivers)
            ]
            reader = RestReader(stack.api_url, channel_id, receivers[0].who, tally)
            room = Room(channel_id, reader, receivers=receivers)
            room.senders = [
                Sender(
                    f"s{r}.{i}",
                    room.name,
                    [next(pool)],
                    self.urls_from(r + i + 1),
                    tally,
                    plan.rate,
                )
                for i in range(plan.senders)
            ]
            self.rooms.append(room)
        for c in range(plan.churners):
            room = self.rooms[c % len(self.rooms)]
            self.churners.append(
                Sender(
                    f"c{c}",
                    room.name,
                    [next(pool), next(pool)],
                    self.urls_from(c),
                    tally,
                    rate=2.0,
                    churn=plan.churn_messages,
                )
            )
        rogue_who: Identity = next(pool)
        if plan.mode == "chaos":
            self.rogue = Rogue(self.rooms[0].name, rogue_who, self.urls_from(0), self.secret)

        receiving = asyncio.Event()
        listening = [self._spawn(rc.run(receiving)) for room in self.rooms for rc in room.receivers]
        async with asyncio.timeout(60):
            for room in self.rooms:
                for rc in room.receivers:
                    await rc.joined.wait()
        say(
            f"traffic: {plan.rooms} rooms x ({plan.senders} senders at {plan.rate:g}/s,"
            f" {plan.receivers} receivers), {plan.churners} churners;"
            f" {plan.minutes:g} min; faults: {', '.join(plan.faults) or 'none'}"
        )
        sending = asyncio.Event()
        tasks = [
            *(self._spawn(s.run(sending)) for room in self.rooms for s in room.senders),
            *(self._spawn(c.run(sending)) for c in self.churners),
            *(self._spawn(room.reader.run(sending)) for room in self.rooms),
        ]
        if self.rogue is not None:
            tasks.append(self._spawn(self.rogue.run(sending, every=15)))
        sampler = self._spawn(self._sample(receiving))
        progress = self._spawn(self._progress(sending))
        try:
            await self._schedule()
        finally:
            sending.set()
        say("traffic stopped; finishing the sends in flight")
        done, pending = await asyncio.wait(tasks, timeout=120)
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        if pending:
            say(f"{len(pending)} clients did not finish their last send in 120 s")
        progress.cancel()
        accounting = await account(stack.postgres.dsn, self.rooms, self.churners, tally)
        receiving.set()
        await asyncio.gather(*listening, return_exceptions=True)
        sampler.cancel()
        await asyncio.gather(sampler, progress, return_exceptions=True)
        return self._result(started_at, accounting, unfinished=len(pending))

    async def _schedule(self) -> None:
        plan = self.plan
        assert self.tally is not None
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + plan.seconds
        turn = 0
        while True:
            # Fault k at k x fault_every (or when fault k-1 is over), none in the last half
            # interval: the run ends with traffic that is not disturbed.
            next_at = max(start + (turn + 1) * plan.fault_every, loop.time())
            if not plan.faults or next_at + plan.fault_every / 2 > end:
                await asyncio.sleep(max(0.0, end - loop.time()))
                return
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            kind = plan.faults[turn % len(plan.faults)]
            turn += 1
            await self._inject(kind)

    async def _inject(self, kind: str) -> None:
        stack, tally = self.stack, self.tally
        assert tally is not None and stack.redis is not None and stack.postgres is not None
        target = {"postgres-restart": "postgres", "hostile": "gateways"}.get(kind, "redis")
        if kind == "gateway-kill":
            gateway = stack.gateway[self._kills % len(stack.gateway)]
            self._kills += 1
            target = gateway.name
        fault = Fault(kind, target, tally.now())
        self.faults.append(fault)
        say(f"t={fault.at:.0f}s fault: {kind} ({target})")
        if kind == "gateway-kill":
            await gateway.kill()
            await asyncio.sleep(3)
            await gateway.start()
        elif kind == "redis-pause":
            stack.redis.signal(signal.SIGSTOP)
            await asyncio.sleep(8)
            stack.redis.signal(signal.SIGCONT)
        elif kind == "redis-kill":
            await stack.redis.kill()
            await asyncio.sleep(5)
            await stack.redis.start()
        elif kind == "postgres-restart":
            await asyncio.to_thread(stack.postgres.stop, "fast")
            try:
                await asyncio.sleep(5)
            finally:
                await asyncio.to_thread(stack.postgres.start)
        elif kind == "hostile":
            assert self.rogue is not None
            await asyncio.gather(*(self.rogue.round() for _ in range(len(stack.gateway) * 2)))
        fault.until = tally.now()
        say(f"t={fault.until:.0f}s recovered from {kind} ({fault.until - fault.at:.1f}s)")

    async def _sample(self, stop: asyncio.Event) -> None:
        assert self.tally is not None
        while not stop.is_set():
            self.memory.append(sample_memory(self.stack, self.tally.now()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.plan.sample_every)

    async def _progress(self, stop: asyncio.Event) -> None:
        tally = self.tally
        assert tally is not None
        last = 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 15)
            acks = len(tally.acks)
            mem = self.memory[-1].kib if self.memory else {}
            rss = " ".join(f"{k}={v // 1024}M" for k, v in sorted(mem.items()))
            say(
                f"t={tally.now():.0f}s acks={acks:,} (+{(acks - last) / 15:.0f}/s)"
                f" reconnects={sum(k == 'reconnect' for _, k in tally.events):,}"
                f" sockets={tally.connects:,} errors={dict(tally.errors)} {rss}"
            )
            last = acks

    def _result(self, started_at: str, a: dict[str, Any], unfinished: int) -> dict[str, Any]:
        plan, tally = self.plan, self.tally
        assert tally is not None
        failures = broken_promises(a, tally, unfinished)
        hostile: dict[str, Any] = {}
        rogue: dict[str, Any] = {"rounds": 0, "unreachable": 0, "unexpected": []}
        if self.rogue is not None:
            promised = {k: v[1] for k, v in attacks("").items()}
            promised["token signed with another key"] = "close 4001"
            hostile = {
                k: {"outcomes": dict(v), "promised": promised[k]}
                for k, v in self.rogue.outcomes.items()
            }
            rogue = {
                "rounds": self.rogue.rounds,
                "unreachable": self.rogue.unreachable,
                "unexpected": self.rogue.unexpected,
            }
            if self.rogue.unexpected:
                failures.append(f"{len(self.rogue.unexpected)} hostile frames not as promised")
        load = (
            f"{plan.rooms} rooms, each with {plan.senders} senders (about {plan.rate:g} messages"
            f" per second each, every message retried until acknowledged) and {plan.receivers}"
            f" receivers (resuming with `since` after any lost socket)"
        )
        if plan.churners:
            load += (
                f"; {plan.churners} churners that connect, join, send {plan.churn_messages}"
                " messages and disconnect, over and over"
            )
        load += "; two gateway processes over Redis, the api, the worker."
        return {
            "mode": plan.mode,
            "started_at": started_at,
            "machine": f"{os.cpu_count()} cores, {platform.system()} {platform.release()}",
            "minutes": plan.minutes,
            "command": plan.command,
            "load": load,
            "passed": not failures,
            "failures": failures,
            "accounting": a,
            "errors": dict(tally.errors),
            "closes": dict(tally.closes),
            "rest": dict(tally.rest),
            "faults": [asdict(f) for f in self.faults],
            "hostile": hostile,
            "rogue": rogue,
            "acks": [[round(at, 3), round(lat, 4)] for at, lat in tally.acks],
            "events": [[round(at, 3), kind] for at, kind in tally.events],
            "memory": [asdict(m) for m in self.memory],
            "sample_every": plan.sample_every,
            "warmup": min(120.0, plan.seconds / 10),
        }


def publish(result: dict[str, Any], plan: Plan) -> None:
    """The JSON next to the stack's logs (and at --json), the section in --out, the plot."""
    (plan.workdir / f"result-{plan.mode}.json").write_text(json.dumps(result))
    if plan.json_path is not None:
        plan.json_path.write_text(json.dumps(result))
    if plan.out is None:
        return
    image = plan.out.parent / "img" / f"{plan.mode}-memory.svg"
    image.parent.mkdir(parents=True, exist_ok=True)
    title = f"{plan.mode}: memory per process, {plan.minutes:g} min"
    image.write_text(svg_plot(result, title))
    write_section(plan.out, plan.mode, section(result, os.path.relpath(image, plan.out.parent)))
    say(f"wrote {plan.out} and {image}")


def parse(argv: Sequence[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.chaos",
        description=(
            "Chaos (faults on a schedule) or soak (connection churn, no faults) run against a"
            " stack of its own under --workdir; accounts for every acknowledged message and"
            " samples each process's memory; exit status 1 when a promise was broken."
        ),
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="traffic time (default 5)")
    parser.add_argument(
        "--soak", action="store_true", help="connection churn and no faults, for memory growth"
    )
    parser.add_argument("--out", type=Path, help="markdown page to write the report into")
    parser.add_argument("--json", type=Path, help="also write the raw result here")
    parser.add_argument(
        "--workdir", type=Path, help="state and logs of the stack (default var/chaos/<mode>)"
    )
    parser.add_argument("--rooms", type=int, default=4)
    parser.add_argument("--senders", type=int, default=2, help="per room (default 2)")
    parser.add_argument("--receivers", type=int, default=3, help="per room (default 3)")
    parser.add_argument("--rate", type=float, default=4.0, help="messages/s per sender")
    parser.add_argument(
        "--churners", type=int, help="connect-chat-leave clients (default: soak 20, chaos 4)"
    )
    parser.add_argument("--churn-messages", type=int, default=3, help="messages per connection")
    parser.add_argument(
        "--faults",
        default=",".join(FAULTS),
        help=f"comma-separated, injected in turn (default {','.join(FAULTS)}; soak: none)",
    )
    parser.add_argument("--fault-every", type=float, default=40.0, help="seconds (default 40)")
    parser.add_argument("--sample-every", type=float, help="memory sample seconds (5; soak 10)")
    args = parser.parse_args(argv)
    faults = [] if args.soak else [f for f in args.faults.split(",") if f]
    if min(args.rooms, args.senders, args.receivers) < 1 or args.rate <= 0:
        parser.error("--rooms, --senders and --receivers must be at least 1, --rate above 0")
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    shown = ["python", "-m", "loadtests.chaos", *(sys.argv[1:] if argv is None else argv)]
    mode = "soak" if args.soak else "chaos"
    return Plan(
        mode=mode,
        minutes=args.minutes,
        rooms=args.rooms,
        senders=args.senders,
        receivers=args.receivers,
        rate=args.rate,
        churners=args.churners if args.churners is not None else (20 if args.soak else 4),
        churn_messages=args.churn_messages,
        faults=faults,
        fault_every=args.fault_every,
        sample_every=args.sample_every or (10.0 if args.soak else 5.0),
        workdir=(args.workdir or ROOT / "var" / "chaos" / mode).resolve(),
        out=args.out,
        json_path=args.json,
        command=shlex.join(shown),
    )


async def main_async(plan: Plan) -> dict[str, Any]:
    """The run; SIGTERM (like Ctrl-C) cuts it short, and the stack is stopped either way."""
    run = Run(plan)
    me = asyncio.current_task()
    assert me is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, me.cancel)
    try:
        result = await run.execute()
    finally:
        say("stopping the stack")
        await run.stop()
    publish(result, plan)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse(argv)
    try:
        result = asyncio.run(main_async(plan))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted; the stack is stopped")
        return 130
    a = result["accounting"]
    say(
        f"acked={a['acked']:,} stored={a['stored']:,} delivered={a['delivered']:,}/{a['owed']:,}"
        f" lost={a['lost_acked']} duplicates={a['duplicates_delivered']} gaps={a['gaps']}"
    )
    say("PASS" if result["passed"] else "FAIL: " + "; ".join(result["failures"]))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
