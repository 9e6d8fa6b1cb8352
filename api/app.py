"""Builds the aiohttp Application: resources in cleanup contexts, route tables, error middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from api.keys import POOL, SETTINGS
from api.routes import health
from kernel.config import Settings
from kernel.db import create_pool


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[POOL] = await create_pool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        application_name="switchboard-api",
    )
    yield
    await app[POOL].close()


def create_app(settings: Settings) -> web.Application:
    """The API application; its pool opens on startup and closes on cleanup."""
    app = web.Application(client_max_size=1024 * 1024)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_database)
    app.add_routes(health.routes)
    return app
