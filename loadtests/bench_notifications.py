"""Notification benchmarks (an asyncio harness, not a test): how fast one `notify()` creates a
large fan-out, how fast the real delivery workers drain the outbox against local provider
stand-ins (one channel at a time, and one urgent post's push and e-mail jobs together), and
how long an in-app notification takes from commit to the user's socket.

Each part builds its own throwaway database (and gateway, worker and stand-in processes) on
loopback, prints progress, and merges its figures into loadtests/results/notifications.json
for `loadtests.report`.

    python -m loadtests.bench_notifications                  # every part, default sizes
    python -m loadtests.bench_notifications --parts creation --subscribers 100000
    python -m loadtests.bench_notifications --parts delivery --push-jobs 5000 --email-jobs 2000
    python -m loadtests.bench_notifications --parts drain --drain-subscribers 100000
    python -m loadtests.bench_notifications --parts drain --drain-subscribers 10000 --fail-every 50
    python -m loadtests.bench_notifications --parts inapp --users 200 --rate 100 --duration 10

`drain` reports jobs/s, the time to drain all of one urgent post's jobs (a push and an e-mail
per subscriber) and, per channel, percentiles of commit-to-sent latency and of the time jobs
(and retries, with --fail-every) waited for a worker after falling due.

The stand-ins are those of the tests (tests/notifications/fakes.py): an FCM HTTP v1 server
with its OAuth token endpoint (google-auth signs a real JWT with a generated key) and an
aiosmtpd SMTP sink, run in a process of their own so their CPU is counted apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import re
import resource
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from kernel.db import connect, create_pool
from kernel.notify import notify, subscribers_of
from kernel.tokens import sign_access_token
from loadtests.bench_gateway import HOST, RESULTS, ROOT, Stack, machine, percentile, say
from loadtests.wsclient import BenchSocket, open_socket

RESULT_FILE = RESULTS / "notifications.json"
PARTS = ("creation", "delivery", "drain", "inapp")
PUBLIC_BASE = "https://switchboard.example"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Hidden roles of this module, run in child processes.
STAND_INS_ROLE = "_stand-ins"
WORKER_ROLE = "_worker"


async def background_cpu(seconds: float = 1.0) -> float:
    """Machine CPU in use (% of all cores) before a part starts: other work on the machine."""
    busy, total = machine_ticks()
    await asyncio.sleep(seconds)
    busy2, total2 = machine_ticks()
    percent = round(100 * (busy2 - busy) / max(1, total2 - total), 1)
    if percent > 20:
        say(f"the machine is {percent:g}% busy before this part starts: figures will be lower")
    return percent


def write_part(part: str, data: dict[str, object]) -> None:
    """Merge one part's figures into notifications.json (the other parts are kept)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    existing: dict[str, Any] = {}
    if RESULT_FILE.exists():
        existing = json.loads(RESULT_FILE.read_text())
    existing["benchmark"] = "notifications"
    existing[part] = {"machine": machine(), **data}
    RESULT_FILE.write_text(json.dumps(existing, indent=2) + "\n")
    say(f"wrote {part} to loadtests/results/{RESULT_FILE.name}")


# --- CPU accounting ---------------------------------------------------------------------------


def process_ticks(pid: int) -> int:
    """User + system CPU of a process, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal
    return total - values[3] - values[4], total


class CpuMeter:
    """CPU used during an interval: per named process in % of one core, the machine in % of
    all its cores."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self._start = 0.0
        self._ticks: dict[str, int] = {}
        self._machine = (0, 0)

    def _read(self) -> dict[str, int]:
        return {name: sum(process_ticks(p) for p in pids) for name, pids in self.pids.items()}

    def start(self) -> None:
        self._start = time.monotonic()
        self._ticks = self._read()
        self._machine = machine_ticks()

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._start
        ticks = self._read()
        busy, total = machine_ticks()
        out = {
            f"{name}_cpu_pct": round(100 * (ticks[name] - self._ticks[name]) / CLK_TCK / elapsed, 1)
            for name in self.pids
        }
        out["machine_cpu_pct"] = round(
            100 * (busy - self._machine[0]) / max(1, total - self._machine[1]), 1
        )
        return out


# --- 1. creation: one notify() to 100,000 subscribers --------------------------------------------


