"""The market realm's REST resources (served at /v1/market/...), one module per resource."""

from __future__ import annotations

from realms.market.routes import auth, catalog, chats, orders

ROUTE_TABLES = [module.routes for module in (auth, chats, orders, catalog)]
