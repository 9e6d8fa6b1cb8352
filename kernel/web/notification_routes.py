"""The core's notification routes, for any realm that adds `routes` to its route tables: the
caller's inbox (a page, the unread count, marking read), their preferences, quiet hours and
digest time, their push devices, and the e-mail tracking links of the realm's e-mails. The api
serves them at /v1/<realm>/...; every one acts for the caller's realm and user only, so a
notification of another realm, or of another user, is never shown nor changed (404, as a
missing one). The analyst realm declares its older paths for the same things
(realms/analyst/routes/notifications.py) around this module's Structs and handler bodies."""

from __future__ import annotations

import base64
import uuid
import zoneinfo
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import Meta, Struct

from kernel import inbox, notify, tracking
from kernel.errors import BadRequest, NotFound, SwitchboardError
from kernel.realms import Realm
from kernel.web.auth import ROUTE_REALM, Caller, caller
from kernel.web.endpoints import all_or_none, endpoint
from kernel.web.keys import POOL, REALMS, SETTINGS
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of

routes = web.RouteTableDef()

Clock = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]\Z", description="HH:MM")]
Category = Annotated[str, Meta(pattern=r"^(\*|[a-z][a-z0-9_]{0,49})\Z")]
# A transparent 1x1 GIF: what an e-mail client fetches as the open pixel.
_PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


class InboxQuery(PageQuery, kw_only=True):
    unread: bool = False


class NotificationOut(Struct):
    id: uuid.UUID
    notification_type: str
    title: str | None
    message: str | None
    action_url: str | None
    related_entity_type: str | None
    related_entity_id: uuid.UUID | None
    priority: str
    status: str
    read_at: datetime | None
    created_at: datetime


class UnreadCount(Struct):
    unread: int


class MarkRead(Struct, forbid_unknown_fields=True):
    ids: Annotated[list[uuid.UUID], Meta(min_length=1, max_length=100)] | None = None
    all: bool = False


class MarkedRead(Struct):
    marked: int
    unread: int


class Preference(Struct, forbid_unknown_fields=True):
    category: Category
    channel: Literal["in_app", "push", "email", "sms", "*"]
    enabled: bool


# An IANA name this machine's tz database knows: listed for clients, checked by write_settings.
TimeZone = Annotated[
    str,
    Meta(max_length=64, extra_json_schema={"enum": sorted(zoneinfo.available_timezones())}),
]


class NotificationSettings(Struct, forbid_unknown_fields=True):
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        all_or_none("quiet_hours_start", "quiet_hours_end"),
    )
    time_zone: TimeZone = "UTC"
    quiet_hours_start: Clock | None = None
    quiet_hours_end: Clock | None = None
    digest_at: Clock = "08:00"


class DeviceIn(Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(min_length=10, max_length=4096)]
    platform: Literal["android", "ios", "web"]
    app_version: Annotated[str, Meta(max_length=50)] | None = None


class DeviceToken(Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(min_length=1, max_length=4096)]


class DeviceOut(Struct):
    id: uuid.UUID


class TokenQuery(Struct):
    t: Annotated[str, Meta(min_length=1, max_length=4096, pattern=tracking.TOKEN_PATTERN)]


class PixelQuery(Struct):
    """The open pixel's: any token gets the pixel (a malformed one records nothing)."""

    t: Annotated[str, Meta(min_length=1, max_length=4096)]


class Unsubscribed(Struct):
    category: str
    email: Literal["off"] = "off"


async def _me(request: web.Request) -> tuple[Caller, Realm]:
    who = await caller(request)
    return who, request.app[REALMS].get(who.realm)


def _realm_of_route(request: web.Request) -> str:
    """The realm whose path was called (/v1/<realm>/...)."""
    realm = request.get(ROUTE_REALM)
    if not isinstance(realm, str):  # pragma: no cover - the api mounts these under a realm
        raise NotFound("notification routes are served under /v1/<realm>/")
    return realm


# --- inbox --------------------------------------------------------------------------------


