"""The delivery outbox: claiming jobs under a lease, the retry policy, and writing outcomes back.

A worker claims jobs of each channel in due order (next_attempt_at, then id) with FOR UPDATE
SKIP LOCKED, marks them 'sending' with a lease (the job's next_attempt_at moves to the lease's
end) and counts the attempt. A retry is due at its next_attempt_at like any job, so it goes
before every job due later, fresh or not. A worker that dies mid-send leaves its jobs to
whoever claims after the lease: delivery is at-least-once. An outcome is written back only by
the worker that still holds the claim (claimed_by names the last claimant and stays as a
record). A channel paused for the whole provider (gateway.delivery_pauses) is not claimed by
any worker until the pause ends. Jobs of every realm the worker serves share the outbox; a
job's notification and user are read from its realm (inbox table, contact_sql) and its
outcome written back there.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg

from kernel.inbox import Inbox, inbox_of
from kernel.realms import Realm, Realms, enabled_realms

Clock = Callable[[], dt.datetime]

# Every channel of the outbox (its CHECK constraint), in the order claims list them.
CHANNELS: tuple[str, ...] = ("push", "email", "sms", "digest")


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- jobs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed delivery, with what its sender needs (loaded for the whole batch: one
    claim, then one query per realm in it)."""

    id: int
    channel: str  # 'push' | 'email' | 'sms' | 'digest'
    user_id: str  # canonical text of the realm's user id
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
    # push: the user's devices not yet sent to, as (device id, FCM token), oldest first;
    # loaded by the claim itself (no query per job).
    devices: tuple[tuple[uuid.UUID, str], ...] = ()
    # When the job was due before this claim (how long it waited is claimed_at - due_at).
    due_at: dt.datetime | None = None
    realm: str = "analyst"
    # The realm's inbox (where the notification and a digest's items live).
    inbox: Inbox | None = None
    # The X-Request-Id of the api request whose notify() queued the job, if any.
    request_id: str | None = None
    # sms: the number of an active user (the `phone` column of the realm's contact_sql).
    phone: str | None = None

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
    """Not now, and not a failure (quiet hours, a provider-wide pause, a paused device token):
    the attempt is not counted. Devices already sent to in this attempt are recorded."""

    until: dt.datetime
    reason: str
    sent_device_ids: Sequence[uuid.UUID] = ()


Outcome = Sent | Retry | Failed | Skipped | Held


class ChannelSender(Protocol):
    """Delivers one claimed job of its channel; never raises for a provider's answer.
    `concurrency` is how many of its jobs a worker keeps in flight at once."""

    channel: str
    concurrency: int

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

