"""The rogue client of a chaos run: a member of a busy room who sends the protocol's hostile
frames (malformed, deeply nested, oversized, NUL in text, refs past 2**53, floods, forged
tokens) and records what each one got back, against what docs/protocol.md promises."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from kernel.tokens import sign_access_token
from loadtests.chaos_clients import LOST, Identity

DEPTH = 30_000  # nesting of about 60 KB: under the 64 KiB frame limit, past any recursion limit


def attacks(channel: str) -> dict[str, tuple[str | bytes, str]]:
    """name -> (frame, the documented outcome: `error <code>` or `close <code>`)."""
    nested = "[" * DEPTH + "]" * DEPTH
    return {
        "invalid JSON": ("{not json", "error bad_request"),
        "unknown op": ('{"op":"explode","ref":1}', "error bad_request"),
        "JSON nested 30,000 deep": ('{"op":"ping","ref":' + nested + "}", "error bad_request"),
        "ref 2**70 (JSON)": ('{"op":"ping","ref":' + str(2**70) + "}", "error bad_request"),
        "ref 2**64-1 (msgpack)": (
            b"\x82\xa2op\xa4ping\xa3ref\xcf" + (2**64 - 1).to_bytes(8, "big"),
            "error bad_request",
        ),
        "msgpack nested 50,000 deep": (
            b"\x82\xa2op\xa4ping\xa3ref" + b"\x91" * 50_000 + b"\xc0",
            "error bad_request",
        ),
        "NUL in text": (
            msgspec.json.encode(
                {"op": "send", "ref": 2, "channel": channel, "text": "a\u0000b", "client_id": "r"}
            ).decode(),
            "error bad_request",
        ),
        "frame of 70 KB": ('{"op":"ping","ref":3,"pad":"' + "x" * 70_000 + '"}', "error too_large"),
        "frame of 1.1 MB": ("x" * 1_100_000, "close 1009"),
        "300 frames at once": ("", "close 1008"),
    }


@dataclass
class Rogue:
    """Runs every attack once per `round` on the gateways `urls()` lists (one per round,
    in turn). Outcomes: attack -> outcome -> count; `unexpected` lists what differed from
    the promise. A gateway that cannot be reached (a fault is on) is counted, not judged."""

    channel: str
    who: Identity
    urls: Callable[[], Sequence[str]]
    secret: str
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    unreachable: int = 0
    rounds: int = 0

    def _record(self, attack: str, outcome: str, promised: str) -> None:
        self.outcomes.setdefault(attack, Counter())[outcome] += 1
        if outcome != promised:
            self.unexpected.append(f"{attack}: {outcome} (promised {promised})")

    async def _open(self, url: str) -> ClientConnection:
        ws = await connect(
            f"{url}?token={self.who.token}", compression=None, open_timeout=5, max_size=2**22
        )
        for _ in range(2):  # welcome, then the user stream's ok
            await asyncio.wait_for(ws.recv(), 10)
        join = {"op": "join", "ref": 9, "channel": self.channel}
        await ws.send(msgspec.json.encode(join).decode())
        reply = msgspec.json.decode(await asyncio.wait_for(_reply(ws, 9), 10))
        if reply.get("op") != "ok":
            await ws.close()
            raise ConnectionError(f"rogue join refused: {reply}")
        return ws

    async def round(self) -> None:
        urls = list(self.urls())
        if not urls:
            self.unreachable += 1
            return
        url = urls[self.rounds % len(urls)]
        self.rounds += 1
        try:
            ws = await self._open(url)
        except LOST:
            self.unreachable += 1
            return
        try:
            for attack, (frame, promised) in attacks(self.channel).items():
                try:
                    outcome = await self._attack(ws, frame, attack)
                except LOST:
                    self.unreachable += 1  # the gateway went away mid-round
                    return
                self._record(attack, outcome, promised)
                if outcome.startswith("close"):
                    ws = await self._open(url)
            await self._forged(url)
        except LOST:
            self.unreachable += 1
        finally:
            with contextlib.suppress(Exception):
                await ws.close()

    async def _attack(self, ws: ClientConnection, frame: str | bytes, attack: str) -> str:
        try:
            if attack == "300 frames at once":
                for i in range(300):
                    await ws.send(f'{{"op":"ping","ref":{100 + i}}}')
            else:
                await ws.send(frame)
            while True:
                data = await asyncio.wait_for(ws.recv(), 30)  # a loaded machine is slow, not wrong
                reply = msgspec.json.decode(data)
                if attack == "300 frames at once":
                    continue  # pongs and rate_limited errors, until the close
                if reply.get("op") == "error":
                    return f"error {reply.get('code')}"
        except ConnectionClosed as closed:
            if closed.rcvd is None:  # dropped without a close frame: the process went away
                raise ConnectionError("dropped") from closed
            return f"close {closed.rcvd.code}"
        except TimeoutError:
            return "no answer"

    async def _forged(self, url: str) -> None:
        forged = sign_access_token("y" * 48, self.who.user, "analyst", 600)
        try:
            async with connect(f"{url}?token={forged}", open_timeout=5) as ws:
                async for _ in ws:
                    pass
            outcome = f"close {ws.close_code}"
        except ConnectionClosed as closed:
            outcome = f"close {closed.rcvd.code if closed.rcvd else 'none'}"
        self._record("token signed with another key", outcome, "close 4001")

    async def run(self, stop: asyncio.Event, every: float) -> None:
        while not stop.is_set():
            await self.round()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)


async def _reply(ws: ClientConnection, ref: int) -> str | bytes:
    while True:
        data = await ws.recv()
        if f'"ref":{ref}'.encode() in (data if isinstance(data, bytes) else data.encode()):
            return data
