"""The daily digest: notifications of group 'daily_digest' are never e-mailed one by one. Each
user has at most one 'digest' job per local day (kernel/notify.py creates it, due at the
user's digest time the next day); it sends one e-mail listing that day's unread items, and
earlier ones a failed digest left behind."""

from __future__ import annotations

import datetime as dt

import asyncpg

from kernel.notify import DIGEST_GROUP
from workers.delivery.email import EmailLinks, SmtpTransport, compose, why_not_email
from workers.delivery.outbox import Job, Outcome, Sent, Skipped
from workers.delivery.quiet_hours import zone
from workers.delivery.templates import Item, render_digest

MAX_ITEMS = 200

_ITEMS = """
SELECT id, notification_type, title, message, action_url
  FROM analyst.notifications
 WHERE user_id = $1 AND notification_group = $2 AND send_email AND NOT email_sent
   AND read_at IS NULL AND created_at < $3
 ORDER BY created_at
 LIMIT $4
"""


class DigestSender:
    """The 'digest' channel: one e-mail per user and day for the day's grouped items."""

    channel = "digest"

    def __init__(
        self, pool: asyncpg.Pool, transport: SmtpTransport, links: EmailLinks, mail_from: str
    ) -> None:
        self.pool = pool
        self.transport = transport
        self.links = links
        self.mail_from = mail_from
        self.concurrency = transport.concurrency  # the transport's connections are shared

    async def deliver(self, job: Job, now: dt.datetime) -> Outcome:
        refusal = why_not_email(job)
        if refusal is not None:
            return refusal
        assert job.email is not None and job.digest_date is not None
        day_end = dt.datetime.combine(
            job.digest_date + dt.timedelta(days=1), dt.time(), tzinfo=zone(job.time_zone)
        )
        rows = await self.pool.fetch(_ITEMS, job.user_id, DIGEST_GROUP, day_end, MAX_ITEMS)
        if not rows:
            return Skipped("nothing unread to list")
        user = str(job.user_id)
        items = [
            Item(
                title=r["title"] or r["notification_type"].replace("_", " ").capitalize(),
                message=r["message"] or "",
                link=self.links.click(user, str(r["id"]), r["action_url"]),
            )
            for r in rows
        ]
        unsubscribe = self.links.unsubscribe(user, "*")
        rendered = render_digest(
            job.digest_date.isoformat(),
            items,
            unsubscribe=unsubscribe,
            pixel=self.links.pixel(user, digest=job.id),
        )
        message = compose(
            rendered,
            mail_from=self.mail_from,
            to=job.email,
            key=job.idempotency_key,
            unsubscribe_url=unsubscribe,
            now=now,
        )
        outcome = await self.transport.send(message, now)
        if isinstance(outcome, Sent):
            return Sent(outcome.provider_message_id, digest_items=[r["id"] for r in rows])
        return outcome
