"""/v1/admin/jobs: the worker's scheduled jobs (workers/jobs.py) and their recent runs
(gateway.job_runs), for admins. Read-only: the API neither runs nor schedules jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aiohttp import web
from msgspec import Meta, Struct

from api.auth import admin
from api.endpoints import endpoint
from api.keys import POOL
from workers.jobs import JOBS
from workers.scheduler import RunRecord, Schedule, next_after, recent_runs

routes = web.RouteTableDef()

JobName = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,62}\Z", description="a job's name")]


class JobOut(Struct):
    """A declared job: its schedule (UTC), its next scheduled time (`next_run_at`; a retry
    already planned shows as `retry_at` of `last_run`) and its latest run."""

    name: str
    summary: str
    schedule: Schedule
    schedule_text: str
    next_run_at: datetime
    attempts: Annotated[int, Meta(description="attempts per scheduled time")]
    timeout_s: Annotated[float, Meta(description="an attempt running longer is cancelled")]
    last_run: RunRecord | None


class RunsQuery(Struct, kw_only=True):
    job: JobName | None = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 50


_LATEST_RUNS = (
    f"SELECT DISTINCT ON (job) {', '.join(RunRecord.__struct_fields__)} FROM gateway.job_runs"
    " WHERE job = ANY($1::text[]) ORDER BY job, scheduled_for DESC, id DESC"
)


@endpoint(
    routes,
    "GET",
    "/v1/admin/jobs",
    summary="The scheduled jobs: schedule, next time and latest run of each (admins)",
    tag="admin",
    response=list[JobOut],
    errors=(403,),
)
async def list_jobs(request: web.Request) -> list[JobOut]:
    await admin(request)
    now = datetime.now(UTC)
    rows = await request.app[POOL].fetch(_LATEST_RUNS, [job.name for job in JOBS])
    latest = {row["job"]: RunRecord(**dict(row)) for row in rows}
    return [
        JobOut(
            name=job.name,
            summary=job.summary,
            schedule=job.schedule,
            schedule_text=job.schedule.describe(),
            next_run_at=next_after(job.schedule, now),
            attempts=job.retry.attempts,
            timeout_s=job.timeout.total_seconds(),
            last_run=latest.get(job.name),
        )
        for job in JOBS
    ]


@endpoint(
    routes,
    "GET",
    "/v1/admin/jobs/runs",
    summary="Recent job runs, newest scheduled time first, of one job or all (admins)",
    tag="admin",
    query=RunsQuery,
    response=list[RunRecord],
    errors=(403,),
)
async def list_runs(request: web.Request, query: RunsQuery) -> list[RunRecord]:
    await admin(request)
    return await recent_runs(request.app[POOL], job=query.job, limit=query.limit)
