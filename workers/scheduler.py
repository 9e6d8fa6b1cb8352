"""Scheduled jobs: schedules as data, the clock, and the loop that runs each job at most once per
scheduled time across every worker process, by claiming (job, time) rows in gateway.job_runs.

Contract of a run: the claimer runs the job inside one transaction and records its success in
that same transaction, so a run's effect and its `succeeded` record commit together or not at
all. A failed attempt is rolled back, recorded `failed` with its error, and retried per the
job's RetryPolicy by whichever scheduler claims the time again first (see docs/jobs.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from kernel.jobs import (
    RUN_COLUMNS,
    Clock,
    Job,
    RetryPolicy,
    RunRecord,
    SystemClock,
    last_at_or_before,
    next_after,
)
from kernel.logs import EventLog

__all__ = ["Clock", "Job", "RunRecord", "Scheduler", "SystemClock", "attempt", "run_by_hand"]

log = EventLog("worker.scheduler")

# --- one attempt ---------------------------------------------------------------------------------

# Inserting the row claims the time. An existing row is claimed again only once its retry_at
# has passed (a retry is due, or a running attempt outlived its time limit); otherwise nothing
# is returned and the caller skips. retry_at of the new attempt is its lease expiry, or NULL on
# the last attempt (a last attempt whose worker dies stays `running`).
_CLAIM = """
INSERT INTO gateway.job_runs AS r
       (job, scheduled_for, manual, status, attempts, node, started_at, retry_at)
VALUES ($1, $2, $3, 'running', 1, $4, $5, CASE WHEN 1 < $6 THEN $7::timestamptz END)
ON CONFLICT (job, scheduled_for) DO UPDATE
   SET status = 'running', attempts = r.attempts + 1, node = EXCLUDED.node,
       started_at = EXCLUDED.started_at, finished_at = NULL,
       retry_at = CASE WHEN r.attempts + 1 < $6 THEN $7::timestamptz END
 WHERE r.retry_at <= EXCLUDED.started_at
RETURNING id, attempts
"""
# Both updates are fenced on (id, attempts, running): an attempt whose claim was taken over
# after its lease expired cannot record anything, and its work rolls back.
_SUCCEEDED = """
UPDATE gateway.job_runs
   SET status = 'succeeded', finished_at = $3, rows_touched = $4, retry_at = NULL
 WHERE id = $1 AND attempts = $2 AND status = 'running'
"""
_FAILED = """
UPDATE gateway.job_runs
   SET status = 'failed', finished_at = $3, error = $4, retry_at = $5
 WHERE id = $1 AND attempts = $2 AND status = 'running'
"""
# Past its time limit, a claimed attempt is treated as dead after this much more.
LEASE_GRACE = timedelta(minutes=1)
_MAX_ERROR_CHARS = 4000


class ClaimLost(Exception):
    """The attempt's claim was taken over by another worker; its work is rolled back."""


async def attempt(
    pool: asyncpg.Pool,
    job: Job,
    scheduled_for: datetime,
    *,
    clock: Clock,
    node: str,
    manual: bool = False,
) -> datetime | None:
    """Claim `scheduled_for` of `job` and, if claimed, run one attempt and record it.

    Returns when the caller should try this time again (a retry is due then, or another
    worker's attempt will be over its time limit then), or None when there is nothing more to
    do for it: it succeeded, is out of attempts, or is another worker's finished business.
    Database errors while claiming or recording propagate; the claim then expires on its own.
    """
    started = clock.now()
    lease = started + job.timeout + LEASE_GRACE
    claim = await pool.fetchrow(
        _CLAIM, job.name, scheduled_for, manual, node, started, job.retry.attempts, lease
    )
    if claim is None:
        again: datetime | None = await pool.fetchval(
            "SELECT retry_at FROM gateway.job_runs WHERE job = $1 AND scheduled_for = $2",
            job.name,
            scheduled_for,
        )
        log.debug("job_skipped", job=job.name, scheduled_for=scheduled_for, again=again)
        return again
    run_id, number = claim["id"], claim["attempts"]
    fields = {"job": job.name, "scheduled_for": scheduled_for, "run": run_id, "attempt": number}
    log.info("job_started", node=node, **fields)
    began = time.perf_counter()
    try:
        async with asyncio.timeout(job.timeout.total_seconds()):
            async with pool.acquire() as conn, conn.transaction():
                rows = await job.run(conn, clock)
                done = await conn.execute(_SUCCEEDED, run_id, number, clock.now(), rows)
                if done != "UPDATE 1":
                    raise ClaimLost(f"run {run_id} attempt {number} was taken over")
    except ClaimLost:
        log.warning("job_claim_lost", **fields)
        return None
    except asyncio.CancelledError:
        await _record_failure(pool, job, run_id, number, "interrupted: the worker stopped", clock)
        raise
    except Exception as exc:
        text = (
            f"timed out after {job.timeout.total_seconds():g} s"
            if isinstance(exc, TimeoutError)
            else f"{type(exc).__name__}: {exc}"
        )
        log.exception("job_failed", error=text, **fields)
        return await _record_failure(pool, job, run_id, number, text, clock)
    log.info("job_succeeded", rows=rows, ms=round((time.perf_counter() - began) * 1000), **fields)
    return None