# $1 now, $2 the most jobs in all, $3 worker id, $4 lease seconds, $5/$6 channels and the most
# jobs of each, $7 the realms this worker serves. Each channel is read on its own
# (idx_notification_deliveries_channel_due) in due order, skipping jobs other workers hold; a
# channel paused for the whole provider is skipped. Settings and the push devices not yet sent
# to come along (gateway tables, keyed by realm and user); the notification and the user's
# address are the realm's, loaded next (_CONTENT), one query per realm in the batch.
_CLAIM = """
WITH wanted AS (
    SELECT w.channel, w.n
      FROM unnest($5::text[], $6::int[]) AS w(channel, n)
     WHERE w.n > 0
       AND NOT EXISTS (SELECT 1 FROM gateway.delivery_pauses p
                        WHERE p.scope = w.channel AND p.paused_until > $1)
), due AS (
    SELECT j.id, j.next_attempt_at
      FROM wanted w
     CROSS JOIN LATERAL (
        SELECT d.id, d.next_attempt_at FROM gateway.notification_deliveries d
         WHERE d.channel = w.channel AND d.status IN ('pending', 'sending')
           AND d.next_attempt_at <= $1 AND d.realm = ANY ($7::text[])
         ORDER BY d.next_attempt_at, d.id
         LIMIT w.n
           FOR UPDATE SKIP LOCKED) j
     ORDER BY j.next_attempt_at, j.id
     LIMIT $2
), claimed AS (
    UPDATE gateway.notification_deliveries d
       SET status = 'sending', attempts = d.attempts + 1, claimed_by = $3, claimed_at = $1,
           next_attempt_at = $1 + make_interval(secs => $4)
      FROM due
     WHERE d.id = due.id
    RETURNING d.*, due.next_attempt_at AS due_at
)
SELECT c.id, c.realm, c.channel, c.user_id, c.notification_id, c.digest_date, c.priority,
       c.attempts, c.sent_device_ids, c.due_at, c.request_id,
       coalesce(s.time_zone, 'UTC') AS time_zone, s.quiet_hours_start, s.quiet_hours_end,
       coalesce(s.digest_at, time '08:00') AS digest_at,
       dv.ids AS device_ids, dv.tokens AS device_tokens
  FROM claimed c
  LEFT JOIN gateway.notification_settings s ON s.realm = c.realm AND s.user_id = c.user_id
  LEFT JOIN LATERAL (
      SELECT array_agg(pd.id ORDER BY pd.created_at, pd.id) AS ids,
             array_agg(pd.token ORDER BY pd.created_at, pd.id) AS tokens
        FROM gateway.push_devices pd
       WHERE c.channel = 'push' AND pd.realm = c.realm AND pd.user_id = c.user_id
         AND NOT (pd.id = ANY (c.sent_device_ids))
  ) dv ON true
 ORDER BY c.due_at, c.id
"""

# The notifications and users of one realm's jobs: $1 the distinct user ids (the realm's id
# type, for its contact_sql), $2/$3/$4 per job: id, notification id, user id (text). A realm
# without contact_sql has no address the core may use, and its users count as active. The
# phone column is optional in contact_sql: read by name from the row's JSON (NULL when absent).
_CONTENT = """
WITH contact AS ({contact})
SELECT j.id, n.notification_type, n.title, n.message, n.action_url,
       n.read_at IS NOT NULL AS notification_read,
       c.email, coalesce(c.active, {unknown_active}) AS user_active,
       coalesce(c.email IS NOT NULL AND c.email_verified AND c.active, false) AS email_ok,
       CASE WHEN c.active THEN to_jsonb(c) ->> 'phone' END AS phone
  FROM unnest($2::bigint[], $3::uuid[], $4::text[]) AS j(id, notification_id, user_id)
  LEFT JOIN {table} n ON n.id = j.notification_id{realm_match}
  LEFT JOIN contact c ON c.id = {user_key}
"""

_NO_CONTACT = (
    "SELECT NULL::{id_type} AS id, NULL::text AS email, false AS email_verified,"
    " false AS active WHERE $1::{id_type}[] IS NULL"
)


def _content_sql(realm: Realm, box: Inbox) -> str:
    return _content_statement(realm.contact_sql, realm.user_id_type, box)


@functools.cache
def _content_statement(contact_sql: str | None, id_type: str, box: Inbox) -> str:
    contact = (contact_sql or _NO_CONTACT).strip().rstrip(";")
    return _CONTENT.format(
        contact=contact.replace("{id_type}", id_type),
        unknown_active="false" if contact_sql else "true",
        table=box.table,
        realm_match=" AND n.realm = $5" if box.shared else "",
        user_key=f"j.user_id::{id_type}",
    )


