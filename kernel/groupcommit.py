"""Group commit: many callers' writes share one database round trip.

Callers `await submit(item)`; a flusher takes everything queued (up to `max_batch`) and
hands it to `flush(items) -> results` in one call (a result that is an exception is
raised to its caller alone). While one batch is in flight the next
accumulates, so under load each round trip carries many writes and at low load a write
waits for nobody. Results come back to each caller in order. A batch whose flush fails
(nothing of it was committed) is flushed again one item at a time, so one caller's bad item
fails that caller alone and never its neighbours.

With a `key` (the channel, say), two batches in flight never hold items of the same key:
items of one key commit in the order they were submitted, even when one caller pipelines
several without waiting (two concurrent batches could otherwise commit in either order).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
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
        key: Callable[[T], Hashable] | None = None,
    ) -> None:
        self._flush = flush
        self._key = key
        self._busy: set[Hashable] = set()
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

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        """The next batch: queue order, at most max_batch, no key of a batch in flight; an
        item left behind holds back every later item of its key."""
        if self._key is None:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            return batch
        taken: list[tuple[T, asyncio.Future[R]]] = []
        kept: list[tuple[T, asyncio.Future[R]]] = []
        blocked: set[Hashable] = set()
        for entry in self._queue:
            key = self._key(entry[0])
            if len(taken) < self._max_batch and key not in self._busy and key not in blocked:
                taken.append(entry)
            else:
                kept.append(entry)
                blocked.add(key)
        self._queue = kept
        return taken

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            batch = self._take()
            if not batch:  # nothing queued, or only keys another batch holds
                self._wakeup.clear()
                if not self._queue and self._in_flight == 0:
                    self._idle.set()
                continue
            if not self._queue:
                self._wakeup.clear()
            keys = {self._key(item) for item, _ in batch} if self._key is not None else set()
            self._busy |= keys
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
                self._busy -= keys
                if self._queue:
                    self._wakeup.set()  # items held back for these keys may go now
                elif self._in_flight == 0:
                    self._idle.set()

    async def drain(self) -> None:
        """Wait until everything submitted so far has been flushed."""
        await self._idle.wait()

    async def close(self) -> None:
        await self.drain()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
