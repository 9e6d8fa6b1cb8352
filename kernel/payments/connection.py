"""A realm's Stripe connection in the api application: the settings read from STRIPE_*
(kernel/payments/stripe.py) and one HTTP session opened and closed with the app. Without
STRIPE_API_KEY every use answers 503 `card payments are not configured`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from kernel.errors import Unavailable
from kernel.payments.stripe import StripeClient, StripeSettings

NOT_CONFIGURED = "card payments are not configured"


class StripeConnection:
    """Stripe's client and its HTTP session, opened and closed with the api application.
    Without settings (STRIPE_API_KEY unset) `client` and `webhook_secret()` answer 503."""

    def __init__(self, settings: StripeSettings | None) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._client: StripeClient | None = None

    async def open(self) -> None:
        if self.settings is not None and self._session is None:
            self._session = aiohttp.ClientSession()
            self._client = StripeClient(self.settings, self._session)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session, self._client = None, None

    @property
    def client(self) -> StripeClient:
        """The open client; Unavailable (503) when card payments are not configured."""
        if self._client is None:
            raise Unavailable(NOT_CONFIGURED, details={"reason": "card_payments_off"})
        return self._client

    def webhook_secret(self) -> str:
        if self.settings is None or not self.settings.webhook_secret:
            raise Unavailable(NOT_CONFIGURED, details={"reason": "card_payments_off"})
        return self.settings.webhook_secret


def install_stripe(app: web.Application, key: web.AppKey[StripeConnection]) -> None:
    """api_setup: a StripeConnection under `key` from the environment (STRIPE_*), unless the
    application was given one already (a test's stand-in), opened with the app."""
    if key not in app:
        app[key] = StripeConnection(StripeSettings.from_env())

    async def session(app: web.Application) -> AsyncIterator[None]:
        await app[key].open()
        yield
        await app[key].close()

    app.cleanup_ctx.append(session)
