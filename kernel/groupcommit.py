"""Group commit: many callers' writes share one database round trip.

Callers `await submit(item)`; a flusher takes everything queued (up to `max_batch`) and
hands it to `flush(items) -> results` in one call (a result that is an exception is
raised to its caller alone). While one batch is in flight the next
accumulates, so under load each round trip carries many writes and at low load a write
waits for nobody. Results come back to each caller in order. A batch whose flush fails
(nothing of it was committed) is flushed again one item at a time, so one caller's bad item
fails that caller alone and never its neighbours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_batch: int = 256,
        concurrency: int = 2,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._wakeup = asyncio.Event()
        self._on_batch = on_batch or (lambda _n: None)
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks = [
            asyncio.create_task(self._run(), name=f"group-commit-{i}") for i in range(concurrency)
        ]

    async def submit(self, item: T) -> R:
        """Queue `item`; returns its result once its batch committed (or raises its error)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._idle.clear()
        self._wakeup.set()
        return await future

    async def _one_by_one(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        for item, future in batch:
            if future.done():
                continue
            try:
                (result,) = await self._flush([item])
            except Exception as exc:
                future.set_exception(exc)
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if not self._queue:
                self._wakeup.clear()
                if self._in_flight == 0:
                    self._idle.set()
                continue
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            if not self._queue:
                self._wakeup.clear()
            self._in_flight += 1
            try:
                results = await self._flush([item for item, _ in batch])
                self._on_batch(len(batch))
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):  # a per-item refusal
                        future.set_exception(result)
                    else:
                        future.set_result(result)
            except Exception as exc:
                if len(batch) == 1:
                    if not batch[0][1].done():
                        batch[0][1].set_exception(exc)
                else:
                    await self._one_by_one(batch)
            finally:
                self._in_flight -= 1
                if not self._queue and self._in_flight == 0:
                    self._idle.set()

    async def drain(self) -> None:
        """Wait until everything submitted so far has been flushed."""
        await self._idle.wait()

    async def close(self) -> None:
        await self.drain()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
