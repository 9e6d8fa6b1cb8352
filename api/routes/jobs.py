"""/v1/admin/jobs: the scheduled jobs of the caller's realm (declared by the realm package) and
their recent runs
(gateway.job_runs), for admins. Read-only: the API neither runs nor schedules jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aiohttp import web
from msgspec import Meta, Struct

from kernel.jobs import Job, RunRecord, Schedule, next_after, recent_runs
from kernel.web.auth import admin
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL, REALMS

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


def _realm_jobs(request: web.Request, realm: str) -> list[Job]:
    """Admins see the jobs of their own realm only."""
    return [job for owner, job in request.app[REALMS].jobs() if owner == realm]


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
    who = await admin(request)
    jobs = _realm_jobs(request, who.realm)
    now = datetime.now(UTC)
    rows = await request.app[POOL].fetch(_LATEST_RUNS, [job.name for job in jobs])
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
        for job in jobs
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
    who = await admin(request)
    names = [job.name for job in _realm_jobs(request, who.realm)]
    if query.job is not None:
        names = [name for name in names if name == query.job]
    return await recent_runs(request.app[POOL], jobs=names, limit=query.limit)