async def seed_audience(conn: asyncpg.Connection, count: int) -> uuid.UUID:
    """An analyst with `count` active subscribers, each with a verified e-mail address and one
    push device (so notify() makes a push and an e-mail job for every one). Set-based."""
    tag = uuid.uuid4().hex[:6]
    analyst: uuid.UUID = await conn.fetchval(
        "INSERT INTO analyst.users (email, password_hash, user_type, email_verified)"
        " VALUES ('analyst-' || $1 || '@example.com', 'x', 'analyst', true) RETURNING id",
        tag,
    )
    await conn.execute(
        "INSERT INTO analyst.analyst_profiles (user_id, display_name) VALUES ($1, 'Bench Analyst')",
        analyst,
    )
    tier = await conn.fetchval(
        "INSERT INTO analyst.subscription_tiers (analyst_id, tier_name, price_monthly)"
        " VALUES ($1, 'Pro', 99900) RETURNING id",
        analyst,
    )
    await conn.execute(
        "INSERT INTO analyst.users (email, password_hash, user_type, email_verified)"
        " SELECT 'sub-' || g || '-' || $2 || '@example.com', 'x', 'trader', true"
        " FROM generate_series(1, $1) g",
        count,
        tag,
    )
    await conn.execute(
        "INSERT INTO analyst.subscriptions (user_id, analyst_id, tier_id, status, billing_cycle,"
        " start_date, expires_at) SELECT u.id, $1, $2, 'active', 'monthly', now(),"
        " now() + interval '30 days' FROM analyst.users u WHERE u.user_type = 'trader'",
        analyst,
        tier,
    )
    await seed_devices(conn)
    return analyst


async def seed_devices(conn: asyncpg.Connection) -> None:
    """One Android push token for every trader."""
    await conn.execute(
        "INSERT INTO gateway.push_devices (realm, user_id, token, platform, app_version)"
        " SELECT 'analyst', u.id, 'bench-token-' || u.id, 'android', '1.0'"
        " FROM analyst.users u WHERE u.user_type = 'trader'"
    )


async def bench_creation(base_dsn: str, subscribers: int, repeats: int, timeout: float) -> None:
    background = await background_cpu()
    stack = Stack(base_dsn)
    try:
        conn = await stack.database()
        started = time.monotonic()
        analyst = await seed_audience(conn, subscribers)
        await conn.execute("VACUUM ANALYZE")
        say(
            f"seeded {subscribers:,} subscribers with devices in {time.monotonic() - started:.1f} s"
        )
        runs: list[dict[str, object]] = []
        event_key = ""
        for run in range(1, repeats + 1):
            event_key = f"post:{uuid.uuid4()}:published"
            last_job = await conn.fetchval(
                "SELECT coalesce(max(id), 0) FROM gateway.notification_deliveries"
            )
            say(f"run {run}: notify() to the {subscribers:,} subscribers of one analyst ...")
            started = time.monotonic()
            created = await asyncio.wait_for(_notify_audience(conn, analyst, event_key), timeout)
            elapsed = time.monotonic() - started
            by_channel = dict(
                await conn.fetch(
                    "SELECT channel, count(*) FROM gateway.notification_deliveries"
                    " WHERE id > $1 GROUP BY channel",
                    last_job,
                )
            )
            jobs = sum(by_channel.values())
            say(
                f"run {run}: {created:,} notifications + {jobs:,} jobs in {elapsed:.2f} s ="
                f" {created / elapsed:,.0f} notifications/s, {jobs / elapsed:,.0f} jobs/s"
            )
            runs.append(
                {
                    "run": run,
                    "recipients": subscribers,
                    "notifications": created,
                    "push_jobs": by_channel.get("push", 0),
                    "email_jobs": by_channel.get("email", 0),
                    "jobs": jobs,
                    "seconds": round(elapsed, 3),
                    "notifications_per_s": round(created / elapsed),
                    "jobs_per_s": round(jobs / elapsed),
                    "rows_per_s": round((created + jobs) / elapsed),
                }
            )
        started = time.monotonic()
        replayed = await asyncio.wait_for(_notify_audience(conn, analyst, event_key), timeout)
        replay_s = time.monotonic() - started
        say(f"replaying the last event created {replayed} notifications in {replay_s:.2f} s")
        await conn.close()
        write_part(
            "creation",
            {
                "command": f"--parts creation --subscribers {subscribers} --repeats {repeats}",
                "background_cpu_pct": background,
                "subscribers": subscribers,
                "runs": runs,
                "replay_created": replayed,
                "replay_seconds": round(replay_s, 3),
            },
        )
    finally:
        await stack.close()


async def _notify_audience(conn: asyncpg.Connection, analyst: uuid.UUID, event_key: str) -> int:
    return await notify(
        conn,
        event_key=event_key,
        recipients=subscribers_of(analyst),
        notification_type="new_post",
        title="New post from Bench Analyst",
        message="Nifty levels for tomorrow: support 22,100, resistance 22,450.",
        action_url="https://app.switchboard.example/posts/bench",
        related_entity_type="post",
        priority="high",
    )


# --- 2. delivery: the real workers against the stand-ins ---------------------------------------


