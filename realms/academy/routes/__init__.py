"""The academy realm's REST resources, one module per resource, in mounting order, and the
core's notification routes (inbox, preferences, settings, devices, e-mail links)."""

from __future__ import annotations

from kernel.web import notification_routes
from realms.academy.routes import (
    achievements,
    auth,
    community,
    lessons,
    plans,
    profiles,
    sessions,
)

ROUTE_TABLES = [
    *(
        module.routes
        for module in (auth, profiles, lessons, achievements, community, sessions, plans)
    ),
    notification_routes.routes,
]
