"""/v1/market/notification-settings: the seed's notification_settings row of the caller (e-mail,
push and SMS switches x order updates, promotions, messages, reviews), which decides the
channels of every market notification (events.tell). The core's inbox, devices and quiet
hours are kernel/web/notification_routes.py, served beside it."""

from __future__ import annotations

from aiohttp import web
from msgspec import Struct

from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from realms.market.routes.access import me

routes = web.RouteTableDef()

_FIELDS = (
    "email_enabled",
    "push_enabled",
    "sms_enabled",
    "order_updates",
    "promotions",
    "messages",
    "reviews",
)


class SwitchesOut(Struct):
    email_enabled: bool
    push_enabled: bool
    sms_enabled: bool
    order_updates: bool
    promotions: bool
    messages: bool
    reviews: bool


class SwitchesBody(Struct, forbid_unknown_fields=True, kw_only=True):
    email_enabled: bool | None = None
    push_enabled: bool | None = None
    sms_enabled: bool | None = None
    order_updates: bool | None = None
    promotions: bool | None = None
    messages: bool | None = None
    reviews: bool | None = None


# The seed's defaults stand for a user without a row (e-mail and push on, SMS off).
_READ = (
    "SELECT coalesce(s.email_enabled, true) AS email_enabled,"
    " coalesce(s.push_enabled, true) AS push_enabled,"
    " coalesce(s.sms_enabled, false) AS sms_enabled,"
    " coalesce(s.order_updates, true) AS order_updates,"
    " coalesce(s.promotions, true) AS promotions, coalesce(s.messages, true) AS messages,"
    " coalesce(s.reviews, true) AS reviews"
    " FROM (SELECT $1::bigint AS user_id) u"
    " LEFT JOIN market.notification_settings s ON s.user_id = u.user_id"
)


@endpoint(
    routes,
    "GET",
    "/v1/notification-settings",
    summary="The caller's notification switches (seed defaults when never set)",
    tag="market notifications",
    response=SwitchesOut,
    errors=(401,),
)
async def get_switches(request: web.Request) -> SwitchesOut:
    who = await me(request)
    return SwitchesOut(**dict(await request.app[POOL].fetchrow(_READ, who.id)))


@endpoint(
    routes,
    "PATCH",
    "/v1/notification-settings",
    summary="Change some of the caller's notification switches",
    tag="market notifications",
    body=SwitchesBody,
    response=SwitchesOut,
    errors=(400, 401),
)
async def set_switches(request: web.Request, body: SwitchesBody) -> SwitchesOut:
    who = await me(request)
    values = [getattr(body, name) for name in _FIELDS]
    sets = ", ".join(f"{name} = coalesce(${i + 2}, s.{name})" for i, name in enumerate(_FIELDS))
    inserts = ", ".join(f"coalesce(${i + 2}, {d})" for i, d in enumerate(
        ("true", "true", "false", "true", "true", "true", "true")))  # fmt: skip
    pool = request.app[POOL]
    await pool.execute(
        f"INSERT INTO market.notification_settings AS s (user_id, {', '.join(_FIELDS)})"
        f" VALUES ($1, {inserts}) ON CONFLICT (user_id) DO UPDATE SET {sets}",
        who.id,
        *values,
    )
    return SwitchesOut(**dict(await pool.fetchrow(_READ, who.id)))
