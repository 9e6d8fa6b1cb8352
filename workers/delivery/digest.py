"""The daily digest: notifications of group 'daily_digest' are never e-mailed one by one. Each
user has at most one 'digest' job per local day and realm (kernel/notify.py creates it, due
at the user's digest time the next day); it sends one e-mail listing that day's unread items
from the realm's inbox, and earlier ones a failed digest left behind."""

from __future__ import annotations

import datetime as dt
import functools

import asyncpg

from kernel.inbox import Inbox, bind, inbox_of
from kernel.notify import DIGEST_GROUP
from workers.delivery.email import EmailLinks, SmtpTransport, compose, why_not_email
from workers.delivery.outbox import Job, Outcome, Sent, Skipped
from workers.delivery.quiet_hours import zone
from workers.delivery.templates import Item, render_digest

MAX_ITEMS = 200

# {t}: the realm's inbox table; {mine}: the user's rows of it (kernel/inbox.py).
_ITEMS = """
SELECT n.id, n.notification_type, n.title, n.message, n.action_url
  FROM {t} n
 WHERE {mine} AND n.notification_group = :group AND n.send_email AND NOT n.email_sent
   AND n.read_at IS NULL AND n.created_at < :day_end
 ORDER BY n.created_at
 LIMIT :limit
"""


@functools.cache
def _items_sql(box: Inbox) -> str:
    return _ITEMS.format(t=box.table, mine=box.owner("n", ":user::text"))


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
        box = job.inbox or inbox_of(job.realm)
        sql, args = bind(
            _items_sql(box),
            {
                "realm": job.realm,
                "user": job.user_id,
                "group": DIGEST_GROUP,
                "day_end": day_end,
                "limit": MAX_ITEMS,
            },
        )
        rows = await self.pool.fetch(sql, *args)
        if not rows:
            return Skipped("nothing unread to list")
        user, realm = job.user_id, job.realm
        items = [
            Item(
                title=r["title"] or r["notification_type"].replace("_", " ").capitalize(),
                message=r["message"] or "",
                link=self.links.click(user, str(r["id"]), r["action_url"], realm=realm),
            )
            for r in rows
        ]
        unsubscribe = self.links.unsubscribe(user, "*", realm=realm)
        rendered = render_digest(
            job.digest_date.isoformat(),
            items,
            unsubscribe=unsubscribe,
            pixel=self.links.pixel(user, digest=job.id, realm=realm),
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
