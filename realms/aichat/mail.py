"""Account e-mails of the aichat realm (address verification, password reset): sent through
SMTP_URL like the analyst realm's codes (realms/analyst/otp.py), written to the log when no
SMTP is configured (dev only: prod refuses to start), and copied to the dev mailbox in dev
mode. The token travels only in the e-mail; the database keeps its SHA-256."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Literal, Protocol
from urllib.parse import urlsplit

import aiosmtplib
from aiohttp import web

from kernel.config import ConfigError
from kernel.devmail import DEV_MAILBOX, DevMailbox
from kernel.logs import EventLog
from kernel.web.keys import SETTINGS

log = EventLog("realms.aichat.mail")
Purpose = Literal["verify_email", "reset_password"]
SUBJECTS = {
    "verify_email": "Confirm your e-mail address",
    "reset_password": "Reset your password",
}


def account_email(mail_from: str, to: str, purpose: Purpose, token: str, link: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = SUBJECTS[purpose]
    what = "confirm this address" if purpose == "verify_email" else "choose a new password"
    hours = "24 hours" if purpose == "verify_email" else "1 hour"
    message.set_content(
        f"To {what}, open {link}\n"
        f"or use this token: {token}\n"
        f"It works once and expires in {hours}. If you did not ask for it, ignore this e-mail."
    )
    return message


class AccountMailer(Protocol):
    async def send(self, *, to: str, purpose: Purpose, token: str) -> None: ...


class SmtpAccountMailer:
    def __init__(self, smtp_url: str | None, mail_from: str, base_url: str) -> None:
        self.smtp_url = smtp_url
        self.mail_from = mail_from
        self.base_url = base_url.rstrip("/")

    def message(self, to: str, purpose: Purpose, token: str) -> EmailMessage:
        path = "verify-email" if purpose == "verify_email" else "reset-password"
        link = f"{self.base_url}/aichat/{path}?token={token}"
        return account_email(self.mail_from, to, purpose, token, link)

    async def send(self, *, to: str, purpose: Purpose, token: str) -> None:
        if not self.smtp_url:
            log.info("account_email_logged", to=to, purpose=purpose, token=token)
            return
        url = urlsplit(self.smtp_url)
        await aiosmtplib.send(
            self.message(to, purpose, token),
            hostname=url.hostname or "127.0.0.1",
            port=url.port or 25,
            timeout=10,
        )


class KeptInDevMailbox:
    def __init__(self, mailer: SmtpAccountMailer, mailbox: DevMailbox) -> None:
        self.mailer = mailer
        self.mailbox = mailbox

    async def send(self, *, to: str, purpose: Purpose, token: str) -> None:
        await self.mailer.send(to=to, purpose=purpose, token=token)
        message = self.mailer.message(to, purpose, token)
        self.mailbox.keep(
            channel="email",
            to=to,
            subject=str(message["Subject"]),
            text=message.get_content(),
            realm="aichat",
            purpose=purpose,
            code=token,
        )


AICHAT_MAILER = web.AppKey("aichat_mailer", AccountMailer)


def install_mailer(app: web.Application) -> None:
    """The realm's mailer (a test or an embedding may have set AICHAT_MAILER already)."""
    if AICHAT_MAILER in app:
        return
    settings = app[SETTINGS]
    if settings.env == "prod" and not settings.smtp_url:
        raise ConfigError(
            "SWITCHBOARD_ENV=prod needs SMTP_URL: aichat's verification and reset tokens"
            " would be written to the log"
        )
    mailer = SmtpAccountMailer(settings.smtp_url, settings.mail_from, settings.public_base_url)
    mailbox = app.get(DEV_MAILBOX)
    app[AICHAT_MAILER] = KeptInDevMailbox(mailer, mailbox) if mailbox is not None else mailer
