"""/v1/creator/moderation: the staff (moderators and admins) queue of reports and what staff do
with them: take a report, act on content, a message or a comment (approve, reject, remove,
flag, age-restrict, shadow-ban, require a warning), record a violation of a user (warning,
suspension, ban, feature restriction; thresholds may escalate it), dismiss or escalate. Every
write names its actor for the audit trail; actions take effect live (sql/3007, 3011)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, NotFound
from kernel.web.endpoints import all_or_none, endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Cursor, Page, decode_cursor, page_of
from kernel.web.paths import path_uuid
from realms.creator import moderation, violations
from realms.creator.accounts import staff_account

routes = web.RouteTableDef()

TAG = "creator moderation"
STAFF_ERRORS = (400, 403, 404, 409)
NO_NUL = r"^[^\x00]*$"
Notes = Annotated[str, Meta(min_length=1, max_length=2000, pattern=NO_NUL)]


class QueueQuery(Struct, kw_only=True):
    status: Literal["open", "pending", "in_review", "escalated", "resolved", "dismissed"] = "open"
    target_type: moderation.TargetType | None = None
    report_type: moderation.ReportType | None = None
    priority: moderation.Priority | None = None
    assigned_to: uuid.UUID | None = None
    mine: bool = False
    reported_user_id: uuid.UUID | None = None
    limit: Annotated[int, Meta(ge=1, le=100)] = 20
    cursor: Cursor | None = None


class DismissBody(Struct, forbid_unknown_fields=True, kw_only=True):
    notes: Notes | None = None


class EscalateBody(Struct, forbid_unknown_fields=True, kw_only=True):
    notes: Notes | None = None
    priority: moderation.Priority | None = None


def _given(*names: str) -> dict[str, Any]:
    """JSON Schema: each of `names` is present and not null."""
    return {"required": list(names), "properties": {n: {"not": {"type": "null"}} for n in names}}


def _absent(*names: str) -> dict[str, Any]:
    """JSON Schema: each of `names` is absent or null."""
    return {"properties": {n: {"type": "null"} for n in names}}


def _when(field: str, values: list[str], then: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema: when `field` is one of `values`, `then` holds."""
    return {
        "if": {"required": [field], "properties": {field: {"enum": values}}},
        "then": then,
    }


class ActionBody(Struct, forbid_unknown_fields=True, kw_only=True):
    """Name the target, or a report on content, a message or a comment (its target is used)."""

    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        all_or_none("target_type", "target_id"),
        {"anyOf": [_given("report_id"), _given("target_type", "target_id")]},
        _when("action", ["require_warning"], _given("warning_text")),
        _when(
            "target_type",
            ["message", "comment"],
            {"properties": {"action": {"enum": sorted(moderation.ITEM_ACTIONS)}}},
        ),
    )

    action: moderation.Action
    report_id: uuid.UUID | None = None
    target_type: moderation.ActionTarget | None = None
    target_id: uuid.UUID | None = None
    reason: Notes | None = None
    warning_text: Annotated[str, Meta(min_length=1, max_length=255, pattern=NO_NUL)] | None = None


class ViolationBody(Struct, forbid_unknown_fields=True, kw_only=True):
    """`user_id` or a `report_id` naming the user; `duration_hours` for a suspension (and
    optionally a feature restriction); `restricted_features` for a feature restriction."""

    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        {"anyOf": [_given("user_id"), _given("report_id")]},
        _when("enforcement_action", ["temporary_suspension"], _given("duration_hours")),
        _when("enforcement_action", ["warning", "permanent_ban"], _absent("duration_hours")),
        _when("enforcement_action", ["feature_restriction"], _given("restricted_features")),
        _when(
            "enforcement_action",
            ["warning", "temporary_suspension", "permanent_ban"],
            _absent("restricted_features"),
        ),
    )

    enforcement_action: moderation.Enforcement
    user_id: uuid.UUID | None = None
    report_id: uuid.UUID | None = None
    moderation_action_id: uuid.UUID | None = None
    violation_type: moderation.ReportType | None = None
    severity: moderation.Severity = "medium"
    duration_hours: Annotated[int, Meta(ge=1, le=24 * 365 * 5)] | None = None
    restricted_features: (
        Annotated[
            list[Annotated[str, Meta(pattern=r"^[a-z_]{1,40}$")]], Meta(min_length=1, max_length=10)
        ]
        | None
    ) = None
    description: Annotated[str, Meta(min_length=1, max_length=2000, pattern=NO_NUL)] | None = None


@endpoint(
    routes,
    "GET",
    "/v1/moderation/reports",
    summary="The report queue (staff): critical first, oldest first within a priority",
    tag=TAG,
    query=QueueQuery,
    response=Page[moderation.Report],
    errors=(400, 403),
)
async def list_reports(request: web.Request, query: QueueQuery) -> Page[moderation.Report]:
    me = await staff_account(request)
    after = decode_cursor(query.cursor, int, datetime, uuid.UUID)
    statuses: list[str] = list(moderation.OPEN) if query.status == "open" else [query.status]
    rows = await moderation.queue(
        request.app[POOL],
        moderation.QueueFilter(
            statuses=statuses,
            target_type=query.target_type,
            report_type=query.report_type,
            priority=query.priority,
            assigned_to=me.id if query.mine else query.assigned_to,
            reported_user_id=query.reported_user_id,
        ),
        (after[0], after[1], after[2]) if after else None,
        query.limit + 1,
    )
    page = page_of(rows, query.limit, lambda r: r[1])
    return Page(items=[r[0] for r in page.items], next_cursor=page.next_cursor)


