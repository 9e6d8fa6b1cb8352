"""The market's Stripe connection in the api application, under CARD_PAYMENTS
(kernel/payments/connection.py). Without STRIPE_API_KEY card payments answer 503
`card payments are not configured`."""

from __future__ import annotations

from aiohttp import web

from kernel.payments.connection import StripeConnection, install_stripe

CARD_PAYMENTS = web.AppKey("market_card_payments", StripeConnection)


def install(app: web.Application) -> None:
    """api_setup: Stripe from the environment (STRIPE_*), unless the application was given
    its StripeConnection already (a test's stand-in)."""
    install_stripe(app, CARD_PAYMENTS)
