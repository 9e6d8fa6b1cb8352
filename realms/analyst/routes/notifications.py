"""Notifications over HTTP: push devices, preferences and quiet hours of the caller, the
e-mail tracking links (open pixel, click redirect, one-click unsubscribe), and the internal
endpoint through which other services create notifications (admins, i.e. service accounts)."""

from __future__ import annotations

import base64
import uuid
import zoneinfo
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from aiohttp import web
from msgspec import Meta, Struct

from kernel import notify, tracking
from kernel.errors import BadRequest, NotFound, SwitchboardError
from kernel.web.auth import admin, caller
from kernel.web.endpoints import all_or_none, endpoint, exactly_one_of
from kernel.web.keys import POOL, SETTINGS

routes = web.RouteTableDef()

Clock = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]\Z", description="HH:MM")]
Category = Annotated[str, Meta(pattern=r"^(\*|[a-z][a-z0-9_]{0,49})\Z")]
# A transparent 1x1 GIF: what an e-mail client fetches as the open pixel.
_PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


class DeviceIn(Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(min_length=10, max_length=4096)]
    platform: Literal["android", "ios", "web"]
    app_version: Annotated[str, Meta(max_length=50)] | None = None


class DeviceToken(Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(min_length=1, max_length=4096)]


class DeviceOut(Struct):
    id: uuid.UUID


class Preference(Struct, forbid_unknown_fields=True):
    category: Category
    channel: Literal["in_app", "push", "email", "sms", "*"]
    enabled: bool


# An IANA name this machine's tz database knows (what set_settings accepts).
TimeZone = Annotated[
    str,
    Meta(max_length=64, extra_json_schema={"enum": sorted(zoneinfo.available_timezones())}),
]


class Settings(Struct, forbid_unknown_fields=True):
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        all_or_none("quiet_hours_start", "quiet_hours_end"),
    )
    time_zone: TimeZone = "UTC"
    quiet_hours_start: Clock | None = None
    quiet_hours_end: Clock | None = None
    digest_at: Clock = "08:00"


LinkToken = Annotated[str, Meta(min_length=1, max_length=4096, pattern=tracking.TOKEN_PATTERN)]


class TokenQuery(Struct):
    t: LinkToken


class PixelQuery(Struct):
    """The open pixel's: any token gets the pixel (a malformed one records nothing)."""

    t: Annotated[str, Meta(min_length=1, max_length=4096)]


class AudienceIn(Struct, forbid_unknown_fields=True):
    # `admins` takes no id; the others name their analyst or tier
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "anyOf": [
                {"properties": {"name": {"const": "admins"}, "id": {"type": "null"}}},
                {
                    "required": ["id"],
                    "properties": {
                        "name": {"enum": ["analyst_active_subscribers", "tier_active_subscribers"]},
                        "id": {"not": {"type": "null"}},
                    },
                },
            ]
        },
    )
    name: Literal["analyst_active_subscribers", "tier_active_subscribers", "admins"]
    id: uuid.UUID | None = None


class NotificationIn(Struct, forbid_unknown_fields=True):
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (exactly_one_of("user_ids", "audience"),)
    event_key: Annotated[str, Meta(min_length=1, max_length=200)]
    notification_type: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,49}\Z")]
    user_ids: Annotated[list[uuid.UUID], Meta(max_length=10_000)] | None = None
    audience: AudienceIn | None = None
    title: Annotated[str, Meta(max_length=255)] | None = None
    message: Annotated[str, Meta(max_length=5000)] | None = None
    action_url: Annotated[str, Meta(max_length=500)] | None = None
    priority: Literal["low", "medium", "high", "urgent"] = "medium"
    notification_group: Annotated[str, Meta(max_length=100)] | None = None
    send_email: bool = True
    send_push: bool = True
    send_in_app: bool = True
    bypass_preferences: bool = False


class Created(Struct):
    created: int


class Unsubscribed(Struct):
    category: str
    email: Literal["off"] = "off"


@endpoint(
    routes,
    "POST",
    "/v1/me/devices",
    summary="Register a push device",
    tag="notifications",
    body=DeviceIn,
    response=DeviceOut,
    status=201,
)
async def register_device(request: web.Request, body: DeviceIn) -> DeviceOut:
    who = await caller(request)
    async with request.app[POOL].acquire() as conn:
        device_id = await notify.register_device(
            conn, who.user_id, body.token, body.platform, body.app_version
        )
    return DeviceOut(id=device_id)


@endpoint(
    routes,
    "POST",
    "/v1/me/devices/forget",
    summary="Unregister a push device",
    tag="notifications",
    body=DeviceToken,
    status=204,
    errors=(404,),
)
async def forget_device(request: web.Request, body: DeviceToken) -> None:
    who = await caller(request)
    async with request.app[POOL].acquire() as conn:
        if not await notify.forget_device(conn, who.user_id, body.token):
            raise NotFound("no such device of yours")


