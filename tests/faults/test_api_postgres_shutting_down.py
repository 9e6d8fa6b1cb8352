"""A request that needs a new database connection while Postgres is shutting down is an outage
(503 with Retry-After), not a server error: asyncpg raises CannotConnectNowError ("the
database system is shutting down") for it, which the chaos run (docs/reliability.md) once saw
answered 500. The cluster is a private one, stopped in `smart` mode while a session stays
open, so it goes on refusing new connections for as long as the test needs."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kernel.web.errors import errors_middleware
from tests.faults.services import PrivatePostgres
from tests.faults.traffic import eventually


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.destroy()


async def _refuses_new_connections(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.CannotConnectNowError:
        return True
    await conn.close()
    return False


async def test_a_request_during_a_postgres_shutdown_is_503_with_retry_after(
    private_pg: PrivatePostgres,
) -> None:
    async def handler(request: web.Request) -> web.Response:
        conn = await asyncpg.connect(private_pg.dsn)  # a pool opening a connection does this
        try:
            return web.json_response({"one": await conn.fetchval("SELECT 1")})
        finally:
            await conn.close()

    app = web.Application(middlewares=[errors_middleware])
    app.router.add_get("/needs-db", handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/needs-db")
        assert response.status == 200  # the route works while Postgres is up

        held = await asyncpg.connect(private_pg.dsn)  # keeps a smart shutdown from finishing
        try:
            # -W: do not wait; the server stays in "shutting down" while `held` is open
            private_pg._run("pg_ctl", "-D", str(private_pg.data), "-m", "smart", "-W", "stop")
            await eventually(
                lambda: _refuses_new_connections(private_pg.dsn), True, 30, "shutting down"
            )

            response = await client.get("/needs-db")
            body = await response.json()
            assert response.status == 503, body
            assert body["error"]["code"] == "unavailable"
            assert int(response.headers["Retry-After"]) >= 1
        finally:
            await held.close()  # the smart shutdown completes; the fixture removes the cluster
