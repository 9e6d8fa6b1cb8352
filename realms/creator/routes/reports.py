"""/v1/creator/reports: any signed-in user reports content, a message (only one of their own
conversations), a comment, a live stream or a user, for one of the seed's reasons, and lists
their own reports. A second report of a target still in the queue answers the open one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from aiohttp import web
from msgspec import Meta, Struct

from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from realms.creator import moderation
from realms.creator.accounts import current_account

routes = web.RouteTableDef()

NO_NUL = r"^[^\x00]*$"


class Evidence(Struct, forbid_unknown_fields=True, kw_only=True):
    url: (
        Annotated[str, Meta(min_length=1, max_length=1000, pattern=r"^https?://[^\x00]+$")] | None
    ) = None
    note: Annotated[str, Meta(min_length=1, max_length=1000, pattern=NO_NUL)] | None = None


class ReportBody(Struct, forbid_unknown_fields=True, kw_only=True):
    target_type: moderation.TargetType
    target_id: uuid.UUID
    report_type: moderation.ReportType
    description: Annotated[str, Meta(min_length=1, max_length=5000, pattern=NO_NUL)] | None = None
    evidence: Annotated[list[Evidence], Meta(max_length=20)] = []


class MyReport(Struct, kw_only=True):
    """A report as its reporter sees it (who reviews it is staff business)."""

    id: uuid.UUID
    target_type: str
    target_id: uuid.UUID | None
    report_type: str
    description: str | None
    evidence: list[dict[str, str]]
    status: str
    created_at: datetime
    resolved_at: datetime | None


class Filed(Struct, kw_only=True):
    report: MyReport
    created: bool


def _mine(report: moderation.Report) -> MyReport:
    return MyReport(
        id=report.id,
        target_type=report.target_type,
        target_id=report.target_id,
        report_type=report.report_type,
        description=report.description,
        evidence=report.evidence,
        status=report.status,
        created_at=report.created_at,
        resolved_at=report.resolved_at,
    )


@endpoint(
    routes,
    "POST",
    "/v1/reports",
    summary="Report content, a message, a comment, a live stream or a user (a repeat of an open"
    " report answers that report, created=false)",
    tag="creator moderation",
    body=ReportBody,
    response=Filed,
    status=201,
    errors=(400, 404, 409),
)
async def file_report(request: web.Request, body: ReportBody) -> Filed:
    me = await current_account(request)
    evidence = [{k: v for k, v in (("url", e.url), ("note", e.note)) if v} for e in body.evidence]
    async with request.app[POOL].acquire() as conn:
        report, created = await moderation.file_report(
            conn,
            reporter=me.id,
            target_type=body.target_type,
            target_id=body.target_id,
            report_type=body.report_type,
            description=body.description,
            evidence=evidence,
            request=request,
        )
    return Filed(report=_mine(report), created=created)


@endpoint(
    routes,
    "GET",
    "/v1/reports",
    summary="The caller's own reports, in queue order (every status)",
    tag="creator moderation",
    query=PageQuery,
    response=Page[MyReport],
    errors=(400,),
)
async def my_reports(request: web.Request, query: PageQuery) -> Page[MyReport]:
    me = await current_account(request)
    after = decode_cursor(query.cursor, int, datetime, uuid.UUID)
    rows = await moderation.queue(
        request.app[POOL],
        moderation.QueueFilter(
            statuses=["pending", "in_review", "escalated", "resolved", "dismissed"],
            reporter_id=me.id,
        ),
        (after[0], after[1], after[2]) if after else None,
        query.limit + 1,
    )
    page = page_of(rows, query.limit, lambda r: r[1])
    return Page(items=[_mine(r[0]) for r in page.items], next_cursor=page.next_cursor)
