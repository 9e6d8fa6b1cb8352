"""`python -m workers`: the worker process (delivery and scheduled jobs) until SIGINT/SIGTERM.

python -m workers              run the scheduler (and delivery) until stopped
python -m workers run JOB      run one job now, by hand; prints the rows it touched
python -m workers jobs         list the jobs, their schedules and next times
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from kernel.config import ConfigError, Settings, load_settings
from kernel.db import create_pool
from kernel.jobs import Job, SystemClock, next_after
from kernel.logs import EventLog, setup_logging
from kernel.realms import enabled_realms
from workers.delivery import run_delivery
from workers.metrics import start_metrics
from workers.scheduler import Scheduler, node_name, run_by_hand

log = EventLog("worker")


def declared_jobs() -> list[Job]:
    """Every enabled realm's jobs (SWITCHBOARD_REALMS)."""
    return [job for _realm, job in enabled_realms().jobs()]


async def _serve(settings: Settings) -> None:
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    # Delivery runs a batch of jobs at once; the scheduler needs one connection more.
    pool = await create_pool(
        settings.database_url,
        min_size=1,
        max_size=max(settings.db_pool_max, 10),
        application_name="switchboard-worker",
    )
    jobs = declared_jobs()
    scheduler = Scheduler(pool, jobs, clock=SystemClock(), node=node_name())
    metrics = await start_metrics(pool, settings)  # WORKER_METRICS_PORT; None when off
    log.info("started", node=scheduler.node, jobs=len(jobs))
    try:
        async with asyncio.TaskGroup() as services:
            services.create_task(scheduler.run(stop), name="scheduler")
            services.create_task(run_delivery(pool, settings, stop), name="delivery")
    finally:
        if metrics is not None:
            await metrics.close()
        await pool.close()
        log.info("stopped")


async def _run_one(settings: Settings, job: Job) -> int:
    pool = await create_pool(
        settings.database_url, min_size=1, max_size=2, application_name="switchboard-worker-run"
    )
    try:
        record = await run_by_hand(pool, job, clock=SystemClock(), node=node_name())
    finally:
        await pool.close()
    if record.status != "succeeded":
        print(f"{job.name}: failed (run {record.id}): {record.error}", file=sys.stderr)
        return 1
    print(f"{job.name}: {record.rows_touched} rows touched (run {record.id})")
    return 0


def _list_jobs() -> int:
    now = SystemClock().now()
    jobs = declared_jobs()
    width = max((len(job.name) for job in jobs), default=0)
    for job in jobs:
        at = next_after(job.schedule, now).strftime("%Y-%m-%d %H:%M UTC")
        print(f"{job.name:<{width}}  next {at}  ({job.schedule.describe()}): {job.summary}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description="the worker process")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="run one job now, by hand")
    jobs = declared_jobs()
    run.add_argument("job", help="one of: " + ", ".join(job.name for job in jobs))
    commands.add_parser("jobs", help="list the jobs and their next times")
    args = parser.parse_args(argv)
    if args.command == "jobs":
        return _list_jobs()
    job = None
    if args.command == "run":
        job = next((j for j in jobs if j.name == args.job), None)
        if job is None:
            known = ", ".join(j.name for j in jobs)
            print(f"workers: unknown job {args.job!r}; the jobs are: {known}", file=sys.stderr)
            return 2
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"workers: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    if job is not None:
        return asyncio.run(_run_one(settings, job))
    asyncio.run(_serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
