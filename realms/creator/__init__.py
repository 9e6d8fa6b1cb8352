"""Realm `creator`: Creator platform (seed 003): fan-creator direct messages
(`creator.dm:<id>`) with unread counts, archive and read receipts, premium (paid) messages
delivered locked until bought, tips (optionally anonymous), live streams (`creator.live:<id>`)
with access rules and viewer counts, notifications through the core, scheduled jobs, accounts
with age verification and account status. docs/realm-creator.md has its routes, channels,
rules and choices."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.realms import Realm

if TYPE_CHECKING:
    from aiohttp import web

    from kernel.conversation import Namespace, NamespaceContext
    from kernel.jobs import Job

# Tokens of suspended, banned, deactivated or deleted accounts are refused.
USER_LOOKUP_SQL = (
    "SELECT account_type AS user_type,"
    " account_status = 'active' AND deleted_at IS NULL AS active"
    " FROM creator.users WHERE id = $1"
)
CONTACT_SQL = (
    "SELECT id, email, email_verified, account_status = 'active' AND deleted_at IS NULL AS active"
    " FROM creator.users WHERE id = ANY ($1::uuid[])"
)

NOTIFICATION_CATEGORIES = (
    "new_message",
    "premium_message_purchased",
    "tip_received",
    "new_subscriber",
    "stream_starting",
    "content_approved",
    "content_removed",
)


def _routes() -> Sequence[web.RouteTableDef]:
    from realms.creator.routes import ROUTE_TABLES

    return ROUTE_TABLES


def _api_setup(app: web.Application) -> None:
    from realms.creator.billing import install_processor

    install_processor(app)


def _namespaces(context: NamespaceContext) -> Sequence[Namespace]:
    from kernel.config import load_settings
    from realms.creator.dm import DirectMessages
    from realms.creator.live import LiveStreams
    from realms.creator.relay import Relay

    settings = load_settings()
    relay = Relay(context.pool, context.publish, settings.database_url)
    relay.start()
    live = LiveStreams(context.pool, context.publish, node_ttl_s=settings.gateway_node_ttl_s)
    live.start()
    return [
        DirectMessages(
            context.pool, context.publish, on_batch=context.on_batch, on_close=relay.close
        ),
        live,
    ]


def _jobs() -> Sequence[Job]:
    from realms.creator.jobs import JOBS

    return JOBS


REALM = Realm(
    name="creator",
    schema="creator",
    summary="Creator platform (seed 003): fan-creator messaging, paid messages, tips, live streams",
    user_id_type="uuid",
    sql_dir=Path(__file__).resolve().parent / "sql",
    user_lookup_sql=USER_LOOKUP_SQL,
    contact_sql=CONTACT_SQL,
    routes=_routes,
    api_setup=_api_setup,
    namespaces=_namespaces,
    jobs=_jobs,
    notification_categories=NOTIFICATION_CATEGORIES,
)
