"""E-mail delivery with aiosmtplib: composing a notification's message (text + HTML, tracked
links, List-Unsubscribe) and sending it, with SMTP replies sorted into outcomes: 5xx is a
permanent failure, 4xx and connection trouble are retried."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from urllib.parse import unquote, urlsplit

import aiosmtplib

from kernel.tracking import LinkClaim, link
from workers.delivery.outbox import Failed, Job, Outcome, Retry, Sent, Skipped
from workers.delivery.templates import Item, Rendered, render_notification


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where SMTP_URL points: smtp://[user:pass@]host[:port] (STARTTLS when offered),
    smtp+starttls:// (STARTTLS required) or smtps:// (TLS from the first byte)."""

    hostname: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    start_tls: bool | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        schemes = {"smtp": (25, False, None), "smtp+starttls": (587, False, True)}
        schemes["smtps"] = (465, True, False)
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://[user:pass@]host[:port]")
        port, use_tls, start_tls = schemes[parts.scheme]
        return cls(
            hostname=parts.hostname,
            port=parts.port or port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=use_tls,
            start_tls=start_tls,
        )


def _classify(code: int, text: str) -> Outcome:
    reason = f"SMTP {code} {text}".strip()[:500]
    return Failed(reason) if code >= 500 else Retry(reason)


class SmtpTransport:
    """Sends one message per connection, at most `connections` at once (a small, steady
    pool suits relays' per-client limits). aiosmtplib does not retry: the outbox does."""

    def __init__(self, target: SmtpTarget, *, timeout_s: float = 30.0, connections: int = 8):
        self.target = target
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(connections)

    async def send(self, message: EmailMessage) -> Outcome:
        t = self.target
        async with self._slots:
            try:
                errors, reply = await aiosmtplib.send(
                    message,
                    hostname=t.hostname,
                    port=t.port,
                    username=t.username,
                    password=t.password,
                    use_tls=t.use_tls,
                    start_tls=t.start_tls,
                    timeout=self.timeout_s,
                )
            except aiosmtplib.SMTPRecipientsRefused as exc:
                # One recipient per message, so one refusal: its code decides.
                refused = exc.recipients[0]
                return _classify(refused.code, refused.message)
            except aiosmtplib.SMTPResponseException as exc:
                return _classify(exc.code, exc.message)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                return Retry(f"SMTP connection: {exc!r}"[:500])
        if errors:  # a partial refusal raises nothing and shows only here
            response = next(iter(errors.values()))
            return _classify(response.code, response.message)
        return Sent(provider_message_id=reply[:200] or None)


def message_id(key: str, mail_from: str) -> str:
    """A stable Message-ID for a delivery key, so a retried send carries the same one."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "switchboard.local"
    return f"<{key.replace(':', '.')}@{domain}>"


def compose(
    rendered: Rendered,
    *,
    mail_from: str,
    to: str,
    key: str,
    unsubscribe_url: str,
    now: dt.datetime,
) -> EmailMessage:
    """The MIME message: multipart/alternative (text, then HTML) with RFC 8058 headers."""
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = to
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id(key, mail_from)
    msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


@dataclass(frozen=True, slots=True)
class EmailLinks:
    """Builds a recipient's signed links under PUBLIC_BASE_URL."""

    base_url: str
    secret: str

    def pixel(
        self, user_id: str, *, notification: str | None = None, digest: int | None = None
    ) -> str:
        claim = LinkClaim(k="open", u=user_id, n=notification, d=digest)
        return link(self.base_url, self.secret, claim)

    def click(self, user_id: str, notification: str, url: str | None) -> str | None:
        if not url or not url.startswith(("https://", "http://")):
            return url or None
        claim = LinkClaim(k="click", u=user_id, n=notification, url=url)
        return link(self.base_url, self.secret, claim)

    def unsubscribe(self, user_id: str, category: str) -> str:
        return link(self.base_url, self.secret, LinkClaim(k="unsubscribe", u=user_id, c=category))


def why_not_email(job: Job) -> Skipped | None:
    """The reason this job's user cannot be e-mailed now, if any."""
    if not job.user_active:
        return Skipped("user is inactive or deleted")
    if not job.email_ok or job.email is None:
        return Skipped("no verified e-mail address")
    return None


class EmailSender:
    """The 'email' channel: one notification, one message, in its type's template."""

    channel = "email"

    def __init__(self, transport: SmtpTransport, links: EmailLinks, mail_from: str) -> None:
        self.transport = transport
        self.links = links
        self.mail_from = mail_from

    async def deliver(self, job: Job, now: dt.datetime) -> Outcome:
        refusal = why_not_email(job)
        if refusal is not None:
            return refusal
        if job.notification_read:
            return Skipped("read in-app before the e-mail went out")
        assert job.email is not None and job.notification_id is not None
        user, nid, kind = str(job.user_id), str(job.notification_id), job.notification_type
        item = Item(
            title=job.title or (kind or "notification").replace("_", " ").capitalize(),
            message=job.message or "",
            link=self.links.click(user, nid, job.action_url),
        )
        unsubscribe = self.links.unsubscribe(user, kind or "*")
        rendered = render_notification(
            kind or "",
            item,
            unsubscribe=unsubscribe,
            pixel=self.links.pixel(user, notification=nid),
        )
        message = compose(
            rendered,
            mail_from=self.mail_from,
            to=job.email,
            key=job.idempotency_key,
            unsubscribe_url=unsubscribe,
            now=now,
        )
        return await self.transport.send(message)
