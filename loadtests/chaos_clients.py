"""The clients of a chaos run: senders that retry every message until it is acknowledged (same
client_id, as docs/protocol.md §11 says), receivers that record every `msg` and resume with
`since`, churners that connect, chat and leave over and over, and a REST reader. Each keeps
exact records (acked ids, received seqs) so the run can account for every message."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from kernel.tokens import sign_access_token

Frame = dict[str, Any]
LOST = (ConnectionError, ConnectionClosed, OSError, InvalidHandshake, TimeoutError)
REPLY_TIMEOUT = 20.0  # an ack later than this counts as a lost socket (reconnect, resend)


@dataclass
class Tally:
    """What every client of the run saw, with run-relative times (seconds)."""

    started: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    errors: Counter[str] = field(default_factory=Counter)  # error codes received
    closes: Counter[str] = field(default_factory=Counter)  # closes we did not ask for
    acks: list[tuple[float, float]] = field(default_factory=list)  # (sent at, seconds to ack)
    events: list[tuple[float, str]] = field(default_factory=list)  # (at, "reconnect" | ...)
    connects: int = 0
    rest: Counter[str] = field(default_factory=Counter)  # REST reader: status -> count

    def now(self) -> float:
        return asyncio.get_running_loop().time() - self.started

    def note(self, kind: str) -> None:
        self.events.append((self.now(), kind))


@dataclass
class Identity:
    user: str
    token: str


def identity(secret: str, user: str, ttl: int) -> Identity:
    return Identity(user, sign_access_token(secret, user, "analyst", ttl))


class Link:
    """One authenticated socket: replies matched by `ref`, `msg` frames to `on_msg`, every
    error frame and every close we did not ask for counted in the tally."""

    def __init__(
        self, ws: ClientConnection, tally: Tally, on_msg: Callable[[Frame], None] | None
    ) -> None:
        self.ws = ws
        self.tally = tally
        self.on_msg = on_msg or (lambda _f: None)
        self._ref = 0
        self._pending: dict[int, asyncio.Future[Frame]] = {}
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closing = False
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, url: str, who: Identity, tally: Tally, on_msg: Callable[[Frame], None] | None = None
    ) -> Link:
        ws = await connect(
            f"{url}?token={who.token}",
            compression=None,
            open_timeout=5,
            close_timeout=2,
            max_size=2**22,
        )
        link = cls(ws, tally, on_msg)
        try:
            await asyncio.wait_for(asyncio.shield(link._ready), 10)
        except BaseException:
            await link.close()
            raise
        tally.connects += 1
        return link

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                frame: Frame = msgspec.json.decode(data)
                op = frame.get("op")
                if op == "msg":
                    self.on_msg(frame)
                    continue
                if op == "error":
                    self.tally.errors[str(frame.get("code"))] += 1
                ref = frame.get("ref")
                if isinstance(ref, int) and op in ("ok", "error", "pong"):
                    future = self._pending.pop(ref, None)
                    if future is not None and not future.done():
                        future.set_result(frame)
                elif op == "ok" and frame.get("role") == "self" and not self._ready.done():
                    self._ready.set_result(None)
        except ConnectionClosed:
            pass
        finally:
            if not self._closing:
                rcvd = self.ws.protocol.close_rcvd
                code = str(rcvd.code) if rcvd is not None else "none (dropped)"
                # Before the session is ready (welcome and user stream) is a refused
                # connect, e.g. 1011 while Postgres is away (protocol §14.7): told apart.
                ready = self._ready
                ok = ready.done() and not ready.cancelled() and ready.exception() is None
                at = "" if ok else "at connect "
                self.tally.closes[at + code] += 1
            lost = ConnectionError(f"socket closed ({self.ws.close_code})")
            waiting: list[asyncio.Future[Any]] = [self._ready, *self._pending.values()]
            for waiter in waiting:
                if not waiter.done():
                    waiter.set_exception(lost)
            if self._ready.done() and not self._ready.cancelled():
                self._ready.exception()  # retrieved: no "never retrieved" warning
            self._pending.clear()

    async def call(self, op: str, timeout: float = REPLY_TIMEOUT, **fields: Any) -> Frame:
        """Send a frame and wait for its ok/error. Raises one of LOST when the socket dies
        or no reply comes within `timeout` (the socket is then closed)."""
        self._ref += 1
        ref = self._ref
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[ref] = future
        await self.ws.send(msgspec.json.encode({"op": op, "ref": ref, **fields}).decode())
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            await self.close()
            raise

    async def close(self) -> None:
        self._closing = True
        with contextlib.suppress(Exception):
            await self.ws.close()
        with contextlib.suppress(Exception):
            await self._reader


async def open_any(
    urls: Sequence[str], who: Identity, tally: Tally, on_msg: Callable[[Frame], None] | None
) -> Link:
    """A socket on the first of `urls` that takes it, else ConnectionError."""
    error: BaseException | None = None
    for url in urls:
        try:
            return await Link.open(url, who, tally, on_msg)
        except LOST as exc:
            error = exc
    raise ConnectionError(f"no gateway took the socket: {error!r}")


class Backoff:
    def __init__(self, first: float = 0.2, most: float = 2.0) -> None:
        self.first, self.most, self.next = first, most, first

    async def wait(self) -> None:
        await asyncio.sleep(self.next * random.uniform(0.8, 1.2))
        self.next = min(self.most, self.next * 2)

    def reset(self) -> None:
        self.next = self.first


class Sender:
    """Sends numbered messages into one room at `rate` per second, each retried until it is
    acknowledged: after `unavailable` (waiting `retry_after_ms`) and after a lost socket (on
    a new socket, perhaps another gateway). Any other refusal is final and recorded. With
    `churn`, the socket is closed on purpose after that many messages and a new one opened
    (connection churn); `who` then rotates through the identities given."""

    def __init__(
        self,
        name: str,
        channel: str,
        who: Sequence[Identity],
        urls: Callable[[], Sequence[str]],
        tally: Tally,
        rate: float,
        churn: int = 0,
    ) -> None:
        self.name = name
        self.channel = channel
        self.who = list(who)
        self.urls = urls
        self.tally = tally
        self.interval = 1.0 / rate
        self.churn = churn
        self.link: Link | None = None
        self.acked: dict[str, str] = {}  # client_id -> message id
        self.refused: dict[str, str] = {}  # client_id -> final error code
        self.answered_duplicate = 0  # retries answered `duplicate: true` (expected)
        self.retries = 0
        self._on_link = 0
        self._turn = 0

    async def run(self, stop: asyncio.Event) -> None:
        number = 0
        try:
            while not stop.is_set():
                await self._deliver(f"{self.name}-{number}")
                number += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval * random.uniform(0.5, 1.5))
        finally:
            if self.link is not None:
                await self.link.close()

    async def _connect(self) -> Link:
        backoff = Backoff()
        while True:
            who = self.who[self._turn % len(self.who)]
            self._turn += 1
            try:
                link = await open_any(self.urls(), who, self.tally, None)
                reply = await link.call("join", channel=self.channel)
                if reply["op"] == "ok":
                    return link
                await link.close()
            except LOST:
                pass
            await backoff.wait()

    async def _deliver(self, client_id: str) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff(0.1, 1.0)
        first = True
        while True:
            if self.link is None:
                self.link = await self._connect()
                self._on_link = 0
                if not first:
                    self.tally.note("reconnect")
            if not first:
                self.retries += 1
            first = False
            started = loop.time()
            try:
                reply = await self.link.call(
                    "send", channel=self.channel, text=client_id, client_id=client_id
                )
            except LOST:
                self.link = None
                continue
            if reply["op"] == "ok":
                self.acked[client_id] = reply["id"]
                self.answered_duplicate += bool(reply.get("duplicate"))
                self.tally.acks.append((started - self.tally.started, loop.time() - started))
                self._on_link += 1
                if self.churn and self._on_link >= self.churn:
                    await self.link.close()
                    self.link = None
                return
            code = str(reply.get("code"))
            self.tally.note(f"refused:{code}")
            if code != "unavailable":
                self.refused[client_id] = code
                return
            await asyncio.sleep(min(int(reply.get("retry_after_ms") or 100), 1000) / 1000)
            await backoff.wait()


class Receiver:
    """A member of one room for the whole run: records each `msg`'s seq and id, counts a
    repeated seq as a duplicate and a skipped one as a gap, and when its socket is lost
    joins again with `since` = the highest seq it has."""

    def __init__(
        self,
        name: str,
        channel: str,
        who: Identity,
        urls: Callable[[], Sequence[str]],
        tally: Tally,
    ) -> None:
        self.name = name
        self.channel = channel
        self.who = who
        self.urls = urls
        self.tally = tally
        self.last = 0
        self.ids: dict[int, str] = {}
        self.duplicates = 0
        self.gaps = 0  # times a seq arrived above last + 1
        self.reconnects = 0
        self.progress = asyncio.Event()
        self.joined = asyncio.Event()

    def _on_msg(self, frame: Frame) -> None:
        if frame.get("channel") != self.channel:
            return
        seq = int(frame["seq"])
        if seq in self.ids:
            self.duplicates += 1
            return
        if seq > self.last + 1:
            self.gaps += 1
        self.ids[seq] = str(frame["id"])
        self.last = max(self.last, seq)
        self.progress.set()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff()
        link: Link | None = None
        try:
            while not stop.is_set():
                try:
                    link = await open_any(self.urls(), self.who, self.tally, self._on_msg)
                    since = {"since": self.last} if self.joined.is_set() else {}
                    reply = await link.call("join", channel=self.channel, **since)
                except LOST:
                    link = None
                    await backoff.wait()
                    continue
                if reply["op"] != "ok":
                    await link.close()
                    await backoff.wait()
                    continue
                if self.joined.is_set():
                    self.reconnects += 1
                    self.tally.note("reconnect")
                self.joined.set()
                backoff.reset()
                closed = asyncio.ensure_future(link.ws.wait_closed())
                halt = asyncio.ensure_future(stop.wait())
                await asyncio.wait([closed, halt], return_when=asyncio.FIRST_COMPLETED)
                halt.cancel()
                closed.cancel()
        finally:
            if link is not None:
                await link.close()

    async def reach(self, seq: int, timeout: float) -> bool:
        """Wait until every seq up to `seq` arrived; False after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.ids) < seq or self.last < seq:
            self.progress.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.progress.wait(), remaining)
        return True


