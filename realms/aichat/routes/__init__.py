"""The aichat realm's REST route tables, served at /v1/aichat/...: auth, conversations,
billing views, subscription changes, Stripe's webhook, and the core's notification routes
(inbox, preferences, devices)."""

from __future__ import annotations

from kernel.web import notification_routes
from realms.aichat.routes.auth import routes as auth
from realms.aichat.routes.billing import routes as billing
from realms.aichat.routes.conversations import routes as conversations
from realms.aichat.routes.stripe_webhook import routes as stripe_webhook
from realms.aichat.routes.subscription import routes as subscription

ROUTE_TABLES = [
    auth,
    conversations,
    billing,
    subscription,
    stripe_webhook,
    notification_routes.routes,
]