@endpoint(
    routes,
    "GET",
    "/v1/me/notification-preferences",
    summary="The caller's preferences",
    tag="notifications",
    response=list[Preference],
)
async def preferences(request: web.Request) -> list[Preference]:
    who = await caller(request)
    rows = await request.app[POOL].fetch(
        "SELECT category, channel, enabled FROM gateway.notification_preferences"
        " WHERE realm = $2 AND user_id = $1 ORDER BY category, channel",
        who.subject,
        who.realm,
    )
    return [Preference(r["category"], r["channel"], r["enabled"]) for r in rows]


@endpoint(
    routes,
    "PUT",
    "/v1/me/notification-preferences",
    summary="Allow or block a category ('*': all) on a channel ('*': all)",
    tag="notifications",
    body=Preference,
    status=204,
)
async def set_preference(request: web.Request, body: Preference) -> None:
    who = await caller(request)
    async with request.app[POOL].acquire() as conn:
        await notify.set_preference(conn, who.user_id, body.category, body.channel, body.enabled)


@endpoint(
    routes,
    "GET",
    "/v1/me/notification-settings",
    summary="Time zone, quiet hours, digest",
    tag="notifications",
    response=Settings,
)
async def settings(request: web.Request) -> Settings:
    who = await caller(request)
    row = await request.app[POOL].fetchrow(
        "SELECT time_zone, to_char(quiet_hours_start, 'HH24:MI') AS qs,"
        " to_char(quiet_hours_end, 'HH24:MI') AS qe, to_char(digest_at, 'HH24:MI') AS d"
        " FROM gateway.notification_settings WHERE realm = $2 AND user_id = $1",
        who.subject,
        who.realm,
    )
    if row is None:
        return Settings()
    return Settings(row["time_zone"], row["qs"], row["qe"], row["d"])


@endpoint(
    routes,
    "PUT",
    "/v1/me/notification-settings",
    summary="Set time zone, quiet hours, digest",
    tag="notifications",
    body=Settings,
    response=Settings,
)
async def set_settings(request: web.Request, body: Settings) -> Settings:
    who = await caller(request)
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
            conn, who.user_id, time_zone=body.time_zone, quiet_hours=quiet, digest_at=body.digest_at
        )
    return body


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
    """Always the pixel: a bad token records nothing but must not show a broken image."""
    try:
        async with request.app[POOL].acquire() as conn:
            await tracking.record_open(conn, request.app[SETTINGS].secret, query.t)
    except SwitchboardError:
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
    errors=(401,),
)
async def email_clicked(request: web.Request, query: TokenQuery) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        url = await tracking.record_click(conn, request.app[SETTINGS].secret, query.t)
    raise web.HTTPSeeOther(location=url)


async def _unsubscribe(request: web.Request, token: str) -> Unsubscribed:
    async with request.app[POOL].acquire() as conn:
        _, category = await tracking.unsubscribe(conn, request.app[SETTINGS].secret, token)
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
    errors=(401,),
)
async def unsubscribe_link(request: web.Request, query: TokenQuery) -> Unsubscribed:
    return await _unsubscribe(request, query.t)


@endpoint(
    routes,
    "POST",
    tracking.UNSUBSCRIBE_PATH,
    summary="One-click unsubscribe (RFC 8058, List-Unsubscribe-Post)",
    tag="tracking",
    query=TokenQuery,
    response=Unsubscribed,
    auth=False,
    errors=(401,),
)
async def unsubscribe_one_click(request: web.Request, query: TokenQuery) -> Unsubscribed:
    return await _unsubscribe(request, query.t)


@endpoint(
    routes,
    "POST",
    "/v1/internal/notifications",
    summary="Create notifications for users or a named audience (service accounts)",
    tag="notifications",
    body=NotificationIn,
    response=Created,
    status=201,
    errors=(403,),
    max_body=1024 * 1024,  # 10,000 user ids take about 390 kB
)
async def create_notifications(request: web.Request, body: NotificationIn) -> Created:
    await admin(request)
    if (body.user_ids is None) == (body.audience is None):
        raise BadRequest("give exactly one of `user_ids` or `audience`")
    if body.audience is not None:
        needs_id = body.audience.name != "admins"
        if needs_id != (body.audience.id is not None):
            raise BadRequest(
                f"audience {body.audience.name!r} "
                + ("needs an `id`" if needs_id else "takes no `id`")
            )
        args = (body.audience.id,) if body.audience.id is not None else ()
        recipients: notify.Audience | list[uuid.UUID] = notify.audience(body.audience.name, *args)
    else:
        recipients = body.user_ids or []
    fields = msgspec.structs.asdict(body)
    for name in ("user_ids", "audience", "event_key"):
        fields.pop(name)
    async with request.app[POOL].acquire() as conn:
        try:
            created = await notify.notify(
                conn, event_key=body.event_key, recipients=recipients, **fields
            )
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    return Created(created=created)
