"""The worker's Prometheus endpoint (WORKER_METRICS_PORT): a real `python -m workers` on this
test's database, its jobs and deliveries counted, the outbox read at scrape time; and the
event counting it relies on, which must not depend on LOG_LEVEL."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from kernel.logs import EventLog
from kernel.metrics import observe_events
from kernel.notify import notify
from kernel.request_context import bound_request_id
from realms.analyst.jobs import JOBS
from tests.conftest import free_port
from tests.factories import make_user

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class WorkerProcess:
    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    async def line_with(self, *fragments: str, timeout: float = 60) -> str:
        """The first line of the worker's log, read so far or to come, holding every fragment."""
        assert self.proc.stderr is not None
        async with asyncio.timeout(timeout):
            for line in self._lines_then_more():
                if all(fragment in line for fragment in fragments):
                    return line
                if line is _MORE:
                    raw = await self.proc.stderr.readline()
                    assert raw, "the worker exited:\n" + "".join(self.lines)
                    self.lines.append(raw.decode())
        raise AssertionError("unreachable")

    def _lines_then_more(self) -> Iterator[str]:
        i = 0
        while True:
            while i < len(self.lines):
                yield self.lines[i]
                i += 1
            yield _MORE


_MORE = "\0more"


def _env(dsn: str, secret: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": dsn, "SWITCHBOARD_SECRET": secret, "LOG_FORMAT": "kv"}
    for name in ("SMTP_URL", "FCM_CREDENTIALS_FILE", "LOG_LEVEL", "WORKER_METRICS_HOST"):
        env.pop(name, None)  # no channel configured: e-mail jobs are skipped, not sent
    return {**env, **extra}


@pytest.fixture
async def start_worker(dsn: str, secret: str) -> AsyncIterator[Any]:
    started: list[WorkerProcess] = []

    async def start(**extra: str) -> WorkerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers",
            cwd=ROOT,
            env=_env(dsn, secret, **extra),
            stderr=asyncio.subprocess.PIPE,
        )
        worker = WorkerProcess(proc)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.proc.returncode is None:
            worker.proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                await worker.proc.communicate()


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 - http to loopback
        return int(reply.status), reply.headers["Content-Type"], reply.read().decode()


async def scrape(port: int) -> dict[str, float]:
    status, content_type, text = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def test_the_worker_serves_its_jobs_deliveries_and_outbox(
    start_worker: Any, db: asyncpg.Connection
) -> None:
    reader = await make_user(db, email_verified=True)
    # Queued before the worker starts: one e-mail due now (skipped: no SMTP_URL) and one
    # digest due tomorrow, from a request with an id.
    with bound_request_id("ops-test-1"):
        for key, group in (("ops:1", None), ("ops:2", "daily_digest")):
            await notify(
                db,
                event_key=key,
                recipients=[reader],
                notification_type="system_notice",
                title="Hello",
                send_push=False,
                notification_group=group,
            )
    port = free_port()
    worker = await start_worker(WORKER_METRICS_PORT=str(port))
    listening = await worker.line_with("event=metrics_listening")
    assert f"port={port}" in listening
    await worker.line_with("event=delivery", "channel=email", "outcome=skipped")
    for job in JOBS:  # a fresh database: each job runs once at start
        await worker.line_with("event=job_succeeded", f" job={job.name} ")

    samples = await scrape(port)
    for job in JOBS:
        assert (
            samples[f'switchboard_worker_jobs_total{{job="{job.name}",outcome="succeeded"}}'] == 1
        )
        assert samples[f'switchboard_worker_job_duration_seconds_count{{job="{job.name}"}}'] == 1
    deliveries = 'switchboard_worker_deliveries_total{channel="email",outcome="skipped"}'
    assert samples[deliveries] == 1
    assert samples['switchboard_worker_delivery_duration_seconds_count{channel="email"}'] == 1
    assert samples['switchboard_outbox_jobs{channel="digest",state="scheduled"}'] == 1
    assert samples['switchboard_outbox_jobs{channel="email",state="due"}'] == 0
    assert samples['switchboard_outbox_oldest_due_seconds{channel="email"}'] == 0
    assert samples["process_cpu_seconds_total"] > 0
    assert samples["process_resident_memory_bytes"] > 0
    assert any(name.startswith("python_info{") for name in samples)
    health = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/healthz")
    assert health[0] == 200

    # the job the request queued keeps its request id through the delivery
    row = await db.fetchrow(
        "SELECT status, request_id FROM gateway.notification_deliveries WHERE channel = 'email'"
    )
    assert tuple(row) == ("skipped", "ops-test-1")


async def test_port_zero_serves_no_metrics(start_worker: Any) -> None:
    worker = await start_worker(WORKER_METRICS_PORT="0")
    await worker.line_with("event=started")
    assert not [line for line in worker.lines if "metrics_" in line]


async def test_a_port_in_use_is_logged_and_the_worker_runs_on(start_worker: Any) -> None:
    port = free_port()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:
        worker = await start_worker(WORKER_METRICS_PORT=str(port))
        line = await worker.line_with("event=metrics_unavailable")
        assert f"port={port}" in line and "level=error" in line
        await worker.line_with("event=job_succeeded")  # working all the same
    finally:
        server.close()
        await server.wait_closed()


def test_events_are_counted_whatever_the_log_level(caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    root = logging.getLogger("opstest")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(logging.WARNING)  # as LOG_LEVEL=WARNING would set it
    child = EventLog("opstest.scheduler.child")
    seen: list[tuple[str, dict[str, Any]]] = []
    try:
        observe_events(
            "opstest.scheduler", lambda event, fields: seen.append((event, dict(fields)))
        )
        parent = EventLog("opstest.scheduler")
        parent.info("job_succeeded", job="a", ms=5)
        parent.warning("job_gave_up", job="a")
        parent.debug("job_skipped", job="a")  # below the lowest level counted
        child.info("child_event")  # not the observed logger: neither counted nor shown
    finally:
        root.handlers.clear()
        root.propagate = True
        root.setLevel(logging.NOTSET)
    assert seen == [("job_succeeded", {"job": "a", "ms": 5}), ("job_gave_up", {"job": "a"})]
    assert out.getvalue().splitlines() == ["job_gave_up"]  # the output is what it was
