"""The analyst realm's notification paths from before realms (/v1/me/devices,
/v1/me/notification-preferences, /v1/me/notification-settings, the e-mail links), declared here
with their own paths, summaries and status codes around the core's Structs and handler bodies
(kernel/web/notification_routes.py); and the internal endpoint through which other services
create notifications (admins, i.e. service accounts), which is the analyst realm's only."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from aiohttp import web
from msgspec import Meta, Struct

from kernel import notify, tracking
from kernel.errors import BadRequest
from kernel.web import notification_routes as shared
from kernel.web.auth import admin
from kernel.web.endpoints import endpoint, exactly_one_of
from kernel.web.keys import POOL
from kernel.web.notification_routes import (
    DeviceIn,
    DeviceOut,
    DeviceToken,
    NotificationSettings,
    PixelQuery,
    Preference,
    TokenQuery,
    Unsubscribed,
)

routes = web.RouteTableDef()


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
    return await shared.add_device(request, body)


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
    await shared.remove_device(request, body)


@endpoint(
    routes,
    "GET",
    "/v1/me/notification-preferences",
    summary="The caller's preferences",
    tag="notifications",
    response=list[Preference],
)
async def preferences(request: web.Request) -> list[Preference]:
    return await shared.read_preferences(request)


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
    await shared.write_preference(request, body)


@endpoint(
    routes,
    "GET",
    "/v1/me/notification-settings",
    summary="Time zone, quiet hours, digest",
    tag="notifications",
    response=NotificationSettings,
)
async def settings(request: web.Request) -> NotificationSettings:
    return await shared.read_settings(request)


@endpoint(
    routes,
    "PUT",
    "/v1/me/notification-settings",
    summary="Set time zone, quiet hours, digest",
    tag="notifications",
    body=NotificationSettings,
    response=NotificationSettings,
)
async def set_settings(request: web.Request, body: NotificationSettings) -> NotificationSettings:
    return await shared.write_settings(request, body)


# The e-mail links take only the analyst realm's links (links signed before realms name
# none and are the analyst realm's), as the core's take only their route's realm's.


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
    return await shared.open_pixel(request, query.t, realm=tracking.LEGACY_REALM)


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
    raise web.HTTPSeeOther(
        location=await shared.clicked_url(request, query.t, realm=tracking.LEGACY_REALM)
    )


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
    return await shared.unsubscribe(request, query.t, realm=tracking.LEGACY_REALM)


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
    return await shared.unsubscribe(request, query.t, realm=tracking.LEGACY_REALM)


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
