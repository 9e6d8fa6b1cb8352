"""The delivery loop: each channel keeps its sender's `concurrency` sends busy, holding at most
half as many again claimed and waiting, and claims more, earliest due first, as soon as room
for a quarter of its sends is free (one claim statement for every channel that wants jobs).
Each job is held if quiet hours say so, else handed to its channel's sender; its slot is free
as soon as the provider answered, and its outcome is written back in a group commit with the
others finishing then. Everything a worker holds was due when it was claimed, so a retry that
falls due later is claimed before any job due after it. Woken at once by LISTEN sb_delivery;
polls as a fallback and sleeps no longer than the next due job of a channel that has room."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import uuid
from asyncio import FIRST_COMPLETED
from collections import Counter
from collections.abc import Callable, Mapping

import asyncpg

from kernel.db import connect
from kernel.logs import EventLog
from workers.delivery.outbox import (
    CHANNELS,
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

# What a channel without a sender lacks, added to its jobs' skip reason.
_SETTINGS_HINT = {"sms": " (set SMS_ACCOUNT_SID, SMS_AUTH_TOKEN and SMS_FROM)"}


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class DeliveryWorker:
    """One worker: `run(stop)` keeps every channel's slots busy until `stop` is set, then
    finishes the jobs in hand; `run_once()` claims and handles one batch (tests drive it with
    their own clock)."""

    def __init__(
        self,
        outbox: Outbox,
        senders: Mapping[str, ChannelSender],
        *,
        clock: Clock = system_clock,
        batch_size: int = 50,
        poll_interval_s: float = 5.0,
        unconfigured_concurrency: int = 8,
    ) -> None:
        self.outbox = outbox
        self.senders = dict(senders)
        self.clock = clock
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        # Sends at once per channel (the sender's own limit); a channel without a sender only
        # has jobs to skip. A worker holds up to half as many again, waiting for a free send:
        # claims overlap sends, and since every job claimed was due when it was claimed, a
        # job waiting here was due before anything a later claim could find.
        self.capacity = {
            channel: max(1, getattr(self.senders.get(channel), "concurrency", 0) or 0)
            if channel in self.senders
            else unconfigured_concurrency
            for channel in CHANNELS
        }
        self.in_hand = {channel: cap + cap // 2 for channel, cap in self.capacity.items()}
        # Outcomes known but not yet written (group commit): past this, claiming waits.
        self.max_unwritten = 2 * sum(self.in_hand.values())
        self._in_flight = dict.fromkeys(CHANNELS, 0)  # claimed, outcome not yet known
        self._unwritten = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._rescheduled = False

    async def run_once(self) -> int:
        """Claim and deliver one batch; returns how many jobs were claimed."""
        jobs = await self.outbox.claim(self.clock(), self.batch_size)
        if jobs:
            await asyncio.gather(*(self._handle(job) for job in jobs))
        return len(jobs)

    async def _handle(self, job: Job, delivered: Callable[[], None] | None = None) -> None:
        """Deliver `job` and write its outcome; `delivered()` is called once the outcome is
        known, before it is written (the channel's slot is free from then on)."""
        now = self.clock()
        try:
            outcome = await self._outcome(job, now)
        except Exception as exc:  # a bug or an outage of ours: retried like a provider's
            log.exception("delivery_crashed", job=job.id, channel=job.channel)
            outcome = Retry(f"internal: {exc!r}"[:500])
        if delivered is not None:
            delivered()
        done = self.clock()
        status = await self.outbox.finish(job, outcome, done)
        if isinstance(outcome, Retry | Held):
            self._rescheduled = True
        log.info(
            "delivery",
            job=job.id,
            channel=job.channel,
            realm=job.realm,
            user=job.user_id,
            request_id=job.request_id or "",
            attempt=job.attempts,
            outcome=type(outcome).__name__.lower(),
            status=status or "claim_lost",
            detail=getattr(outcome, "error", None) or getattr(outcome, "reason", None) or "",
            ms=int((done - now).total_seconds() * 1000),
            # how long it waited for a slot after it fell due (queueing, not sending)
            waited_ms=int((now - job.due_at).total_seconds() * 1000) if job.due_at else "",
        )

    async def _outcome(self, job: Job, now: dt.datetime) -> Outcome:
        until = held_until(now, job.priority, job.time_zone, job.quiet_hours)
        if until is not None:
            return Held(until, "quiet hours")
        sender = self.senders.get(job.channel)
        if sender is None:
            hint = _SETTINGS_HINT.get(job.channel)
            return Skipped(f"{job.channel} delivery is not configured" + (hint or ""))
        return await sender.deliver(job, now)

    # --- the loop ------------------------------------------------------------------------------

    def wake(self) -> None:
        """Something was queued: claim now rather than at the next poll."""
        self._wake.set()

    def _wanted(self, idle: set[str]) -> dict[str, int]:
        """Jobs to claim per channel: room in hand of each channel that had jobs at its last
        claim, once that is at least a quarter of its sends (or one)."""
        if self._unwritten >= self.max_unwritten:
            return {}  # the database is behind: let it catch up first
        wanted = {}
        for channel, capacity in self.capacity.items():
            free = self.in_hand[channel] - self._in_flight[channel]
            if channel not in idle and free >= max(1, capacity // 4):
                wanted[channel] = free
        return wanted

    def _start(self, job: Job) -> None:
        channel = job.channel
        self._in_flight[channel] += 1
        state = {"delivered": False}

        def delivered() -> None:
            state["delivered"] = True
            self._in_flight[channel] -= 1
            self._unwritten += 1
            self._slot_freed.set()

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            if state["delivered"]:
                self._unwritten -= 1
            else:
                self._in_flight[channel] -= 1
            self._slot_freed.set()
            if not task.cancelled() and task.exception() is not None:
                # Writing the outcome failed (the database): the lease hands the job on.
                log.error("delivery_not_recorded", job=job.id, error=repr(task.exception()))

        task = asyncio.create_task(self._handle(job, delivered), name=f"delivery-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(done)

    async def run(self, stop: asyncio.Event, dsn: str) -> None:
        """Deliver until `stop` is set. Listens on its own connection to `dsn`."""
        listener = asyncio.create_task(self._listen(dsn, stop), name="delivery-listen")
        idle: set[str] = set()  # channels whose last claim found fewer jobs than it asked for
        look_again: dt.datetime | None = None  # when to claim for the idle channels anyway
        failures = 0
        try:
            while not stop.is_set():
                if self._wake.is_set():
                    self._wake.clear()
                    idle.clear()
                if self._rescheduled:  # a job of ours was retried or held: when is it due?
                    self._rescheduled = False
                    look_again = None
                self._slot_freed.clear()
                wanted = self._wanted(idle)
                if wanted:
                    try:
                        jobs = await self.outbox.claim(self.clock(), sum(wanted.values()), wanted)
                        failures = 0
                    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                        log.error("claim_failed", error=repr(exc))
                        failures += 1
                        await self._wait(stop, min(30.0, 0.5 * 2**failures))
                        continue
                    got = Counter(job.channel for job in jobs)
                    short = {c for c, n in wanted.items() if got[c] < n}
                    if short - idle:
                        idle |= short
                        look_again = None
                    for job in jobs:
                        self._start(job)
                    continue  # claim again for whatever still has room and work
                if look_again is None:
                    look_again = await self._look_again(idle)
                timeout = (look_again - self.clock()).total_seconds()
                if await self._wait(stop, timeout):
                    idle.clear()  # due, or polled: look at every channel again
                    look_again = None
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            if self._tasks:  # finish the jobs in hand
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _look_again(self, idle: set[str]) -> dt.datetime:
        """When to claim for the idle channels without being woken: their next due job (a
        retry, a held job, a digest, an expired lease, the end of a pause), at the latest the
        poll interval from now. A busy channel is woken by its own free slots."""
        now = self.clock()
        when = now + dt.timedelta(seconds=self.poll_interval_s)
        if idle:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                due = await self.outbox.next_due(sorted(idle))
                if due is not None:
                    when = min(when, max(now, due))
        return when

    async def _wait(self, stop: asyncio.Event, timeout: float) -> bool:
        """Sleep until `stop`, a wake-up, a free slot or `timeout`; True when the time ran
        out (or was zero)."""
        if timeout <= 0:
            return True
        events = (stop, self._wake, self._slot_freed)
        waits = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            done, _ = await asyncio.wait(waits, timeout=timeout, return_when=FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return not done

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