# The job and its notification(s) in one statement, returning 1 if this worker still held the
# claim (only the claim holder writes), else 0. {inbox}: the job's realm's inbox table (so is
# it in _SENT_MANY and _GIVE_UP, written per realm).
_SENT = """
WITH d AS (
    UPDATE gateway.notification_deliveries
       SET status = 'sent', sent_at = $3, provider_message_id = $4, sent_device_ids = $5,
           digest_items = $6, last_error = NULL
     WHERE id = $1 AND claimed_by = $2 AND status = 'sending'
    RETURNING channel, notification_id, digest_items
), n AS (
    UPDATE {inbox} n
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

# Many push/e-mail jobs sent, in one statement ($1 worker id; per job: $2 id, $3 sent_at, $4
# provider id; $5/$6 (job id, device id) pairs). Returns the ids of jobs whose claim this
# worker still held. The notifications are updated once each (a notification's push and
# e-mail job may be in the same batch), in id order like every batch of every worker.
_SENT_MANY = """
WITH o AS (
    SELECT * FROM unnest($2::bigint[], $3::timestamptz[], $4::text[]) AS o(id, at, provider)
), devices AS (
    SELECT x.job, array_agg(x.device ORDER BY x.n) AS ids
      FROM unnest($5::bigint[], $6::uuid[]) WITH ORDINALITY AS x(job, device, n)
     GROUP BY x.job
), d AS (
    UPDATE gateway.notification_deliveries j
       SET status = 'sent', sent_at = o.at, provider_message_id = o.provider,
           sent_device_ids = coalesce(devices.ids, '{}'), last_error = NULL
      FROM o LEFT JOIN devices ON devices.job = o.id
     WHERE j.id = o.id AND j.claimed_by = $1 AND j.status = 'sending'
    RETURNING j.id, j.channel, j.notification_id, o.at
), per_notification AS (
    SELECT d.notification_id AS id,
           min(d.at) FILTER (WHERE d.channel = 'push') AS push_at,
           min(d.at) FILTER (WHERE d.channel IN ('email', 'digest')) AS email_at,
           min(d.at) AS first_at
      FROM d
     GROUP BY d.notification_id
     ORDER BY d.notification_id
), n AS (
    UPDATE {inbox} n
       SET push_sent = n.push_sent OR p.push_at IS NOT NULL,
           push_sent_at = CASE WHEN p.push_at IS NOT NULL THEN coalesce(n.push_sent_at, p.push_at)
                               ELSE n.push_sent_at END,
           email_sent = n.email_sent OR p.email_at IS NOT NULL,
           email_sent_at = CASE WHEN p.email_at IS NOT NULL
                                THEN coalesce(n.email_sent_at, p.email_at)
                                ELSE n.email_sent_at END,
           status = CASE WHEN n.status = 'pending' THEN 'sent' ELSE n.status END,
           sent_at = coalesce(n.sent_at, p.first_at)
      FROM per_notification p
     WHERE n.id = p.id
)
SELECT id FROM d
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
    UPDATE {inbox} n
       SET status = 'failed'
      FROM d
     WHERE n.id = d.notification_id AND n.status = 'pending' AND NOT n.send_in_app
       AND NOT EXISTS (SELECT 1 FROM gateway.notification_deliveries x
                        WHERE x.notification_id = n.id AND x.id <> $1
                          AND x.status IN ('pending', 'sending', 'sent'))
)
SELECT count(*) FROM d
"""

# When each of the channels $1 has a job due next (pending, or a lease that ends), no sooner
# than the end of a pause of that channel; NULL for a channel with nothing open.
_NEXT_DUE = """
SELECT w.channel, greatest(j.next_attempt_at, p.paused_until) AS due
  FROM unnest($1::text[]) AS w(channel)
  LEFT JOIN LATERAL (
      SELECT d.next_attempt_at FROM gateway.notification_deliveries d
       WHERE d.channel = w.channel AND d.status IN ('pending', 'sending')
       ORDER BY d.next_attempt_at
       LIMIT 1
  ) j ON true
  LEFT JOIN gateway.delivery_pauses p ON p.scope = w.channel
"""

# A pause of a whole channel (the provider said so); never shortened by a later, shorter one.
_PAUSE = """
INSERT INTO gateway.delivery_pauses AS p (scope, paused_until, reason, set_by, updated_at)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (scope) DO UPDATE
   SET paused_until = EXCLUDED.paused_until, reason = EXCLUDED.reason,
       set_by = EXCLUDED.set_by, updated_at = now()
 WHERE p.paused_until < EXCLUDED.paused_until
