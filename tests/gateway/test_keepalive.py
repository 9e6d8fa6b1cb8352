"""Keepalive pings from one task per process (gateway/keepalive.py): a peer that answers stays
connected round after round; a peer that stops answering is closed with 1011 "keepalive ping
timeout". Driven by a raw RFC 6455 client so the test decides whether pongs are sent."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct

from tests.gateway.conftest import Starter, World
from tests.gateway.harness import token_for

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA
INTERVAL = "0.6"


class RawSocket:
    """A WebSocket client at the frame level (masked client frames, no automatic pongs)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, token: str) -> RawSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def frame(self) -> tuple[int, bytes]:
        first, second = await self.reader.readexactly(2)
        assert not second & 0x80, "server frames are not masked"
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(length)

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        header = bytes([0x80 | opcode])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        else:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)

    def close(self) -> None:
        self.writer.close()


async def test_a_peer_that_answers_pings_stays_connected(
    world: World, start_gateway: Starter, secret: str
) -> None:
    gw = await start_gateway(GATEWAY_PING_INTERVAL=INTERVAL)
    raw = await RawSocket.open(gw.port, token_for(secret, world.member))
    try:
        pings = 0
        async with asyncio.timeout(20):
            while pings < 4:  # four rounds: the timeout would have struck on the second
                opcode, payload = await raw.frame()
                assert opcode != OP_CLOSE, payload
                if opcode == OP_PING:
                    pings += 1
                    raw.send(OP_PONG, payload)
            raw.send(OP_TEXT, json.dumps({"op": "ping", "ref": "alive"}).encode())
            while True:
                opcode, payload = await raw.frame()
                if opcode == OP_PING:
                    raw.send(OP_PONG, payload)
                elif opcode == OP_TEXT and json.loads(payload).get("op") == "pong":
                    break
                else:
                    assert opcode != OP_CLOSE, payload
    finally:
        raw.close()


async def test_a_peer_that_stops_answering_is_closed_1011(
    world: World, start_gateway: Starter, secret: str
) -> None:
    gw = await start_gateway(GATEWAY_PING_INTERVAL=INTERVAL)
    raw = await RawSocket.open(gw.port, token_for(secret, world.member))
    try:
        pings = 0
        async with asyncio.timeout(20):
            while True:
                opcode, payload = await raw.frame()
                if opcode == OP_PING:
                    pings += 1  # never answered
                if opcode == OP_CLOSE:
                    break
        (code,) = struct.unpack("!H", payload[:2])
        assert code == 1011
        assert payload[2:] == b"keepalive ping timeout"
        assert pings == 1  # closed at the round after the unanswered ping
        await gw.logged("event=keepalive_timeout")
    finally:
        raw.close()
