"""The worker's Prometheus metrics, served on WORKER_METRICS_HOST:WORKER_METRICS_PORT
(docs/operations.md).

Jobs and deliveries are counted from the structured events the scheduler and the delivery
loop already log, one per finished attempt (`job_succeeded`, `job_failed`,
`job_claim_lost` on worker.scheduler; `delivery` on workers.delivery), so the counting needs
no hook in their code. The outbox gauges are read from the database at each scrape: they
describe the queue all workers share, not this process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kernel.config import Settings
from kernel.logs import EventLog
from kernel.metrics import MetricsServer, observe_events, process_registry, serve_metrics
from workers.delivery.outbox import CHANNELS

log = EventLog("worker.metrics")

SCHEDULER_LOGGER = "worker.scheduler"
DELIVERY_LOGGER = "workers.delivery"
_JOB_OUTCOMES = {
    "job_succeeded": "succeeded",
    "job_failed": "failed",
    "job_claim_lost": "claim_lost",
}
BACKLOG_TIMEOUT_S = 2.0

# Per channel: jobs due now and not claimed, jobs waiting for a later time (retries, quiet
# hours, tomorrow's digests), jobs claimed by a worker, and how long the oldest due job has
# waited. Reads only the rows of the partial index on pending and sending jobs.
_BACKLOG = """
SELECT channel,
       count(*) FILTER (WHERE status = 'pending' AND next_attempt_at <= now()) AS due,
       count(*) FILTER (WHERE status = 'pending' AND next_attempt_at > now()) AS scheduled,
       count(*) FILTER (WHERE status = 'sending') AS sending,
       coalesce(extract(epoch FROM now() - min(next_attempt_at)
                        FILTER (WHERE status = 'pending' AND next_attempt_at <= now())), 0)
           AS oldest_due_s
  FROM gateway.notification_deliveries
 WHERE status IN ('pending', 'sending')
 GROUP BY channel
"""


class WorkerMetrics:
    """The worker's registry: process_*/python_*, jobs, deliveries and the outbox."""

    def __init__(self) -> None:
        self.registry: CollectorRegistry = process_registry()
        r = self.registry
        self.jobs = Counter(
            "switchboard_worker_jobs_total",
            "Scheduled job attempts finished by this worker, by job and outcome",
            ["job", "outcome"],
            registry=r,
        )
        self.job_duration = Histogram(
            "switchboard_worker_job_duration_seconds",
            "Duration of succeeded job attempts",
            ["job"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
            registry=r,
        )
        self.deliveries = Counter(
            "switchboard_worker_deliveries_total",
            "Delivery attempts by this worker, by channel and outcome"
            " (sent, retry, failed, skipped, held)",
            ["channel", "outcome"],
            registry=r,
        )
        self.delivery_duration = Histogram(
            "switchboard_worker_delivery_duration_seconds",
            "Time to deliver one job and learn its outcome, by channel",
            ["channel"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.outbox = Gauge(
            "switchboard_outbox_jobs",
            "Delivery jobs not finished, by channel and state (due, scheduled, sending);"
            " read from the database at scrape time",
            ["channel", "state"],
            registry=r,
        )
        self.oldest_due = Gauge(
            "switchboard_outbox_oldest_due_seconds",
            "How long the oldest due, unclaimed delivery job of a channel has waited",
            ["channel"],
            registry=r,
        )
        self.scrape_errors = Counter(
            "switchboard_worker_metrics_errors_total",
            "Scrapes whose outbox reading failed (the gauges then keep their last values)",
            registry=r,
        )
        for channel in CHANNELS:
            for state in ("due", "scheduled", "sending"):
                self.outbox.labels(channel, state)
            self.oldest_due.labels(channel)

    # --- from the events the worker logs ----------------------------------------------------

    def on_scheduler_event(self, event: str, fields: Mapping[str, Any]) -> None:
        outcome = _JOB_OUTCOMES.get(event)
        if outcome is None:
            return
        job = str(fields.get("job", ""))
        self.jobs.labels(job, outcome).inc()
        ms = fields.get("ms")
        if outcome == "succeeded" and isinstance(ms, int | float):
            self.job_duration.labels(job).observe(ms / 1000)

    def on_delivery_event(self, event: str, fields: Mapping[str, Any]) -> None:
        if event != "delivery":
            return
        channel = str(fields.get("channel", ""))
        self.deliveries.labels(channel, str(fields.get("outcome", ""))).inc()
        ms = fields.get("ms")
        if isinstance(ms, int | float):
            self.delivery_duration.labels(channel).observe(ms / 1000)

    # --- from the database, at each scrape ----------------------------------------------------

    async def read_outbox(self, pool: asyncpg.Pool) -> None:
        try:
            async with asyncio.timeout(BACKLOG_TIMEOUT_S):
                rows = await pool.fetch(_BACKLOG)
        except asyncpg.UndefinedTableError:  # no outbox: the analyst realm is not served
            return
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self.scrape_errors.inc()
            log.warning("outbox_not_read", error=repr(exc)[:300])
            return
        seen = {row["channel"]: row for row in rows}
        for channel in sorted({*CHANNELS, *seen}):
            row = seen.get(channel)
            for state in ("due", "scheduled", "sending"):
                self.outbox.labels(channel, state).set(row[state] if row else 0)
            self.oldest_due.labels(channel).set(float(row["oldest_due_s"]) if row else 0.0)


async def start_metrics(pool: asyncpg.Pool, settings: Settings) -> MetricsServer | None:
    """Count this worker's jobs and deliveries and serve them with the outbox gauges on
    WORKER_METRICS_HOST:WORKER_METRICS_PORT; None when the port is 0 or cannot be bound
    (the worker runs on without metrics)."""
    if settings.worker_metrics_port == 0:
        return None
    metrics = WorkerMetrics()
    server = await serve_metrics(
        settings.worker_metrics_host,
        settings.worker_metrics_port,
        metrics.registry,
        before_scrape=lambda: metrics.read_outbox(pool),
    )
    if server is not None:
        observe_events(SCHEDULER_LOGGER, metrics.on_scheduler_event)
        observe_events(DELIVERY_LOGGER, metrics.on_delivery_event)
    return server
