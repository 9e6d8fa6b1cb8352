"""The aichat realm's scheduled jobs, as data: JOBS. The month-end invoices run on the 1st
(UTC) for the month that ended; running again for the same month issues nothing more."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from kernel.jobs import Clock, Job, Monthly
from realms.aichat.billing import issue_invoices


async def month_end_invoices(conn: asyncpg.Connection, clock: Clock) -> int:
    """Invoice the month before the current one (UTC)."""
    first = clock.now().date().replace(day=1)
    return await issue_invoices(conn, (first - timedelta(days=1)).replace(day=1))


JOBS: list[Job] = [
    Job(
        name="aichat_month_end_invoices",
        schedule=Monthly(day=1, hour=0, minute=30),
        run=month_end_invoices,
        summary="issue one invoice per aichat subscription for the month that ended",
    ),
]
