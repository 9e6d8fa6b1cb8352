"""Realm `academy`: the Dracarys trading academy of seed 001 (Supabase): lessons, progress,
XP, levels, streaks, achievements and leaderboards; community posts, comments and votes;
live sessions with registration, waitlist and a live room (`academy.session:<id>`); the
community's live feed (`academy.community:all`); plans and subscriptions. Every user request
runs under real row-level security (realms/academy/rls.py, docs/realm-academy.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.realms import Realm

if TYPE_CHECKING:
    from aiohttp import web

    from kernel.conversation import Namespace, NamespaceContext
    from kernel.jobs import Job

NOTIFICATION_CATEGORIES = (
    "session_starting_soon",
    "session_started",
    "reply",
    "achievement_unlocked",
    "streak_at_risk",
    "subscription_past_due",
)


def _routes() -> Sequence[web.RouteTableDef]:
    from realms.academy.routes import ROUTE_TABLES

    return ROUTE_TABLES


def _namespaces(context: NamespaceContext) -> Sequence[Namespace]:
    from realms.academy.namespaces import build

    return build(context)


def _jobs() -> Sequence[Job]:
    from realms.academy.jobs import JOBS

    return JOBS


REALM = Realm(
    name="academy",
    schema="academy",
    summary="Dracarys trading academy (seed 001): lessons, progress, community, live",
    user_id_type="uuid",
    sql_dir=Path(__file__).resolve().parent / "sql",
    # Admins are users.is_super_admin (as academy.is_admin() reads it); a deleted or
    # currently banned account is not active.
    user_lookup_sql=(
        "SELECT CASE WHEN is_super_admin IS TRUE THEN 'admin' ELSE 'learner' END AS user_type,"
        " deleted_at IS NULL AND (banned_until IS NULL OR banned_until <= now()) AS active"
        " FROM academy.users WHERE id = $1"
    ),
    contact_sql=(
        "SELECT id, email::text AS email, email_confirmed_at IS NOT NULL AS email_verified,"
        " deleted_at IS NULL AND (banned_until IS NULL OR banned_until <= now()) AS active"
        " FROM academy.users WHERE id = ANY($1::uuid[])"
    ),
    routes=_routes,
    namespaces=_namespaces,
    jobs=_jobs,
    notification_categories=NOTIFICATION_CATEGORIES,
)