async def _record_failure(
    pool: asyncpg.Pool, job: Job, run_id: int, number: int, error: str, clock: Clock
) -> datetime | None:
    now = clock.now()
    delay = job.retry.delay_after(number)
    retry_at = None if delay is None else now + delay
    await pool.execute(_FAILED, run_id, number, now, error[:_MAX_ERROR_CHARS], retry_at)
    event = "job_retry_planned" if retry_at else "job_gave_up"
    log.warning(event, job=job.name, run=run_id, attempt=number, retry_at=retry_at)
    return retry_at


async def run_by_hand(pool: asyncpg.Pool, job: Job, *, clock: Clock, node: str) -> RunRecord:
    """Run `job` once now, recorded as a manual run (one attempt, no retry); its record."""
    at = clock.now()
    once = dataclasses.replace(job, retry=RetryPolicy(attempts=1))
    await attempt(pool, once, at, clock=clock, node=node, manual=True)
    row = await pool.fetchrow(
        f"SELECT {RUN_COLUMNS} FROM gateway.job_runs WHERE job = $1 AND scheduled_for = $2",
        job.name,
        at,
    )
    assert row is not None
    return RunRecord(**dict(row))


# --- the loop ------------------------------------------------------------------------------------


def node_name() -> str:
    """host:pid, recorded on each attempt."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Scheduler:
    """Runs `jobs` on their schedules until stopped; any number may run against one database.

    With `catch_up` (the default) each job first looks at its latest time at or before now, so
    a time missed while no worker ran is run once, late (a time already claimed is skipped).
    Only the latest missed time is run, never a backlog.
    """

    # After a database error while claiming or recording, look at the same time again then.
    RECHECK_AFTER_ERROR = timedelta(seconds=30)
    # Never look at the same time again sooner (a retry_at already past, from a skewed clock).
    RECHECK_AT_LEAST = timedelta(seconds=1)

    def __init__(
        self,
        pool: asyncpg.Pool,
        jobs: Sequence[Job],
        *,
        clock: Clock,
        node: str | None = None,
        catch_up: bool = True,
    ) -> None:
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")
        self.pool = pool
        self.jobs = tuple(jobs)
        self.clock = clock
        self.node = node or node_name()
        self.catch_up = catch_up

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then return at once: waits end, and an attempt in progress
        is cancelled (its transaction rolls back; it is recorded failed and retried)."""
        tasks = [asyncio.create_task(self._drive(job), name=f"job:{job.name}") for job in self.jobs]
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stopping, *tasks):
                task.cancel()
            await asyncio.gather(stopping, *tasks, return_exceptions=True)
        for task in done:
            if task is not stopping:
                task.result()  # a job loop never ends by itself: re-raise what ended it

    async def _drive(self, job: Job) -> None:
        now = self.clock.now()
        first = last_at_or_before if self.catch_up else next_after
        slot = first(job.schedule, now)
        when = slot
        log.info("job_scheduled", job=job.name, schedule=job.schedule.describe(), next=slot)
        while True:
            await self.clock.sleep_until(when)
            now = self.clock.now()
            if next_after(job.schedule, slot) <= now:
                # Later times passed meanwhile (a long run, a sleeping machine): only the latest
                # of them runs, and a retry not yet made is given up for it.
                slot = last_at_or_before(job.schedule, now)
            try:
                again = await attempt(self.pool, job, slot, clock=self.clock, node=self.node)
            except Exception:
                log.exception("job_attempt_error", job=job.name, scheduled_for=slot)
                when = self.clock.now() + self.RECHECK_AFTER_ERROR
                continue
            following = next_after(job.schedule, slot)
            if again is not None and again < following:
                when = max(again, self.clock.now() + self.RECHECK_AT_LEAST)
            else:
                slot = when = following
