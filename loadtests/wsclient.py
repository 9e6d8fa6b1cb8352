"""A minimal asyncio WebSocket client for benchmarks: handshake, masked text frames out,
frame headers parsed in, nothing else. It costs far less per frame than a full client, so
the gateway, not the load generator, is what gets measured."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable

_ZERO_MASK = b"\x00\x00\x00\x00"  # a valid mask key that leaves the payload unchanged


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return header + _ZERO_MASK + payload


def frame_header(buf: bytearray, pos: int) -> tuple[int, int, int, bool] | None:
    """The frame header at `pos`: (first byte, payload start, payload length, masked), or
    None while it is incomplete. A masked frame's key is the 4 bytes before the payload."""
    size = len(buf)
    if size - pos < 2:
        return None
    b0, b1 = buf[pos], buf[pos + 1]
    n = b1 & 0x7F
    start = pos + 2
    if n == 126:
        if size - pos < 4:
            return None
        n = (buf[pos + 2] << 8) | buf[pos + 3]
        start = pos + 4
    elif n == 127:
        if size - pos < 10:
            return None
        n = struct.unpack_from("!Q", buf, pos + 2)[0]
        start = pos + 10
    masked = bool(b1 & 0x80)  # servers do not mask, but a masked frame is still well formed
    return b0, start + 4 if masked else start, n, masked


class BenchSocket(asyncio.Protocol):
    """One socket. `on_message(payload)` is called for every text/binary frame received."""

    def __init__(
        self, path: str, host: str, on_message: Callable[[bytes], None] | None = None
    ) -> None:
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n\r\n"
        ).encode()
        self.on_message = on_message or (lambda _p: None)
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._upgraded = False
        self.counting: bytes | None = None  # set by count_only()
        self.counted = 0
        self.on_count: Callable[[int], None] = lambda _n: None
        self._tail = b""

    def count_only(self, marker: bytes, on_count: Callable[[int], None]) -> None:
        """From now on, only count occurrences of `marker` in what arrives (C speed), so a
        benchmark client can keep up with a server delivering hundreds of thousands of frames
        per second. Frames are no longer parsed or answered."""
        self.counting = marker
        self.on_count = on_count

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        transport.write(self._request)  # type: ignore[attr-defined]  # a write transport

    def send_text(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(client_frame(payload))

    def data_received(self, data: bytes) -> None:
        if self.counting is not None:
            chunk = self._tail + data
            found = chunk.count(self.counting)
            # Keep a tail shorter than the marker, so a marker split across reads counts once.
            self._tail = chunk[-(len(self.counting) - 1) :]
            if found:
                self.counted += found
                self.on_count(self.counted)
            return
        buf = self._buffer
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:12])
            del buf[: end + 4]
            if b" 101" not in status:
                if not self.opened.done():
                    self.opened.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            self._upgraded = True
            self.opened.set_result(None)
        pos = 0
        size = len(buf)
        while (header := frame_header(buf, pos)) is not None:
            b0, start, n, _masked = header
            end = start + n
            if end > size:
                break
            opcode = b0 & 0x0F
            if opcode in (1, 2):
                self.on_message(bytes(buf[start:end]))
            elif opcode == 9 and self.transport is not None:  # ping -> pong
                self.transport.write(client_frame(bytes(buf[start:end]), 0xA))
            elif opcode == 8:
                code = struct.unpack_from("!H", buf, start)[0] if n >= 2 else None
                if not self.closed.done():
                    self.closed.set_result(code)
                if self.transport is not None:
                    self.transport.close()
            pos = end
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_socket(
    host: str, port: int, path: str, on_message: Callable[[bytes], None] | None = None
) -> BenchSocket:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(
        lambda: BenchSocket(path, f"{host}:{port}", on_message), host, port
    )
    await proto.opened
    return proto
