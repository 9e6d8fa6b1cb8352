"""Replies of one socket in the order its frames arrived, while its sends run concurrently:
a socket may pipeline sends (read the next frame while earlier commits are in flight) and
still get its acks in order. At most `limit` replies wait at once; past that the socket is
not read (backpressure reaches the client through TCP).

An idle socket holds no task and no queue here: the writer task and its queue exist only
while replies are pending (memory per socket, docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable

from gateway.protocol import ServerFrame

Reply = ServerFrame | None


class OrderedReplies:
    """`pipelined()` a reply still being computed, `ready()` one already known, `settled()`
    to wait until every earlier reply is written; `close()` when the socket ends."""

    __slots__ = ("_limit", "_pending", "_room", "_write", "_writer")

    def __init__(self, write: Callable[[ServerFrame], None], limit: int) -> None:
        self._write = write
        self._limit = limit
        self._pending: deque[asyncio.Future[Reply]] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._room: asyncio.Future[None] | None = None  # resolved when below `limit` again

    async def pipelined(self, reply: Awaitable[Reply]) -> None:
        """Start computing a reply now; it is written after every earlier one. Waits while
        `limit` replies are pending."""
        await self._wait_for_room()
        self._push(asyncio.ensure_future(reply))

    async def ready(self, reply: Reply) -> None:
        if self._writer is None:  # nothing earlier is pending: write it now
            if reply is not None:
                self._write(reply)
            return
        await self._wait_for_room()
        done: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        done.set_result(reply)
        self._push(done)

    async def settled(self) -> None:
        """Return once every reply queued so far has been computed and written."""
        while (writer := self._writer) is not None:
            await asyncio.wait((writer,))  # neither raises its outcome nor cancels it

    async def close(self) -> None:
        writer = self._writer
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _wait_for_room(self) -> None:
        while self._pending is not None and len(self._pending) >= self._limit:
            if self._room is None:
                self._room = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._room)

    def _push(self, reply: asyncio.Future[Reply]) -> None:
        if self._pending is None:
            self._pending = deque()
        self._pending.append(reply)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._run(self._pending), name="ordered-replies"
            )

    async def _run(self, pending: deque[asyncio.Future[Reply]]) -> None:
        try:
            while pending:
                reply = await pending[0]
                pending.popleft()
                if reply is not None:
                    self._write(reply)
                room = self._room
                if room is not None and len(pending) < self._limit:
                    self._room = None
                    room.set_result(None)
        finally:
            self._writer = None
            self._pending = None
