"""The delivery outbox: claiming jobs under a lease, the retry policy, and writing outcomes back.

A worker claims a batch with FOR UPDATE SKIP LOCKED, marks it 'sending' with a lease (the
job's next_attempt_at moves to the lease's end) and counts the attempt. A worker that dies
mid-send leaves its jobs to whoever claims after the lease: delivery is at-least-once. An
outcome is written back only by the worker that still holds the claim (claimed_by names the
last claimant and stays as a record).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- jobs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed delivery, with what its sender needs (one round trip loads it all)."""

    id: int
    channel: str  # 'push' | 'email' | 'digest'
    user_id: uuid.UUID
    notification_id: uuid.UUID | None
    digest_date: dt.date | None
    priority: str
    attempts: int  # including this one
    sent_device_ids: tuple[uuid.UUID, ...]
    notification_type: str | None
    title: str | None
    message: str | None
    action_url: str | None
    notification_read: bool
    email: str | None
    email_ok: bool  # a verified address of an active, undeleted user
    user_active: bool
    time_zone: str
    quiet_hours: tuple[dt.time, dt.time] | None
    digest_at: dt.time

    @property
    def idempotency_key(self) -> str:
        """The key providers see (e-mail Message-ID, push collapse key)."""
        if self.notification_id is not None:
            return f"{self.notification_id}:{self.channel}"
        return f"digest:{self.user_id}:{self.digest_date}"


# --- outcomes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    provider_message_id: str | None = None
    sent_device_ids: Sequence[uuid.UUID] = ()
    digest_items: Sequence[uuid.UUID] = ()


@dataclass(frozen=True, slots=True)
class Retry:
    """A transient failure: try again, not before `after_s` seconds when the provider said so."""

    error: str
    after_s: float | None = None
    sent_device_ids: Sequence[uuid.UUID] = ()


@dataclass(frozen=True, slots=True)
class Failed:
    """A permanent failure: the provider refused this message for good."""

    reason: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """Nothing to send (no device, no address, nothing to list, channel not configured)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Held:
    """Not now, and not a failure (quiet hours, a provider-wide pause): the attempt is not
    counted."""

    until: dt.datetime
    reason: str


Outcome = Sent | Retry | Failed | Skipped | Held


class ChannelSender(Protocol):
    """Delivers one claimed job of its channel; never raises for a provider's answer."""

    channel: str

    async def deliver(self, job: Job, now: dt.datetime) -> Outcome: ...


# --- retry policy -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped, then scaled by a random
    factor in [1 - jitter, 1]. With the defaults, 8 attempts span about half an hour. A
    provider's Retry-After is a floor, never shortened."""

    max_attempts: int = 8
    base_s: float = 15.0
    cap_s: float = 900.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random)

    def delay_s(self, attempts: int, retry_after_s: float | None = None) -> float:
        backoff = min(self.cap_s, self.base_s * 2.0 ** max(0, attempts - 1))
        backoff *= 1 - self.jitter * self.rng.random()
        return max(backoff, retry_after_s or 0.0)


# --- SQL ----------------------------------------------------------------------------------------

_CLAIM = """
WITH due AS (
    SELECT id FROM gateway.notification_deliveries
     WHERE status IN ('pending', 'sending') AND next_attempt_at <= $1
     ORDER BY next_attempt_at
     LIMIT $2
     FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE gateway.notification_deliveries d
       SET status = 'sending', attempts = d.attempts + 1, claimed_by = $3, claimed_at = $1,
           next_attempt_at = $1 + make_interval(secs => $4)
      FROM due
     WHERE d.id = due.id
    RETURNING d.*
)
SELECT c.id, c.channel, c.user_id, c.notification_id, c.digest_date, c.priority, c.attempts,
       c.sent_device_ids, n.notification_type, n.title, n.message, n.action_url,
       n.read_at IS NOT NULL AS notification_read,
       u.email, coalesce(u.is_active AND u.deleted_at IS NULL, false) AS user_active,
       coalesce(u.email IS NOT NULL AND u.email_verified AND u.is_active
                AND u.deleted_at IS NULL, false) AS email_ok,
       coalesce(s.time_zone, 'UTC') AS time_zone, s.quiet_hours_start, s.quiet_hours_end,
       coalesce(s.digest_at, time '08:00') AS digest_at
  FROM claimed c
  LEFT JOIN analyst.notifications n ON n.id = c.notification_id
  LEFT JOIN analyst.users u ON u.id = c.user_id
  LEFT JOIN gateway.notification_settings s ON s.user_id = c.user_id
 ORDER BY c.id
"""

# The job and its notification(s) in one statement, returning 1 if this worker still held the
# claim (only the claim holder writes), else 0.
_SENT = """
WITH d AS (
    UPDATE gateway.notification_deliveries
       SET status = 'sent', sent_at = $3, provider_message_id = $4, sent_device_ids = $5,
           digest_items = $6, last_error = NULL
     WHERE id = $1 AND claimed_by = $2 AND status = 'sending'
    RETURNING channel, notification_id, digest_items
), n AS (
    UPDATE analyst.notifications n
       SET push_sent = n.push_sent OR d.channel = 'push',
           push_sent_at = CASE WHEN d.channel = 'push' THEN coalesce(n.push_sent_at, $3)
                               ELSE n.push_sent_at END,
           email_sent = n.email_sent OR d.channel IN ('email', 'digest'),
           email_sent_at = CASE WHEN d.channel IN ('email', 'digest')
                                THEN coalesce(n.email_sent_at, $3) ELSE n.email_sent_at END,
           status = CASE WHEN n.status = 'pending' THEN 'sent' ELSE n.status END,
           sent_at = coalesce(n.sent_at, $3)
      FROM d
     WHERE n.id = ANY (array_append(d.digest_items, d.notification_id))
)
SELECT count(*) FROM d
"""

