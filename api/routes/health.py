"""GET /healthz: 200 once the database answers, 503 otherwise."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from msgspec import Struct

from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL

routes = web.RouteTableDef()


class Health(Struct):
    status: str
    database: str


@endpoint(
    routes,
    "GET",
    "/healthz",
    summary="Liveness and database reachability",
    tag="operations",
    response=Health,
    auth=False,
    errors=(503,),
)
async def healthz(request: web.Request) -> Health | web.Response:
    try:
        async with request.app[POOL].acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1")
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return web.json_response({"status": "unavailable", "database": "down"}, status=503)
    return Health(status="ok", database="up")
