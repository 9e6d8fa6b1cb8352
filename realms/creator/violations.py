"""User violations of the creator realm (issue 16, item 5): staff record a warning, a temporary
suspension, a permanent ban or a feature restriction (suspensions and bans take effect on the
account by trigger, sql/3007, which closes its sockets on every gateway, sql/3011), and the
escalation thresholds turn repeated violations into a suspension, then a ban."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from kernel.errors import BadRequest, NotFound
from realms.creator.moderation import Enforcement, ReportType, Severity, audit_context


@dataclass(frozen=True, slots=True)
class Threshold:
    """`at_least` violations enforced by `counts` (not overturned) within `within` bring an
    automatic violation enforced by `brings`, lasting `lasting` (None: no end)."""

    counts: Enforcement
    at_least: int
    within: timedelta
    brings: Enforcement
    lasting: timedelta | None


# The escalation policy (the seed names "escalation patterns" but no numbers; docs/
# realm-creator.md, "Moderation"). Evaluated after each violation, so a warning may bring a
# suspension and that suspension a ban, in the same transaction.
THRESHOLDS = (
    Threshold("warning", 3, timedelta(days=90), "temporary_suspension", timedelta(days=7)),
    Threshold("temporary_suspension", 3, timedelta(days=365), "permanent_ban", None),
)


class Violation(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    user_id: uuid.UUID
    violation_type: str
    severity: str
    description: str | None
    enforcement_action: str
    restricted_features: list[str] | None
    starts_at: datetime
    ends_at: datetime | None
    status: str
    issued_by: uuid.UUID | None
    report_id: uuid.UUID | None
    moderation_action_id: uuid.UUID | None
    automatic: bool
    created_at: datetime


class Enforced(msgspec.Struct, kw_only=True):
    """The violations one decision recorded (the first is the moderator's, the rest came
    from the thresholds) and the account's status after them."""

    violations: list[Violation]
    account_status: str
    suspended_until: datetime | None


VIOLATION_COLUMNS = (
    "id, user_id, violation_type, severity, description, enforcement_action,"
    " restricted_features, starts_at, ends_at, status, issued_by, report_id,"
    " moderation_action_id, issued_by IS NULL AS automatic, created_at"
)
_INSERT_VIOLATION = (
    "INSERT INTO creator.user_violations (user_id, violation_type, severity, description,"
    " evidence, report_id, moderation_action_id, issued_by, enforcement_action,"
    " restricted_features, ends_at)"
    " VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, now() + $11::interval)"
    f" RETURNING {VIOLATION_COLUMNS}"
)
_COUNT_RECENT = (
    "SELECT count(*) FROM creator.user_violations WHERE user_id = $1"
    " AND enforcement_action = $2 AND status <> 'overturned'"
    " AND created_at > now() - $3::interval"
)


@dataclass(frozen=True, slots=True)
class Decision:
    user_id: uuid.UUID
    violation_type: ReportType
    severity: Severity
    enforcement_action: Enforcement
    lasting: timedelta | None
    restricted_features: list[str] | None
    description: str | None
    evidence: dict[str, Any]
    report_id: uuid.UUID | None
    moderation_action_id: uuid.UUID | None


async def enforce(
    conn: asyncpg.Connection,
    staff: uuid.UUID,
    decision: Decision,
    request: web.Request | None = None,
) -> Enforced:
    """Record a violation of a user, then any the thresholds bring; a suspension or ban takes
    effect at once (sql/3007), which closes the user's sockets on every gateway (sql/3011).
    A report named by the decision is resolved. Violations of one user serialise on their
    account row, so concurrent decisions count each other."""
    if decision.user_id == staff:
        raise BadRequest("you cannot record a violation of your own account")
    async with conn.transaction():
        await audit_context(conn, staff, request)
        account = await conn.fetchrow(
            "SELECT account_type FROM creator.users WHERE id = $1 AND deleted_at IS NULL"
            " FOR UPDATE",
            decision.user_id,
        )
        if account is None:
            raise NotFound(f"no user {decision.user_id}")
        if decision.report_id is not None:
            reported = await conn.fetchval(
                "SELECT reported_user_id FROM creator.content_reports WHERE id = $1",
                decision.report_id,
            )
            if reported != decision.user_id:
                raise BadRequest("the report does not name this user")
        recorded = [
            await _violation(
                conn,
                decision,
                severity=decision.severity,
                description=decision.description,
                evidence=decision.evidence,
                issued_by=staff,
                enforcement=decision.enforcement_action,
                lasting=decision.lasting,
            )
        ]
        await _escalate(conn, decision, recorded)
        if decision.report_id is not None:
            await conn.execute(
                "UPDATE creator.content_reports SET status = 'resolved', resolved_by = $2,"
                " resolved_at = now(), resolution_notes = coalesce(resolution_notes, $3)"
                " WHERE id = $1 AND status IN ('pending', 'in_review', 'escalated')",
                decision.report_id,
                staff,
                f"violation recorded: {decision.enforcement_action}",
            )
        state = await conn.fetchrow(
            "SELECT account_status, suspended_until FROM creator.users WHERE id = $1",
            decision.user_id,
        )
        return Enforced(
            violations=recorded,
            account_status=state["account_status"],
            suspended_until=state["suspended_until"],
        )


async def _violation(
    conn: asyncpg.Connection,
    decision: Decision,
    *,
    severity: str,
    description: str | None,
    evidence: dict[str, Any],
    issued_by: uuid.UUID | None,
    enforcement: str,
    lasting: timedelta | None,
) -> Violation:
    automatic = issued_by is None
    row = await conn.fetchrow(
        _INSERT_VIOLATION,
        decision.user_id,
        decision.violation_type,
        severity,
        description,
        evidence,
        decision.report_id,
        None if automatic else decision.moderation_action_id,
        issued_by,
        enforcement,
        None if automatic else decision.restricted_features,
        lasting,
    )
    return msgspec.convert(dict(row), Violation)


async def _escalate(
    conn: asyncpg.Connection, decision: Decision, recorded: list[Violation]
) -> None:
    """Apply THRESHOLDS to the last violation recorded, and again to what that brings."""
    by_counted: dict[str, Threshold] = {t.counts: t for t in THRESHOLDS}
    while (rule := by_counted.get(recorded[-1].enforcement_action)) is not None:
        banned = await conn.fetchval(
            "SELECT account_status = 'banned' FROM creator.users WHERE id = $1", decision.user_id
        )
        count = await conn.fetchval(_COUNT_RECENT, decision.user_id, rule.counts, rule.within)
        if banned or count < rule.at_least:
            return
        days = rule.within.days
        recorded.append(
            await _violation(
                conn,
                decision,
                severity="high",
                description=f"automatic: {count} {rule.counts.replace('_', ' ')}s"
                f" within {days} days",
                evidence={
                    "threshold": {"counts": rule.counts, "at_least": rule.at_least, "days": days},
                    "after": str(recorded[-1].id),
                },
                issued_by=None,
                enforcement=rule.brings,
                lasting=rule.lasting,
            )
        )


async def violations_of(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: uuid.UUID
) -> list[Violation]:
    rows = await conn.fetch(
        f"SELECT {VIOLATION_COLUMNS} FROM creator.user_violations WHERE user_id = $1"
        " ORDER BY created_at DESC, id DESC LIMIT 200",
        user_id,
    )
    return [msgspec.convert(dict(r), Violation) for r in rows]