"""


async def pause_channel(
    pool: asyncpg.Pool, channel: str, until: dt.datetime, reason: str, set_by: str
) -> None:
    """No worker claims `channel` before `until` (a provider's project-wide Retry-After)."""
    await pool.execute(_PAUSE, channel, until, reason[:1000], set_by)


def _job(row: asyncpg.Record, content: asyncpg.Record | None, box: Inbox | None) -> Job:
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
        notification_type=content["notification_type"] if content else None,
        title=content["title"] if content else None,
        message=content["message"] if content else None,
        action_url=content["action_url"] if content else None,
        notification_read=bool(content["notification_read"]) if content else False,
        email=content["email"] if content else None,
        email_ok=bool(content["email_ok"]) if content else False,
        user_active=bool(content["user_active"]) if content else False,
        time_zone=row["time_zone"],
        quiet_hours=(start, end) if start is not None and end is not None else None,
        digest_at=row["digest_at"],
        devices=tuple(zip(row["device_ids"] or (), row["device_tokens"] or (), strict=True)),
        due_at=row["due_at"],
        realm=row["realm"],
        inbox=box,
        request_id=row["request_id"],
        phone=content["phone"] if content else None,
    )


@dataclass(frozen=True, slots=True)
class _SentJob:
    id: int
    realm: str
    at: dt.datetime
    provider_message_id: str | None
    devices: list[uuid.UUID]


