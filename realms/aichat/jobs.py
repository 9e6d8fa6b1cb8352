"""The aichat realm's scheduled jobs, as data: JOBS. On the 1st (UTC) the month that ended is
closed against Stripe (realms/aichat/billing.py, `close_month`): its invoices recorded even
when their webhooks were lost. Running again for the same month records nothing more."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import asyncpg

from kernel.jobs import Clock, Job, Monthly
from kernel.logs import EventLog
from kernel.payments.billing import StripeBilling
from kernel.payments.stripe import StripeClient, StripeSettings
from realms.aichat.billing import close_month

log = EventLog("realms.aichat.jobs")


async def month_end_invoices(
    conn: asyncpg.Connection, clock: Clock, *, settings: StripeSettings | None = None
) -> int:
    """Close the month before the current one (UTC). Without Stripe (STRIPE_API_KEY unset)
    there is nothing to close against: 0."""
    settings = settings if settings is not None else StripeSettings.from_env()
    if settings is None:
        log.info("month_close_skipped", reason="STRIPE_API_KEY is not set")
        return 0
    now = clock.now()
    month = (now.date().replace(day=1) - timedelta(days=1)).replace(day=1)
    async with aiohttp.ClientSession() as session:
        billing = StripeBilling(StripeClient(settings, session))
        return await close_month(conn, billing, month, now=now)


JOBS: list[Job] = [
    Job(
        name="aichat_month_end_invoices",
        schedule=Monthly(day=1, hour=0, minute=30),
        run=month_end_invoices,
        summary="close the month that ended against Stripe: record every invoice of it",
    ),
]
