"""The fan-out bus between gateway processes: in-process (no REDIS_URL) or Redis pub/sub.

What travels is an envelope: 8-byte sequence number (0 for unsequenced events), 8-byte
publish time, then the already-encoded JSON frame. It is built once per message and
delivered to every process subscribed to the channel's topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis

from kernel.logs import EventLog

log = EventLog("gateway.bus")
_HEADER = struct.Struct(">Qd")
Handler = Callable[[str, int, float, bytes], None]


def envelope(seq: int, payload: bytes) -> bytes:
    return _HEADER.pack(seq, time.time()) + payload


def open_envelope(data: bytes) -> tuple[int, float, bytes]:
    seq, sent_at = _HEADER.unpack_from(data)
    return seq, sent_at, data[_HEADER.size :]


class Bus(Protocol):
    """Topics are channel names. `handler(channel, seq, sent_at, payload)` runs in the loop."""

    async def start(self, handler: Handler) -> None: ...
    async def close(self) -> None: ...
    async def subscribe(self, channel: str) -> None: ...
    async def unsubscribe(self, channel: str) -> None: ...
    async def publish(self, channel: str, seq: int, payload: bytes) -> None: ...
    async def publish_many(self, items: list[tuple[str, int, bytes]]) -> None: ...


class LocalBus:
    """Delivers within this process only: one gateway process, no Redis."""

    def __init__(self) -> None:
        self._handler: Handler | None = None

    async def start(self, handler: Handler) -> None:
        self._handler = handler

    async def close(self) -> None:
        self._handler = None

    async def subscribe(self, channel: str) -> None:
        return None

    async def unsubscribe(self, channel: str) -> None:
        return None

    async def publish(self, channel: str, seq: int, payload: bytes) -> None:
        if self._handler is not None:
            self._handler(channel, seq, time.time(), payload)

    async def publish_many(self, items: list[tuple[str, int, bytes]]) -> None:
        for channel, seq, payload in items:
            await self.publish(channel, seq, payload)


class RedisBus:
    """Redis pub/sub, one topic per channel that has local members (`sb:ch:<channel>`)."""

    PREFIX = "sb:ch:"

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._pubsub = client.pubsub()
        self._reader: asyncio.Task[None] | None = None
        self._handler: Handler | None = None

    async def start(self, handler: Handler) -> None:
        self._handler = handler
        # Always subscribed to one topic, so the reader never sees an idle pubsub.
        await self._pubsub.subscribe("sb:node")
        self._reader = asyncio.create_task(self._read(), name="redis-bus-reader")

    async def _read(self) -> None:
        prefix = len(self.PREFIX)
        while True:
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=None
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("bus_read_failed", error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            if message is None or message["type"] != "message" or self._handler is None:
                continue
            topic = message["channel"]
            name = (topic.decode() if isinstance(topic, bytes) else topic)[prefix:]
            seq, sent_at, payload = open_envelope(message["data"])
            try:
                self._handler(name, seq, sent_at, payload)
            except Exception:
                log.exception("bus_handler_failed", channel=name)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()

    async def subscribe(self, channel: str) -> None:
        await self._pubsub.subscribe(self.PREFIX + channel)

    async def unsubscribe(self, channel: str) -> None:
        await self._pubsub.unsubscribe(self.PREFIX + channel)

    async def publish(self, channel: str, seq: int, payload: bytes) -> None:
        await self._client.publish(self.PREFIX + channel, envelope(seq, payload))

    async def publish_many(self, items: list[tuple[str, int, bytes]]) -> None:
        """All of a commit batch's publishes in one Redis round trip."""
        async with self._client.pipeline(transaction=False) as pipe:
            for channel, seq, payload in items:
                pipe.publish(self.PREFIX + channel, envelope(seq, payload))
            await pipe.execute()