class StandIns:
    """The FCM and SMTP stand-ins in a child process; `counts()` asks what they received."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.info: dict[str, str] = {}

    async def start(self, workdir: Path, fail_every: int = 0) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "loadtests.bench_notifications",
            STAND_INS_ROLE,
            str(workdir),
            str(fail_every),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        if not line:
            raise RuntimeError("the stand-ins exited before starting")
        self.info = json.loads(line)

    async def counts(self) -> dict[str, int]:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(b"count\n")
        await self.proc.stdin.drain()
        counts: dict[str, int] = json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 10))
        return counts

    async def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


async def serve_stand_ins(workdir: Path, fail_every: int) -> None:
    """Child process: run the stand-ins until stdin closes; answer `count` lines. The SMTP
    sink counts messages without parsing them (the stand-ins share the machine's 2 cores)."""
    from tests.notifications.fakes import FakeFcm, SmtpSink

    fcm, smtp = FakeFcm(workdir), SmtpSink(parse=False)
    fcm.fail_first_every = fail_every
    await fcm.start()
    await smtp.start()
    info = {
        "fcm_base_url": fcm.fcm_base_url,
        "credentials_file": fcm.credentials_file,
        "smtp_url": smtp.url,
    }
    print(json.dumps(info), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            if line.strip() == b"count":
                counts = {
                    "fcm_requests": len(fcm.requests),
                    "fcm_sent": len(fcm.sent),
                    "oauth_tokens": fcm.tokens_issued,
                    "smtp_messages": smtp.accepted,
                    "smtp_sessions": smtp.sessions,
                }
                print(json.dumps(counts), flush=True)
    finally:
        await smtp.stop()
        await fcm.stop()


async def serve_worker(pool_size: int) -> None:
    """Child process: `run_delivery` with settings from the environment, until SIGTERM, the
    way `python -m workers` runs it (asyncio's own loop, one pool) without the scheduler."""
    from kernel.config import load_settings
    from kernel.logs import setup_logging
    from workers.delivery import run_delivery

    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    pool = await create_pool(
        settings.database_url, min_size=1, max_size=pool_size, application_name="bench-delivery"
    )
    try:
        await run_delivery(pool, settings, stop)
    finally:
        await pool.close()


def concurrency_settings(workers: int, pool_size: int) -> dict[str, object]:
    """What bounds concurrency in each worker: the settings the workers were started with
    (FCM_CONCURRENCY, SMTP_CONNECTIONS) and the code's own defaults."""
    from kernel.config import Settings
    from workers.delivery.outbox import Outbox
    from workers.delivery.push import PushSender
    from workers.delivery.worker import DeliveryWorker

    def default(func: Any, name: str) -> Any:
        return inspect.signature(func).parameters[name].default

    defaults = Settings(database_url="", secret="")
    return {
        "workers": workers,
        "worker_pool": pool_size,
        "fcm_concurrency": int(os.environ.get("FCM_CONCURRENCY") or defaults.fcm_concurrency),
        "smtp_connections": int(os.environ.get("SMTP_CONNECTIONS") or defaults.smtp_connections),
        "push_deadline_s": default(PushSender.__init__, "deadline_s"),
        "lease_s": default(Outbox.__init__, "lease_s"),
        # read by loadtests/report.py's delivery section (written for the batch-at-a-time
        # worker): run_once's batch, and the push threads (= FCM_CONCURRENCY)
        "claim_batch": default(DeliveryWorker.__init__, "batch_size"),
        "push_threads": int(os.environ.get("FCM_CONCURRENCY") or defaults.fcm_concurrency),
    }


async def start_workers(
    stack: Stack, stand_ins: StandIns, count: int, pool_size: int, logdir: Path
) -> list[asyncio.subprocess.Process]:
    env = {
        **os.environ,
        "DATABASE_URL": stack.dsn,
        "SWITCHBOARD_SECRET": stack.secret,
        "SMTP_URL": stand_ins.info["smtp_url"],
        "MAIL_FROM": "Switchboard <notify@switchboard.example>",
        "FCM_BASE_URL": stand_ins.info["fcm_base_url"],
        "FCM_CREDENTIALS_FILE": stand_ins.info["credentials_file"],
        "PUBLIC_BASE_URL": PUBLIC_BASE,
        "LOG_LEVEL": "INFO",  # as in production: one line per delivery
        "LOG_FORMAT": "kv",
    }
    for name in ("REDIS_URL", "FCM_PROJECT_ID"):
        env.pop(name, None)
    procs = []
    for n in range(count):
        with (logdir / f"worker-{n}.log").open("wb") as log:
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "loadtests.bench_notifications",
                    WORKER_ROLE,
                    str(pool_size),
                    cwd=ROOT,
                    env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=log,
                )
            )
    # Ready when every worker's LISTEN connection has run its LISTEN (jobs committed before
    # that would still be found, but only at the wake-up that follows it).
    conn = await connect(stack.dsn)
    try:
        deadline = time.monotonic() + 30
        while True:
            listening = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = 'switchboard-delivery-listen' AND query ILIKE 'LISTEN%'"
            )
            if listening >= count:
                break
            if any(p.returncode is not None for p in procs) or time.monotonic() > deadline:
                tail = (logdir / "worker-0.log").read_text()[-2000:]
                raise RuntimeError(f"delivery workers did not start:\n{tail}")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    return procs