@endpoint(
    routes,
    "GET",
    "/v1/moderation/reports/{id}",
    summary="One report (staff)",
    tag=TAG,
    response=moderation.Report,
    errors=(400, 403, 404),
)
async def get_report(request: web.Request) -> moderation.Report:
    await staff_account(request)
    report_id = path_uuid(request)
    row = await request.app[POOL].fetchrow(
        f"SELECT {moderation.REPORT_COLUMNS} FROM creator.content_reports WHERE id = $1",
        report_id,
    )
    if row is None:
        raise NotFound(f"no report {report_id}")
    return moderation.report_of(row)


@endpoint(
    routes,
    "POST",
    "/v1/moderation/reports/{id}/take",
    summary="Take an open report for review (assigned to the caller; 409 if another has it)",
    tag=TAG,
    response=moderation.Report,
    errors=STAFF_ERRORS,
)
async def take_report(request: web.Request) -> moderation.Report:
    me = await staff_account(request)
    report_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn:
        return await moderation.take(conn, me.id, report_id, request)


@endpoint(
    routes,
    "POST",
    "/v1/moderation/reports/{id}/dismiss",
    summary="Dismiss an open report (no action taken)",
    tag=TAG,
    body=DismissBody,
    response=moderation.Report,
    errors=STAFF_ERRORS,
)
async def dismiss_report(request: web.Request, body: DismissBody) -> moderation.Report:
    me = await staff_account(request)
    report_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn:
        return await moderation.close_report(
            conn, me.id, report_id, status="dismissed", notes=body.notes, request=request
        )


@endpoint(
    routes,
    "POST",
    "/v1/moderation/reports/{id}/escalate",
    summary="Escalate an open report (optionally raising its priority)",
    tag=TAG,
    body=EscalateBody,
    response=moderation.Report,
    errors=STAFF_ERRORS,
)
async def escalate_report(request: web.Request, body: EscalateBody) -> moderation.Report:
    me = await staff_account(request)
    report_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn:
        return await moderation.close_report(
            conn,
            me.id,
            report_id,
            status="escalated",
            notes=body.notes,
            priority=body.priority,
            request=request,
        )


@endpoint(
    routes,
    "POST",
    "/v1/moderation/actions",
    summary="Act on content, a message or a comment; takes effect at once (a removed message"
    " disappears from every open client) and closes the open reports on the target",
    tag=TAG,
    body=ActionBody,
    response=moderation.ActionOut,
    status=201,
    errors=STAFF_ERRORS,
)
async def act(request: web.Request, body: ActionBody) -> moderation.ActionOut:
    me = await staff_account(request)
    if (body.target_type is None) != (body.target_id is None):
        raise BadRequest("target_type and target_id go together")
    async with request.app[POOL].acquire() as conn:
        return await moderation.act(
            conn,
            moderator=me.id,
            action=body.action,
            report_id=body.report_id,
            target_type=body.target_type,
            target_id=body.target_id,
            reason=body.reason,
            warning_text=body.warning_text,
            request=request,
        )


def _lasting(body: ViolationBody) -> timedelta | None:
    hours = timedelta(hours=body.duration_hours) if body.duration_hours else None
    if body.enforcement_action == "temporary_suspension" and hours is None:
        raise BadRequest("a temporary suspension needs duration_hours")
    if body.enforcement_action in ("warning", "permanent_ban") and hours is not None:
        raise BadRequest(f"a {body.enforcement_action.replace('_', ' ')} has no duration")
    if (body.enforcement_action == "feature_restriction") != bool(body.restricted_features):
        raise BadRequest("restricted_features go with (and only with) a feature_restriction")
    return hours


@endpoint(
    routes,
    "POST",
    "/v1/moderation/violations",
    summary="Record a violation of a user (warning, suspension, ban, feature restriction); a"
    " suspension or ban closes their sockets at once; thresholds may escalate it",
    tag=TAG,
    body=ViolationBody,
    response=violations.Enforced,
    status=201,
    errors=STAFF_ERRORS,
)
async def record_violation(request: web.Request, body: ViolationBody) -> violations.Enforced:
    me = await staff_account(request)
    lasting = _lasting(body)
    pool = request.app[POOL]
    user_id, violation_type = body.user_id, body.violation_type
    if body.report_id is not None:
        report = await pool.fetchrow(
            "SELECT reported_user_id, report_type FROM creator.content_reports WHERE id = $1",
            body.report_id,
        )
        if report is None:
            raise NotFound(f"no report {body.report_id}")
        user_id = user_id or report["reported_user_id"]
        violation_type = violation_type or report["report_type"]
    if user_id is None:
        raise BadRequest("name the user (user_id) or a report_id naming them")
    async with pool.acquire() as conn:
        return await violations.enforce(
            conn,
            me.id,
            violations.Decision(
                user_id=user_id,
                violation_type=violation_type or "other",
                severity=body.severity,
                enforcement_action=body.enforcement_action,
                lasting=lasting,
                restricted_features=body.restricted_features,
                description=body.description,
                evidence={},
                report_id=body.report_id,
                moderation_action_id=body.moderation_action_id,
            ),
            request,
        )


@endpoint(
    routes,
    "GET",
    "/v1/moderation/users/{id}/violations",
    summary="A user's violations, newest first, with their account status (staff)",
    tag=TAG,
    response=violations.Enforced,
    errors=(400, 403, 404),
)
async def user_violations(request: web.Request) -> violations.Enforced:
    await staff_account(request)
    user_id = path_uuid(request)
    pool = request.app[POOL]
    state = await pool.fetchrow(
        "SELECT account_status, suspended_until FROM creator.users WHERE id = $1", user_id
    )
    if state is None:
        raise NotFound(f"no user {user_id}")
    return violations.Enforced(
        violations=await violations.violations_of(pool, user_id),
        account_status=state["account_status"],
        suspended_until=state["suspended_until"],
    )
