"""Mounting route tables: the core's as declared, each realm's under /v1/<realm>/ with the
realm recorded on every request (so a token of another realm is refused), and the list of
what is served for the OpenAPI document."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from kernel.realms import Realm, RealmError
from kernel.web.auth import ROUTE_REALM
from kernel.web.endpoints import ENDPOINTS, Endpoint

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Mounted:
    """One served operation: its declaration, the path it is served at, and, for an old
    unprefixed path kept working, the path it is an alias of."""

    endpoint: Endpoint
    path: str
    alias_of: str | None = None


MOUNTED = web.AppKey("mounted", list[Mounted])


def _route_defs(table: web.RouteTableDef) -> list[web.RouteDef]:
    return [route for route in table if isinstance(route, web.RouteDef)]


def mount_core(app: web.Application, tables: Sequence[web.RouteTableDef]) -> None:
    for table in tables:
        for route in _route_defs(table):
            app.router.add_route(route.method, route.path, route.handler)
            app[MOUNTED].append(Mounted(ENDPOINTS[route.handler], route.path))


def _in_realm(handler: Handler, realm: str) -> Handler:
    @functools.wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        request[ROUTE_REALM] = realm
        return await handler(request)

    return run


def mount_realm(app: web.Application, realm: Realm) -> None:
    """Serve `realm`'s routes at /v1/<realm>/<rest of the declared /v1/ path>, and also at
    the declared path when the realm keeps its unprefixed paths (analyst)."""
    if realm.routes is None:
        return
    if realm.api_setup is not None:
        realm.api_setup(app)
    for table in realm.routes():
        for route in _route_defs(table):
            if not route.path.startswith("/v1/"):
                raise RealmError(f"{realm.name}: route {route.path} is not under /v1/")
            handler = _in_realm(route.handler, realm.name)
            spec = ENDPOINTS[route.handler]
            path = f"/v1/{realm.name}/{route.path[len('/v1/') :]}"
            app.router.add_route(route.method, path, handler)
            app[MOUNTED].append(Mounted(spec, path))
            if realm.unprefixed_paths:
                app.router.add_route(route.method, route.path, handler)
                app[MOUNTED].append(Mounted(spec, route.path, alias_of=path))
