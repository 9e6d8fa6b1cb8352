"""Clients that keep a room busy while a fault is injected, and the checks made afterwards.

A Sender sends numbered messages one after another, each with its own client_id, and
retries one until it is acknowledged: after `unavailable`, and after a lost socket (on a
new socket, possibly on another gateway), as docs/protocol.md §11 tells clients to. A
Receiver records every `msg` of the room and, when its socket is lost, reconnects and
resumes with `since` (§7.3). Progress is awaited as conditions, not sleeps.
"""

from __future__ import annotations

import asyncio
import statistics
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.gateway.harness import GatewayProcess, WsClient, token_for

Opener = Callable[[], Awaitable[WsClient]]
LOST = (ConnectionError, ConnectionClosed, OSError, InvalidHandshake, TimeoutError)


def opener(gateways: Sequence[GatewayProcess], secret: str, user: object) -> Opener:
    """Open an authenticated socket on the first of `gateways` that takes it."""

    async def open_() -> WsClient:
        error: BaseException | None = None
        for gateway in gateways:
            if gateway.proc is None or gateway.proc.returncode is not None:
                continue
            try:
                client = await WsClient.open(gateway.url, token_for(secret, str(user)))
                await client.expect("welcome", timeout=5)
                await client.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
                return client
            except LOST as exc:
                error = exc
        raise ConnectionError(f"no gateway took the socket: {error!r}")

    return open_


