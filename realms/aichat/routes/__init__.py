"""The aichat realm's REST route tables, served at /v1/aichat/...: auth, conversations,
billing views, and the core's notification routes (inbox, preferences, devices)."""

from __future__ import annotations

from kernel.web import notification_routes
from realms.aichat.routes.auth import routes as auth
from realms.aichat.routes.billing import routes as billing
from realms.aichat.routes.conversations import routes as conversations
from realms.aichat.routes.stripe_webhook import routes as stripe_webhook

ROUTE_TABLES = [auth, conversations, billing, stripe_webhook, notification_routes.routes]
