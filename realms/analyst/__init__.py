"""Realm `analyst`: the analyst marketplace of seed 000 (SEBI/RIA analysts and traders):
tiers and subscriptions, payments, posts, reviews, moderation, support, and chat rooms gated
by subscription (`community:<id>`, `community.live:<id>`). The primary realm, served before
realms existed: its REST routes also answer at their old unprefixed paths (/v1/...)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.realms import Realm

if TYPE_CHECKING:
    import asyncpg
    from aiohttp import web

    from kernel.conversation import Namespace, NamespaceContext
    from kernel.jobs import Job

NOTIFICATION_CATEGORIES = (
    "new_post",
    "urgent_post",
    "new_review",
    "moderation_action",
    "support_ticket_updated",
    "verification_approved",
    "verification_rejected",
    "payment_success",
    "payment_failed",
    "subscription_expiring",
    "conversation_message",
    "new_comment",
    "payout_processed",
    "payout_failed",
    "report_closed",
)


def _routes() -> Sequence[web.RouteTableDef]:
    from realms.analyst.routes import ROUTE_TABLES

    return ROUTE_TABLES


def _api_setup(app: web.Application) -> None:
    from realms.analyst.otp import install_default_senders

    install_default_senders(app)


def _namespaces(context: NamespaceContext) -> Sequence[Namespace]:
    from realms.analyst.namespaces import build

    return build(context)


async def _notify_offline(
    conn: asyncpg.Connection,
    recipients: list[str],
    event_key: str,
    title: str,
    body: str,
    conversation_id: uuid.UUID,
) -> int:
    from kernel.notify import notify

    async with conn.transaction():
        return await notify(
            conn,
            event_key=event_key,
            recipients=[uuid.UUID(r) for r in recipients],
            notification_type="conversation_message",
            title=title,
            message=body,
            related_entity_type="conversation",
            related_entity_id=conversation_id,
            notification_group=f"conversation:{conversation_id}",
            send_in_app=False,  # unread counts already say it in the app
        )


def _jobs() -> Sequence[Job]:
    from realms.analyst.jobs import JOBS

    return JOBS


REALM = Realm(
    name="analyst",
    schema="analyst",
    summary="Analyst marketplace (seed 000): tiers, subscriptions, posts, gated chat rooms",
    user_id_type="uuid",
    sql_dir=Path(__file__).resolve().parent / "sql",
    user_lookup_sql=(
        "SELECT user_type, is_active AS active FROM analyst.users"
        " WHERE id = $1 AND deleted_at IS NULL"
    ),
    routes=_routes,
    api_setup=_api_setup,
    unprefixed_paths=True,
    namespaces=_namespaces,
    jobs=_jobs,
    notification_categories=NOTIFICATION_CATEGORIES,
    contact_sql=(
        "SELECT id, email, email_verified, is_active AND deleted_at IS NULL AS active"
        " FROM analyst.users WHERE id = ANY ($1::uuid[])"
    ),
    in_app_inbox=True,
    inbox_table="analyst.notifications",
    notify_offline=_notify_offline,
)