@endpoint(
    routes,
    "GET",
    "/v1/notifications",
    summary="The caller's in-app notifications, newest first (`unread=true`: only unread)",
    tag="notifications",
    query=InboxQuery,
    response=Page[NotificationOut],
    errors=(400, 401, 403),
)
async def list_notifications(request: web.Request, query: InboxQuery) -> Page[NotificationOut]:
    who, realm = await _me(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    rows = await inbox.page(
        request.app[POOL],
        who.subject,
        realm,
        unread_only=query.unread,
        after=(after[0], after[1]) if after else None,
        limit=query.limit + 1,
    )
    items = [msgspec.convert(dict(r), NotificationOut) for r in rows]
    return page_of(items, query.limit, lambda n: (n.created_at, n.id))


@endpoint(
    routes,
    "GET",
    "/v1/notifications/unread-count",
    summary="How many of the caller's in-app notifications are unread",
    tag="notifications",
    response=UnreadCount,
    errors=(401, 403),
)
async def unread_count(request: web.Request) -> UnreadCount:
    who, realm = await _me(request)
    return UnreadCount(unread=await inbox.unread_count(request.app[POOL], who.subject, realm))


@endpoint(
    routes,
    "POST",
    "/v1/notifications/read",
    summary="Mark the given notifications (`ids`) or all of them (`all: true`) read",
    tag="notifications",
    body=MarkRead,
    response=MarkedRead,
    errors=(400, 401, 403, 404),
)
async def mark_read(request: web.Request, body: MarkRead) -> MarkedRead:
    who, realm = await _me(request)
    if body.all == (body.ids is not None):
        raise BadRequest("give either `ids` (1 to 100 notification ids) or `all: true`")
    pool = request.app[POOL]
    marked = await inbox.mark_read(pool, who.subject, None if body.all else body.ids, realm)
    return MarkedRead(marked=marked, unread=await inbox.unread_count(pool, who.subject, realm))


# --- preferences and settings -------------------------------------------------------------


@endpoint(
    routes,
    "GET",
    "/v1/notifications/preferences",
    summary="The caller's notification preferences (no row: allowed)",
    tag="notifications",
    response=list[Preference],
    errors=(401, 403),
)
async def preferences(request: web.Request) -> list[Preference]:
    return await read_preferences(request)


async def read_preferences(request: web.Request) -> list[Preference]:
    """The caller's preferences, in their realm."""
    who, realm = await _me(request)
    rows = await request.app[POOL].fetch(
        "SELECT category, channel, enabled FROM gateway.notification_preferences"
        " WHERE realm = $1 AND user_id = $2 ORDER BY category, channel",
        realm.name,
        who.subject,
    )
    return [Preference(r["category"], r["channel"], r["enabled"]) for r in rows]


@endpoint(
    routes,
    "PUT",
    "/v1/notifications/preferences",
    summary="Allow or block a category ('*': all) on a channel ('*': all)",
    tag="notifications",
    body=Preference,
    status=204,
    errors=(400, 401, 403),
)
async def set_preference(request: web.Request, body: Preference) -> None:
    await write_preference(request, body)


async def write_preference(request: web.Request, body: Preference) -> None:
    who, realm = await _me(request)
    async with request.app[POOL].acquire() as conn:
        await notify.set_preference(
            conn, who.subject, body.category, body.channel, body.enabled, realm=realm
        )


@endpoint(
    routes,
    "GET",
    "/v1/notifications/settings",
    summary="The caller's time zone, quiet hours and digest time",
    tag="notifications",
    response=NotificationSettings,
    errors=(401, 403),
)
async def settings(request: web.Request) -> NotificationSettings:
    return await read_settings(request)


async def read_settings(request: web.Request) -> NotificationSettings:
    """The caller's settings in their realm (the defaults until they set some)."""
    who, realm = await _me(request)
    row = await request.app[POOL].fetchrow(
        "SELECT time_zone, to_char(quiet_hours_start, 'HH24:MI') AS qs,"
        " to_char(quiet_hours_end, 'HH24:MI') AS qe, to_char(digest_at, 'HH24:MI') AS d"
        " FROM gateway.notification_settings WHERE realm = $1 AND user_id = $2",
        realm.name,
        who.subject,
    )
    if row is None:
        return NotificationSettings()
    return NotificationSettings(row["time_zone"], row["qs"], row["qe"], row["d"])


@endpoint(
    routes,
    "PUT",
    "/v1/notifications/settings",
    summary="Set the caller's time zone, quiet hours and digest time",
    tag="notifications",
    body=NotificationSettings,
    response=NotificationSettings,
    errors=(400, 401, 403),
)
async def set_settings(request: web.Request, body: NotificationSettings) -> NotificationSettings:
    return await write_settings(request, body)


async def write_settings(request: web.Request, body: NotificationSettings) -> NotificationSettings:
    """Check what the Struct's types cannot (a known zone, both quiet hours or neither, and
    not the same two), then store it; returns what was stored."""
    who, realm = await _me(request)
    try:
        zoneinfo.ZoneInfo(body.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"unknown time zone {body.time_zone!r} (use an IANA name)") from None
    if (body.quiet_hours_start is None) != (body.quiet_hours_end is None):
        raise BadRequest("give both quiet_hours_start and quiet_hours_end, or neither")
    if body.quiet_hours_start is not None and body.quiet_hours_start == body.quiet_hours_end:
        raise BadRequest("quiet hours cannot start when they end")
    quiet = (
        (body.quiet_hours_start, body.quiet_hours_end)
        if body.quiet_hours_start and body.quiet_hours_end
        else None
    )
    async with request.app[POOL].acquire() as conn:
        await notify.set_settings(
            conn,
            who.subject,
            realm=realm,
            time_zone=body.time_zone,
            quiet_hours=quiet,
            digest_at=body.digest_at,
        )
    return body


# --- push devices -------------------------------------------------------------------------


@endpoint(
    routes,
    "POST",
    "/v1/devices",
    summary="Register (or refresh) a push device of the caller",
    tag="notifications",
    body=DeviceIn,
    response=DeviceOut,
    status=201,
    errors=(400, 401, 403),
)
async def register_device(request: web.Request, body: DeviceIn) -> DeviceOut:
    return await add_device(request, body)


async def add_device(request: web.Request, body: DeviceIn) -> DeviceOut:
    who, realm = await _me(request)
    async with request.app[POOL].acquire() as conn:
        device_id = await notify.register_device(
            conn, who.subject, body.token, body.platform, body.app_version, realm=realm
        )
    return DeviceOut(id=device_id)


@endpoint(
    routes,
    "DELETE",
    "/v1/devices",
    summary="Unregister a push device of the caller (logout)",
    tag="notifications",
    body=DeviceToken,
    status=204,
    errors=(400, 401, 403, 404),
)
async def forget_device(request: web.Request, body: DeviceToken) -> None:
    await remove_device(request, body)


async def remove_device(request: web.Request, body: DeviceToken) -> None:
    who, realm = await _me(request)
    async with request.app[POOL].acquire() as conn:
        if not await notify.forget_device(conn, who.subject, body.token, realm=realm):
            raise NotFound("no such device of yours")


# --- e-mail links (no token: the link's signature vouches) --------------------------------
# The bodies take `realm`, the realm a link must belong to: the route's here, "analyst" on the
# analyst realm's old paths (realms/analyst/routes/notifications.py).


@endpoint(
    routes,
    "GET",
    tracking.OPEN_PATH,
    summary="E-mail open pixel",
    tag="tracking",
    query=PixelQuery,
    auth=False,
)
async def email_opened(request: web.Request, query: PixelQuery) -> web.Response:
    return await open_pixel(request, query.t, _realm_of_route(request))


async def open_pixel(request: web.Request, token: str, realm: str) -> web.Response:
    """Always the pixel: a bad token records nothing but must not show a broken image."""
    try:
        async with request.app[POOL].acquire() as conn:
            await tracking.record_open(conn, request.app[SETTINGS].secret, token, realm=realm)
    except (SwitchboardError, asyncpg.DataError):
        pass
    return web.Response(
        body=_PIXEL, content_type="image/gif", headers={"Cache-Control": "no-store"}
    )


@endpoint(
    routes,
    "GET",
    tracking.CLICK_PATH,
    summary="Tracked link: record, then redirect",
    tag="tracking",
    query=TokenQuery,
    status=303,
    auth=False,
    errors=(400, 401),
)
async def email_clicked(request: web.Request, query: TokenQuery) -> web.Response:
    raise web.HTTPSeeOther(location=await clicked_url(request, query.t, _realm_of_route(request)))


async def clicked_url(request: web.Request, token: str, realm: str) -> str:
    """Record the click; returns where the link goes."""
    async with request.app[POOL].acquire() as conn:
        return await tracking.record_click(conn, request.app[SETTINGS].secret, token, realm=realm)


async def unsubscribe(request: web.Request, token: str, realm: str) -> Unsubscribed:
    async with request.app[POOL].acquire() as conn:
        _, category = await tracking.unsubscribe(
            conn, request.app[SETTINGS].secret, token, realm=realm
        )
    return Unsubscribed(category=category)


@endpoint(
    routes,
    "GET",
    tracking.UNSUBSCRIBE_PATH,
    summary="Unsubscribe link (from the e-mail)",
    tag="tracking",
    query=TokenQuery,
    response=Unsubscribed,
    auth=False,
    errors=(400, 401),
)
async def unsubscribe_link(request: web.Request, query: TokenQuery) -> Unsubscribed:
    return await unsubscribe(request, query.t, _realm_of_route(request))


@endpoint(
    routes,
    "POST",
    tracking.UNSUBSCRIBE_PATH,
    summary="One-click unsubscribe (RFC 8058, List-Unsubscribe-Post)",
    tag="tracking",
    query=TokenQuery,
    response=Unsubscribed,
    auth=False,
    errors=(400, 401),
)
async def unsubscribe_one_click(request: web.Request, query: TokenQuery) -> Unsubscribed:
    return await unsubscribe(request, query.t, _realm_of_route(request))
