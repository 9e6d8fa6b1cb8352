"""/v1/inbox: the caller's in-app notifications, the unread count, and marking them read.

Only notifications meant for the inbox (send_in_app) are listed; unread means read_at IS NULL.
Another user's notification is never shown nor changed: it answers 404, like a missing one.
Marking read is pushed to the user's open sockets (a `notifications_read` event, sql/0015)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import msgspec
from aiohttp import web
from msgspec import Struct

from kernel import inbox
from kernel.errors import NotFound
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.notification_routes import InboxQuery, NotificationOut, UnreadCount
from kernel.web.pagination import Page, decode_cursor, page_of
from kernel.web.paths import path_uuid

routes = web.RouteTableDef()


class MarkedRead(Struct):
    marked: int


_COLUMNS = (
    "id, notification_type, title, message, action_url, related_entity_type,"
    " related_entity_id, priority, status, read_at, created_at"
)


def _notification(row: asyncpg.Record) -> NotificationOut:
    return msgspec.convert(dict(row), NotificationOut)


@endpoint(
    routes,
    "GET",
    "/v1/inbox/notifications",
    summary="The caller's notifications, newest first (`unread=true`: only unread ones)",
    tag="inbox",
    query=InboxQuery,
    response=Page[NotificationOut],
    errors=(401,),
)
async def list_notifications(request: web.Request, query: InboxQuery) -> Page[NotificationOut]:
    who = await caller(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        f"SELECT {_COLUMNS} FROM analyst.notifications"
        f" WHERE user_id = $1 AND send_in_app AND (NOT $2 OR read_at IS NULL)"
        f"   AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))"
        f" ORDER BY created_at DESC, id DESC LIMIT $5",
        who.user_id,
        query.unread,
        *(after or (None, None)),
        query.limit + 1,
    )
    return page_of([_notification(r) for r in rows], query.limit, lambda n: (n.created_at, n.id))


@endpoint(
    routes,
    "GET",
    "/v1/inbox/unread-count",
    summary="How many of the caller's notifications are unread",
    tag="inbox",
    response=UnreadCount,
    errors=(401,),
)
async def unread_count(request: web.Request) -> UnreadCount:
    who = await caller(request)
    return UnreadCount(unread=await inbox.unread_count(request.app[POOL], who.user_id))


@endpoint(
    routes,
    "POST",
    "/v1/inbox/notifications/{id}/read",
    summary="Mark one of the caller's notifications read (again: no change)",
    tag="inbox",
    response=NotificationOut,
    errors=(401, 404),
)
async def mark_read(request: web.Request) -> NotificationOut:
    who = await caller(request)
    row = await request.app[POOL].fetchrow(
        f"UPDATE analyst.notifications SET status = 'read', read_at = coalesce(read_at, now())"
        f" WHERE id = $1 AND user_id = $2 AND send_in_app RETURNING {_COLUMNS}",
        path_uuid(request),
        who.user_id,
    )
    if row is None:
        raise NotFound("no such notification")
    return _notification(row)


@endpoint(
    routes,
    "POST",
    "/v1/inbox/read-all",
    summary="Mark every unread notification of the caller read",
    tag="inbox",
    response=MarkedRead,
    errors=(401,),
)
async def mark_all_read(request: web.Request) -> MarkedRead:
    who = await caller(request)
    return MarkedRead(marked=await inbox.mark_read(request.app[POOL], who.user_id, None))
