"""A test-only realm, `echo`, defined outside realms/ to prove that a realm plugs in without
an edit to gateway/, api/ or workers/: its own schema (BIGINT user ids), one namespace
(`echo.room:<id>`), one route (GET /v1/echo/rooms), one job (`echo_purge`); and the core's
conversations (`echo.direct:`, `echo.group:`, `echo.support:`), whose seed would have none,
and the core's notifications (inbox in gateway.notifications, /v1/echo/notifications...).
Enabled with SWITCHBOARD_REALMS=analyst,tests.echo_realm."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import asyncpg
from aiohttp import web
from msgspec import Struct

from kernel.conversation import Namespace, NamespaceContext
from kernel.conversations import conversation_namespaces
from kernel.jobs import Clock, Daily, Job
from kernel.realms import Realm
from kernel.web import notification_routes
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from tests.echo_realm.rooms import EchoRooms

routes = web.RouteTableDef()


class RoomOut(Struct):
    id: int
    title: str


@endpoint(
    routes, "GET", "/v1/rooms", summary="The caller's rooms", tag="echo", response=list[RoomOut]
)
async def my_rooms(request: web.Request) -> list[RoomOut]:
    who = await caller(request)
    rows = await request.app[POOL].fetch(
        "SELECT r.id, r.title FROM echo.rooms r JOIN echo.room_members m ON m.room_id = r.id"
        " WHERE m.user_id = $1 ORDER BY r.id",
        int(who.subject),
    )
    return [RoomOut(id=r["id"], title=r["title"]) for r in rows]


async def purge_old_messages(conn: asyncpg.Connection, clock: Clock) -> int:
    status = await conn.execute(
        "DELETE FROM echo.messages WHERE created_at < $1", clock.now() - timedelta(days=30)
    )
    return int(status.split()[-1])


def _namespaces(context: NamespaceContext) -> Sequence[Namespace]:
    # its rooms, and the core's direct, group and support conversations
    return [EchoRooms(context.pool, context.publish), *conversation_namespaces(REALM, context)]


REALM = Realm(
    name="echo",
    schema="echo",
    summary="test-only realm",
    user_id_type="bigint",
    sql_dir=Path(__file__).resolve().parent / "sql",
    user_lookup_sql=(
        "SELECT CASE WHEN is_staff THEN 'admin' ELSE 'member' END AS user_type,"
        " is_active AS active FROM echo.users WHERE id = $1"
    ),
    contact_sql=(
        "SELECT id, email, email_verified, is_active AS active FROM echo.users"
        " WHERE id = ANY ($1::bigint[])"
    ),
    routes=lambda: [routes, notification_routes.routes],
    namespaces=_namespaces,
    jobs=lambda: [
        Job(
            name="echo_purge",
            schedule=Daily(hour=3),
            run=purge_old_messages,
            summary="delete echo messages older than 30 days",
        )
    ],
)