class Progress:
    """A counter that can be awaited: `await until(lambda: ...)`."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()

    async def changed(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def until(self, test: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(test)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}") from None


class Sender(Progress):
    def __init__(self, name: str, channel: str, open_: Opener) -> None:
        super().__init__()
        self.name = name
        self.channel = channel
        self._open = open_
        self.client: WsClient | None = None
        self.acked: dict[str, str] = {}  # client_id -> message id
        self.latencies: list[tuple[float, float]] = []  # (loop time sent, seconds to ack)
        self.refused: Counter[str] = Counter()  # error codes met (each retried)
        self.reconnects = 0
        self.stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"sender-{self.name}")

    async def stop(self) -> None:
        """Finish the send in flight (until acknowledged), then stop."""
        self.stopping.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, 60)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self.client is not None:
            await self.client.close()

    async def _run(self) -> None:
        number = 0
        try:
            while not self.stopping.is_set():
                await self._send_until_acked(f"{self.name}-{number}")
                number += 1
        finally:
            await self.changed()  # wake whoever waits: a failure is raised to them

    async def _send_until_acked(self, client_id: str) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.client is None:
                try:
                    client = await self._open()
                    await client.ok("join", channel=self.channel)
                except LOST:
                    await asyncio.sleep(0.2)
                    continue
                self.client = client
            started = loop.time()
            try:
                ref = await self.client.send(
                    "send", channel=self.channel, text=client_id, client_id=client_id
                )
                reply = await self.client.reply(ref, timeout=20)
            except LOST:
                self.client = None
                self.reconnects += 1
                continue
            if reply["op"] == "ok":
                self.acked[client_id] = reply["id"]
                self.latencies.append((started, loop.time() - started))
                await self.changed()
                return
            self.refused[reply["code"]] += 1
            await self.changed()
            assert reply["code"] == "unavailable", reply
            await asyncio.sleep(min(reply.get("retry_after_ms") or 100, 250) / 1000)

    async def acks(self, count: int, timeout: float = 30) -> None:
        task = self._task
        assert task is not None
        await self.until(
            lambda: len(self.acked) >= count or task.done(), timeout, f"{count} acks of {self.name}"
        )
        if task.done():
            task.result()  # the sender failed: say why
            raise AssertionError(f"{self.name} stopped at {len(self.acked)} acks")

    def latencies_since(self, start: float, end: float | None = None) -> list[float]:
        return [s for at, s in self.latencies if at >= start and (end is None or at < end)]


class Receiver(Progress):
    def __init__(self, name: str, channel: str, open_: Opener) -> None:
        super().__init__()
        self.name = name
        self.channel = channel
        self._open = open_
        self.client: WsClient | None = None
        self.seqs: list[int] = []
        self.ids: list[str] = []
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._connect(None)
        self._task = asyncio.create_task(self._pump(), name=f"receiver-{self.name}")

    async def _connect(self, since: int | None) -> None:
        client = await self._open()
        fields: dict[str, Any] = {"since": since} if since is not None else {}
        await client.ok("join", channel=self.channel, **fields)
        self.client = client

    async def _pump(self) -> None:
        while True:
            assert self.client is not None
            try:
                frame = await self.client.expect("msg", timeout=3600)
            except ConnectionError:
                self.reconnects += 1
                while True:
                    try:
                        await self._connect(self.seqs[-1] if self.seqs else 0)
                        break
                    except LOST:
                        await asyncio.sleep(0.2)
                continue
            self.seqs.append(frame["seq"])
            self.ids.append(frame["id"])
            await self.changed()

    async def seq(self, seq: int, timeout: float = 30) -> None:
        await self.until(
            lambda: bool(self.seqs) and max(self.seqs) >= seq, timeout, f"{self.name} at {seq}"
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.client is not None:
            await self.client.close()


async def check_delivery(
    db: asyncpg.Connection,
    channel_id: object,
    senders: Sequence[Sender],
    receivers: Sequence[Receiver],
    timeout: float = 30,
) -> int:
    """No acknowledged message lost, none duplicated: what is stored is exactly what was
    acknowledged (one row per client_id), and every receiver got every stored message once,
    in seq order, without a gap. Returns the number of messages."""
    rows = await db.fetch(
        "SELECT seq, id::text, client_id FROM analyst.chat_messages"
        " WHERE channel_id = $1 ORDER BY seq",
        channel_id,
    )
    stored = {r["client_id"]: r["id"] for r in rows}
    assert len(stored) == len(rows), "a client_id was stored twice"
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    acked = {cid: mid for s in senders for cid, mid in s.acked.items()}
    assert acked == stored, "stored and acknowledged messages differ"
    last = len(rows)
    ids = [r["id"] for r in rows]
    for receiver in receivers:
        await receiver.seq(last, timeout)
        assert receiver.seqs == list(range(1, last + 1)), (
            f"{receiver.name}: gap or duplicate: {_first_difference(receiver.seqs, last)}"
        )
        assert receiver.ids == ids, f"{receiver.name}: other messages than stored"
    return last


async def live_members(db: asyncpg.Connection, channel: str) -> set[str]:
    """Users with a presence row in `channel`, on any node (swept or not)."""
    rows = await db.fetch("SELECT user_id FROM gateway.live_members WHERE channel = $1", channel)
    return {r["user_id"] for r in rows}


async def eventually(
    probe: Callable[[], Awaitable[Any]], expected: Any, timeout: float, what: str
) -> None:
    """Poll `probe` (a database read or an HTTP GET, which announce nothing) until it
    returns `expected`."""
    value: Any = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = await probe()
                if value == expected:
                    return
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"{what}: still {value!r} after {timeout:g} s") from None


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - http to loopback
        return int(reply.status), reply.read().decode()


async def healthz(gateway: GatewayProcess) -> str:
    """The first line of /healthz (`ok`, `degraded`, `draining`); the status must be 200."""
    status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{gateway.port}/healthz")
    assert status == 200, (status, body)
    return body.splitlines()[0]


async def metric(gateway: GatewayProcess, name: str) -> float:
    _, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{gateway.port}/metrics")
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _first_difference(seqs: list[int], last: int) -> str:
    """Where a receiver's seqs first differ from 1..last, with what came around it."""
    for i, seq in enumerate(seqs):
        if seq != i + 1:
            return f"position {i}: expected {i + 1}, got {seqs[max(0, i - 3) : i + 4]}"
    return f"{len(seqs)} received of {last}"
