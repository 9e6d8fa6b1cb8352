"""Fakes for driving gateway.fanout.Hub directly: committed rows and a socket to write to."""

from __future__ import annotations

from websockets.protocol import State


class Rows:
    """A SequenceSource over a list of committed payloads."""

    def __init__(self) -> None:
        self.rows: list[bytes] = []

    async def last_seq(self, channel: str) -> int:
        return len(self.rows)

    async def after(self, channel: str, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        return [(i + 1, r) for i, r in enumerate(self.rows)][after_seq : after_seq + limit]


class FakeSocket:
    """What the hub writes to: a transport and a protocol in the OPEN state."""

    def __init__(self) -> None:
        self.state = State.OPEN
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return 0
