"""The academy realm's REST resources, one module per resource, in mounting order."""

from __future__ import annotations

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
    module.routes for module in (auth, profiles, lessons, achievements, community, sessions, plans)
]
