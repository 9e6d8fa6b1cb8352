"""The creator realm's REST route tables, one module per resource, and the core's
notification routes (inbox, preferences, settings, devices, e-mail links)."""

from __future__ import annotations

from kernel.web import notification_routes
from realms.creator.routes import (
    analytics,
    auth,
    content,
    conversations,
    moderation,
    payments,
    payouts,
    profiles,
    reports,
    social,
    staff,
    streams,
    subscriptions,
)

ROUTE_TABLES = [
    auth.routes,
    conversations.routes,
    payments.routes,
    streams.routes,
    reports.routes,
    moderation.routes,
    staff.routes,
    payouts.routes,
    analytics.routes,
    profiles.routes,
    content.routes,
    subscriptions.routes,
    social.routes,
    notification_routes.routes,
]