async def stop_processes(procs: Sequence[asyncio.subprocess.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def log_problems(logdir: Path) -> list[str]:
    """Worker log lines at warning level or above."""
    lines: list[str] = []
    for path in sorted(logdir.glob("worker-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if "level=error" in line or "level=warning" in line or "Traceback" in line:
                lines.append(line[:300])
    return lines


_PROGRESS = """
SELECT count(*) FILTER (WHERE status IN ('pending', 'sending')) AS open,
       count(*) FILTER (WHERE status = 'sent') AS sent,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'skipped') AS skipped
  FROM gateway.notification_deliveries
 WHERE channel = $1
"""


_BATCHES = """
SELECT count(*) AS jobs,
       extract(epoch FROM max(sent_at) - claimed_at)::float8 AS span,
       extract(epoch FROM avg(sent_at - claimed_at))::float8 AS mean_job
  FROM gateway.notification_deliveries
 WHERE channel = $1 AND status = 'sent'
 GROUP BY claimed_by, claimed_at
"""


async def batch_stats(conn: asyncpg.Connection, channel: str) -> dict[str, object]:
    """How the claim batches went: a batch is claimed at once and the next claim waits for its
    slowest job, so `span` (claim to last job sent) against `mean_job` (claim to a job sent)
    shows how much of each batch's time its stragglers take."""
    rows = await conn.fetch(_BATCHES, channel)
    if not rows:
        return {}
    spans = [r["span"] for r in rows]
    return {
        "count": len(rows),
        "mean_jobs": round(statistics.fmean(r["jobs"] for r in rows), 1),
        "mean_span_ms": round(statistics.fmean(spans) * 1000, 1),
        "max_span_ms": round(max(spans) * 1000, 1),
        "mean_job_ms": round(statistics.fmean(r["mean_job"] for r in rows) * 1000, 1),
    }


async def drain_channel(
    conn: asyncpg.Connection,
    stand_ins: StandIns,
    meter: CpuMeter,
    channel: str,
    recipients: list[uuid.UUID],
    timeout: float,
) -> dict[str, object]:
    """Commit one job per recipient on `channel` (workers idle and listening), then wait for
    the outbox to drain. Seconds run from just before the commit to the last `sent_at`."""
    before = await stand_ins.counts()
    say(f"{channel}: committing {len(recipients):,} jobs; the workers drain them")
    async with conn.transaction():
        created = await notify(
            conn,
            event_key=f"bench:{channel}:{uuid.uuid4()}",
            recipients=recipients,
            notification_type="new_post",
            title="New post from Bench Analyst",
            message="Nifty levels for tomorrow: support 22,100, resistance 22,450.",
            action_url="https://app.switchboard.example/posts/bench",
            related_entity_type="post",
            priority="high",
            send_in_app=False,
            send_push=channel == "push",
            send_email=channel == "email",
        )
        meter.start()
        committed_at = time.time()  # just before COMMIT: the jobs become claimable
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + 2
    while True:
        row = await conn.fetchrow(_PROGRESS, channel)
        assert row is not None
        if row["open"] == 0:
            break
        if time.monotonic() > deadline:
            say(f"{channel}: timed out after {timeout:g} s with {row['open']:,} jobs open")
            break
        if time.monotonic() >= next_report:
            so_far = time.time() - committed_at
            say(f"{channel}: {row['sent']:,}/{created:,} sent after {so_far:.1f} s")
            next_report += 2
        await asyncio.sleep(0.1)
    cpu = meter.stop()
    after = await stand_ins.counts()
    times = sorted(
        r["t"] - committed_at
        for r in await conn.fetch(
            "SELECT extract(epoch FROM sent_at)::float8 AS t FROM gateway.notification_deliveries"
            " WHERE channel = $1 AND status = 'sent'",
            channel,
        )
    )
    errors = await conn.fetch(
        "SELECT last_error, count(*) FROM gateway.notification_deliveries"
        " WHERE channel = $1 AND last_error IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 3",
        channel,
    )
    batches = await batch_stats(conn, channel)
    sent = len(times)
    seconds = times[-1] if times else 0.0
    rate = sent / seconds if seconds > 0 else 0.0
    received = {k: after[k] - before[k] for k in after}
    say(
        f"{channel}: {sent:,}/{created:,} sent in {seconds:.2f} s = {rate:,.0f}/s"
        f" (failed {row['failed']}, skipped {row['skipped']}, open {row['open']});"
        f" stand-ins received {received}; CPU {cpu}"
    )
    say(f"{channel}: claim batches {batches}; latency {spread_ms(times)}")
    for error in errors:
        say(f"{channel}: last_error x{error['count']}: {error['last_error'][:200]}")
    step = max(0.05, seconds / 100) if times else 1.0
    curve: list[list[float]] = [[0.0, 0]]
    index = 0
    mark = step
    while times and mark < seconds + step:
        while index < sent and times[index] <= mark:
            index += 1
        curve.append([round(mark, 3), index])
        mark += step
    return {
        "channel": channel,
        "jobs": created,
        "sent": sent,
        "failed": row["failed"],
        "skipped": row["skipped"],
        "open": row["open"],
        "seconds": round(seconds, 3),
        "per_s": round(rate, 1),
        "first_sent_s": round(times[0], 3) if times else None,
        "latency": spread_ms(times),
        # CPU the worker processes spent per job: what a busy machine does not inflate
        "worker_cpu_ms_per_job": round(cpu["workers_cpu_pct"] * seconds * 10 / sent, 3)
        if sent
        else None,
        "received": received,
        "batches": batches,
        "errors": [f"{e['count']} x {e['last_error'][:200]}" for e in errors],
        **cpu,
        "curve": curve,
    }


async def bench_delivery(
    base_dsn: str,
    push_jobs: int,
    email_jobs: int,
    worker_counts: list[int],
    pool_size: int,
    timeout: float,
) -> None:
    """One run per worker count, each on a fresh database with fresh stand-ins."""
    background = await background_cpu()
    runs = []
    for workers in worker_counts:
        runs.append(
            await delivery_run(base_dsn, push_jobs, email_jobs, workers, pool_size, timeout)
        )
    command = f"--parts delivery --push-jobs {push_jobs} --email-jobs {email_jobs}"
    command += f" --workers {' '.join(map(str, worker_counts))} --worker-pool {pool_size}"
    write_part("delivery", {"command": command, "background_cpu_pct": background, "runs": runs})


async def delivery_run(
    base_dsn: str, push_jobs: int, email_jobs: int, workers: int, pool_size: int, timeout: float
) -> dict[str, object]:
    stack = Stack(base_dsn)
    stand_ins = StandIns()
    procs: list[asyncio.subprocess.Process] = []
    with tempfile.TemporaryDirectory(prefix="sb-bench-notify-") as tmp:
        workdir = Path(tmp)
        try:
            conn = await stack.database()
            count = max(push_jobs, email_jobs)
            rows = await conn.fetch(
                "INSERT INTO analyst.users (email, password_hash, user_type, email_verified)"
                " SELECT 'rcpt-' || g || '@example.com', 'x', 'trader', true"
                " FROM generate_series(1, $1) g RETURNING id",
                count,
            )
            users: list[uuid.UUID] = [r["id"] for r in rows]
            await seed_devices(conn)
            await conn.execute("VACUUM ANALYZE")
            await stand_ins.start(workdir)
            procs = await start_workers(stack, stand_ins, workers, pool_size, workdir)
            assert stand_ins.proc is not None
            settings = concurrency_settings(workers, pool_size)
            say(f"{count:,} recipients with a device and a verified address; workers: {settings}")
            meter = CpuMeter({"workers": [p.pid for p in procs], "stand_ins": [stand_ins.proc.pid]})
            channels = []
            for channel, jobs in (("push", push_jobs), ("email", email_jobs)):
                if jobs > 0:
                    channels.append(
                        await drain_channel(conn, stand_ins, meter, channel, users[:jobs], timeout)
                    )
            await conn.close()
            await stop_processes(procs)
            procs = []
            problems = log_problems(workdir)
            if problems:
                say(f"{len(problems)} warning/error lines in the worker logs; first ones:")
                for line in problems[:5]:
                    say(f"  {line}")
            return {
                "concurrency": settings,
                "channels": channels,
                "worker_log_problems": len(problems),
            }
        finally:
            await stop_processes(procs)
            await stand_ins.close()
            await stack.close()


# --- 2b. drain: one urgent post's push and e-mail jobs together -------------------------------


def spread_ms(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50/p90/p99/max of durations in seconds, as milliseconds."""
    if not seconds:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    values = list(seconds)
    return {
        "p50_ms": round(percentile(values, 50) * 1000, 1),
        "p90_ms": round(percentile(values, 90) * 1000, 1),
        "p99_ms": round(percentile(values, 99) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
    }


_LOG_FIELD = re.compile(r" (channel|attempt|waited_ms)=(\S+)")


def waits_from_logs(logdir: Path) -> dict[str, dict[str, list[float]]]:
    """From the workers' `delivery` lines: per channel, how long first attempts and retries
    waited for a worker after falling due (seconds)."""
    waits: dict[str, dict[str, list[float]]] = {}
    for path in sorted(logdir.glob("worker-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if " event=delivery " not in line:
                continue
            fields = dict(_LOG_FIELD.findall(line))
            if "waited_ms" not in fields or not fields["waited_ms"].lstrip("-").isdigit():
                continue
            kind = "first" if fields.get("attempt") == "1" else "retry"
            channel = waits.setdefault(fields.get("channel", "?"), {"first": [], "retry": []})
            channel[kind].append(max(0, int(fields["waited_ms"])) / 1000)
    return waits


_PROGRESS_ALL = """
SELECT count(*) FILTER (WHERE status IN ('pending', 'sending')) AS open,
       count(*) FILTER (WHERE status = 'sent') AS sent
  FROM gateway.notification_deliveries
"""

_CHANNEL_FIGURES = """
SELECT channel,
       count(*) AS jobs,
       count(*) FILTER (WHERE status = 'sent') AS sent,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'skipped') AS skipped,
       count(*) FILTER (WHERE status IN ('pending', 'sending')) AS open,
       count(*) FILTER (WHERE status = 'sent' AND attempts > 1) AS retried,
       array_agg(extract(epoch FROM sent_at)::float8) FILTER (WHERE status = 'sent') AS sent_at
  FROM gateway.notification_deliveries
 GROUP BY channel
 ORDER BY channel
"""


async def bench_drain(
    base_dsn: str,
    subscribers: int,
    worker_counts: list[int],
    pool_size: int,
    fail_every: int,
    timeout: float,
) -> None:
    """One run per worker count, each on a fresh database with fresh stand-ins."""
    background = await background_cpu()
    runs = []
    for workers in worker_counts:
        runs.append(await drain_run(base_dsn, subscribers, workers, pool_size, fail_every, timeout))
    command = f"--parts drain --drain-subscribers {subscribers}"
    command += f" --workers {' '.join(map(str, worker_counts))} --worker-pool {pool_size}"
    if fail_every:
        command += f" --fail-every {fail_every}"
    write_part("drain", {"command": command, "background_cpu_pct": background, "runs": runs})


async def drain_run(
    base_dsn: str, subscribers: int, workers: int, pool_size: int, fail_every: int, timeout: float
) -> dict[str, object]:
    """`subscribers` of one analyst, each with a device and a verified address; one urgent post
    notifies them all (in-app, push, e-mail) while the workers listen; time until the last job
    is sent, counted from just before the COMMIT that makes the jobs claimable."""
    stack = Stack(base_dsn)
    stand_ins = StandIns()
    procs: list[asyncio.subprocess.Process] = []
    with tempfile.TemporaryDirectory(prefix="sb-bench-drain-") as tmp:
        workdir = Path(tmp)
        try:
            conn = await stack.database()
            started = time.monotonic()
            analyst = await seed_audience(conn, subscribers)
            await conn.execute("VACUUM ANALYZE")
            say(f"seeded {subscribers:,} subscribers in {time.monotonic() - started:.1f} s")
            await stand_ins.start(workdir, fail_every)
            procs = await start_workers(stack, stand_ins, workers, pool_size, workdir)
            assert stand_ins.proc is not None
            settings = concurrency_settings(workers, pool_size)
            say(
                f"workers: {settings}"
                + (f"; every {fail_every}th token fails once" if fail_every else "")
            )
            meter = CpuMeter({"workers": [p.pid for p in procs], "stand_ins": [stand_ins.proc.pid]})
            before = await stand_ins.counts()
            started = time.monotonic()
            async with conn.transaction():
                created = await notify(
                    conn,
                    event_key=f"post:{uuid.uuid4()}:published",
                    recipients=subscribers_of(analyst),
                    notification_type="urgent_post",
                    title="Exit NIFTY longs now",
                    message="Stop-loss at 22,100 is being tested; exit longs.",
                    action_url="https://app.switchboard.example/posts/bench",
                    related_entity_type="post",
                    priority="urgent",
                )
                meter.start()
                committed_at = time.time()  # just before COMMIT: the jobs become claimable
            say(f"notify() made {created:,} notifications in {time.monotonic() - started:.1f} s")
            deadline = time.monotonic() + timeout
            next_report = time.monotonic() + 5
            while True:
                row = await conn.fetchrow(_PROGRESS_ALL)
                assert row is not None
                if row["open"] == 0:
                    break
                if time.monotonic() > deadline:
                    say(f"timed out after {timeout:g} s with {row['open']:,} jobs open")
                    break
                if time.monotonic() >= next_report:
                    so_far = time.time() - committed_at
                    say(f"{row['sent']:,} sent, {row['open']:,} open after {so_far:.1f} s")
                    next_report += 5
                await asyncio.sleep(0.2)
            cpu = meter.stop()
            after = await stand_ins.counts()
            figures = await conn.fetch(_CHANNEL_FIGURES)
            await conn.close()
            await stop_processes(procs)
            procs = []
            waits = waits_from_logs(workdir)
            problems = [p for p in log_problems(workdir) if "event=fcm_project_paused" not in p]
            channels: list[dict[str, object]] = []
            for f in figures:
                latencies = sorted(t - committed_at for t in f["sent_at"] or ())
                seconds = latencies[-1] if latencies else 0.0
                waited = waits.get(f["channel"], {"first": [], "retry": []})
                channels.append(
                    {
                        "channel": f["channel"],
                        "jobs": f["jobs"],
                        "sent": f["sent"],
                        "failed": f["failed"],
                        "skipped": f["skipped"],
                        "open": f["open"],
                        "retried": f["retried"],
                        "seconds": round(seconds, 2),
                        "per_s": round(f["sent"] / seconds, 1) if seconds > 0 else 0.0,
                        "latency": spread_ms(latencies),
                        "waited": spread_ms(waited["first"]),
                        "retry_waited": spread_ms(waited["retry"]),
                    }
                )
            jobs = sum(int(str(c["jobs"])) for c in channels)
            sent = sum(int(str(c["sent"])) for c in channels)
            drain_s = max((float(str(c["seconds"])) for c in channels), default=0.0)
            received = {k: after[k] - before[k] for k in after}
            say(
                f"{workers} worker(s): {sent:,}/{jobs:,} jobs sent in {drain_s:.1f} s ="
                f" {sent / drain_s if drain_s else 0:,.0f} jobs/s; stand-ins received {received};"
                f" CPU {cpu}, workers {cpu['workers_cpu_pct'] * drain_s * 10 / max(1, sent):.2f}"
                " ms per job"
            )
            for c in channels:
                say(
                    f"  {c['channel']}: {c['sent']:,} sent ({c['retried']} after a retry) in"
                    f" {c['seconds']} s = {c['per_s']}/s; commit-to-sent {c['latency']};"
                    f" waited after due {c['waited']}; retries waited {c['retry_waited']}"
                )
            if problems:
                say(f"{len(problems)} warning/error lines in the worker logs; first ones:")
                for line in problems[:5]:
                    say(f"  {line}")
            return {
                "subscribers": subscribers,
                "notifications": created,
                "concurrency": settings,
                "fail_every": fail_every,
                "jobs": jobs,
                "sent": sent,
                "drain_seconds": round(drain_s, 2),
                "jobs_per_s": round(sent / drain_s, 1) if drain_s else 0.0,
                "received": received,
                "channels": channels,
                **cpu,
                "worker_cpu_ms_per_job": round(cpu["workers_cpu_pct"] * drain_s * 10 / sent, 3)
                if sent
                else None,
                "worker_log_problems": len(problems),
            }
        finally:
            await stop_processes(procs)
            await stand_ins.close()
            await stack.close()


# --- 3. in-app: commit to socket ----------------------------------------------------------------


class Arrivals:
    """When each notification (by sequence number) first reached a socket."""

    def __init__(self, expected: int) -> None:
        self.at: dict[int, float] = {}
        self.duplicates = 0
        self.expected = expected
        self.all_in = asyncio.Event()

    def record(self, seq: int, now: float) -> None:
        if seq in self.at:
            self.duplicates += 1
            return
        self.at[seq] = now
        if len(self.at) >= self.expected:
            self.all_in.set()


class Inbox:
    """A benchmark socket that records when each `notification` frame arrives."""

    def __init__(self, arrivals: Arrivals) -> None:
        self.sock: BenchSocket | None = None
        self.arrivals = arrivals
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def on_message(self, payload: bytes) -> None:
        if payload.startswith(b'{"op":"notification"'):
            now = time.monotonic()
            seq = int(msgspec.json.decode(payload)["title"].rsplit(" ", 1)[1])
            self.arrivals.record(seq, now)
        elif payload.startswith(b'{"op":"ok"') or payload.startswith(b'{"op":"error"'):
            self.replies.put_nowait(payload)

    async def connect(self, port: int, token: str) -> None:
        self.sock = await open_socket(HOST, port, f"/ws?token={token}", self.on_message)
        reply = await asyncio.wait_for(self.replies.get(), 30)  # the user-stream join
        if not reply.startswith(b'{"op":"ok"'):
            raise RuntimeError(f"user stream not joined: {reply[:200]!r}")


async def bench_inapp(base_dsn: str, users: int, rate: float, duration: float) -> None:
    background = await background_cpu()
    stack = Stack(base_dsn)
    try:
        conn = await stack.database()
        rows = await conn.fetch(
            "INSERT INTO analyst.users (email, password_hash, user_type)"
            " SELECT 'inapp-' || g || '@example.com', 'x', 'trader'"
            " FROM generate_series(1, $1) g RETURNING id",
            users,
        )
        await conn.close()
        ids: list[uuid.UUID] = [r["id"] for r in rows]
        port = await stack.gateway()
        total = int(rate * duration)
        sent_at: dict[int, float] = {}
        arrivals = Arrivals(total)
        arrived = arrivals.at
        inboxes = [Inbox(arrivals) for _ in ids]
        gate = asyncio.Semaphore(100)

        async def join(i: int) -> None:
            async with gate:
                token = sign_access_token(stack.secret, str(ids[i]), "analyst", 3600)
                await inboxes[i].connect(port, token)

        started = time.monotonic()
        await asyncio.gather(*(join(i) for i in range(len(ids))))
        say(f"{users} users connected to one gateway in {time.monotonic() - started:.1f} s")
        pool = await create_pool(stack.dsn, min_size=4, max_size=8, application_name="bench")
        say(f"committing {total} notifications one by one at {rate:g}/s for {duration:g} s")

        async def one(seq: int) -> None:
            async with pool.acquire() as c, c.transaction():
                await notify(
                    c,
                    event_key=f"bench:inapp:{seq}",
                    recipients=[ids[seq % len(ids)]],
                    notification_type="new_post",
                    title=f"bench {seq}",
                    message="Nifty levels for tomorrow: support 22,100, resistance 22,450.",
                    action_url="https://app.switchboard.example/posts/bench",
                    send_push=False,
                    send_email=False,
                )
                sent_at[seq] = time.monotonic()  # just before COMMIT

        tasks: list[asyncio.Task[None]] = []
        begin = time.monotonic() + 0.1
        for seq in range(total):  # open loop: a slow commit does not delay the next one
            await asyncio.sleep(max(0.0, begin + seq / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(seq)))
        await asyncio.gather(*tasks)
        committing = max(sent_at.values()) - min(sent_at.values())
        with contextlib.suppress(TimeoutError):  # a shortfall is reported, not hidden
            await asyncio.wait_for(arrivals.all_in.wait(), 30)
        await pool.close()
        latencies = [(arrived[s] - sent_at[s]) * 1000 for s in arrived]
        duplicates = arrivals.duplicates
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        achieved = (total - 1) / committing if committing > 0 else float(total)
        say(
            f"{len(arrived)}/{total} delivered ({duplicates} duplicates), {achieved:.0f} commits/s:"
            f" p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms"
        )
        for inbox in inboxes:
            if inbox.sock is not None:
                inbox.sock.close()
        write_part(
            "inapp",
            {
                "command": f"--parts inapp --users {users} --rate {rate:g} --duration {duration:g}",
                "background_cpu_pct": background,
                "users": users,
                "gateway_processes": 1,
                "offered_per_s": int(rate) if float(rate).is_integer() else rate,
                "committed_per_s": round(achieved, 1),
                "duration_s": duration,
                "committed": total,
                "delivered": len(arrived),
                "duplicates": duplicates,
                "p50_ms": round(p50, 2),
                "p90_ms": round(percentile(latencies, 90), 2),
                "p99_ms": round(p99, 2),
                "max_ms": round(max(latencies), 2),
                "mean_ms": round(statistics.fmean(latencies), 2),
                "quantiles_ms": [round(percentile(latencies, q), 2) for q in range(101)],
            },
        )
    finally:
        await stack.close()


# --- entry --------------------------------------------------------------------------------------


async def run_parts(args: argparse.Namespace, dsn: str) -> None:
    if "creation" in args.parts:
        await bench_creation(dsn, args.subscribers, args.repeats, args.timeout)
    if "delivery" in args.parts:
        await bench_delivery(
            dsn, args.push_jobs, args.email_jobs, args.workers, args.worker_pool, args.timeout
        )
    if "drain" in args.parts:
        await bench_drain(
            dsn,
            args.drain_subscribers,
            args.workers,
            args.worker_pool,
            args.fail_every,
            args.drain_timeout,
        )
    if "inapp" in args.parts:
        await bench_inapp(dsn, args.users, args.rate, args.duration)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == STAND_INS_ROLE:
        asyncio.run(serve_stand_ins(Path(sys.argv[2]), int(sys.argv[3])))
        return
    if len(sys.argv) == 3 and sys.argv[1] == WORKER_ROLE:
        asyncio.run(serve_worker(int(sys.argv[2])))
        return
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--timeout", type=float, default=300, help="seconds per step, at most")
    creation = parser.add_argument_group("creation: one notify() to an analyst's subscribers")
    creation.add_argument("--subscribers", type=int, default=100_000)
    creation.add_argument("--repeats", type=int, default=2, help="notify() calls (new events)")
    delivery = parser.add_argument_group("delivery: run_delivery workers draining the outbox")
    delivery.add_argument("--push-jobs", type=int, default=5000)
    delivery.add_argument("--email-jobs", type=int, default=2000)
    delivery.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker processes (one run each)"
    )
    delivery.add_argument(
        "--worker-pool",
        type=int,
        default=10,
        help="DB pool size per worker (`python -m workers` uses max(DB_POOL_MAX, 10))",
    )
    drain = parser.add_argument_group("drain: one urgent post's push and e-mail jobs together")
    drain.add_argument(
        "--drain-subscribers",
        type=int,
        default=100_000,
        help="subscribers of the post (a push and an e-mail job each); 10000 for a quick run",
    )
    drain.add_argument(
        "--fail-every",
        type=int,
        default=0,
        help="FCM answers 503 to the first send to every Nth token (0: never)",
    )
    drain.add_argument("--drain-timeout", type=float, default=1800, help="seconds, at most")
    inapp = parser.add_argument_group("inapp: commit-to-socket latency through one gateway")
    inapp.add_argument("--users", type=int, default=200, help="connected users")
    inapp.add_argument("--rate", type=float, default=100, help="notifications committed per s")
    inapp.add_argument("--duration", type=float, default=10, help="seconds of commits")
    args = parser.parse_args()
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        raise SystemExit("DATABASE_URL is not set (use `make bench`)")
    runner: Callable[[Coroutine[Any, Any, None]], None]
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(run_parts(args, dsn))


if __name__ == "__main__":
    main()
