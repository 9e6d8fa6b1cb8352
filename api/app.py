"""Builds the aiohttp Application: resources in cleanup contexts, the core's route tables and
those of every enabled realm, error middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from api import openapi, server_api
from api.access_log import access_middleware
from api.cors import cors_middleware
from api.mount import MOUNTED, mount_core, mount_realm
from api.routes import dev, docs, health, jobs, metrics, webapp
from api.url_limit import HANDLER_ARGS, url_limit_middleware
from kernel.config import Settings
from kernel.db import create_pool
from kernel.realms import Realms, enabled_realms
from kernel.web.errors import errors_middleware
from kernel.web.keys import POOL, REALMS, SETTINGS


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


def create_app(
    settings: Settings,
    *,
    realms: Realms | None = None,
    resources: Mapping[web.AppKey[Any], Any] | None = None,
) -> web.Application:
    """The API application for `realms` (default: SWITCHBOARD_REALMS); its pool opens on
    startup and closes on cleanup. `resources` preset application keys that realms would
    otherwise fill with their defaults (a test's OTP senders, say)."""
    # Outermost first: the access log (request id, metrics) sees every answer, CORS's too.
    app = web.Application(
        client_max_size=1024 * 1024,
        handler_args=HANDLER_ARGS,
        middlewares=[access_middleware, cors_middleware, url_limit_middleware, errors_middleware],
    )
    app[SETTINGS] = settings
    app[REALMS] = realms if realms is not None else enabled_realms()
    app[MOUNTED] = []
    app[metrics.API_METRICS] = metrics.ApiMetrics()
    for key, value in (resources or {}).items():
        app[key] = value
    app.cleanup_ctx.append(_database)
    pages = [webapp.routes, docs.routes]
    if dev.enabled(settings):  # the dev mail catcher, before the realms make their senders
        dev.install(app)
        pages.append(dev.routes)
    core = [health.routes, openapi.routes, jobs.routes, metrics.routes, *pages]
    if settings.server_api_key:  # without a key the server API does not exist (404)
        core.append(server_api.routes)
    mount_core(app, core)
    for realm in app[REALMS]:
        mount_realm(app, realm)
    return app
