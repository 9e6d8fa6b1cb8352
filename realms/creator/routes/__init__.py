"""The creator realm's REST route tables, one module per resource, and the core's
notification routes (inbox, preferences, settings, devices, e-mail links)."""

from __future__ import annotations

from kernel.web import notification_routes
from realms.creator.routes import auth, conversations, payments

ROUTE_TABLES = [auth.routes, conversations.routes, payments.routes, notification_routes.routes]
