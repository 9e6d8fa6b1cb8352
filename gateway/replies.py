"""Replies of one socket in the order its frames arrived, while its sends run concurrently:
a socket may pipeline sends (read the next frame while earlier commits are in flight) and
still get its acks in order. At most `limit` replies wait at once; past that the socket is
not read (backpressure reaches the client through TCP)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from gateway.protocol import ServerFrame

Reply = ServerFrame | None


class OrderedReplies:
    """`pipelined()` a reply still being computed, `ready()` one already known, `settled()`
    to wait until every earlier reply is written; `close()` when the socket ends."""

    def __init__(self, write: Callable[[ServerFrame], None], limit: int) -> None:
        self._write = write
        self._queue: asyncio.Queue[asyncio.Future[Reply]] = asyncio.Queue(maxsize=limit)
        self._writer = asyncio.create_task(self._run(), name="ordered-replies")

    async def pipelined(self, reply: Awaitable[Reply]) -> None:
        """Start computing a reply now; it is written after every earlier one. Waits while
        `limit` replies are pending."""
        await self._queue.put(asyncio.ensure_future(reply))

    async def ready(self, reply: Reply) -> None:
        done: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        done.set_result(reply)
        await self._queue.put(done)

    async def settled(self) -> None:
        """Return once every reply queued so far has been computed and written."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            pending = await self._queue.get()
            try:
                reply = await pending
                if reply is not None:
                    self._write(reply)
            finally:
                self._queue.task_done()

    async def close(self) -> None:
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
