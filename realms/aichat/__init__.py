"""Realm `aichat`: AI SaaS chat (seed 002): accounts with e-mail verification and sessions,
assistant conversations streamed over the socket (`aichat.conv:<id>`) from an OpenAI- or
Anthropic-compatible provider (or the labelled offline one), monthly quotas, token usage and
billing (Stripe webhooks, month-end invoices). docs/realm-aichat.md describes its routes,
channels and rules."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.realms import Realm

if TYPE_CHECKING:
    from aiohttp import web

    from kernel.conversation import Namespace, NamespaceContext
    from kernel.jobs import Job

NOTIFICATION_CATEGORIES = ("quota_warning", "quota_exceeded", "payment_failed", "invoice_issued")


def _routes() -> Sequence[web.RouteTableDef]:
    from realms.aichat.routes import ROUTE_TABLES

    return ROUTE_TABLES


def _api_setup(app: web.Application) -> None:
    from realms.aichat.billing import install_billing
    from realms.aichat.mail import install_mailer

    install_mailer(app)
    install_billing(app)


def _jobs() -> Sequence[Job]:
    from realms.aichat.jobs import JOBS

    return JOBS


def _namespaces(context: NamespaceContext) -> Sequence[Namespace]:
    from realms.aichat.chat.namespace import build

    return [build(context)]


REALM = Realm(
    name="aichat",
    schema="aichat",
    summary="AI SaaS chat (seed 002): conversations with an AI assistant, token quotas, billing",
    user_id_type="uuid",
    sql_dir=Path(__file__).resolve().parent / "sql",
    user_lookup_sql=(
        "SELECT 'user' AS user_type, is_active AS active FROM aichat.users WHERE id = $1"
    ),
    contact_sql=(
        "SELECT id, email, email_verified, is_active AS active FROM aichat.users"
        " WHERE id = ANY ($1::uuid[])"
    ),
    routes=_routes,
    api_setup=_api_setup,
    namespaces=_namespaces,
    notification_categories=NOTIFICATION_CATEGORIES,
    jobs=_jobs,
)
