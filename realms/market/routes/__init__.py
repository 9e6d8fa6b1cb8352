"""The market realm's REST resources (served at /v1/market/...), one module per resource."""

from __future__ import annotations

from kernel.web import notification_routes
from realms.market.routes import (
    addresses,
    admin_roles,
    auth,
    catalog,
    chats,
    checkout,
    disputes,
    notifications,
    orders,
    payments,
    promotions,
    reels,
    returns,
    reviews,
    settings,
    social,
    stories,
    wallets,
)

ROUTE_TABLES = [
    *(
        module.routes
        for module in (
            addresses,
            stories,
            reels,
            social,
            admin_roles,
            settings,
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
            payments,
        )
    ),
    notification_routes.routes,
]