class Outbox:
    """The outbox table as one worker sees it. Each call is one statement (autocommit); the
    outcomes of sent push and e-mail jobs finished at about the same time share one (group
    commit: while one batch is written the next gathers, so a busy worker writes many outcomes
    per round trip and an idle one waits for nobody)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        worker_id: str,
        *,
        lease_s: float = 300.0,
        policy: RetryPolicy | None = None,
        realms: Realms | None = None,
    ) -> None:
        self.pool = pool
        self.worker_id = worker_id
        # The realms whose jobs this worker claims (SWITCHBOARD_REALMS by default).
        self.realms = realms if realms is not None else enabled_realms()
        self.lease_s = lease_s
        self.policy = policy or RetryPolicy()
        self.max_batch = 200
        self._sent: list[tuple[_SentJob, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def claim(
        self, now: dt.datetime, limit: int, channels: Mapping[str, int] | None = None
    ) -> list[Job]:
        """Claim due jobs (or jobs whose lease ran out) for this worker, earliest due first:
        at most `channels[c]` of channel c (default: any channel) and `limit` in all.

        Each must then be finished with `finish` before `now + lease_s`, or it will be
        claimed again by someone else."""
        wanted = dict(channels) if channels is not None else dict.fromkeys(CHANNELS, limit)
        rows = await self.pool.fetch(
            _CLAIM,
            now,
            limit,
            self.worker_id,
            self.lease_s,
            list(wanted),
            list(wanted.values()),
            self.realms.names,
        )
        by_realm: dict[str, list[asyncpg.Record]] = {}
        for row in rows:
            by_realm.setdefault(row["realm"], []).append(row)
        contents: dict[int, asyncpg.Record] = {}
        boxes: dict[str, Inbox] = {}
        for name, jobs in by_realm.items():
            realm = self.realms.get(name)
            boxes[name] = box = inbox_of(realm)
            users = list(dict.fromkeys(row["user_id"] for row in jobs))
            args: list[object] = [
                [realm.user_id_value(u) for u in users],
                [row["id"] for row in jobs],
                [row["notification_id"] for row in jobs],
                [row["user_id"] for row in jobs],
            ]
            if box.shared:
                args.append(name)
            for content in await self.pool.fetch(_content_sql(realm, box), *args):
                contents[content["id"]] = content
        return [_job(r, contents.get(r["id"]), boxes[r["realm"]]) for r in rows]

    def _inbox_table(self, realm: str) -> str:
        return inbox_of(self.realms.get(realm)).table

    async def next_due_by_channel(
        self, channels: Sequence[str] = CHANNELS
    ) -> dict[str, dt.datetime]:
        """When each channel's earliest unfinished job becomes due (pending or leased, and not
        before a pause of the channel ends); channels with nothing open are left out."""
        rows = await self.pool.fetch(_NEXT_DUE, list(channels))
        return {r["channel"]: r["due"] for r in rows if r["due"] is not None}

    async def next_due(self, channels: Sequence[str] = CHANNELS) -> dt.datetime | None:
        """When the earliest unfinished job of `channels` becomes due, if any."""
        return min((await self.next_due_by_channel(channels)).values(), default=None)

    async def finish(self, job: Job, outcome: Outcome, now: dt.datetime) -> str:
        """Write `outcome` back; returns the job's new status ('' if the claim was lost)."""
        devices = list(job.sent_device_ids)
        match outcome:
            case Sent():
                devices = list(dict.fromkeys([*devices, *outcome.sent_device_ids]))
                if not outcome.digest_items:
                    item = _SentJob(job.id, job.realm, now, outcome.provider_message_id, devices)
                    return "sent" if await self._submit_sent(item) else ""
                held = await self.pool.fetchval(
                    _SENT.replace("{inbox}", self._inbox_table(job.realm)),
                    job.id,
                    self.worker_id,
                    now,
                    outcome.provider_message_id,
                    devices,
                    list(outcome.digest_items),
                )
                return "sent" if held else ""
            case Held():
                devices = list(dict.fromkeys([*devices, *outcome.sent_device_ids]))
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

    async def _submit_sent(self, item: _SentJob) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._sent.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_sent(), name="outbox-sent")
        return await future

    async def _flush_sent(self) -> None:
        """Write queued sent outcomes, a batch at a time, until none is left (no task lingers
        once the queue is empty). A batch that fails is written one job at a time, so a
        failure (a deadlock with another writer, a lost connection) reaches its own jobs."""
        await asyncio.sleep(0)  # let the jobs finishing in this loop iteration join
        while self._sent:
            batch, self._sent = self._sent[: self.max_batch], self._sent[self.max_batch :]
            try:
                held = await self._write_sent([item for item, _ in batch])
            except Exception:
                for item, future in batch:
                    try:
                        ok = item.id in await self._write_sent([item])
                    except Exception as exc:
                        if not future.done():
                            future.set_exception(exc)
                    else:
                        if not future.done():
                            future.set_result(ok)
                continue
            for item, future in batch:
                if not future.done():  # its caller may have been cancelled
                    future.set_result(item.id in held)

    async def _write_sent(self, items: list[_SentJob]) -> set[int]:
        """One statement per realm among `items` (a batch is nearly always of one realm)."""
        by_realm: dict[str, list[_SentJob]] = {}
        for item in items:
            by_realm.setdefault(item.realm, []).append(item)
        held: set[int] = set()
        for realm, group in sorted(by_realm.items()):
            pairs = [(item.id, device) for item in group for device in item.devices]
            rows = await self.pool.fetch(
                _SENT_MANY.replace("{inbox}", self._inbox_table(realm)),
                self.worker_id,
                [item.id for item in group],
                [item.at for item in group],
                [item.provider_message_id for item in group],
                [job for job, _ in pairs],
                [device for _, device in pairs],
            )
            held.update(row["id"] for row in rows)
        return held

    async def _give_up(self, job: Job, status: str, reason: str) -> str:
        held = await self.pool.fetchval(
            _GIVE_UP.replace("{inbox}", self._inbox_table(job.realm)),
            job.id,
            self.worker_id,
            status,
            reason[:1000],
        )
        return status if held else ""
