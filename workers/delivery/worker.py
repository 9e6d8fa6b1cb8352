"""The delivery loop: claim a batch, hold what quiet hours hold, hand the rest to their
channel's sender concurrently, write each outcome back as soon as it is known. Woken at once
by LISTEN sb_delivery; polls as a fallback and sleeps no longer than the next due job."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import uuid
from collections.abc import Mapping

import asyncpg

from kernel.db import connect
from kernel.logs import EventLog
from workers.delivery.outbox import (
    ChannelSender,
    Clock,
    Held,
    Job,
    Outbox,
    Outcome,
    Retry,
    Skipped,
    system_clock,
)
from workers.delivery.quiet_hours import held_until

log = EventLog("workers.delivery")

WAKE_CHANNEL = "sb_delivery"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class DeliveryWorker:
    """One worker: `run_once()` handles one batch (tests drive it with their own clock);
    `run(stop)` loops until `stop` is set, finishing the batch in hand."""

    def __init__(
        self,
        outbox: Outbox,
        senders: Mapping[str, ChannelSender],
        *,
        clock: Clock = system_clock,
        batch_size: int = 50,
        poll_interval_s: float = 5.0,
    ) -> None:
        self.outbox = outbox
        self.senders = dict(senders)
        self.clock = clock
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()

    async def run_once(self) -> int:
        """Claim and deliver one batch; returns how many jobs were claimed."""
        jobs = await self.outbox.claim(self.clock(), self.batch_size)
        if jobs:
            await asyncio.gather(*(self._handle(job) for job in jobs))
        return len(jobs)

    async def _handle(self, job: Job) -> None:
        now = self.clock()
        try:
            outcome = await self._outcome(job, now)
        except Exception as exc:  # a bug or an outage of ours: retried like a provider's
            log.exception("delivery_crashed", job=job.id, channel=job.channel)
            outcome = Retry(f"internal: {exc!r}"[:500])
        done = self.clock()
        status = await self.outbox.finish(job, outcome, done)
        log.info(
            "delivery",
            job=job.id,
            channel=job.channel,
            user=job.user_id,
            attempt=job.attempts,
            outcome=type(outcome).__name__.lower(),
            status=status or "claim_lost",
            detail=getattr(outcome, "error", None) or getattr(outcome, "reason", None) or "",
            ms=int((done - now).total_seconds() * 1000),
        )

    async def _outcome(self, job: Job, now: dt.datetime) -> Outcome:
        until = held_until(now, job.priority, job.time_zone, job.quiet_hours)
        if until is not None:
            return Held(until, "quiet hours")
        sender = self.senders.get(job.channel)
        if sender is None:
            return Skipped(f"{job.channel} delivery is not configured")
        return await sender.deliver(job, now)

    # --- the loop ------------------------------------------------------------------------------

    def wake(self) -> None:
        """Something was queued: claim now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event, dsn: str) -> None:
        """Deliver until `stop` is set. Listens on its own connection to `dsn`."""
        listener = asyncio.create_task(self._listen(dsn, stop), name="delivery-listen")
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    claimed = await self.run_once()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.error("claim_failed", error=repr(exc))
                    claimed = 0
                if claimed >= self.batch_size:
                    continue  # more is waiting
                await self._sleep(stop)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _sleep(self, stop: asyncio.Event) -> None:
        timeout = self.poll_interval_s
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            due = await self.outbox.next_due()
            if due is not None:
                timeout = min(timeout, max(0.0, (due - self.clock()).total_seconds()))
        if timeout <= 0:
            return
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _listen(self, dsn: str, stop: asyncio.Event) -> None:
        """LISTEN on a connection of its own, reconnecting when it drops (polling covers the
        gap)."""
        delay = 0.5
        while not stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect(dsn, application_name="switchboard-delivery-listen")
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(WAKE_CHANNEL, lambda *_args: self.wake())
                self.wake()  # anything queued while we were not listening
                delay = 0.5
                await lost.wait()
                log.warning("listen_connection_lost")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.error("listen_failed", error=repr(exc))
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