class RestReader:
    """Reads a room's newest messages through the api every `every` seconds and counts the
    answers by status, so the api's behaviour under each fault is on record."""

    def __init__(self, api_url: str, channel_id: str, who: Identity, tally: Tally) -> None:
        self.url = f"{api_url}/v1/analyst/channels/{channel_id}/messages"
        self.headers = {"Authorization": f"Bearer {who.token}"}
        self.tally = tally

    async def run(self, stop: asyncio.Event, every: float = 2.0) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout, headers=self.headers) as http:
            while not stop.is_set():
                try:
                    async with http.get(self.url, params={"limit": "5"}) as reply:
                        await reply.read()
                        self.tally.rest[str(reply.status)] += 1
                except (aiohttp.ClientError, TimeoutError):
                    self.tally.rest["no answer"] += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every)

    async def all_ids(self) -> dict[int, str]:
        """Every stored message of the room, paged through the api (seq -> id)."""
        found: dict[int, str] = {}
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout, headers=self.headers) as http:
            after = 0
            while True:
                params = {"after_seq": str(after), "limit": "100"}
                async with http.get(self.url, params=params) as reply:
                    reply.raise_for_status()
                    page = await reply.json()
                for item in page["items"]:
                    found[int(item["seq"])] = str(item["id"])
                    after = max(after, int(item["seq"]))
                if not page["has_more"]:
                    return found
