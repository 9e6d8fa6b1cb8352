"""The creator realm's REST route tables, one module per resource."""

from __future__ import annotations

from realms.creator.routes import auth, conversations, payments

ROUTE_TABLES = [auth.routes, conversations.routes, payments.routes]