_RESCHEDULE = """
UPDATE gateway.notification_deliveries
   SET status = 'pending', next_attempt_at = $3, last_error = coalesce($4, last_error),
       sent_device_ids = $5, attempts = attempts - $6
 WHERE id = $1 AND claimed_by = $2 AND status = 'sending'
"""

# A notification no channel delivered (no in-app, every job failed or skipped) is 'failed'.
# The CTE's own update is not visible to the outer statement, hence `x.id <> $1`.
_GIVE_UP = """
WITH d AS (
    UPDATE gateway.notification_deliveries
       SET status = $3, last_error = $4
     WHERE id = $1 AND claimed_by = $2 AND status = 'sending'
    RETURNING notification_id
), n AS (
    UPDATE analyst.notifications n
       SET status = 'failed'
      FROM d
     WHERE n.id = d.notification_id AND n.status = 'pending' AND NOT n.send_in_app
       AND NOT EXISTS (SELECT 1 FROM gateway.notification_deliveries x
                        WHERE x.notification_id = n.id AND x.id <> $1
                          AND x.status IN ('pending', 'sending', 'sent'))
)
SELECT count(*) FROM d
"""

_NEXT_DUE = """
SELECT min(next_attempt_at) FROM gateway.notification_deliveries
 WHERE status IN ('pending', 'sending')
"""


def _job(row: asyncpg.Record) -> Job:
    start, end = row["quiet_hours_start"], row["quiet_hours_end"]
    return Job(
        id=row["id"],
        channel=row["channel"],
        user_id=row["user_id"],
        notification_id=row["notification_id"],
        digest_date=row["digest_date"],
        priority=row["priority"],
        attempts=row["attempts"],
        sent_device_ids=tuple(row["sent_device_ids"]),
        notification_type=row["notification_type"],
        title=row["title"],
        message=row["message"],
        action_url=row["action_url"],
        notification_read=row["notification_read"],
        email=row["email"],
        email_ok=row["email_ok"],
        user_active=row["user_active"],
        time_zone=row["time_zone"],
        quiet_hours=(start, end) if start is not None and end is not None else None,
        digest_at=row["digest_at"],
    )


class Outbox:
    """The outbox table as one worker sees it. Each call is one statement (autocommit)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        worker_id: str,
        *,
        lease_s: float = 300.0,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.pool = pool
        self.worker_id = worker_id
        self.lease_s = lease_s
        self.policy = policy or RetryPolicy()

    async def claim(self, now: dt.datetime, limit: int) -> list[Job]:
        """Claim up to `limit` due jobs (or jobs whose lease ran out) for this worker.

        Each must then be finished with `finish` before `now + lease_s`, or it will be
        claimed again by someone else."""
        rows = await self.pool.fetch(_CLAIM, now, limit, self.worker_id, self.lease_s)
        return [_job(r) for r in rows]

    async def next_due(self) -> dt.datetime | None:
        """When the earliest unfinished job becomes due (pending or leased), if any."""
        value = await self.pool.fetchval(_NEXT_DUE)
        return value if isinstance(value, dt.datetime) else None

    async def finish(self, job: Job, outcome: Outcome, now: dt.datetime) -> str:
        """Write `outcome` back; returns the job's new status ('' if the claim was lost)."""
        devices = list(job.sent_device_ids)
        match outcome:
            case Sent():
                devices = list(dict.fromkeys([*devices, *outcome.sent_device_ids]))
                held = await self.pool.fetchval(
                    _SENT,
                    job.id,
                    self.worker_id,
                    now,
                    outcome.provider_message_id,
                    devices,
                    list(outcome.digest_items),
                )
                return "sent" if held else ""
            case Held():
                status = await self.pool.execute(
                    _RESCHEDULE, job.id, self.worker_id, outcome.until, None, devices, 1
                )
                return "pending" if status == "UPDATE 1" else ""
            case Retry():
                devices = list(dict.fromkeys([*devices, *outcome.sent_device_ids]))
                if job.attempts >= self.policy.max_attempts:
                    reason = f"gave up after {job.attempts} attempts: {outcome.error}"
                    return await self._give_up(job, "failed", reason)
                delay = self.policy.delay_s(job.attempts, outcome.after_s)
                status = await self.pool.execute(
                    _RESCHEDULE,
                    job.id,
                    self.worker_id,
                    now + dt.timedelta(seconds=delay),
                    outcome.error[:1000],
                    devices,
                    0,
                )
                return "pending" if status == "UPDATE 1" else ""
            case Failed():
                return await self._give_up(job, "failed", outcome.reason)
            case Skipped():
                return await self._give_up(job, "skipped", outcome.reason)

    async def _give_up(self, job: Job, status: str, reason: str) -> str:
        held = await self.pool.fetchval(_GIVE_UP, job.id, self.worker_id, status, reason[:1000])
        return status if held else ""
