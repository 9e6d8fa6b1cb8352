"""A socket.io client (Engine.IO v4 over WebSocket only) on the raw benchmark socket of
`loadtests.wsclient`, so the peers are driven by the same cheap client as Switchboard.

The little of the protocol that the race needs:

    GET /socket.io/?EIO=4&transport=websocket      the WebSocket handshake, no polling first
    <- 0{"sid":...,"pingInterval":...}             Engine.IO open
    -> 40                   <- 40{"sid":...}       Socket.IO connect to the main namespace
    -> 42<id>["join",room]  <- 43<id>[{...}]       an event with an acknowledgement
    -> 42["send",{...}]     <- 42["msg",{...}]     events, one per WebSocket frame
    <- 2                    -> 3                   Engine.IO ping / pong
"""

from __future__ import annotations

import asyncio
import time

import msgspec

from loadtests.wsclient import BenchSocket, open_socket

PATH = "/socket.io/?EIO=4&transport=websocket"
MSG = b'42["msg"'  # how every broadcast message frame starts: what the counting mode counts


class SioMember:
    """One socket.io socket: counts `msg` events and records send-to-receive latencies,
    with the same fields and callbacks as `loadtests.bench_gateway.Member`."""

    marker = MSG

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.sock: BenchSocket | None = None
        self.received = 0
        self.latencies: list[float] = []
        self.record_latency = False
        self.all_in: asyncio.Future[None] | None = None
        self.expected = 0
        self._open: asyncio.Future[bytes] = loop.create_future()
        self._connected: asyncio.Future[bytes] = loop.create_future()
        self._acks: dict[int, asyncio.Future[bytes]] = {}
        self._next_ack = 0

    # --- what arrives ---

    def on_message(self, payload: bytes) -> None:
        if payload.startswith(MSG):
            self.received += 1
            if self.record_latency:
                text = msgspec.json.decode(payload[2:])[1]["text"]
                self.latencies.append(time.monotonic() - float(text.split(" ", 1)[0]))
            if self.all_in is not None and self.received >= self.expected:
                if not self.all_in.done():
                    self.all_in.set_result(None)
            return
        kind = payload[:1]
        if kind == b"2":  # Engine.IO ping: answer at once
            if self.sock is not None:
                self.sock.send_text(b"3" + payload[1:])
        elif kind == b"0":
            if not self._open.done():
                self._open.set_result(payload[1:])
        elif payload.startswith(b"40"):
            if not self._connected.done():
                self._connected.set_result(payload[2:])
        elif payload.startswith(b"43"):
            end = 2
            while end < len(payload) and payload[end : end + 1].isdigit():
                end += 1
            future = self._acks.pop(int(payload[2:end]), None) if end > 2 else None
            if future is not None and not future.done():
                future.set_result(payload[end:])
        elif payload.startswith(b"44") or kind == b"1":  # connect refused, or closed
            error = ConnectionError(payload.decode(errors="replace"))
            for future in (self._open, self._connected, *self._acks.values()):
                if not future.done():
                    future.set_exception(error)

    def on_count(self, received: int) -> None:
        self.received = received
        if self.all_in is not None and received >= self.expected and not self.all_in.done():
            self.all_in.set_result(None)

    # --- what is sent ---

    async def connect(self, host: str, port: int) -> None:
        self.sock = await open_socket(host, port, PATH, self.on_message)
        await self._open
        self.sock.send_text(b"40")
        await self._connected

    async def emit_with_ack(self, event: str, data: object) -> object:
        assert self.sock is not None
        self._next_ack += 1
        ack = self._next_ack
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._acks[ack] = future
        self.sock.send_text(b"42%d" % ack + msgspec.json.encode([event, data]))
        return msgspec.json.decode(await future)

    async def join(self, room: str) -> None:
        await self.emit_with_ack("join", room)

    def send(self, room: str, text: str) -> None:
        assert self.sock is not None
        self.sock.send_text(b"42" + msgspec.json.encode(["send", {"room": room, "text": text}]))

    def count_only(self) -> None:
        assert self.sock is not None
        self.sock.count_only(self.marker, self.on_count)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
