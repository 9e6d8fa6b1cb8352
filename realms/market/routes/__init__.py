"""The market realm's REST resources (served at /v1/market/...), one module per resource."""

from __future__ import annotations

from kernel.web import notification_routes
from realms.market.routes import (
    auth,
    catalog,
    chats,
    checkout,
    disputes,
    notifications,
    orders,
    promotions,
    returns,
    reviews,
    wallets,
)

ROUTE_TABLES = [
    *(
        module.routes
        for module in (
            auth,
            chats,
            orders,
            catalog,
            checkout,
            wallets,
            promotions,
            reviews,
            disputes,
            returns,
            notifications,
        )
    ),
    notification_routes.routes,
]
