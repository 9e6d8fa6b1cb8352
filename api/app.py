"""Builds the aiohttp Application: resources in cleanup contexts, route tables, error middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from api import openapi
from api.errors import errors_middleware
from api.keys import OTP_SENDERS, POOL, SETTINGS
from api.otp import LogSmsSender, OtpSenders, SmtpOtpSender
from api.routes import (
    auth,
    bookmarks,
    channels,
    discounts,
    health,
    inbox,
    invites,
    jobs,
    moderation,
    notifications,
    payments,
    posts,
    profiles,
    reviews,
    subscriptions,
    support,
    tiers,
)
from kernel.config import Settings
from kernel.db import create_pool


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


def create_app(settings: Settings, otp_senders: OtpSenders | None = None) -> web.Application:
    """The API application; its pool opens on startup and closes on cleanup. OTP codes go
    by SMTP (SMTP_URL) and to the SMS sender, which by default writes them to the log."""
    app = web.Application(client_max_size=1024 * 1024, middlewares=[errors_middleware])
    app[SETTINGS] = settings
    app[OTP_SENDERS] = otp_senders or OtpSenders(
        email=SmtpOtpSender(settings.smtp_url, settings.mail_from), sms=LogSmsSender()
    )
    app.cleanup_ctx.append(_database)
    for module in (
        health,
        openapi,
        auth,
        profiles,
        tiers,
        subscriptions,
        payments,
        discounts,
        invites,
        posts,
        bookmarks,
        reviews,
        moderation,
        support,
        inbox,
        channels,
        notifications,
        jobs,
    ):
        app.add_routes(module.routes)
    return app
